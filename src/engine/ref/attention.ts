// float64 reference for shaders/attention.wgsl: causal GQA attention (head h reads kv head
// h / (NH/NKV)), scale 1/sqrt(HS).
// Training layout: q (B, T, NH, HS), k/v (B, T, NKV, HS), out (B, T, NH, HS), probs (B, NH, T, T).
// Decoding layout: q (B, Tq, NH, HS), k/v caches (B, TkMax, NKV, HS) with Tk valid rows, query t at
// absolute position pos0 + t sees keys 0..pos0+t; probs (B, NH, Tq, Tk).

export interface AttnShape {
  B: number;
  T: number;
  NH: number;
  NKV: number;
  HS: number;
}

export interface AttnCacheShape {
  B: number;
  Tq: number;
  Tk: number;
  TkMax: number;
  NH: number;
  NKV: number;
  HS: number;
  pos0: number;
}

/** General forward (KV cache: row stride TkMax, Tk valid keys, queries at pos0 + t). */
export function attentionCachedForwardRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttnCacheShape): { out: Float64Array; probs: Float64Array; lse: Float64Array } {
  const { B, Tq, Tk, TkMax, NH, NKV, HS, pos0 } = s;
  const scale = 1 / Math.sqrt(HS);
  const out = new Float64Array(B * Tq * NH * HS);
  const probs = new Float64Array(B * NH * Tq * Tk);
  const lse = new Float64Array(B * NH * Tq); // (B, NH, Tq) log Σ_j exp(scaled score)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h / (NH / NKV));
      for (let t = 0; t < Tq; t++) {
        const nk = Math.min(pos0 + t + 1, Tk);
        const qb = ((b * Tq + t) * NH + h) * HS;
        const sc = new Float64Array(nk);
        let m = -Infinity;
        for (let j = 0; j < nk; j++) {
          const kb = ((b * TkMax + j) * NKV + kvh) * HS;
          let d = 0;
          for (let i = 0; i < HS; i++) d += q[qb + i] * k[kb + i];
          sc[j] = d * scale;
          m = Math.max(m, sc[j]);
        }
        let z = 0;
        for (let j = 0; j < nk; j++) z += Math.exp(sc[j] - m);
        lse[(b * NH + h) * Tq + t] = m + Math.log(z);
        const pb = ((b * NH + h) * Tq + t) * Tk;
        for (let j = 0; j < nk; j++) {
          const pr = Math.exp(sc[j] - m) / z;
          probs[pb + j] = pr;
          const vb = ((b * TkMax + j) * NKV + kvh) * HS;
          for (let i = 0; i < HS; i++) out[qb + i] += pr * v[vb + i];
        }
      }
    }
  return { out, probs, lse };
}

/** Training forward (Tq = Tk = T, pos0 = 0). */
export function attentionForwardRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttnShape): { out: Float64Array; probs: Float64Array; lse: Float64Array } {
  return attentionCachedForwardRef(q, k, v, { B: s.B, Tq: s.T, Tk: s.T, TkMax: s.T, NH: s.NH, NKV: s.NKV, HS: s.HS, pos0: 0 });
}

/** Gradients of Σ out·dout + Σ probs·dprobsExtra with respect to q, k, v (training layout).
 *  dk, dv sum over the query heads sharing a kv head. */
export function attentionBackwardRef(dout: ArrayLike<number>, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, s: AttnShape, dprobsExtra?: ArrayLike<number>): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, NH, NKV, HS } = s;
  const scale = 1 / Math.sqrt(HS);
  const { probs } = attentionForwardRef(q, k, v, s);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h / (NH / NKV));
      for (let t = 0; t < T; t++) {
        const ob = ((b * T + t) * NH + h) * HS;
        const pb = ((b * NH + h) * T + t) * T;
        const dp = new Float64Array(t + 1);
        let D = 0;
        for (let j = 0; j <= t; j++) {
          const vb = ((b * T + j) * NKV + kvh) * HS;
          let x = 0;
          for (let i = 0; i < HS; i++) x += dout[ob + i] * v[vb + i];
          dp[j] = x + (dprobsExtra ? dprobsExtra[pb + j] : 0);
          D += probs[pb + j] * dp[j];
          for (let i = 0; i < HS; i++) dv[vb + i] += probs[pb + j] * dout[ob + i];
        }
        for (let j = 0; j <= t; j++) {
          const ds = probs[pb + j] * (dp[j] - D);
          const kb = ((b * T + j) * NKV + kvh) * HS;
          for (let i = 0; i < HS; i++) {
            dq[ob + i] += scale * ds * k[kb + i];
            dk[kb + i] += scale * ds * q[ob + i];
          }
        }
      }
    }
  return { dq, dk, dv };
}
