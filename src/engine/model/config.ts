// LLaMA model configuration and host-side weights, shared by loaders, the CPU reference model,
// the GPU model and the exporters. Dimension names: C (dim), H (hidden), L (layers), NH (heads),
// NKV (KV heads), HS (head size = C / NH), V (vocab), T (sequence).
//
// Conventions (one place, every module follows them):
// - Linear weights use the PyTorch / Hugging Face layout (out_features, in_features), row-major:
//   y = x · Wᵀ.
// - RoPE uses the Hugging Face "rotate_half" convention: within each head, dimension i pairs with
//   i + HS/2, frequency theta^(-2i/HS), i < HS/2. llama2.c checkpoints rotate interleaved pairs
//   (2i, 2i+1); their loader permutes the rows of wq and wk into the HF convention (as HF's
//   convert_llama_weights_to_hf.py does), so one kernel serves both. The inverse frequencies,
//   with any rope_scaling (linear, llama3), are defined once: ropeInvFreq in src/engine/ref/rope.ts.
import type { RopeScaling, RopeSpec } from '../ref/rope';

export type { RopeScaling };

export interface LlamaConfig {
  dim: number; // C
  hiddenDim: number; // H
  nLayers: number; // L
  nHeads: number; // NH
  nKvHeads: number; // NKV
  vocabSize: number; // V
  maxSeqLen: number;
  normEps: number;
  ropeTheta: number;
  tiedEmbeddings: boolean;
  /** head size when it is not dim / nHeads (a head-pruned model: HF `head_dim`) */
  headDim?: number;
  /** HF `rope_scaling` (linear or llama3); absent = plain RoPE */
  ropeScaling?: RopeScaling;
}

/** The RoPE of a config, as the kernels and the references take it. */
export function ropeOf(c: LlamaConfig): RopeSpec {
  return c.ropeScaling ? { theta: c.ropeTheta, scaling: c.ropeScaling } : c.ropeTheta;
}

export interface LlamaLayerWeights {
  attnNorm: Float32Array; // (C)
  wq: Float32Array; // (NH*HS, C)
  wk: Float32Array; // (NKV*HS, C)
  wv: Float32Array; // (NKV*HS, C)
  wo: Float32Array; // (C, NH*HS)
  mlpNorm: Float32Array; // (C)
  wGate: Float32Array; // (H, C)
  wUp: Float32Array; // (H, C)
  wDown: Float32Array; // (C, H)
}

export interface LlamaWeights {
  tokEmbed: Float32Array; // (V, C)
  layers: LlamaLayerWeights[];
  finalNorm: Float32Array; // (C)
  lmHead: Float32Array | null; // (V, C); null when tied to tokEmbed
}

export const PROJECTIONS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type Projection = (typeof PROJECTIONS)[number];
export const PROJECTION_KEY: Record<Projection, keyof LlamaLayerWeights> = {
  q: 'wq', k: 'wk', v: 'wv', o: 'wo', gate: 'wGate', up: 'wUp', down: 'wDown',
};

export function headSize(c: LlamaConfig): number {
  return c.headDim ?? c.dim / c.nHeads;
}

/** Shapes of every weight, for validation and allocation. */
export function layerShapes(c: LlamaConfig): Record<keyof LlamaLayerWeights, [number] | [number, number]> {
  const hs = headSize(c);
  return {
    attnNorm: [c.dim],
    wq: [c.nHeads * hs, c.dim],
    wk: [c.nKvHeads * hs, c.dim],
    wv: [c.nKvHeads * hs, c.dim],
    wo: [c.dim, c.nHeads * hs],
    mlpNorm: [c.dim],
    wGate: [c.hiddenDim, c.dim],
    wUp: [c.hiddenDim, c.dim],
    wDown: [c.dim, c.hiddenDim],
  };
}

export function paramCount(c: LlamaConfig): number {
  const per = Object.values(layerShapes(c)).reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  return c.vocabSize * c.dim * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * per + c.dim;
}

export function validateConfig(c: LlamaConfig, where = 'config'): void {
  const bad = (m: string) => {
    throw new Error(`${where}: ${m}`);
  };
  for (const k of ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'maxSeqLen'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.headDim !== undefined && (!Number.isInteger(c.headDim) || c.headDim <= 0)) bad(`headDim must be a positive integer, got ${c.headDim}`);
  if (c.headDim === undefined && c.dim % c.nHeads !== 0) bad(`dim ${c.dim} is not divisible by nHeads ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads !== 0) bad(`nHeads ${c.nHeads} is not divisible by nKvHeads ${c.nKvHeads}`);
  if (headSize(c) % 2 !== 0) bad(`head size ${headSize(c)} must be even for RoPE`);
  if (!(c.normEps > 0)) bad(`normEps must be > 0, got ${c.normEps}`);
  if (!(c.ropeTheta > 0)) bad(`ropeTheta must be > 0, got ${c.ropeTheta}`);
  const rs = c.ropeScaling;
  if (rs) {
    if (!(Number.isFinite(rs.factor) && rs.factor >= 1)) bad(`rope_scaling (${rs.type}): factor must be a number >= 1, got ${rs.factor}`);
    if (rs.type === 'llama3') {
      if (!(Number.isFinite(rs.lowFreqFactor) && rs.lowFreqFactor > 0)) bad(`rope_scaling (llama3): low_freq_factor must be > 0, got ${rs.lowFreqFactor}`);
      if (!(Number.isFinite(rs.highFreqFactor) && rs.highFreqFactor > rs.lowFreqFactor)) bad(`rope_scaling (llama3): high_freq_factor must be greater than low_freq_factor (${rs.lowFreqFactor}), got ${rs.highFreqFactor}`);
      if (!(Number.isInteger(rs.originalMaxPositionEmbeddings) && rs.originalMaxPositionEmbeddings > 0)) bad(`rope_scaling (llama3): original_max_position_embeddings must be a positive integer, got ${rs.originalMaxPositionEmbeddings}`);
    } else if (rs.type !== 'linear') bad(`rope_scaling type "${(rs as { type: string }).type}" is not supported (linear, llama3)`);
  }
}

/** A seeded random model for tests (small normal weights, unit norms). */
export function randomWeights(c: LlamaConfig, seed: number, scale = 0.2): LlamaWeights {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (n: number, sd: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = sd * Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next());
    return a;
  };
  const norm = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = 1 + 0.1 * (next() - 0.5);
    return a;
  };
  const shapes = layerShapes(c);
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const lw = {} as LlamaLayerWeights;
    for (const [k, sh] of Object.entries(shapes) as [keyof LlamaLayerWeights, number[]][]) {
      const n = sh.reduce((a, b) => a * b, 1);
      lw[k] = sh.length === 1 ? norm(n) : normal(n, scale / Math.sqrt(sh[1] / 16));
    }
    layers.push(lw);
  }
  return {
    tokEmbed: normal(c.vocabSize * c.dim, 0.5),
    layers,
    finalNorm: norm(c.dim),
    lmHead: c.tiedEmbeddings ? null : normal(c.vocabSize * c.dim, scale),
  };
}

/** A tiny config for tests: 2 layers, GQA 4/2, C=16, H=24, V=11. */
export function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 11, maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, ...over };
}
