// KD-QAT's GPU memory, planned before anything is allocated: the choices that trade memory for
// time or precision (logit rows per chunk, recomputing the student's layer activations in the
// backward, the teacher's projections in f16) and the bytes each part of a run will hold, counted
// the way the runtime's byte accounting counts them (src/engine/gpu/runtime.ts: every tensor's
// numel × 4). The Distiller allocates by this plan; the workflow refuses, with the estimate, a run
// that will not fit the adapter (a tensor over one binding, or a total over the budget). The
// vocabulary tables are split into chunks of rows under one binding (model/vocab.ts), so a large
// embedding is never refused for the binding: its chunks and the classifier's chunk scratch count.
import { headSize, paramCount, PROJECTIONS, type LlamaConfig, type Projection } from '../model/config';
import { layoutOf, type Bits } from '../format/pack';
import type { FreezeMask } from './freeze';
import { maxBindingBytes, vocabChunkRows } from '../model/vocab';
import type { Gpu } from '../gpu/runtime';

/** Bytes of one chunk of training logits (R × V f32) unless the caller chooses: the four chunk
 *  buffers (teacher, student, two gradients) stay ~12 MiB at V = 49152 (16 rows). */
export const TRAIN_LOGIT_CHUNK_BYTES = 2 ** 22;

/** Rows per chunk of training logits: what `chunkBytes` (and one binding) hold, rounded down to a
 *  multiple of 16 (the register-tiled matmul's rows per workgroup: a partial band computes rows
 *  it throws away and re-reads the whole classifier for them), at most B·T. */
export function trainLogitRows(BT: number, V: number, bindingBytes: number, chunkBytes = TRAIN_LOGIT_CHUNK_BYTES): number {
  let r = Math.floor(Math.min(chunkBytes, bindingBytes) / (4 * V));
  if (r >= 16) r -= r % 16;
  return Math.max(1, Math.min(BT, r));
}
/** 'auto' recomputes the student's layer activations when keeping them all would take more. */
export const RECOMPUTE_ABOVE_BYTES = 2 ** 28;
/** 'auto' stores the teacher's projections in f16 (adapters with shader-f16) above this many fp32 bytes. */
export const TEACHER_HALF_ABOVE_BYTES = 2 ** 26;

export interface DistillMemoryOptions {
  /** logit rows per chunk of the loss (default: TRAIN_LOGIT_CHUNK_BYTES of them, at most B·T) */
  logitRows?: number;
  /** recompute each student layer's activations from its input in the backward (keeps only the
   *  residual streams); 'auto' (default): when all layers' activations exceed RECOMPUTE_ABOVE_BYTES */
  recompute?: boolean | 'auto';
  /** the teacher's projections in f16; 'auto' (default): where the adapter has shader-f16 and
   *  the fp32 projections exceed TEACHER_HALF_ABOVE_BYTES (small models keep their fp32 results) */
  teacherHalf?: boolean | 'auto';
}

export interface AdapterLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  hasF16: boolean;
  /** bytes per vocabulary chunk when less than the two limits above (model/vocab.ts
   *  setMaxBindingBytes: tests force the split on a tiny model) */
  vocabBindingBytes?: number;
}

/** This device's limits as the plan reads them (the vocabulary split as model/vocab.ts makes it). */
export function gpuLimits(gpu: Gpu): AdapterLimits {
  const l = gpu.device.limits;
  return { maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxBufferSize: l.maxBufferSize, hasF16: gpu.hasF16, vocabBindingBytes: maxBindingBytes(gpu) };
}

/** Rows per chunk of the vocabulary tables on these limits (all V: not split). */
export function vocabRowsOf(cfg: LlamaConfig, lim: AdapterLimits): number {
  return vocabChunkRows(cfg.vocabSize, cfg.dim, Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize, lim.vocabBindingBytes ?? Infinity));
}

export interface MemoryPlan {
  logitRows: number;
  /** the embedding (and an untied classifier) in this many chunks of rows, one binding each */
  vocabChunks: number;
  recompute: boolean;
  teacherHalf: boolean;
  /** bytes by part: weights = the student's (packed + fp32 norms/latents + the shared embedding) */
  bytes: { teacher: number; weights: number; gradients: number; optimizer: number; activations: number; logits: number; total: number };
  studentParams: number;
  largest: { label: string; bytes: number };
}

