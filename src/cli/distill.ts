// quench distill --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE] --bits 4 --group 32
//   --freeze ov|none|qk|qkv|attention|mlp|q,k,v [--loss kl=1,ce=0,attn_map=0,attn_out=0,hidden=0]
//   [--steps N --batch B --seq T --lr X --seed S ...] --out DIR
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeGpu } from '../engine/gpu/node';
import type { Gpu } from '../engine/gpu/runtime';
import { loadModelFromPath, type LoadedModel } from '../engine/io/load-node';
import { writeQuantizedHfModel } from '../engine/io/hf';
import { tokenizerJsonFromPieces } from '../engine/io/hf-tokenizer';
import { Llama2cTokenizer } from '../engine/io/tokenizer';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../engine/io/safetensors';
import { bytesSource } from '../engine/io/source';
import { encodeDocuments, splitDocuments } from '../engine/eval/perplexity';
import { DEFAULT_DISTILL, Distiller, type DistillConfig, type LossWeights, type StepMetrics } from '../engine/train/distill';
import { describeFreeze, parseFreeze } from '../engine/train/freeze';
import { tokenStream } from '../engine/train/data';
import { int, num, parse } from './args';
import type { LlamaWeights } from '../engine/model/config';
import type { QuantizedModel } from '../engine/quant/ptq';
import { sampleTeacherDocs } from '../engine/train/teacher-data';
import { ptqFromArgs } from './quant-args';

export const DISTILL_HELP = `usage: quench distill --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE] [--sep S]
                      --bits 2|3|4|8 --group N --freeze ov|none|qk|qkv|attention|mlp|q,k,v
                      [--loss kl=1,ce=0,attn_map=0,attn_out=0,hidden=0] [--temperature T]
                      [--steps N] [--batch B] [--seq T] [--accum K] [--lr X] [--warmup N] [--seed S]
                      [--clip-ratio R] [--scales minmax|learned] [--scale-lr-ratio R] [--scale-init minmax|search] [--sym] [--grad-clip G] [--weight-decay W] [--metrics-every N]
                      [--eval-docs N] [--holdout N] [--teacher-data N] [--fp-reference] [--resume] --out DIR
The FP teacher distils into its quantized student (fp32 latents, packed low-bit forward, STE
backward). Writes DIR/metrics.jsonl (one line per step), DIR/checkpoint.safetensors +
DIR/checkpoint.json (resume with --resume), DIR/summary.json (final eval perplexity among it) and
the student as a quantized model folder DIR/student (quench eval --model DIR/student).
--data/--eval are text files split into documents at --sep (default '<|endoftext|>'); without
--eval, the last --holdout documents of --data (default 200) are held out for evaluation and not
trained on. --teacher-data N trains on N sequences of --seq tokens sampled from the teacher
instead (data-free distillation, as LLM-QAT; --data is then only needed for evaluation, or give
--eval).
Defaults: ${JSON.stringify({ ...DEFAULT_DISTILL, freeze: 'none' })}`;

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
  if (!spec) return { ...DEFAULT_DISTILL.loss };
  // a given spec names every weight that is not 0
  const w: LossWeights = { kl: 0, ce: 0, attnMap: 0, attnOut: 0, hidden: 0 };
  const keys: Record<string, keyof LossWeights> = { kl: 'kl', ce: 'ce', attn_map: 'attnMap', attn_out: 'attnOut', hidden: 'hidden' };
  for (const part of spec.split(',')) {
    const [k, v] = part.split('=');
    if (!(k in keys) || v === undefined || !Number.isFinite(Number(v)) || Number(v) < 0) throw new Error(`--loss: bad term "${part}" (use kl=1,ce=0,attn_map=0,attn_out=0,hidden=0)`);
    w[keys[k]] = Number(v);
  }
  if (Object.values(w).every((x) => x === 0)) throw new Error('--loss: every weight is 0');
  return w;
}

