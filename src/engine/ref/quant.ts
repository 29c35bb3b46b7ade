// float64 references for shaders/qmatmul.wgsl and shaders/fakequant.wgsl. They dequantize the
// same packed codes (src/engine/quant/pack.ts) and compute in float64.
import type { PackedWeight } from '../format/pack';

// The references read the packed layout themselves (float64), so a bug in the quantizer's own
// dequantization cannot hide in both sides of a test.
function codeAt(p: PackedWeight, n: number, k: number): number {
  const w = p.codes[n * p.wordsPerRow + Math.floor(k / p.cpw)];
  return Math.floor(w / 2 ** ((k % p.cpw) * p.bits)) % 2 ** p.bits;
}

/** (code − zero) · scale for every weight, in float64. */
export function dequantRef(p: PackedWeight): Float64Array {
  const out = new Float64Array(p.N * p.K);
  for (let n = 0; n < p.N; n++)
    for (let k = 0; k < p.K; k++) {
      const b = n * p.nBlocks + Math.floor(k / p.group);
      out[n * p.K + k] = (codeAt(p, n, k) - p.zeros[b]) * p.scales[b];
    }
  return out;
}

/** Round half to even (WGSL's round()). */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
import { matmulBackwardInputRef, matmulForwardRef } from './matmul';

export function qmatmulRef(x: ArrayLike<number>, p: PackedWeight, M: number): Float64Array {
  return matmulForwardRef(x, dequantRef(p), M, p.K, p.N);
}

export function qmatmulDxRef(dy: ArrayLike<number>, p: PackedWeight, M: number): Float64Array {
  return matmulBackwardInputRef(dy, dequantRef(p), M, p.K, p.N);
}

/** STE by its definition: dw = dwq where the weight's rounded code lies in [0, qmax], else 0. */
export function steRef(dwq: ArrayLike<number>, w: ArrayLike<number>, p: PackedWeight): Float64Array {
  const out = new Float64Array(w.length);
  for (let n = 0; n < p.N; n++)
    for (let k = 0; k < p.K; k++) {
      const b = n * p.nBlocks + Math.floor(k / p.group);
      const q = roundEven(w[n * p.K + k] / p.scales[b]) + p.zeros[b];
      out[n * p.K + k] = q >= 0 && q <= p.qmax ? dwq[n * p.K + k] : 0;
    }
  return out;
}

/** LSQ step-size gradient (Esser et al. 2020, eq. 3) with gradient scale 1/sqrt(N·Qp). */
export function lsqScaleGradRef(dwq: ArrayLike<number>, w: ArrayLike<number>, p: PackedWeight): Float64Array {
  const out = new Float64Array(p.N * p.nBlocks);
  for (let n = 0; n < p.N; n++)
    for (let b = 0; b < p.nBlocks; b++) {
      const s = p.scales[n * p.nBlocks + b], z = p.zeros[n * p.nBlocks + b];
      const qn = -z, qp = p.qmax - z;
      const k0 = b * p.group, k1 = Math.min(p.K, k0 + p.group);
      let acc = 0;
      for (let k = k0; k < k1; k++) {
        const v = w[n * p.K + k] / s;
        const r = roundEven(v);
        const d = r < qn ? qn : r > qp ? qp : r - v;
        acc += dwq[n * p.K + k] * d;
      }
      // LSQ's gradient scale 1/sqrt(n·Qp); Qp is at least 1 (an asymmetric zero can sit at qmax)
      out[n * p.nBlocks + b] = acc / Math.sqrt((k1 - k0) * Math.max(qp, 1));
    }
  return out;
}

/** The LSQ forward as a function of the step size s (for checking the gradient formula). */
export function lsqForwardRef(w: ArrayLike<number>, s: number, qn: number, qp: number): Float64Array {
  return Float64Array.from({ length: w.length }, (_, i) => s * Math.min(qp, Math.max(qn, roundEven(w[i] / s))));
}
