// The one run loop of KD-QAT (and of the FP fine-tune reference) for the CLI and the studio:
// resume from a verified checkpoint, train with progress and ETA, stop or pause between steps,
// checkpoint every N steps, stop at the first non-finite value (naming where it appeared), then the
// final evaluation (its own progress) and the student.
import { shapeTuning, startShapeCapture, stopShapeCapture } from '../ops/shape-choice';
import { tuneKernelShapes } from '../ops/kernel-choice';
import type { Gpu } from '../gpu/runtime';
import { headSize, type LlamaConfig, type LlamaWeights } from '../model/config';
import type { Tokenizer } from '../io/tokenizer';
import type { QuantizedModel } from '../quant/ptq';
import { Distiller, type DistillConfig, type StepMetrics } from '../train/distill';
import { gpuLimits, memoryRefusal, planDistillMemory, type AdapterLimits, type MemoryPlan } from '../train/memory';
import { describeFreeze } from '../train/freeze';
import { perplexityBatched } from '../eval/perplexity';
import { sequenceNlls } from '../model/runner';
import { CHECKPOINT_FORMAT, verifyCheckpoint, type Checkpoint } from './checkpoint';
import { resolveRunSpec, runLabel, type RunSpec } from './spec';

export interface Teacher {
  name: string;
  config: LlamaConfig;
  weights: LlamaWeights;
  tokenizer: Tokenizer;
}

export interface Progress {
  phase: 'train' | 'eval' | 'tune';
  label: string;
  done: number;
  total: number;
  /** seconds left, from the rate of this session's steps (right after a resume too) */
  etaSeconds: number | null;
}

export interface RunHooks {
  onStep?(m: StepMetrics): void | Promise<void>;
  onProgress?(p: Progress): void;
  /** checked before each step is submitted; steps already in flight still finish and are reported
   *  (a step's metrics land a step or two after it is submitted), so count steps with untilStep */
  shouldStop?(): boolean;
  /** stop (status 'stopped') once this many steps have been trained */
  untilStep?: number;
  shouldPause?(): boolean;
  /** called every `checkpointEvery` steps, at a pause and at the end */
  onCheckpoint?(c: Checkpoint): Promise<void>;
  checkpointEvery?: number;
  /** where a resume checkpoint came from, for messages */
  resumeFrom?: string;
  /** GPU memory the run may use (bytes): refused before it starts when the estimate is more.
   *  WebGPU does not tell an adapter's memory: the caller knows (a software adapter's is the
   *  host's); without it only the per-binding limits are checked */
  memoryBudgetBytes?: number;
}

export function adapterLimits(gpu: Gpu): AdapterLimits {
  return gpuLimits(gpu);
}

/** The run's memory estimate (train/memory.ts, the plan the Distiller allocates by); throws, with
 *  the estimate and the limit, when a tensor exceeds one binding or the total the budget. */
export function checkRunMemory(gpu: Gpu, cfg: LlamaConfig, dc: DistillConfig, label: string, budgetBytes?: number): MemoryPlan {
  const lim = adapterLimits(gpu);
  const plan = planDistillMemory(cfg, dc, lim);
  const why = memoryRefusal(plan, lim, budgetBytes);
  if (why) throw new Error(`${label}: ${why}`);
  return plan;
}

/** checkRunMemory for a spec, before anything is allocated or written. */
export function checkSpecMemory(gpu: Gpu, cfg: LlamaConfig, spec: RunSpec, trainTokens: number, budgetBytes?: number): MemoryPlan {
  const dc = resolveRunSpec(spec, cfg);
  const seq = Math.min(dc.seq, Math.max(8, trainTokens - 1));
  return checkRunMemory(gpu, cfg, { ...dc, seq }, runLabel(spec), budgetBytes);
}

export interface RunSummary {
  label: string;
  kind: RunSpec['kind'];
  scheme: string;
  bits: number;
  group: number;
  steps: number;
  lr: number;
  /** mean over the last (up to) 10 steps */
  finalLoss: number;
  finalKl: number;
  evalPpl: number;
  evalTokens: number;
  evalDocuments: number;
  wallSeconds: number;
  tokensPerSec: number;
  peakGpuBytes: number;
  /** bytes of the student's weights as shipped (packed projections + fp32 rest) */
  studentBytes: number | null;
}

