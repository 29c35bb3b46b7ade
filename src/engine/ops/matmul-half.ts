// fp32 activations times f16 weights, forward only (see shaders/matmul_half.wgsl): a frozen teacher's
// projections take half the bytes. Weights are IEEE binary16 bits, two per u32 (even k in the low
// half), K % 4 == 0; unpack2x16float widens them, so no shader-f16 feature is needed to run it.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = { WGX: 4, WGY: 4 };

/** out (M,N) = x (M,K) · wᵀ with w (N,K) f16 packed as (N, K/2) u32; assigns (or += with accumulate). */
export function matmulHalfForward(gpu: Gpu, out: Tensor, x: Tensor, wHalf: Tensor, M: number, K: number, N: number, accumulate = false): void {
  if (K % 4 !== 0) throw new Error(`matmulHalfForward: K = ${K} must be a multiple of 4`);
  if (x.numel < M * K) throw new Error(`matmulHalfForward: x "${x.label}" has ${x.numel} elements, needs ${M * K}`);
  if (wHalf.numel < (N * K) / 2 || wHalf.dtype !== 'u32') throw new Error(`matmulHalfForward: w "${wHalf.label}" must be u32 with ${(N * K) / 2} elements (f16 pairs)`);
  if (out.numel < M * N) throw new Error(`matmulHalfForward: out "${out.label}" has ${out.numel} elements, needs ${M * N}`);
  if (M === 0 || N === 0) return;
  gpu.run({ shader: 'matmul_half', entry: 'half_nt4', constants: WG }, { params: new Params().u32(M, N, K, accumulate ? 1 : 0), bindings: [x, wHalf, out], workgroups: [Math.ceil(N / (4 * WG.WGX)), Math.ceil(M / (4 * WG.WGY))] });
}
