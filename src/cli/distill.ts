// quench distill: a thin argument parser over the workflow layer (src/engine/workflow), which the
// studio's worker calls too: one spec, one set of defaults, one data split, one run loop.
import { shapeChoices, shapeLabel } from '../engine/ops/shape-choice';
import { existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { cliGpu } from './gpu';
import { isSoftwareMatmulAdapter } from '../engine/ops/matmul';
import type { Gpu } from '../engine/gpu/runtime';
import { loadModelFromPath, type LoadedModel } from '../engine/io/load-node';
import type { LossWeights } from '../engine/train/distill';
import { sampleTeacherDocs } from '../engine/train/teacher-data';
import { splitDocuments } from '../engine/eval/perplexity';
import { DEFAULT_RUN_SPEC, makeRunSpec, type RunSpec } from '../engine/workflow/spec';
import { DOC_SEPARATOR, evalOnlySplit, splitDocs, type DataSplit } from '../engine/workflow/data';
import { autoFreezeInFolder, runInFolder } from '../engine/workflow/run-folder';
import type { Teacher } from '../engine/workflow/run';
import { int, num, parse } from './args';
import { ptqFromArgs } from './quant-args';

export const DISTILL_HELP = `usage: quench distill --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE] [--sep S]
                      --bits 2|3|4|8 --group N --freeze ov|none|qk|qkv|attention|mlp|q,k,v|auto
                      [--loss kl=1,ce=0.5,attn_map=0,attn_out=0,hidden=0] [--temperature T]
                      [--steps N] [--batch B] [--seq T] [--accum K] [--lr X] [--warmup N] [--seed S]
                      [--clip-ratio R] [--scales minmax|learned] [--scale-lr-ratio R] [--scale-init minmax|search] [--sym] [--grad-clip G] [--weight-decay W] [--metrics-every N]
                      [--eval-docs N] [--holdout N] [--teacher-data N] [--fp-reference] [--resume] --out DIR
The FP teacher distils into its quantized student (fp32 latents, packed low-bit forward, STE
backward). Writes DIR/metrics.jsonl (one line per step), DIR/checkpoint.json +
DIR/checkpoint-N.safetensors (resume with --resume; a folder holding a run is never overwritten),
DIR/summary.json (final eval perplexity among it) and the student as a quantized model folder
DIR/student (quench eval --model DIR/student).
--data/--eval are text files split into documents at --sep (default '<|endoftext|>'); without
--eval, the last --holdout documents of --data (default: a tenth, at least 2, at most 200) are held
out for evaluation and never trained on; --eval-docs N evaluates the first N of them. Perplexity
follows quench eval's protocol (BOS, truncated to the model's context). --teacher-data N trains on
N sequences of --seq tokens sampled from the teacher instead (data-free distillation, as LLM-QAT).
--freeze auto: probes (no freeze and the FP fine-tune) measure per layer x projection gradient
norms against the FP reference, code flips and the error each projection's quantization adds;
ranked candidate masks (whole projection types, and the per-layer cells that score on their own)
then race by successive halving (1/8, 1/4 of the steps; 1/16, 1/8, 1/4 with a cell candidate),
chosen on a validation slice of the training documents, never the held-out text; the winner's
scheme then has its ordinary full run. At most 1.975 full runs in all, probes included;
DIR/auto-freeze.json has the evidence.
The studio uses the same defaults:
${JSON.stringify(DEFAULT_RUN_SPEC)}`;

export const DISTILL_OPTIONS = {
  teacher: { type: 'string' }, tokenizer: { type: 'string' }, data: { type: 'string' }, eval: { type: 'string' }, sep: { type: 'string' },
  bits: { type: 'string' }, group: { type: 'string' }, sym: { type: 'boolean' }, 'clip-search': { type: 'boolean' }, freeze: { type: 'string' }, loss: { type: 'string' },
  temperature: { type: 'string' }, steps: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' }, accum: { type: 'string' },
  lr: { type: 'string' }, warmup: { type: 'string' }, seed: { type: 'string' }, 'clip-ratio': { type: 'string' }, 'grad-clip': { type: 'string' },
  'weight-decay': { type: 'string' }, 'metrics-every': { type: 'string' }, 'eval-docs': { type: 'string' }, 'fp-reference': { type: 'boolean' },
  scales: { type: 'string' }, 'scale-lr-ratio': { type: 'string' }, 'teacher-data': { type: 'string' }, 'scale-init': { type: 'string' },
  tasks: { type: 'string' }, 'data-dir': { type: 'string' }, limit: { type: 'string' },
  resume: { type: 'boolean' }, out: { type: 'string' }, json: { type: 'boolean' }, schemes: { type: 'string' }, holdout: { type: 'string' },
} as const;

export function parseLoss(spec: string | undefined): LossWeights {
  if (!spec) return { ...DEFAULT_RUN_SPEC.loss };
  // a given spec names every weight that is not 0
  const w: LossWeights = { kl: 0, ce: 0, attnMap: 0, attnOut: 0, hidden: 0 };
  const keys: Record<string, keyof LossWeights> = { kl: 'kl', ce: 'ce', attn_map: 'attnMap', attn_out: 'attnOut', hidden: 'hidden' };
  for (const part of spec.split(',')) {
    const [k, v] = part.split('=');
    if (!Object.hasOwn(keys, k) || v === undefined || !Number.isFinite(Number(v)) || Number(v) < 0) throw new Error(`--loss: bad term "${part}" (use kl=1,ce=0.5,attn_map=0,attn_out=0,hidden=0)`);
    w[keys[k]] = Number(v);
  }
  if (Object.values(w).every((x) => x === 0)) throw new Error('--loss: every weight is 0');
  return w;
}

function oneOf<T extends string>(v: unknown, flag: string, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) throw new Error(`--${flag} must be ${allowed.join(' or ')}, not ${JSON.stringify(v)}`);
  return v as T;
}