export interface RunOutcome {
  status: 'done' | 'stopped' | 'paused';
  history: StepMetrics[];
  checkpoint: Checkpoint | null;
  summary: RunSummary | null;
  /** the distilled student (KD-QAT runs that finished or were stopped) */
  student: { weights: LlamaWeights; quantized: QuantizedModel } | null;
}

/** Names of the first non-finite quantity in a step's metrics, or null. */
function nonFinite(m: StepMetrics): string | null {
  if (!Number.isFinite(m.loss)) return `the loss (${m.loss})`;
  for (const [k, v] of Object.entries(m.losses)) if (!Number.isFinite(v)) return `the ${k} loss term (${v})`;
  if (!Number.isFinite(m.gradNorm)) return `the global gradient norm (${m.gradNorm})`;
  return null;
}

export async function runTraining(gpu: Gpu, teacher: Teacher, spec: RunSpec, train: Uint32Array, evalSeqs: number[][], hooks: RunHooks = {}, resume?: Checkpoint): Promise<RunOutcome> {
  const dc = resolveRunSpec(spec, teacher.config);
  const seq = Math.min(dc.seq, Math.max(8, train.length - 1));
  if (train.length < seq + 1) throw new Error(`the training text has ${train.length} tokens, fewer than one sequence of ${seq + 1}`);
  checkRunMemory(gpu, teacher.config, { ...dc, seq }, runLabel(spec), hooks.memoryBudgetBytes);
  const d = new Distiller(gpu, teacher.config, teacher.weights, { ...dc, seq }, train);
  const label = runLabel(spec);
  try {
    if (resume) {
      verifyCheckpoint(resume, spec, new Map(d.params.flatMap((p) => ['param', 'adam_m', 'adam_v'].map((s) => [`${p.name}.${s}`, [...p.param.shape]] as [string, number[]]))), hooks.resumeFrom ?? 'checkpoint');
      d.restore(new Map(resume.tensors.map((t) => [t.name, t.data])), resume.meta.step, resume.meta.rngState);
      d.history.push(...resume.meta.history);
    }
    await d.snapshotCodes();
    // steps are submitted without waiting (their metrics land a step or two later): drain before
    // anything that needs the whole history or a settled model (checkpoints, pause, the end)
    const checkpoint = async (): Promise<Checkpoint> => {
      await land(await d.drain());
      return {
        meta: { format: CHECKPOINT_FORMAT, version: 1, step: d.step, rngState: d.rng.state, spec, history: [...d.history] },
        tensors: await d.checkpointTensors(),
      };
    };
    const t0 = performance.now();
    const startStep = d.step;
    const every = hooks.checkpointEvery ?? 0;
    let status: RunOutcome['status'] = 'done';
    const land = async (ms: StepMetrics[]): Promise<void> => {
      for (const m of ms) {
        const where = nonFinite(m);
        if (where) {
          await d.drain().catch(() => []); // the steps after a broken one are not reported
          const i = d.history.indexOf(m);
          if (i >= 0) d.history.length = i;
          throw new Error(`step ${m.step}: ${where} is not finite${await firstBadTensor(d)}; the run stopped, its last good checkpoint is kept. Lower the learning rate or check the data.`);
        }
        await hooks.onStep?.(m);
      }
    };
    while (d.step < dc.steps) {
      if (hooks.shouldStop?.() || (hooks.untilStep !== undefined && d.step >= hooks.untilStep)) {
        status = 'stopped';
        break;
      }
      if (hooks.shouldPause?.()) {
        const c = await checkpoint();
        await hooks.onCheckpoint?.(c);
        return { status: 'paused', history: d.history, checkpoint: c, summary: null, student: null };
      }
      // kernels tuned to this run's shapes (GPU panel / QUENCH_KERNELS=…,tune): the first step's
      // matmul shapes are noted, then timed with every variant; the run goes on with the fastest
      const tuneNow = shapeTuning(gpu) && d.step === startStep;
      if (tuneNow) startShapeCapture(gpu);
      await land(await d.submitStep());
      if (tuneNow) {
        const shapes = stopShapeCapture(gpu);
        await d.drain().then(land);
        await tuneKernelShapes(gpu, shapes, { onProgress: (done, total) => hooks.onProgress?.({ phase: 'tune', label: `tuning the matmul kernels to ${label}'s ${shapes.length} shapes`, done, total, etaSeconds: null }) });
      }
      const elapsed = (performance.now() - t0) / 1000;
      const done = d.step - startStep;
      hooks.onProgress?.({ phase: 'train', label: `training ${label}`, done: d.step, total: dc.steps, etaSeconds: done > 0 ? (elapsed / done) * (dc.steps - d.step) : null });
      if (every > 0 && d.step % every === 0 && d.step < dc.steps) await hooks.onCheckpoint?.(await checkpoint());
    }
    await land(await d.drain());
    const wall = (performance.now() - t0) / 1000;
    const ckpt = await checkpoint();
    if (status === 'done') await hooks.onCheckpoint?.(ckpt);
    // the final evaluation, with its own progress
    d.requantize();
    const ev = await perplexityBatched(evalSeqs, (s, p) => sequenceNlls(d.student, s, { onProgress: p }), (done, total) => hooks.onProgress?.({ phase: 'eval', label: `final evaluation of ${label}`, done, total, etaSeconds: null }));
    const student = dc.fpReference ? null : await d.exportStudent(teacher.weights);
    const last = d.history.slice(-Math.min(10, d.history.length));
    const mean = (f: (x: StepMetrics) => number) => last.reduce((s, x) => s + f(x), 0) / Math.max(1, last.length);
    const summary: RunSummary = {
      label, kind: spec.kind, scheme: spec.mask ? describeFreeze(dc.freeze) : spec.scheme, bits: spec.bits, group: spec.group, steps: d.step, lr: spec.lr,
      finalLoss: mean((x) => x.loss), finalKl: mean((x) => x.losses.kl), evalPpl: ev.ppl, evalTokens: ev.tokens, evalDocuments: ev.documents,
      wallSeconds: +wall.toFixed(2), tokensPerSec: d.history.length ? d.history.reduce((s, x) => s + x.tokensPerSec, 0) / d.history.length : 0,
      peakGpuBytes: gpu.peakBytes, studentBytes: student ? studentBytes(teacher.config, student.quantized) : null,
    };
    if (!Number.isFinite(ev.ppl)) throw new Error(`final evaluation of ${label}: perplexity is ${ev.ppl} (non-finite) over ${ev.tokens} tokens`);
    return { status, history: d.history, checkpoint: ckpt, summary, student };
  } finally {
    d.free();
  }
}

