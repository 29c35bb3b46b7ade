// float64 references for shaders/reduce.wgsl and shaders/optim.wgsl
export function sumRef(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s;
}

export function sumSquaresRef(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One AdamW step at step t (1-based) on copies; gradient pre-multiplied by gradScale. */
export function adamwRef(param: ArrayLike<number>, grad: ArrayLike<number>, m: ArrayLike<number>, v: ArrayLike<number>, t: number, h: AdamWHyper, gradScale = 1): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const n = param.length;
  const P = Float64Array.from(param as ArrayLike<number>), M = Float64Array.from(m as ArrayLike<number>), Vv = Float64Array.from(v as ArrayLike<number>);
  for (let i = 0; i < n; i++) {
    const g = grad[i] * gradScale;
    M[i] = h.beta1 * M[i] + (1 - h.beta1) * g;
    Vv[i] = h.beta2 * Vv[i] + (1 - h.beta2) * g * g;
    const mh = M[i] / (1 - h.beta1 ** t), vh = Vv[i] / (1 - h.beta2 ** t);
    P[i] -= h.lr * (mh / (Math.sqrt(vh) + h.eps) + h.weightDecay * P[i]);
  }
  return { param: P, m: M, v: Vv };
}

/** Global-norm clipping from per-tensor sums of squares; maxNorm <= 0 or Infinity: no clipping. */
export function clipScaleRef(sumSquares: ArrayLike<number>, maxNorm: number): { scale: number; norm: number } {
  let t = 0;
  for (let i = 0; i < sumSquares.length; i++) t += sumSquares[i];
  const norm = Math.sqrt(t);
  return { scale: maxNorm > 0 && Number.isFinite(maxNorm) ? Math.min(1, maxNorm / (norm + 1e-6)) : 1, norm };
}
