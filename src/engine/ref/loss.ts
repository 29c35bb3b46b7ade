// float64 references for shaders/loss.wgsl (per-row losses and their gradients).
export const IGNORE = 0xffffffff;

function logSoftmax(row: ArrayLike<number>, temp = 1): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i] / temp);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] / temp - m);
  const l = Math.log(s) + m;
  return Float64Array.from({ length: row.length }, (_, i) => row[i] / temp - l);
}

const rowOf = (a: ArrayLike<number>, r: number, V: number) => Array.prototype.slice.call(a, r * V, (r + 1) * V) as number[];

/** Per-row cross-entropy −log softmax(z)[target] and dz = scale·(softmax − onehot);
 *  IGNORE rows: 0 and 0; out-of-range targets: NaN and 0. */
export function crossEntropyRef(z: ArrayLike<number>, targets: ArrayLike<number>, rows: number, V: number, scale: number): { losses: Float64Array; dz: Float64Array } {
  const losses = new Float64Array(rows), dz = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === IGNORE) continue;
    if (!(targets[r] >= 0 && targets[r] < V)) {
      losses[r] = NaN; // the kernel never reads through an out-of-range target: NaN loss, 0 grad
      continue;
    }
    const ls = logSoftmax(rowOf(z, r, V));
    losses[r] = -ls[targets[r]];
    for (let i = 0; i < V; i++) dz[r * V + i] = scale * (Math.exp(ls[i]) - (i === targets[r] ? 1 : 0));
  }
  return { losses, dz };
}

/** Per-row T²·KL(softmax(zt/T) ‖ softmax(zs/T)); dz = scale·T·(ps − pt) w.r.t. the student logits. */
export function klRef(zs: ArrayLike<number>, zt: ArrayLike<number>, rows: number, V: number, temp: number, scale: number): { losses: Float64Array; dz: Float64Array } {
  const losses = new Float64Array(rows), dz = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    const ls = logSoftmax(rowOf(zs, r, V), temp), lt = logSoftmax(rowOf(zt, r, V), temp);
    let kl = 0;
    for (let i = 0; i < V; i++) kl += Math.exp(lt[i]) * (lt[i] - ls[i]);
    losses[r] = temp * temp * kl;
    for (let i = 0; i < V; i++) dz[r * V + i] = scale * temp * (Math.exp(ls[i]) - Math.exp(lt[i]));
  }
  return { losses, dz };
}

/** Student probabilities are floored here (same constant as ops/loss.ts ATTN_KL_PROB_FLOOR). */
export const PROB_FLOOR = 1e-12;

/** rows = B*NH*T rows of T keys; row r is query r % T (causal: keys 0..t, the rest skipped).
 *  loss = Σ pt·log(pt / max(ps, floor)) with 0·log 0 = 0; dps = −scale·pt / max(ps, floor). */
export function attnKlRef(ps: ArrayLike<number>, pt: ArrayLike<number>, rows: number, T: number, scale: number): { losses: Float64Array; dz: Float64Array } {
  const losses = new Float64Array(rows), dz = new Float64Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const t = r % T;
    for (let j = 0; j <= t; j++) {
      const a = pt[r * T + j], b = Math.max(ps[r * T + j], PROB_FLOOR);
      if (a > 0) {
        losses[r] += a * (Math.log(a) - Math.log(b));
        dz[r * T + j] = (-scale * a) / b;
      }
    }
  }
  return { losses, dz };
}

/** Per-row Σ (a − b)²/C; dz = scale·2(a − b)/C w.r.t. a. */
export function mseRef(a: ArrayLike<number>, b: ArrayLike<number>, rows: number, C: number, scale: number): { losses: Float64Array; dz: Float64Array } {
  const losses = new Float64Array(rows), dz = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < C; i++) {
      const d = a[r * C + i] - b[r * C + i];
      losses[r] += (d * d) / C;
      dz[r * C + i] = (scale * 2 * d) / C;
    }
  return { losses, dz };
}

/** float64 reference of shaders/segsum.wgsl: out[s] = Σ_{i < len} x[s·stride + i]. */
export function segmentSumsRef(x: ArrayLike<number>, nSeg: number, len: number, stride = len): Float64Array {
  const out = new Float64Array(nSeg);
  for (let s = 0; s < nSeg; s++) for (let i = 0; i < len; i++) out[s] += x[s * stride + i];
  return out;
}

/** float64 reference of evaluation scoring: per sequence, Σ_t −log softmax(logits[t])[tokens[t+1]]
 *  over t = 0..len−2, from its logits rows (len, V). */
export function sequenceNllRef(logits: ArrayLike<number>, tokens: ArrayLike<number>, V: number): number {
  let s = 0;
  for (let t = 0; t + 1 < tokens.length; t++) s -= logSoftmax(rowOf(logits, t, V))[tokens[t + 1]];
  return s;
}
