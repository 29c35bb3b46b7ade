// float64 reference for shaders/rope.wgsl (HF rotate_half convention): x (B, T, nHeads, HS) at
// positions pos0 + t; `inverse` rotates by −angle (= the transpose, i.e. the backward).
export function ropeRef(x: ArrayLike<number>, B: number, T: number, nHeads: number, HS: number, theta: number, pos0: number, inverse = false): Float64Array {
  const out = Float64Array.from(x as ArrayLike<number>);
  const half = HS / 2;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < nHeads; h++)
        for (let i = 0; i < half; i++) {
          const ang = (pos0 + t) / Math.pow(theta, (2 * i) / HS);
          const c = Math.cos(ang), s = (inverse ? -1 : 1) * Math.sin(ang);
          const base = ((b * T + t) * nHeads + h) * HS;
          const a0 = x[base + i], b0 = x[base + i + half];
          out[base + i] = a0 * c - b0 * s;
          out[base + i + half] = b0 * c + a0 * s;
        }
  return out;
}