export function distillConfigFrom(a: Record<string, unknown>, nLayers: number, freezeSpec: string): DistillConfig {
  const q = ptqFromArgs(a);
  if (!q) throw new Error('--bits is required');
  const d = DEFAULT_DISTILL;
  const steps = int(a.steps, 'steps', d.steps);
  return {
    ...d,
    bits: q.bits, group: q.group, sym: q.sym,
    clip: num(a['clip-ratio'], 'clip-ratio', d.clip),
    scales: oneOf(a.scales, 'scales', ['minmax', 'learned'] as const, d.scales),
    scaleLrRatio: num(a['scale-lr-ratio'], 'scale-lr-ratio', d.scaleLrRatio),
    scaleInit: oneOf(a['scale-init'], 'scale-init', ['minmax', 'search'] as const, d.scaleInit),
    freeze: parseFreeze(freezeSpec, nLayers),
    loss: parseLoss(a.loss as string | undefined),
    temperature: num(a.temperature, 'temperature', d.temperature),
    steps, batch: int(a.batch, 'batch', d.batch), seq: int(a.seq, 'seq', d.seq), accum: int(a.accum, 'accum', d.accum),
    lr: num(a.lr, 'lr', d.lr), warmup: int(a.warmup, 'warmup', Math.min(d.warmup, Math.floor(steps / 10))), seed: int(a.seed, 'seed', d.seed),
    gradClip: num(a['grad-clip'], 'grad-clip', d.gradClip), weightDecay: num(a['weight-decay'], 'weight-decay', d.weightDecay),
    metricsEvery: int(a['metrics-every'], 'metrics-every', d.metricsEvery), fpReference: !!a['fp-reference'],
  };
}

function oneOf<T extends string>(v: unknown, flag: string, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T)) throw new Error(`--${flag} must be ${allowed.join(' or ')}, not ${JSON.stringify(v)}`);
  return v as T;
}

export function loadDocs(path: string, sep: string): string[] {
  if (!existsSync(path)) throw new Error(`${path}: text file not found`);
  return splitDocuments(readFileSync(path, 'utf8'), sep);
}

/** Training documents and held-out evaluation documents from --data / --eval / --holdout. */
export function splitData(a: Record<string, unknown>): { train: string[]; evalDocs: string[] } {
  const sep = (a.sep as string | undefined) ?? '<|endoftext|>';
  if (!a.data) {
    if (!a['teacher-data'] || !a.eval) throw new Error('--data is required (or --teacher-data N with --eval FILE)');
    return { train: [], evalDocs: loadDocs(a.eval as string, sep).slice(0, a['eval-docs'] ? int(a['eval-docs'], 'eval-docs', 1e9) : undefined) };
  }
  let train = loadDocs(a.data as string, sep);
  let evalDocs: string[];
  if (a.eval) evalDocs = loadDocs(a.eval as string, sep);
  else {
    const h = int(a.holdout, 'holdout', 200);
    if (h >= train.length) throw new Error(`--holdout ${h} leaves no training documents (${a.data} has ${train.length})`);
    evalDocs = train.slice(train.length - h);
    train = train.slice(0, train.length - h);
  }
  if (a['eval-docs']) evalDocs = evalDocs.slice(0, int(a['eval-docs'], 'eval-docs', evalDocs.length));
  if (train.length === 0) throw new Error(`${a.data}: no training documents`);
  return { train, evalDocs };
}

export interface RunResult {
  summary: Record<string, unknown>;
  history: StepMetrics[];
  /** the distilled student (absent for an FP reference run) */
  student?: { weights: LlamaWeights; quantized: QuantizedModel };
}

