// float64 reference for shaders/rope.wgsl (HF rotate_half convention): x (B, T, nHeads, HS) at
// positions pos0 + t; `inverse` rotates by −angle (= the transpose, i.e. the backward).
// The inverse frequencies (ropeInvFreq) are the one place RoPE scaling is defined: the GPU table
// (src/engine/ops/rope.ts), the whole-model reference (ref/llama.ts) and the ONNX exporter all
// call it, so a scaled RoPE cannot differ between them.

/** HF `rope_scaling`: `linear` divides positions by factor (= every inverse frequency by factor);
 *  `llama3` rescales each frequency by its wavelength (Llama-3.1/3.2). */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** RoPE of a model: the base theta and an optional scaling. A bare number is theta, unscaled. */
export type RopeSpec = number | { theta: number; scaling?: RopeScaling | null };

export function ropeTheta(r: RopeSpec): number {
  return typeof r === 'number' ? r : r.theta;
}

/** A stable key of a RopeSpec (a GPU table cache key). */
export function ropeKey(r: RopeSpec): string {
  if (typeof r === 'number' || !r.scaling) return `${ropeTheta(r)}`;
  const s = r.scaling;
  return s.type === 'linear' ? `${r.theta}:linear${s.factor}` : `${r.theta}:llama3:${s.factor}:${s.lowFreqFactor}:${s.highFreqFactor}:${s.originalMaxPositionEmbeddings}`;
}

/**
 * The HS/2 inverse frequencies of pair i (angle = pos · invFreq[i]), in float64:
 *   default  invFreq[i] = theta^(-2i/HS)
 *   linear   invFreq[i] / factor (transformers _compute_linear_scaling_rope_parameters)
 *   llama3   transformers _compute_llama3_parameters: wavelength λ = 2π / invFreq; with
 *            lowλ = orig / lowFreqFactor, highλ = orig / highFreqFactor:
 *            λ < highλ: unchanged (high frequencies); λ > lowλ: invFreq / factor (low frequencies);
 *            otherwise smooth = (orig/λ − lowFreqFactor) / (highFreqFactor − lowFreqFactor),
 *            invFreq = (1 − smooth) · invFreq / factor + smooth · invFreq.
 * (transformers computes them in float32; float64 here differs by < 1e-7 relative.)
 */
export function ropeInvFreq(HS: number, rope: RopeSpec): Float64Array {
  const theta = ropeTheta(rope);
  const scaling = typeof rope === 'number' ? null : (rope.scaling ?? null);
  const half = HS / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / HS);
  if (!scaling) return inv;
  if (scaling.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] /= scaling.factor;
    return inv;
  }
  const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: orig } = scaling;
  const lowWavelen = orig / lo, highWavelen = orig / hi;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) inv[i] /= factor;
    else {
      const smooth = (orig / wavelen - lo) / (hi - lo);
      inv[i] = ((1 - smooth) * inv[i]) / factor + smooth * inv[i];
    }
  }
  return inv;
}

export function ropeRef(x: ArrayLike<number>, B: number, T: number, nHeads: number, HS: number, rope: RopeSpec, pos0: number, inverse = false): Float64Array {
  const out = Float64Array.from(x as ArrayLike<number>);
  const half = HS / 2;
  const inv = ropeInvFreq(HS, rope);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < nHeads; h++)
        for (let i = 0; i < half; i++) {
          const ang = (pos0 + t) * inv[i];
          const c = Math.cos(ang), s = (inverse ? -1 : 1) * Math.sin(ang);
          const base = ((b * T + t) * nHeads + h) * HS;
          const a0 = x[base + i], b0 = x[base + i + half];
          out[base + i] = a0 * c - b0 * s;
          out[base + i + half] = b0 * c + a0 * s;
        }
  return out;
}