const opt = (v: unknown, name: string, f: typeof int | typeof num) => (v === undefined ? undefined : f(v, name, 0));

/** The run spec the flags describe (unset flags keep the workflow defaults). */
export function specFromArgs(a: Record<string, unknown>, scheme = (a.freeze as string | undefined) ?? 'none'): RunSpec {
  const q = ptqFromArgs(a);
  if (!q) throw new Error('--bits is required');
  return makeRunSpec({
    kind: a['fp-reference'] ? 'fp-finetune' : 'kdqat', scheme,
    bits: q.bits, group: q.group, sym: q.sym,
    clip: opt(a['clip-ratio'], 'clip-ratio', num), scales: oneOf(a.scales, 'scales', ['minmax', 'learned'] as const),
    scaleLrRatio: opt(a['scale-lr-ratio'], 'scale-lr-ratio', num), scaleInit: oneOf(a['scale-init'], 'scale-init', ['minmax', 'search'] as const),
    loss: a.loss === undefined ? undefined : parseLoss(a.loss as string), temperature: opt(a.temperature, 'temperature', num),
    steps: opt(a.steps, 'steps', int), batch: opt(a.batch, 'batch', int), seq: opt(a.seq, 'seq', int), accum: opt(a.accum, 'accum', int),
    lr: opt(a.lr, 'lr', num), warmup: opt(a.warmup, 'warmup', int), seed: opt(a.seed, 'seed', int),
    gradClip: opt(a['grad-clip'], 'grad-clip', num), weightDecay: opt(a['weight-decay'], 'weight-decay', num), metricsEvery: opt(a['metrics-every'], 'metrics-every', int),
  }, 'flags');
}

function readText(path: string): string {
  if (!existsSync(path)) throw new Error(`${path}: text file not found`);
  return readFileSync(path, 'utf8');
}

export function loadDocs(path: string, sep: string): string[] {
  return splitDocuments(readText(path), sep);
}