/** The fields of a DistillConfig the plan reads. */
export interface MemoryDc {
  batch: number;
  seq: number;
  freeze: FreezeMask;
  loss: { kl: number; ce: number; attnMap: number; attnOut: number; hidden: number };
  bits: Bits;
  group: number;
  scales: 'minmax' | 'learned';
  trainNorms: boolean;
  fpReference: boolean;
}
type Dc = MemoryDc;

const SHAPES = (cfg: LlamaConfig): Record<Projection, [number, number]> => {
  const HS = headSize(cfg), C = cfg.dim;
  return { q: [cfg.nHeads * HS, C], k: [cfg.nKvHeads * HS, C], v: [cfg.nKvHeads * HS, C], o: [C, cfg.nHeads * HS], gate: [cfg.hiddenDim, C], up: [cfg.hiddenDim, C], down: [C, cfg.hiddenDim] };
};

/** Parameters of the model (embedding, classifier when untied, norms, projections): model/config's. */
export { paramCount };

/** f32 elements of one Activations (see model/llama.ts) for B×T with `sets` layer sets kept, less its logits. */
function actElems(cfg: LlamaConfig, B: number, T: number, withProbs: boolean, R: number, residuals: number, sets: number): number {
  const BT = B * T, C = cfg.dim, H = cfg.hiddenDim, HS = headSize(cfg), NH = cfg.nHeads, NKV = cfg.nKvHeads;
  const layer = BT * (5 * C + 2 * NH * HS + 2 * NKV * HS + 3 * H + 2) + (withProbs ? B * NH * T * T + 1 : 1 + B * NH * T);
  return BT + residuals * BT * C + sets * layer + BT * C + BT + (R < BT ? R * cfg.dim : 0); // + R·V logits, counted apart
}

