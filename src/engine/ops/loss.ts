// Loss kernels: per-row losses (rows) and their gradients (assign). See shaders/loss.wgsl.
// The caller sums the per-row losses (ops/optim.ts sum, or on the host) and folds the
// normalisation (1/rows counted, loss weights) into `scale` of the backward.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import { isSoftwareAdapter } from './qmatmul';

export const IGNORE_INDEX = 0xffffffff;
/** Student probabilities below this are floored in the attention-map KL (loss and gradient). */
export const ATTN_KL_PROB_FLOOR = 1e-12;

/** 'thread': one thread per row, barrier-free (CPU Vulkan: lavapipe, SwiftShader).
 *  'workgroup': LANES threads per row (up to a whole workgroup of 256) with tree reductions in
 *  workgroup memory (real GPUs; rows of V = 32000 logits).
 *  'auto': 'thread' on software adapters, else 'workgroup'. */
export type LossVariant = 'auto' | 'thread' | 'workgroup';

export interface LossOpts {
  variant?: LossVariant;
  /** 'workgroup' only: force the threads per row (a power of two, 2..256); by default it follows
   *  the row length (lossLayout). Tests use it to cover the tree reduction with one pipeline. */
  lanes?: number;
}

/** Threads per row and per workgroup for a row of `len` entries. */
export function lossLayout(gpu: Gpu, len: number, variant: LossVariant = 'auto', lanesWanted?: number): { WG: number; LANES: number } {
  const v = variant === 'auto' ? (isSoftwareAdapter(gpu) ? 'thread' : 'workgroup') : variant;
  if (v === 'thread') return { WG: 64, LANES: 1 };
  if (lanesWanted !== undefined) {
    if (!(lanesWanted >= 2 && lanesWanted <= 256 && (lanesWanted & (lanesWanted - 1)) === 0)) throw new Error(`loss: lanes ${lanesWanted} must be a power of two in 2..256`);
    return { WG: Math.max(64, lanesWanted), LANES: lanesWanted };
  }
  // About 4+ entries per lane, 32..256 lanes (a power of two); small rows share a workgroup.
  let lanes = 32;
  while (lanes < 256 && lanes * 4 < len) lanes *= 2;
  return { WG: Math.max(64, lanes), LANES: lanes };
}

function run(gpu: Gpu, entry: string, rows: number, len: number, T: number, temp: number, scale: number, bindings: Record<number, Tensor>, opts: LossOpts): void {
  const { WG, LANES } = lossLayout(gpu, len, opts.variant, opts.lanes);
  const rowsPerWg = WG / LANES;
  gpu.run({ shader: 'loss', entry, constants: { WG, LANES } }, { params: new Params().u32(rows, len, T, 0).f32(temp, scale).u32(0, 0), bindings, workgroups: gpu.grid(Math.ceil(rows / rowsPerWg)) });
}

