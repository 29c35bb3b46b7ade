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
import type { GpuPacked } from './packed';

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

/** Tensors per pack_multi dispatch the shader offers (shaders/fakequant_multi.gen.mjs). */
const PACK_K = [4, 3, 2] as const;

/** The most tensors one pack_multi dispatch may bind on this device (4 storage buffers each), or 1. */
export function packMultiWidth(gpu: Gpu): number {
  return PACK_K.find((k) => 4 * k <= gpu.device.limits.maxStorageBuffersPerShaderStage) ?? 1;
}

/** quantizePack on many tensors: first the group params of those that need them (one dispatch
 *  each), then the codes of up to packMultiWidth tensors per dispatch (bit-identical to one pack
 *  per tensor: the same fp32 operations). The QAT student re-packs every trainable projection each
 *  step; this makes 150 pack dispatches per step at SmolLM2-135M's shape 38. */
export function quantizePackMany(gpu: Gpu, items: { out: GpuPacked; w: Tensor; sym: boolean; clip?: number; keepScales?: boolean }[]): void {
  for (const it of items) {
    const L = it.out.layout;
    if (!it.keepScales) gpu.run({ shader: 'fakequant', entry: 'group_params', constants: { WG } }, { params: params(L, it.sym, it.clip ?? 1), bindings: { 1: it.w, 3: it.out.scales, 4: it.out.zeros }, workgroups: gpu.grid(Math.ceil((L.N * L.nBlocks) / WG)) });
  }
  const width = packMultiWidth(gpu);
  for (let at = 0; at < items.length; ) {
    const k = Math.min(width, items.length - at);
    if (k === 1) {
      const it = items[at++];
      quantizePack(gpu, it.out, it.w, { sym: it.sym, clip: it.clip, keepScales: true });
      continue;
    }
    const batch = items.slice(at, at + k);
    at += k;
    // (N, K, group, nBlocks) per slot, then (wordsPerRow, bits, cpw, 0); slots past k stay zero
    const pm = new Params();
    for (let t = 0; t < PACK_K[0]; t++) {
      const L = batch[t]?.out.layout;
      pm.u32(L?.N ?? 0, L?.K ?? 0, L?.group ?? 0, L?.nBlocks ?? 0);
    }
    for (let t = 0; t < PACK_K[0]; t++) {
      const L = batch[t]?.out.layout;
      pm.u32(L?.wordsPerRow ?? 0, L?.bits ?? 0, L?.cpw ?? 0, 0);
    }
    const bindings: Record<number, Tensor> = {};
    let most = 0;
    batch.forEach((it, t) => {
      bindings[10 + t] = it.w;
      bindings[20 + t] = it.out.codes;
      bindings[30 + t] = it.out.scales;
      bindings[40 + t] = it.out.zeros;
      most = Math.max(most, it.out.layout.N * it.out.layout.wordsPerRow);
    });
    gpu.run({ shader: 'fakequant_multi', entry: `pack_multi${k}`, constants: { WG } }, { params: pm, bindings, workgroups: gpu.grid(Math.ceil(most / WG)) });
  }
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