export function planDistillMemory(cfg: LlamaConfig, dc: Dc, lim: AdapterLimits, opts: DistillMemoryOptions = {}): MemoryPlan {
  const B = dc.batch, T = dc.seq, BT = B * T, L = cfg.nLayers, C = cfg.dim, V = cfg.vocabSize, H = cfg.hiddenDim;
  const NH = cfg.nHeads, HS = headSize(cfg), NKV = cfg.nKvHeads;
  const withProbs = dc.loss.attnMap > 0;
  const bind = lim.maxStorageBufferBindingSize;
  const R = opts.logitRows !== undefined ? Math.max(1, Math.min(BT, Math.floor(opts.logitRows))) : trainLogitRows(BT, V, bind);
  const full = 4 * actElems(cfg, B, T, withProbs, R, L + 1, L);
  const recompute = opts.recompute === undefined || opts.recompute === 'auto' ? full > RECOMPUTE_ABOVE_BYTES : opts.recompute;
  const sh = SHAPES(cfg);
  const projF32 = L * PROJECTIONS.reduce((s, p) => s + 4 * sh[p][0] * sh[p][1], 0);
  const teacherHalf = opts.teacherHalf === undefined || opts.teacherHalf === 'auto' ? lim.hasF16 && projF32 > TEACHER_HALF_ABOVE_BYTES : opts.teacherHalf;
  let largest = { label: '', bytes: 0 };
  const see = (label: string, bytes: number) => {
    if (bytes > largest.bytes) largest = { label, bytes };
    return bytes;
  };
  const norms = 4 * C * (2 * L + 1);
  // teacher: projections (f16 where K % 4 == 0) and norms; its embedding is the student's
  let teacher = norms;
  for (let l = 0; l < L; l++) for (const p of PROJECTIONS) teacher += teacherHalf && sh[p][1] % 4 === 0 ? 2 * sh[p][0] * sh[p][1] : 4 * sh[p][0] * sh[p][1];
  // the embedding (the teacher's buffers, shared by the student) in chunks of whole rows
  const vRows = vocabRowsOf(cfg, lim), vChunks = Math.ceil(V / vRows);
  see(vChunks > 1 ? `tok_embeddings chunk (${vRows} rows)` : 'tok_embeddings', 4 * vRows * C);
  const embed = 4 * V * C * (cfg.tiedEmbeddings ? 1 : 2);
  let weights = embed + norms, gradients = 0, optimizer = 0, dwq = 0;
  if (dc.trainNorms) (gradients += norms), (optimizer += 2 * norms);
  for (let l = 0; l < L; l++)
    for (const p of PROJECTIONS) {
      const [N, K] = sh[p];
      const frozen = dc.freeze[l]?.[p] ?? false;
      const w = see(`layers.${l}.${p}`, 4 * N * K);
      if (dc.fpReference) {
        weights += w;
        if (!frozen) (gradients += w), (optimizer += 2 * w);
        continue;
      }
      const lay = layoutOf(N, K, dc.bits, dc.group);
      weights += 4 * (N * lay.wordsPerRow + 2 * N * lay.nBlocks);
      if (frozen) continue;
      weights += w; // latent
      gradients += w;
      optimizer += 2 * w;
      dwq = Math.max(dwq, w);
      if (dc.scales === 'learned') (gradients += 4 * N * lay.nBlocks), (optimizer += 8 * N * lay.nBlocks);
    }
  gradients += dwq;
  // activations: the student's (all layers, or residual streams + one layer), the teacher's (two
  // residual buffers + one layer), the student's activation gradients, the loss scratch
  const sAct = 4 * actElems(cfg, B, T, withProbs, R, L + 1, recompute ? 1 : L);
  const tAct = 4 * actElems(cfg, B, T, withProbs, R, 2, 1);
  const actGrads = 4 * (5 * BT * C + 3 * BT * H + 2 * BT * NH * HS + 2 * BT * NKV * HS + (withProbs ? B * NH * T * T : B * NH * T));
  if (withProbs) see('attention probabilities (B, NH, T, T)', 4 * B * NH * T * T);
  let lossScratch = 4 * (Math.max(BT, B * NH * T) + 2 * BT + BT * C + R + 2 * BT + R);
  if (withProbs) lossScratch += 4 * L * B * NH * T * T;
  if (dc.loss.attnOut > 0) lossScratch += 4 * L * BT * C;
  if (dc.loss.hidden > 0) lossScratch += 4 * L * BT * C;
  // the student's and the teacher's logit chunk, d(logits), and the CE part when both terms are on
  let logits = see('logits chunk', 4 * R * V) * (3 + (dc.loss.kl > 0 && dc.loss.ce > 0 ? 1 : 0));
  // a split classifier: each model's one-chunk scratch (R, rows) for its logits and d(logits)
  if (vChunks > 1) logits += 2 * 4 * R * vRows;
  const activations = sAct + tAct + actGrads + lossScratch;
  const total = teacher + weights + gradients + optimizer + activations + logits;
  return { logitRows: R, vocabChunks: vChunks, recompute, teacherHalf, bytes: { teacher, weights, gradients, optimizer, activations, logits, total }, studentParams: paramCount(cfg), largest };
}

const gib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(0)} MiB`);

/** null when the plan fits; else a sentence with the estimate and the limit it exceeds. */
export function memoryRefusal(plan: MemoryPlan, lim: AdapterLimits, budgetBytes?: number): string | null {
  const bind = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
  if (plan.largest.bytes > bind) return `the tensor ${plan.largest.label} needs ~${gib(plan.largest.bytes)} in one binding, the adapter allows ${gib(bind)} (maxStorageBufferBindingSize); this model is too large for this GPU`;
  if (budgetBytes !== undefined && plan.bytes.total > budgetBytes) {
    const b = plan.bytes;
    return `this run needs ~${gib(b.total)} of GPU memory (teacher ${gib(b.teacher)}, student weights ${gib(b.weights)}, gradients ${gib(b.gradients)}, optimizer ${gib(b.optimizer)}, activations ${gib(b.activations)}, logits ${gib(b.logits)}), the adapter allows ${gib(budgetBytes)}; lower batch or seq, or freeze more projections`;
  }
  return null;
}
