// Whole-tensor reductions (shaders/reduce.wgsl), global-norm clipping and AdamW (shaders/optim.wgsl),
// all on the GPU with no readback between them:
//   sumSquaresMany(gpu, sumsq, 0, grads)  per-tensor Σg² into sumsq[0..n)   (n partial dispatches + 1)
//   clipScale(gpu, clip, sumsq, n, maxNorm) clip[0] = min(1, maxNorm/(‖g‖+1e-6)), clip[1] = ‖g‖
//   adamwStep(gpu, p, g, m, v, clip, t, h)  per tensor, gradient multiplied by clip[0] on the GPU
// Reductions are deterministic (fixed order for a given length) and assign their outputs.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import type { AdamWHyper } from '../ref/optim';

const WG = 64;
const PER = 4;
const CHUNK = WG * PER;
/** partial slots per tensor: the most workgroups one tensor's partial pass uses */
const SEG = 256;
const RC = { WG, PER, SEG };

const scratch = new WeakMap<Gpu, Tensor>();
/** Reused scratch for partial sums (grows; one per device, labelled reduce.scratch). */
function partialsFor(gpu: Gpu, segments: number): Tensor {
  const need = segments * SEG;
  let t = scratch.get(gpu);
  if (!t || t.numel < need) {
    gpu.free(t);
    t = gpu.tensor('reduce.scratch.partials', [Math.max(need, 64 * SEG)]);
    scratch.set(gpu, t);
  }
  return t;
}

function partialPass(gpu: Gpu, parts: Tensor, segment: number, x: Tensor, n: number, mode: 0 | 1): void {
  if (n > x.numel) throw new Error(`reduce: n = ${n} exceeds tensor "${x.label}" (${x.numel} elements)`);
  const G = Math.max(1, Math.min(SEG, Math.ceil(n / CHUNK)));
  gpu.run({ shader: 'reduce', entry: 'partial', constants: RC }, { params: new Params().u32(n, mode, segment * SEG, 0), bindings: { 1: x, 2: parts }, workgroups: [G] });
}

function finishPass(gpu: Gpu, parts: Tensor, out: Tensor, outIndex: number, segments: number): void {
  if (outIndex + segments > out.numel) throw new Error(`reduce: out[${outIndex}..${outIndex + segments}) exceeds tensor "${out.label}" (${out.numel} elements)`);
  gpu.run({ shader: 'reduce', entry: 'finish', constants: RC }, { params: new Params().u32(0, 0, 0, outIndex), bindings: { 2: parts, 3: out }, workgroups: [segments] });
}

function reduceMany(gpu: Gpu, out: Tensor, outIndex: number, xs: readonly (Tensor | { t: Tensor; n: number })[], mode: 0 | 1): void {
  if (xs.length === 0) return;
  const maxDim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  for (let s0 = 0; s0 < xs.length; s0 += maxDim) {
    const group = xs.slice(s0, s0 + maxDim);
    const parts = partialsFor(gpu, group.length);
    group.forEach((x, s) => ('t' in x ? partialPass(gpu, parts, s, x.t, x.n, mode) : partialPass(gpu, parts, s, x, x.numel, mode)));
    finishPass(gpu, parts, out, outIndex + s0, group.length);
  }
}

/** out[outIndex] = Σ x² over the first n elements (default: all); assigns. */
export function sumSquares(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n = x.numel): void {
  reduceMany(gpu, out, outIndex, [{ t: x, n }], 1);
}

/** out[outIndex] = Σ x over the first n elements (default: all), e.g. per-row losses to a total; assigns. */
export function sum(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n = x.numel): void {
  reduceMany(gpu, out, outIndex, [{ t: x, n }], 0);
}

/** out[outIndex + i] = Σ xs[i]² for every tensor (or {t, n}: its first n elements); assigns.
 *  One partial dispatch per tensor into its own scratch segment, then a single finish dispatch:
 *  the cheap way to get per-tensor gradient norms for ~50 tensors per step. */
export function sumSquaresMany(gpu: Gpu, out: Tensor, outIndex: number, xs: readonly (Tensor | { t: Tensor; n: number })[]): void {
  reduceMany(gpu, out, outIndex, xs, 1);
}

/** out[outIndex + i] = Σ xs[i] for every tensor; assigns. */
export function sumMany(gpu: Gpu, out: Tensor, outIndex: number, xs: readonly (Tensor | { t: Tensor; n: number })[]): void {
  reduceMany(gpu, out, outIndex, xs, 0);
}

/** scaleOut (2): [0] = min(1, maxNorm / (‖g‖ + 1e-6)), [1] = ‖g‖ = sqrt(Σ sumSq[0..nTensors));
 *  maxNorm <= 0 (or Infinity) turns clipping off (scale 1). Assigns. */
export function clipScale(gpu: Gpu, scaleOut: Tensor, sumSq: Tensor, nTensors: number, maxNorm: number): void {
  if (scaleOut.numel < 2) throw new Error(`clipScale: "${scaleOut.label}" needs 2 elements (scale, norm)`);
  if (nTensors > sumSq.numel) throw new Error(`clipScale: ${nTensors} tensors but "${sumSq.label}" has ${sumSq.numel} elements`);
  const mn = Number.isFinite(maxNorm) ? maxNorm : 0;
  gpu.run({ shader: 'optim', entry: 'clip' }, { params: new Params().u32(nTensors, 0, 0, 0).f32(0, 0, 0, 0, 0, 0, 0, mn), bindings: { 1: sumSq, 2: scaleOut }, workgroups: [1] });
}

/** One AdamW step (t is 1-based) on param (n) with gradient grad·gradScale[0]; param, m, v updated in
 *  place (m, v start at zero). gradScale is a GPU tensor (clipScale's output, or [1]) so clipping
 *  needs no readback. Decoupled weight decay: param -= lr·(m̂/(sqrt(v̂)+eps) + weightDecay·param). */
export function adamwStep(gpu: Gpu, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, gradScale: Tensor, t: number, h: AdamWHyper): void {
  const n = param.numel;
  if (grad.numel < n || m.numel < n || v.numel < n) throw new Error(`adamwStep: "${param.label}" (${n}) needs grad, m, v of at least as many elements`);
  if (!(t >= 1)) throw new Error(`adamwStep: step t = ${t} must be >= 1`);
  const params = new Params().u32(n, 0, 0, 0).f32(h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, 1 - h.beta1 ** t, 1 - h.beta2 ** t, 0);
  gpu.run({ shader: 'optim', entry: 'adamw', constants: { WG } }, { params, bindings: { 1: grad, 2: param, 3: m, 4: v, 5: gradScale }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}
