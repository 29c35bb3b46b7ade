// Per-tensor sums (of squares), global-norm clipping and AdamW on the GPU (shaders/optim.wgsl).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import type { AdamWHyper } from '../ref/optim';

const WG = 256;
const CHUNK = WG * 8;

const scratch = new WeakMap<Gpu, Tensor>();
function partialsFor(gpu: Gpu, n: number): Tensor {
  const need = Math.max(1, Math.ceil(n / CHUNK));
  let t = scratch.get(gpu);
  if (!t || t.numel < need) {
    if (t) gpu.free(t);
    t = gpu.tensor('optim.partials', [Math.max(need, 1024)]);
    scratch.set(gpu, t);
  }
  return t;
}

function reduce(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n: number, mode: 0 | 1): void {
  const parts = partialsFor(gpu, n);
  const nPartials = Math.max(1, Math.ceil(n / CHUNK));
  const pr = () => new Params().u32(n, mode, outIndex, nPartials).f32(0, 0, 0, 0, 0, 0, 0, 0);
  gpu.run({ shader: 'optim', entry: 'partial', constants: { WG } }, { params: pr(), bindings: { 1: x, 2: parts }, workgroups: gpu.grid(nPartials) });
  gpu.run({ shader: 'optim', entry: 'finish', constants: { WG } }, { params: pr(), bindings: { 2: parts, 3: out }, workgroups: [1] });
}

/** out[outIndex] = Σ x² over the first n elements (default: all). */
export function sumSquares(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n = x.numel): void {
  reduce(gpu, out, outIndex, x, n, 1);
}

/** out[outIndex] = Σ x. */
export function sum(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n = x.numel): void {
  reduce(gpu, out, outIndex, x, n, 0);
}

/** scaleOut[0] = min(1, maxNorm / (‖g‖ + 1e-6)), scaleOut[1] = ‖g‖ from per-tensor sums of squares. */
export function clipScale(gpu: Gpu, scaleOut: Tensor, sumSq: Tensor, nTensors: number, maxNorm: number): void {
  gpu.run({ shader: 'optim', entry: 'clip' }, { params: new Params().u32(nTensors, 0, 0, 0).f32(0, 0, 0, 0, 0, 0, 0, maxNorm), bindings: { 1: sumSq, 3: scaleOut }, workgroups: [1] });
}

/** One AdamW step (t is 1-based) on param with grad·gradScale[0]; m, v updated in place. */
export function adamwStep(gpu: Gpu, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, gradScale: Tensor, t: number, h: AdamWHyper): void {
  const n = param.numel;
  const params = new Params().u32(n, 0, 0, 0).f32(h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, 1 - h.beta1 ** t, 1 - h.beta2 ** t, 0);
  gpu.run({ shader: 'optim', entry: 'adamw', constants: { WG } }, { params, bindings: { 1: grad, 4: param, 5: m, 6: v, 7: gradScale }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}