async function firstBadTensor(d: Distiller): Promise<string> {
  for (const t of await d.checkpointTensors()) {
    const i = t.data.findIndex((x) => !Number.isFinite(x));
    if (i >= 0) return `; first non-finite value in ${t.name.endsWith('.param') ? 'parameter' : 'optimizer state'} ${t.name}[${i}]`;
  }
  return '';
}

/** Bytes of a model as shipped: packed projections (codes + fp32 scales/zeros) and fp32 rest. */
export function studentBytes(cfg: LlamaConfig, q: QuantizedModel | null): number {
  const hs = headSize(cfg);
  const proj = { q: cfg.nHeads * hs * cfg.dim, k: cfg.nKvHeads * hs * cfg.dim, v: cfg.nKvHeads * hs * cfg.dim, o: cfg.dim * cfg.nHeads * hs, gate: cfg.hiddenDim * cfg.dim, up: cfg.hiddenDim * cfg.dim, down: cfg.dim * cfg.hiddenDim };
  const perLayerFp = Object.values(proj).reduce((s, x) => s + x, 0);
  let total = (cfg.vocabSize * cfg.dim * (cfg.tiedEmbeddings ? 1 : 2) + cfg.dim * (2 * cfg.nLayers + 1)) * 4;
  if (!q) return total + perLayerFp * cfg.nLayers * 4;
  for (const layer of q.packed)
    for (const [p, n] of Object.entries(proj)) {
      const w = layer[p as keyof typeof proj];
      total += w ? w.codes.byteLength + w.scales.byteLength + w.zeros.byteLength : n * 4;
    }
  return total;
}
