// fp32 activations times f16 weights, forward only (shaders/matmul_half.wgsl, matmul_half_f16.wgsl): a
// frozen teacher's projections take half the bytes. Weights are IEEE binary16 bits, two per u32
// (even k in the low half), K % 4 == 0.
// Variants:
//   'half_nt4'   4x4 register tile per thread, no workgroup memory; unpack2x16float widens W, fp32
//                math, no shader-f16 needed. CPU Vulkan (lavapipe, SwiftShader).
//   'half_wg8'   the 8x8 register tiles of the fp32 shared8 / int4 gemm_wg8 kernels (128x128 blocks,
//                8-deep slabs in workgroup memory, W widened to f32 there); fp32 math. Real GPUs.
//   'half_wg8h'  the same tiles with x rounded to f16 in workgroup memory and vec4<f16> multiply-adds,
//                summed in f16 within a slab and in f32 across slabs (error: halfForwardErrorBound).
//                Only where the device has shader-f16 (gpu.hasF16).
//   'half_wg8p', 'half_wg8hp'  the same two with the next slab prefetched into registers during the
//                current slab's FMAs (bit-identical to their plain forms; for GPUs, unmeasured).
//   'auto'       pickHalfVariant(gpu): preferHalfVariant's choice, else the adapter's (half_nt4).
import { shapeVariant } from './shape-choice';
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

export type HalfKernel = 'half_nt4' | 'half_wg8' | 'half_wg8p' | 'half_wg8h' | 'half_wg8hp';
export type HalfVariant = 'auto' | HalfKernel;
export const HALF_VARIANTS: readonly HalfKernel[] = ['half_nt4', 'half_wg8', 'half_wg8p', 'half_wg8h', 'half_wg8hp'];

/** The variants that multiply in f16 (shader-f16 devices; error bound halfForwardErrorBound's f16Math). */
export const isF16MathVariant = (v: HalfKernel): boolean => v === 'half_wg8h' || v === 'half_wg8hp';

const WG = { WGX: 4, WGY: 4 };

/** The variants this device can run (half_wg8h and half_wg8hp need the shader-f16 feature). */
export function halfVariants(gpu: Gpu): HalfKernel[] {
  return HALF_VARIANTS.filter((v) => !isF16MathVariant(v) || gpu.hasF16);
}

/** The adapter's own pick: half_nt4 everywhere for now. On CPU adapters it is the measured best;
 *  on real GPUs half_wg8 / half_wg8h should win, but no GPU has measured them yet, and GPU kernels
 *  become 'auto' only after one has (the GPU panel / `quench kernels` time them and can choose). */
export function adapterHalfVariant(_gpu: Gpu): HalfKernel {
  return 'half_nt4';
}

const preferred = new WeakMap<Gpu, HalfKernel>();

/** Make 'auto' run `v` on this device (null: back to the adapter's pick). */
export function preferHalfVariant(gpu: Gpu, v: HalfKernel | null): void {
  if (v) preferred.set(gpu, resolve(gpu, v)); // refuses a variant the device cannot run
  else preferred.delete(gpu);
}

/** The variant 'auto' runs: the one chosen with preferHalfVariant, else the adapter's. */
export function pickHalfVariant(gpu: Gpu): HalfKernel {
  return preferred.get(gpu) ?? adapterHalfVariant(gpu);
}

function resolve(gpu: Gpu, v: HalfVariant): HalfKernel {
  if (v === 'auto') return pickHalfVariant(gpu);
  if (!(HALF_VARIANTS as readonly string[]).includes(v)) throw new Error(`matmulHalfForward: unknown variant '${v}' (one of ${HALF_VARIANTS.join(', ')}, auto)`);
  if (isF16MathVariant(v) && !gpu.hasF16) throw new Error(`matmulHalfForward: '${v}' needs the shader-f16 feature; this device (${gpu.info.description || gpu.info.vendor}) has none`);
  return v;
}

