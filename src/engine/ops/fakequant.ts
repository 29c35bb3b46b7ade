// GPU quantization for QAT and PTQ (shaders/fakequant.wgsl): min/max (or absmax) scales with an
// optional clip ratio, packing, dequantization, the straight-through estimator and the LSQ
// step-size gradient. Layout and scale rules: src/engine/quant/pack.ts.
//   quantizePack   W (N, K) f32 → codes/scales/zeros; scales and zeros equal quantizeHost's
//                  bit for bit (same float32 operations); codes equal except where w/scale lies
//                  within an ulp of a .5 tie (GPU division may round differently): such a code
//                  may differ by one (tested: at most a couple per tensor, only at ties).
//   dequantize     wq (N, K) = (code − zero)·scale (assigns); for error reports only
//   steBackward    dw (N, K) += dwq where round(w/scale) + zero ∈ [0, qmax], else nothing
//   steLsqBackward steBackward's dw and dscale (N, nBlocks) += LSQ step-size gradient, one pass
// QAT with min/max scales: quantizePack every step, forward/dX through ops/qmatmul, steBackward.
// QAT with learned scales (LSQ): quantizePack({ keepScales: true }) with the learned scales and
// zeros (symmetric: zero = 2^(bits−1), so qn = −2^(bits−1), qp = 2^(bits−1) − 1), then
// steLsqBackward for dw and dscale; init scales with lsqInitScales (quant/pack.ts).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import type { QuantLayout } from '../format/pack';
import type { GpuPacked } from './qmatmul';

const WG = 64;

function params(L: QuantLayout, sym: boolean, clip: number): Params {
  return new Params().u32(L.N, L.K, L.group, L.nBlocks, L.wordsPerRow, L.bits, L.cpw, sym ? 1 : 0).f32(clip).u32(0, 0, 0);
}

export function allocPacked(gpu: Gpu, label: string, L: QuantLayout): GpuPacked {
  return {
    layout: L,
    codes: gpu.tensor(`${label}.codes`, [L.N, L.wordsPerRow], 'u32'),
    scales: gpu.tensor(`${label}.scales`, [L.N, L.nBlocks]),
    zeros: gpu.tensor(`${label}.zeros`, [L.N, L.nBlocks]),
  };
}

export function freePacked(gpu: Gpu, p: GpuPacked): void {
  gpu.free(p.codes);
  gpu.free(p.scales);
  gpu.free(p.zeros);
}

/** Compute scales/zeros from W (N, K) (skip with keepScales: LSQ's learned scales), then pack codes. */
export function quantizePack(gpu: Gpu, out: GpuPacked, w: Tensor, opts: { sym: boolean; clip?: number; keepScales?: boolean }): void {
  const L = out.layout;
  const pr = () => params(L, opts.sym, opts.clip ?? 1);
  if (!opts.keepScales) gpu.run({ shader: 'fakequant', entry: 'group_params', constants: { WG } }, { params: pr(), bindings: { 1: w, 3: out.scales, 4: out.zeros }, workgroups: gpu.grid(Math.ceil((L.N * L.nBlocks) / WG)) });
  gpu.run({ shader: 'fakequant', entry: 'pack', constants: { WG } }, { params: pr(), bindings: { 1: w, 2: out.codes, 3: out.scales, 4: out.zeros }, workgroups: gpu.grid(Math.ceil((L.N * L.wordsPerRow) / WG)) });
}

/** wq (N, K) = dequant(packed) (assigns). For error reports; the matmuls read codes directly. */
export function dequantize(gpu: Gpu, wq: Tensor, p: GpuPacked): void {
  const L = p.layout;
  gpu.run({ shader: 'fakequant', entry: 'dequant', constants: { WG } }, { params: params(L, false, 1), bindings: { 2: p.codes, 3: p.scales, 4: p.zeros, 5: wq }, workgroups: gpu.grid(Math.ceil((L.N * L.K) / WG)) });
}

/** Straight-through estimator: dw += dwq inside the clipping range (accumulates). */
export function steBackward(gpu: Gpu, dw: Tensor, dwq: Tensor, w: Tensor, p: GpuPacked): void {
  const L = p.layout;
  gpu.run({ shader: 'fakequant', entry: 'ste', constants: { WG } }, { params: params(L, false, 1), bindings: { 1: w, 3: p.scales, 4: p.zeros, 6: dwq, 7: dw }, workgroups: gpu.grid(Math.ceil((L.N * L.K) / WG)) });
}

/** The LSQ student's weight backward in one dispatch (one thread per (n, block)): dw += the STE's
 *  gradient (steBackward's, bit for bit) and dscale += the LSQ step-size gradient (no atomics). */
export function steLsqBackward(gpu: Gpu, dw: Tensor, dscale: Tensor, dwq: Tensor, w: Tensor, p: GpuPacked): void {
  const L = p.layout;
  gpu.run({ shader: 'fakequant', entry: 'ste_lsq', constants: { WG } }, { params: params(L, true, 1), bindings: { 1: w, 3: p.scales, 4: p.zeros, 6: dwq, 7: dw, 8: dscale }, workgroups: gpu.grid(Math.ceil((L.N * L.nBlocks) / WG)) });
}