function need(op: string, name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${op}: ${name} "${t.label}" has ${t.numel} elements, needs ${n}`);
}

/** Host-side check of targets before they are written to the GPU: ids in [0, V) or IGNORE_INDEX. */
export function checkTargets(targets: ArrayLike<number>, V: number, where = 'targets'): void {
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i];
    if (t === IGNORE_INDEX) continue;
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`${where}: target id ${t} at position ${i} is outside the vocabulary [0, ${V}) and is not IGNORE_INDEX`);
  }
}

/** losses (rows) = logsumexp(logits) − logits[target] (assigns).
 *  logits (rows, V) f32, targets (rows) u32; IGNORE_INDEX rows give 0; a target >= V gives NaN. */
export function crossEntropyForward(gpu: Gpu, losses: Tensor, logits: Tensor, targets: Tensor, rows: number, V: number, opts: LossOpts = {}): void {
  need('crossEntropyForward', 'losses', losses, rows);
  need('crossEntropyForward', 'logits', logits, rows * V);
  need('crossEntropyForward', 'targets', targets, rows);
  run(gpu, 'ce_forward', rows, V, 1, 1, 1, { 1: logits, 3: targets, 4: losses }, opts);
}
/** dlogits (rows, V) = scale·(softmax(logits) − onehot(target)) (assigns); 0 on ignored rows (and
 *  on rows whose target is out of range). scale is typically 1 / (number of counted rows). */
export function crossEntropyBackward(gpu: Gpu, dlogits: Tensor, logits: Tensor, targets: Tensor, rows: number, V: number, scale: number, opts: LossOpts = {}): void {
  need('crossEntropyBackward', 'dlogits', dlogits, rows * V);
  need('crossEntropyBackward', 'logits', logits, rows * V);
  need('crossEntropyBackward', 'targets', targets, rows);
  run(gpu, 'ce_backward', rows, V, 1, 1, scale, { 1: logits, 3: targets, 5: dlogits }, opts);
}

/** losses (rows) = T²·Σ_v p_t (log p_t − log p_s), p = softmax(logits / T) (assigns).
 *  student, teacher: (rows, V) f32 logits; temp = T > 0. */
export function klForward(gpu: Gpu, losses: Tensor, student: Tensor, teacher: Tensor, rows: number, V: number, temp: number, opts: LossOpts = {}): void {
  if (!(temp > 0)) throw new Error(`klForward: temperature ${temp} must be > 0`);
  need('klForward', 'losses', losses, rows);
  need('klForward', 'student', student, rows * V);
  need('klForward', 'teacher', teacher, rows * V);
  run(gpu, 'kl_forward', rows, V, 1, temp, 1, { 1: student, 2: teacher, 4: losses }, opts);
}
/** dstudent (rows, V) = scale·T·(p_s − p_t) (assigns): the gradient of scale·(per-row loss). */
export function klBackward(gpu: Gpu, dstudent: Tensor, student: Tensor, teacher: Tensor, rows: number, V: number, temp: number, scale: number, opts: LossOpts = {}): void {
  if (!(temp > 0)) throw new Error(`klBackward: temperature ${temp} must be > 0`);
  need('klBackward', 'dstudent', dstudent, rows * V);
  need('klBackward', 'student', student, rows * V);
  need('klBackward', 'teacher', teacher, rows * V);
  run(gpu, 'kl_backward', rows, V, 1, temp, scale, { 1: student, 2: teacher, 5: dstudent }, opts);
}

/** Attention maps (B, NH, T, T) f32 probabilities, causal: rows = B*NH*T query rows of T keys,
 *  row r is query t = r % T with valid keys 0..t (entries above the diagonal are skipped).
 *  losses (rows) = Σ_{k<=t} p_t log(p_t / max(p_s, ATTN_KL_PROB_FLOOR)), 0·log 0 = 0 (assigns). */
export function attnKlForward(gpu: Gpu, losses: Tensor, student: Tensor, teacher: Tensor, rows: number, T: number, opts: LossOpts = {}): void {
  need('attnKlForward', 'losses', losses, rows);
  need('attnKlForward', 'student', student, rows * T);
  need('attnKlForward', 'teacher', teacher, rows * T);
  run(gpu, 'attnkl_forward', rows, T, T, 1, 1, { 1: student, 2: teacher, 4: losses }, opts);
}
/** dstudent (B, NH, T, T) = −scale·p_t / max(p_s, floor) on valid keys, 0 above the diagonal and
 *  where p_t = 0 (assigns). Feed it to the attention backward as dprobsExtra. */
export function attnKlBackward(gpu: Gpu, dstudent: Tensor, student: Tensor, teacher: Tensor, rows: number, T: number, scale: number, opts: LossOpts = {}): void {
  need('attnKlBackward', 'dstudent', dstudent, rows * T);
  need('attnKlBackward', 'student', student, rows * T);
  need('attnKlBackward', 'teacher', teacher, rows * T);
  run(gpu, 'attnkl_backward', rows, T, T, 1, scale, { 1: student, 2: teacher, 5: dstudent }, opts);
}

/** losses (rows) = Σ_c (a − b)² / C (assigns); a, b: (rows, C) f32. */
export function mseForward(gpu: Gpu, losses: Tensor, a: Tensor, b: Tensor, rows: number, C: number, opts: LossOpts = {}): void {
  need('mseForward', 'losses', losses, rows);
  need('mseForward', 'a', a, rows * C);
  need('mseForward', 'b', b, rows * C);
  run(gpu, 'mse_forward', rows, C, 1, 1, 1, { 1: a, 2: b, 4: losses }, opts);
}
/** da (rows, C) = scale·2(a − b)/C (assigns). */
export function mseBackward(gpu: Gpu, da: Tensor, a: Tensor, b: Tensor, rows: number, C: number, scale: number, opts: LossOpts = {}): void {
  need('mseBackward', 'da', da, rows * C);
  need('mseBackward', 'a', a, rows * C);
  need('mseBackward', 'b', b, rows * C);
  run(gpu, 'mse_backward', rows, C, 1, 1, scale, { 1: a, 2: b, 5: da }, opts);
}

/**
 * Per-token NLL of rows [r0, r0 + n) whose logits sit in `logits` (n, V) (a chunk of rows, so
 * B·T·V never needs one binding): nll[r0 + r] = logsumexp(logits[r]) − logits[r][targets[r0 + r]]
 * (assigns; 0 where the target is IGNORE_INDEX). The log-softmax + gather is ce_forward's
 * (both its variants); `tChunk` and `lChunk` (≥ n elements) are scratch for the chunk's targets
 * and NLLs, moved with buffer copies.
 */
export function tokenNllRows(gpu: Gpu, nll: Tensor, logits: Tensor, targets: Tensor, r0: number, n: number, V: number, tChunk: Tensor, lChunk: Tensor, opts: LossOpts = {}): void {
  need('tokenNllRows', 'nll', nll, r0 + n);
  need('tokenNllRows', 'targets', targets, r0 + n);
  need('tokenNllRows', 'target scratch', tChunk, n);
  need('tokenNllRows', 'nll scratch', lChunk, n);
  gpu.copy(targets, tChunk, n * 4, r0 * 4, 0);
  crossEntropyForward(gpu, lChunk, logits, tChunk, n, V, opts);
  gpu.copy(lChunk, nll, n * 4, 0, r0 * 4);
}

/** out[outIndex + s] = Σ_{i < len} x[s·stride + i], s < nSeg (assigns): one thread per segment,
 *  Kahan-compensated, fixed order (shaders/segsum.wgsl). */
export function segmentSums(gpu: Gpu, out: Tensor, x: Tensor, nSeg: number, len: number, stride = len, outIndex = 0): void {
  need('segmentSums', 'out', out, outIndex + nSeg);
  if (nSeg > 0) need('segmentSums', 'x', x, (nSeg - 1) * stride + len);
  if (len > stride) throw new Error(`segmentSums: segments of ${len} overlap at stride ${stride}`);
  const WG = 64;
  gpu.run({ shader: 'segsum', constants: { WG } }, { params: new Params().u32(nSeg, len, stride, outIndex).f32(1).u32(0, 0, 0), bindings: { 1: x, 2: out }, workgroups: [Math.ceil(nSeg / WG)] });
}