/** Training and held-out documents from --data / --eval / --holdout / --eval-docs. */
export function splitFromArgs(a: Record<string, unknown>, teacherDocs?: string[]): DataSplit {
  const sep = (a.sep as string | undefined) ?? DOC_SEPARATOR;
  const evalDocs = a['eval-docs'] === undefined ? ('all' as const) : int(a['eval-docs'], 'eval-docs', 1);
  const holdout = a.holdout === undefined ? ('auto' as const) : int(a.holdout, 'holdout', 1);
  if (a.eval) {
    const train = teacherDocs ?? (a.data ? loadDocs(a.data as string, sep) : null);
    if (!train) throw new Error('--data is required (or --teacher-data N with --eval FILE)');
    if (train.length === 0) throw new Error(`${a.data}: no training documents`);
    return evalOnlySplit(train, readText(a.eval as string), a.eval as string, { sep, evalDocs });
  }
  if (!a.data) throw new Error('--data is required (or --teacher-data N with --eval FILE)');
  const split = splitDocs(loadDocs(a.data as string, sep), a.data as string, { sep, holdout, evalDocs });
  return teacherDocs ? { ...split, train: teacherDocs } : split;
}

/** --teacher-data N: N sequences sampled from the teacher (progress on stderr). */
export async function teacherData(gpu: Gpu, m: LoadedModel, n: number, tokens: number, seed: number): Promise<string[]> {
  let last = 0;
  return sampleTeacherDocs(gpu, m.config, m.weights, m.tokenizer!, {
    sequences: n, tokens, seed: 1000 * seed, onProgress: (d, t) => {
      if (performance.now() - last > 5000 || d === t) {
        last = performance.now();
        process.stderr.write(`teacher data: ${d}/${t} sequences\n`);
      }
    },
  });
}

/** The teacher named by --teacher (and --tokenizer), checked to be an FP model with a tokenizer. */
export async function loadTeacher(a: Record<string, unknown>): Promise<LoadedModel & Teacher> {
  const m = await loadModelFromPath(a.teacher as string, a.tokenizer as string | undefined);
  if (!m.tokenizer) throw new Error(`${m.path}: no tokenizer found; pass --tokenizer`);
  if (m.quantized) throw new Error(`${m.path} is already quantized; the teacher must be the FP model`);
  return { ...m, name: m.path, tokenizer: m.tokenizer };
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, DISTILL_OPTIONS, DISTILL_HELP);
  if (!a) return 0;
  if (!a.teacher || !(a.data || a['teacher-data']) || !a.out) throw new Error(`--teacher, --data (or --teacher-data) and --out are required\n\n${DISTILL_HELP}`);
  const m = await loadTeacher(a);
  const auto = a.freeze === 'auto';
  if (auto && a.resume) throw new Error('--freeze auto cannot --resume (its probes and candidates run in memory); resume the chosen run with its own --freeze');
  const spec = specFromArgs(a, auto ? 'none' : undefined);
  // the split is checked before any GPU work; teacher-sampled documents replace its training part
  let split = splitFromArgs(a, a['teacher-data'] ? ['(sampled from the teacher)'] : undefined);
  const gpu = await cliGpu();
  try {
    if (a['teacher-data']) split = { ...split, train: await teacherData(gpu, m, int(a['teacher-data'], 'teacher-data', 0), spec.seq, spec.seed) };
    if (auto) {
      const r = await autoFreezeInFolder(gpu, m, spec, split, a.out as string);
      console.log(JSON.stringify({ ...r.outcome.summary, autoFreeze: { chosen: r.chosen.name, reason: r.chosen.reason, costRuns: +r.costRuns.toFixed(3), rounds: r.rounds }, data: split.description }));
    } else {
      // a software adapter's GPU memory is this machine's (WebGPU reports no adapter memory)
      const memoryBudgetBytes = isSoftwareMatmulAdapter(gpu) ? totalmem() : undefined;
      const r = await runInFolder(gpu, m, spec, split, a.out as string, { resume: !!a.resume, memoryBudgetBytes });
      console.log(JSON.stringify({ ...r.summary, data: split.description }));
    }
    // QUENCH_KERNELS=…,tune: what the run's shapes were tuned to (stderr: stdout is the summary's JSON)
    for (const c of shapeChoices(gpu)) process.stderr.write(`kernel tuned: ${c.shape.op} ${shapeLabel(c.shape)} -> ${c.variant}\n`);
  } finally {
    // for npm run bench (bench/kdqat.bench.ts): dispatches, submits and host waits of the whole command
    if (process.env.QUENCH_GPU_COUNTS) process.stderr.write(`quench gpu counts ${JSON.stringify(gpu.counts)}\n`);
    gpu.destroy();
  }
  return 0;
}