/** One full KD-QAT run into outDir (also used by quench compare). */
export async function runDistill(gpu: Gpu, m: LoadedModel, dc: DistillConfig, dataDocs: string[], evalDocs: string[] | null, outDir: string, opts: { resume?: boolean; log?: (s: string) => void; tokenizerJson?: string } = {}): Promise<RunResult> {
  const tok = m.tokenizer!;
  const stream = tokenStream(dataDocs, (s) => tok.encode(s, { bos: true }));
  const evalSeqs = evalDocs ? encodeDocuments(evalDocs, (s) => tok.encode(s), Math.min(m.config.maxSeqLen, 512)) : null;
  mkdirSync(outDir, { recursive: true });
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const d = new Distiller(gpu, m.config, m.weights, dc, stream);
  const metricsPath = join(outDir, 'metrics.jsonl');
  const ckptJson = join(outDir, 'checkpoint.json');
  try {
    await d.snapshotCodes();
    if (opts.resume && existsSync(ckptJson)) {
      const meta = JSON.parse(readFileSync(ckptJson, 'utf8')) as { step: number; rngState: number; config: DistillConfig; history: StepMetrics[] };
      if (JSON.stringify({ ...meta.config, steps: 0 }) !== JSON.stringify({ ...dc, steps: 0 })) throw new Error(`${ckptJson}: the checkpoint was made with different settings; resume needs the same ones (steps may differ)`);
      const bytes = readFileSync(join(outDir, 'checkpoint.safetensors'));
      const src = bytesSource('checkpoint.safetensors', bytes);
      const h = await readSafetensorsHeader(src);
      const tensors = new Map<string, Float32Array>();
      for (const name of h.tensors.keys()) tensors.set(name, await readTensorF32(src, h, name));
      d.restore(tensors, meta.step, meta.rngState);
      d.history.push(...meta.history);
      writeFileSync(metricsPath, meta.history.map((x) => JSON.stringify(x)).join('\n') + (meta.history.length ? '\n' : ''));
      log(`resumed at step ${meta.step}`);
    } else writeFileSync(metricsPath, '');
    const t0 = performance.now();
    let lastLog = 0;
    const saveCheckpoint = async () => {
      const tensors = await d.checkpointTensors();
      const tmp = join(outDir, 'checkpoint.safetensors.tmp');
      writeFileSync(tmp, writeSafetensors(tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: t.data }))));
      const { renameSync } = await import('node:fs');
      renameSync(tmp, join(outDir, 'checkpoint.safetensors'));
      writeFileSync(ckptJson + '.tmp', JSON.stringify({ step: d.step, rngState: d.rng.state, config: dc, history: d.history }));
      renameSync(ckptJson + '.tmp', ckptJson);
    };
    while (d.step < dc.steps) {
      const s = await d.trainStep();
      appendFileSync(metricsPath, JSON.stringify(s) + '\n');
      const now = performance.now();
      if (now - lastLog > 5000 || d.step === dc.steps) {
        lastLog = now;
        const eta = ((now - t0) / 1000 / Math.max(1, d.step - (d.history.length - d.history.length))) * (dc.steps - d.step);
        log(`step ${d.step}/${dc.steps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} |g| ${s.gradNorm.toFixed(3)} ${s.tokensPerSec.toFixed(0)} tok/s${d.step < dc.steps ? `, ETA ${eta.toFixed(0)} s` : ''}`);
      }
      if (d.step % 100 === 0 || d.step === dc.steps) await saveCheckpoint();
    }
    const wall = (performance.now() - t0) / 1000;
    const evalPpl = evalSeqs ? await d.evaluate(evalSeqs) : null;
    let studentDir: string | null = null;
    let student: RunResult['student'];
    if (!dc.fpReference) {
      const { weights, quantized } = await d.exportStudent(m.weights);
      student = { weights, quantized };
      studentDir = join(outDir, 'student');
      mkdirSync(studentDir, { recursive: true });
      let tj = opts.tokenizerJson ?? m.tokenizerJson;
      if (!tj && tok instanceof Llama2cTokenizer) tj = JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores));
      for (const [name, bytes] of Object.entries(writeQuantizedHfModel(m.config, weights, quantized, { tokenizerJson: tj }))) writeFileSync(join(studentDir, name), bytes);
    }
    const last = d.history.slice(-Math.min(10, d.history.length));
    const summary = {
      freeze: describeFreeze(dc.freeze),
      bits: dc.bits, group: dc.group, steps: dc.steps, batch: dc.batch, seq: dc.seq, lr: dc.lr, seed: dc.seed, loss: dc.loss, fpReference: dc.fpReference,
      finalLoss: last.reduce((s, x) => s + x.loss, 0) / Math.max(1, last.length),
      finalKl: last.reduce((s, x) => s + x.losses.kl, 0) / Math.max(1, last.length),
      evalPpl, wallSeconds: +wall.toFixed(1),
      tokensPerSec: d.history.reduce((s, x) => s + x.tokensPerSec, 0) / Math.max(1, d.history.length),
      peakGpuBytes: gpu.peakBytes, studentDir,
    };
    writeFileSync(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));
    return { summary, history: d.history, student };
  } finally {
    d.free();
  }
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

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, DISTILL_OPTIONS, DISTILL_HELP);
  if (!a) return 0;
  if (!a.teacher || !(a.data || a['teacher-data']) || !a.out) throw new Error(`--teacher, --data (or --teacher-data) and --out are required\n\n${DISTILL_HELP}`);
  const m = await loadModelFromPath(a.teacher as string, a.tokenizer as string | undefined);
  if (!m.tokenizer) throw new Error(`${m.path}: no tokenizer found; pass --tokenizer`);
  if (m.quantized) throw new Error(`${m.path} is already quantized; the teacher must be the FP model`);
  const dc = distillConfigFrom(a, m.config.nLayers, (a.freeze as string | undefined) ?? 'none');
  let { train, evalDocs } = splitData(a);
  const gpu = await createNodeGpu();
  try {
    if (a['teacher-data']) train = await teacherData(gpu, m, int(a['teacher-data'], 'teacher-data', 0), dc.seq, dc.seed);
    const r = await runDistill(gpu, m, dc, train, evalDocs, a.out as string, { resume: !!a.resume });
    console.log(JSON.stringify(r.summary));
  } finally {
    gpu.destroy();
  }
  return 0;
}