/** out (M,N) = x (M,K) · wᵀ with w (N,K) f16 packed as (N, K/2) u32; assigns (or += with accumulate). */
export function matmulHalfForward(gpu: Gpu, out: Tensor, x: Tensor, wHalf: Tensor, M: number, K: number, N: number, accumulate = false, variant: HalfVariant = 'auto'): void {
  if (K % 4 !== 0) throw new Error(`matmulHalfForward: K = ${K} must be a multiple of 4`);
  if (x.numel < M * K) throw new Error(`matmulHalfForward: x "${x.label}" has ${x.numel} elements, needs ${M * K}`);
  if (wHalf.numel < (N * K) / 2 || wHalf.dtype !== 'u32') throw new Error(`matmulHalfForward: w "${wHalf.label}" must be u32 with ${(N * K) / 2} elements (f16 pairs)`);
  if (out.numel < M * N) throw new Error(`matmulHalfForward: out "${out.label}" has ${out.numel} elements, needs ${M * N}`);
  const v = (variant === 'auto' ? (shapeVariant(gpu, { op: 'f16-weight y=x·Wᵀ', M, K, N }) as HalfKernel | undefined) : undefined) ?? resolve(gpu, variant);
  if (M === 0 || N === 0) return;
  const params = new Params().u32(M, N, K, accumulate ? 1 : 0);
  const bindings = [x, wHalf, out];
  if (v === 'half_nt4') gpu.run({ shader: 'matmul_half', entry: 'half_nt4', constants: WG }, { params, bindings, workgroups: [Math.ceil(N / (4 * WG.WGX)), Math.ceil(M / (4 * WG.WGY))] });
  else gpu.run({ shader: isF16MathVariant(v) ? 'matmul_half_f16' : 'matmul_half', entry: isF16MathVariant(v) ? 'half_wg8h' : 'half_wg8', constants: { PREFETCH: v.endsWith('p') ? 1 : 0 } }, { params, bindings, workgroups: [Math.ceil(N / 128), Math.ceil(M / 128)] });
}

/** Per output, an upper bound on |y_gpu − y_ref| for y = x·Ŵᵀ (x (M,K) as given, Ŵ (N,K) the f16
 *  weights) against the float64 reference: y_ref = x·Ŵᵀ (fp32-math variants) or x̂·Ŵᵀ with x̂ = x
 *  rounded to nearest f16 (f16Math: half_wg8h). `prior`: y's old values when the call accumulates.
 *  u = 2^-24 (f32), v = 2^-11 (f16), γ_n(u) = nu / (1 − nu) (Higham, Accuracy and Stability, §3.1).
 *  fp32 math: products and recursive sums over K in f32: |err| ≤ γ_K(u) Σ_k |x_k ŵ_k|.
 *  f16 math, with P = Σ_k |ŵ_k| ((1 + 2^-10)|x_k| + 2^-14) (≥ Σ |x̂_gpu,k ŵ_k|):
 *    - x's conversion: WGSL only promises one of the two f16 neighbours of x (not necessarily the
 *      nearest), and subnormals may flush to 0: |x̂_gpu − x̂| ≤ 2^-10|x| + 2^-14 per element, so
 *      Σ_k |ŵ_k| (2^-10|x_k| + 2^-14);
 *    - each slab: at most 8 f16 products summed from 0, fused or not: γ_8(v) times its Σ|p|;
 *      f16 results below 2^-14 may flush to 0 (an absolute error < 2^-14 for each of the ≤ 16
 *      roundings), grown by at most (1 + γ_8(v)) (1 + γ_S(u)) further on;
 *    - the S = ceil(K/8) slab partials (exact in f32) summed in f32: γ_S(u) (1 + γ_8(v)) P;
 *  so |err| ≤ conversion + (γ_8(v) + γ_S(u)(1 + γ_8(v))) P + 16 S 2^-14 (1 + γ_8(v))(1 + γ_S(u)).
 *  Both: f16 overflow (partials beyond 65504) is outside the bound; accumulating adds one f32
 *  rounding, u (|prior| + |y_ref| + bound), with |y_ref| bounded by P or Σ|x ŵ|. The float64 reference's own error (~1e-16 relative) is
 *  below all of these. */
export function halfForwardErrorBound(x: ArrayLike<number>, wHalf: ArrayLike<number>, M: number, K: number, N: number, f16Math: boolean, prior?: ArrayLike<number>): Float64Array {
  const u = 2 ** -24, v = 2 ** -11, tiny = 2 ** -14;
  const gamma = (n: number, r: number) => (n * r) / (1 - n * r);
  const S = Math.ceil(K / 8);
  const g8 = gamma(8, v), gS = gamma(S, u), gK = gamma(K, u);
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let absSum = 0, conv = 0, P = 0;
      for (let k = 0; k < K; k++) {
        const ax = Math.abs(x[i * K + k]), aw = Math.abs(wHalf[j * K + k]);
        absSum += ax * aw;
        if (f16Math) {
          conv += aw * (2 ** -10 * ax + tiny);
          P += aw * ((1 + 2 ** -10) * ax + tiny);
        }
      }
      let b = f16Math ? conv + (g8 + gS * (1 + g8)) * P + 16 * S * tiny * (1 + g8) * (1 + gS) : gK * absSum;
      if (prior) b += u * (Math.abs(prior[i * N + j]) + (f16Math ? P : absSum) + b); // |y_ref| ≤ P (f16) or Σ|x ŵ|
      out[i * N + j] = b;
    }
  }
  return out;
}
