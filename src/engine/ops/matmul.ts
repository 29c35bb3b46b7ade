// Linear-layer matmuls in the PyTorch layout: W (N, K) = (out, in), y = x·Wᵀ.
//   matmulForward:        y (M,N)  = x (M,K) · Wᵀ          (assigns, or += with accumulate)
//   matmulBackwardInput:  dx (M,K) = dy (M,N) · W (N,K)     (assigns, or += with accumulate)
//   matmulBackwardWeight: dW (N,K) += dyᵀ (N,M) · x (M,K)   (accumulates)
// All map onto one strided register-tiled kernel (shaders/matmul.wgsl); M = 1 forward may use the
// GEMV entry (workgroup reduction), which real GPUs favour.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WGI = 8;
const WGJ = 8;
const TILE = 4;

export type MatmulVariant = 'regtile' | 'gemv';

function checkSize(name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${name}: tensor "${t.label}" has ${t.numel} elements, needs ${n}`);
}

function strided(gpu: Gpu, c: Tensor, a: Tensor, b: Tensor, I: number, J: number, R: number, s: [number, number, number, number], accumulate: boolean): void {
  const params = new Params().u32(I, J, R, s[0], s[1], s[2], s[3], accumulate ? 1 : 0);
  gpu.run(
    { shader: 'matmul', entry: 'main', constants: { WGI, WGJ } },
    { params, bindings: [a, b, c], workgroups: [Math.ceil(J / (TILE * WGJ)), Math.ceil(I / (TILE * WGI))] },
  );
}

export function matmulForward(gpu: Gpu, out: Tensor, x: Tensor, w: Tensor, M: number, K: number, N: number, opts: { accumulate?: boolean; variant?: MatmulVariant } = {}): void {
  checkSize('matmulForward x', x, M * K);
  checkSize('matmulForward w', w, N * K);
  checkSize('matmulForward out', out, M * N);
  if (M === 1 && opts.variant === 'gemv' && !opts.accumulate) {
    const wg = 64;
    gpu.run({ shader: 'matmul', entry: 'gemv', constants: { WG: wg } }, { params: new Params().u32(N, K, 0, 0), bindings: [x, w, out], workgroups: gpu.grid(N) });
    return;
  }
  strided(gpu, out, x, w, M, N, K, [K, 1, K, 1], !!opts.accumulate);
}

export function matmulBackwardInput(gpu: Gpu, dx: Tensor, dy: Tensor, w: Tensor, M: number, K: number, N: number, opts: { accumulate?: boolean } = {}): void {
  checkSize('matmulBackwardInput dy', dy, M * N);
  checkSize('matmulBackwardInput dx', dx, M * K);
  strided(gpu, dx, dy, w, M, K, N, [N, 1, 1, K], !!opts.accumulate);
}

export function matmulBackwardWeight(gpu: Gpu, dw: Tensor, dy: Tensor, x: Tensor, M: number, K: number, N: number): void {
  checkSize('matmulBackwardWeight dw', dw, N * K);
  strided(gpu, dw, dy, x, N, K, M, [1, N, 1, K], true);
}
