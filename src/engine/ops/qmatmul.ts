// Packed low-bit matmul: y (M, N) = x (M, K) · dequant(W)ᵀ and dX = dY · dequant(W), reading the
// codes directly (shaders/qmatmul.wgsl; layout in src/engine/quant/pack.ts).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import type { QuantLayout } from '../quant/pack';

export interface GpuPacked {
  layout: QuantLayout;
  codes: Tensor; // (N, wordsPerRow) u32
  scales: Tensor; // (N, nBlocks) f32
  zeros: Tensor; // (N, nBlocks) f32
}

export type QmatmulVariant = 'auto' | 'gemm' | 'gemv' | 'gemv_rows';

export function isSoftwareAdapter(gpu: Gpu): boolean {
  const i = gpu.info;
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(`${i.vendor} ${i.architecture} ${i.device} ${i.description}`);
}

function params(L: QuantLayout, M: number, accumulate = false): Params {
  return new Params().u32(M, L.N, L.K, L.group, L.nBlocks, L.wordsPerRow, L.bits, L.cpw, accumulate ? 1 : 0, 0, 0, 0);
}

/** y (M, N) = x (M, K) · dequant(W)ᵀ (assigns). 'auto' uses GEMV for M = 1. */
export function qmatmulForward(gpu: Gpu, y: Tensor, x: Tensor, w: GpuPacked, M: number, variant: QmatmulVariant = 'auto'): void {
  const L = w.layout;
  // Software adapters (lavapipe, SwiftShader) run barrier-free kernels best; real GPUs the
  // workgroup-reduction GEMV.
  const v = variant === 'auto' ? (M === 1 ? (isSoftwareAdapter(gpu) ? 'gemv_rows' : 'gemv') : 'gemm') : variant;
  if (v === 'gemv_rows') {
    if (M !== 1) throw new Error('qmatmul gemv_rows needs M = 1');
    gpu.run({ shader: 'qmatmul', entry: 'gemv_rows', constants: { WG: 64 } }, { params: params(L, 1), bindings: [x, w.codes, w.scales, w.zeros, y], workgroups: gpu.grid(Math.ceil(L.N / 64)) });
    return;
  }
  if (v === 'gemv') {
    if (M !== 1) throw new Error('qmatmul gemv needs M = 1');
    gpu.run({ shader: 'qmatmul', entry: 'gemv', constants: { WG: 64 } }, { params: params(L, 1), bindings: [x, w.codes, w.scales, w.zeros, y], workgroups: gpu.grid(L.N) });
    return;
  }
  gpu.run({ shader: 'qmatmul', entry: 'gemm' }, { params: params(L, M), bindings: [x, w.codes, w.scales, w.zeros, y], workgroups: [Math.ceil(L.N / 32), Math.ceil(M / 32)] });
}

/** dX (M, K) = dY (M, N) · dequant(W) (assigns, or += with accumulate). */
export function qmatmulBackwardInput(gpu: Gpu, dx: Tensor, dy: Tensor, w: GpuPacked, M: number, accumulate = false): void {
  const L = w.layout;
  gpu.run({ shader: 'qmatmul', entry: 'dx' }, { params: params(L, M, accumulate), bindings: [dy, w.codes, w.scales, w.zeros, dx], workgroups: [Math.ceil(L.K / 32), Math.ceil(M / 32)] });
}
