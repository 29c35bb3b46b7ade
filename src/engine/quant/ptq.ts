// Post-training quantization of a model's projections (host side): round-to-nearest with min/max
// scales, or a per-group clipping search that picks the clip ratio minimising the group's
// reconstruction error (squared error over a grid of ratios). Reports per-tensor relative error.
import { headSize, PROJECTIONS, PROJECTION_KEY, type LlamaConfig, type LlamaWeights, type Projection } from '../model/config';
import { groupParams, layoutOf, packedBytes, quantCode, quantizeHost, type Bits, type PackedWeight } from './pack';

export interface PtqConfig {
  bits: Bits;
  group: number; // 0 = per channel
  sym: boolean;
  clipSearch: boolean;
  /** which projections (default all seven) */
  projections?: Projection[];
  /** also quantize the token embedding (vocab, dim) — and with it a tied classifier — per row in
   *  groups along dim (round-to-nearest, asymmetric unless sym); absent = the embedding stays fp32 */
  embedding?: { bits: Bits; group: number };
}

export interface TensorReport {
  layer: number;
  proj: Projection;
  relError: number; // ‖W − Ŵ‖ / ‖W‖
  bytesFp32: number;
  bytesPacked: number;
}

export interface QuantizedModel {
  config: LlamaConfig;
  ptq: PtqConfig;
  /** packed[layer][proj]; projections not quantized are absent */
  packed: Partial<Record<Projection, PackedWeight>>[];
  /** the packed token embedding (vocab, dim), when ptq.embedding asks for one */
  embedding?: PackedWeight;
  report: TensorReport[];
}

export const CLIP_GRID = [1, 0.975, 0.95, 0.925, 0.9, 0.875, 0.85, 0.825, 0.8, 0.775, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5];

/** Per-group clip ratios minimising Σ (w − dequant(quant(w)))² over CLIP_GRID. */
export function searchClip(w: ArrayLike<number>, N: number, K: number, bits: Bits, group: number, sym: boolean): Float32Array {
  const L = layoutOf(N, K, bits, group);
  const out = new Float32Array(N * L.nBlocks);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < L.nBlocks; b++) {
      const k0 = b * L.group, k1 = Math.min(K, k0 + L.group);
      const vals = Array.prototype.slice.call(w, n * K + k0, n * K + k1) as number[];
      let best = Infinity, bestC = 1;
      for (const c of CLIP_GRID) {
        const { scale, zero } = groupParams(vals, bits, sym, c);
        let err = 0;
        for (const v of vals) {
          const d = (quantCode(v, scale, zero, L.qmax) - zero) * scale - v;
          err += d * d;
        }
        if (err < best) {
          best = err;
          bestC = c;
        }
      }
      out[n * L.nBlocks + b] = bestC;
    }
  return out;
}

export function relError(w: ArrayLike<number>, wq: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < w.length; i++) {
    num += (w[i] - wq[i]) ** 2;
    den += w[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

export function quantizeWeights(cfg: LlamaConfig, w: LlamaWeights, q: PtqConfig, onProgress?: (done: number, total: number) => void): QuantizedModel {
  const projs = q.projections ?? [...PROJECTIONS];
  const packed: QuantizedModel['packed'] = [];
  const report: TensorReport[] = [];
  const total = cfg.nLayers * projs.length;
  let done = 0;
  w.layers.forEach((lw, l) => {
    const entry: Partial<Record<Projection, PackedWeight>> = {};
    for (const p of projs) {
      const W = lw[PROJECTION_KEY[p]];
      const K = p === 'o' ? cfg.nHeads * headSize(cfg) : p === 'down' ? cfg.hiddenDim : cfg.dim;
      const N = W.length / K;
      const clip = q.clipSearch ? searchClip(W, N, K, q.bits, q.group, q.sym) : 1;
      const pw = quantizeHost(W, N, K, { bits: q.bits, group: q.group, sym: q.sym }, clip);
      entry[p] = pw;
      report.push({ layer: l, proj: p, relError: relError(W, dequant(pw)), bytesFp32: W.length * 4, bytesPacked: packedBytes(pw) });
      onProgress?.(++done, total);
    }
    packed.push(entry);
  });
  const embedding = q.embedding ? quantizeEmbedding(cfg, w.tokEmbed, q.embedding, q.sym) : undefined;
  return { config: cfg, ptq: q, packed, report, ...(embedding ? { embedding } : {}) };
}

/** The token embedding (vocab, dim) packed per row, groups along dim (RTN min/max: an embedding
 *  row is looked up, not multiplied, so the clip search's matmul-error criterion does not apply). */
export function quantizeEmbedding(cfg: LlamaConfig, tokEmbed: Float32Array, e: { bits: Bits; group: number }, sym: boolean): PackedWeight {
  if (tokEmbed.length !== cfg.vocabSize * cfg.dim) throw new Error(`the embedding has ${tokEmbed.length} values, the config implies ${cfg.vocabSize}×${cfg.dim}`);
  return quantizeHost(tokEmbed, cfg.vocabSize, cfg.dim, { bits: e.bits, group: e.group, sym });
}

import { dequantizeHost } from './pack';
function dequant(p: PackedWeight): Float32Array {
  return dequantizeHost(p);
}

/** The fp32 weights with every quantized projection replaced by its dequantized value (CPU reference). */
export function dequantizedWeights(w: LlamaWeights, qm: QuantizedModel): LlamaWeights {
  return {
    ...w,
    ...(qm.embedding ? { tokEmbed: dequantizeHost(qm.embedding) } : {}),
    layers: w.layers.map((lw, l) => {
      const out = { ...lw };
      for (const [p, pw] of Object.entries(qm.packed[l]) as [Projection, PackedWeight][]) out[PROJECTION_KEY[p]] = dequantizeHost(pw);
      return out;
    }),
  };
}
