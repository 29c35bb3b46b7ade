// Low-bit weight packing, in ONE place: kernels, references, exporters and loaders use this.
//
// A weight W (N, K) (PyTorch layout, out × in) is quantized per output row n in groups of `group`
// consecutive input columns: nBlocks = ceil(K / group) (per-channel: group = K). The last group
// is ragged when K is not a multiple of the group: its padding codes equal the zero point, so they
// dequantize to exactly 0 (onnxruntime's MatMulNBits pads K the same way).
//   dequant: w = (code − zero) · scale,   code ∈ [0, 2^bits − 1]
// Layout (row-major over n):
//   codes  u32 (N, wordsPerRow): code j of row n sits in word j / cpw at bit (j % cpw)·bits, with
//          cpw = floor(32 / bits) codes per word (2-bit: 16, 3-bit: 10 (2 bits unused), 4-bit: 8,
//          8-bit: 4); j runs over the padded row, wordsPerRow = ceil(nBlocks·group / cpw).
//          For 4 bits this is byte-for-byte MatMulNBits' B (two codes per byte, low nibble first).
//   scales f32 (N, nBlocks)
//   zeros  f32 (N, nBlocks), integer-valued zero points (kernels read floats; toMatMulNBits packs
//          them as uint8, two 4-bit zero points per byte, as MatMulNBits wants).
// Scale choice (round-to-nearest, ties to even as WGSL's round()):
//   asymmetric: lo = min(min(w), 0)·clip, hi = max(max(w), 0)·clip over the group's valid
//               elements; scale = (hi − lo) / qmax; zero = clamp(round(−lo / scale), 0, qmax)
//   symmetric:  scale = max|w|·clip / (2^(bits−1) − 1); zero = 2^(bits−1) (codes −2^(b−1)..2^(b−1)−1)
//   a group of all zeros gets scale 1 (every code = zero).

export type Bits = 2 | 3 | 4 | 8;

export interface QuantConfig {
  bits: Bits;
  /** group size along K; 0 or >= K means per output channel */
  group: number;
  sym: boolean;
}

export interface QuantLayout {
  N: number;
  K: number;
  bits: Bits;
  group: number; // effective group size (K for per-channel)
  nBlocks: number;
  cpw: number; // codes per u32 word
  wordsPerRow: number;
  qmax: number;
}

export interface PackedWeight extends QuantLayout {
  codes: Uint32Array; // (N, wordsPerRow)
  scales: Float32Array; // (N, nBlocks)
  zeros: Float32Array; // (N, nBlocks)
}

export function layoutOf(N: number, K: number, bits: Bits, group: number): QuantLayout {
  if (![2, 3, 4, 8].includes(bits)) throw new Error(`unsupported bit width ${bits} (2, 3, 4 or 8)`);
  const g = group <= 0 || group >= K ? K : group;
  const nBlocks = Math.ceil(K / g);
  const cpw = Math.floor(32 / bits);
  return { N, K, bits, group: g, nBlocks, cpw, wordsPerRow: Math.ceil((nBlocks * g) / cpw), qmax: 2 ** bits - 1 };
}

/** IEEE round half to even (WGSL round()). */
export function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function getCode(p: { codes: Uint32Array; cpw: number; bits: number; wordsPerRow: number }, n: number, j: number): number {
  const w = p.codes[n * p.wordsPerRow + Math.floor(j / p.cpw)];
  return (w >>> ((j % p.cpw) * p.bits)) & ((1 << p.bits) - 1);
}

function setCode(codes: Uint32Array, L: QuantLayout, n: number, j: number, code: number): void {
  const idx = n * L.wordsPerRow + Math.floor(j / L.cpw);
  const shift = (j % L.cpw) * L.bits;
  codes[idx] = (codes[idx] & ~(((1 << L.bits) - 1) << shift)) | (code << shift);
}

/** Scale and zero point of one group (float32 arithmetic, as the GPU computes them). */
export function groupParams(vals: ArrayLike<number>, bits: Bits, sym: boolean, clip = 1): { scale: number; zero: number } {
  const f = Math.fround;
  const qmax = 2 ** bits - 1;
  if (sym) {
    let amax = 0;
    for (let i = 0; i < vals.length; i++) amax = Math.max(amax, Math.abs(vals[i]));
    amax = f(amax * clip);
    const half = 2 ** (bits - 1);
    const scale = amax > 0 ? f(amax / (half - 1)) : 1;
    return { scale, zero: half };
  }
  let lo = 0, hi = 0;
  for (let i = 0; i < vals.length; i++) {
    lo = Math.min(lo, vals[i]);
    hi = Math.max(hi, vals[i]);
  }
  lo = f(lo * clip);
  hi = f(hi * clip);
  if (hi - lo <= 0) return { scale: 1, zero: 0 };
  const scale = f(f(hi - lo) / qmax);
  const zero = Math.min(qmax, Math.max(0, roundEven(f(-lo / scale))));
  return { scale, zero };
}

export function quantCode(w: number, scale: number, zero: number, qmax: number): number {
  return Math.min(qmax, Math.max(0, roundEven(Math.fround(w / scale)) + zero));
}

/** Quantize W (N, K) on the host. `clip` is one ratio for all groups, or one per (n, block). */
export function quantizeHost(w: ArrayLike<number>, N: number, K: number, cfg: QuantConfig, clip: number | ArrayLike<number> = 1): PackedWeight {
  const L = layoutOf(N, K, cfg.bits, cfg.group);
  const codes = new Uint32Array(N * L.wordsPerRow);
  const scales = new Float32Array(N * L.nBlocks);
  const zeros = new Float32Array(N * L.nBlocks);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < L.nBlocks; b++) {
      const k0 = b * L.group, k1 = Math.min(K, k0 + L.group);
      const vals = Array.prototype.slice.call(w, n * K + k0, n * K + k1) as number[];
      const c = typeof clip === 'number' ? clip : clip[n * L.nBlocks + b];
      const { scale, zero } = groupParams(vals, cfg.bits, cfg.sym, c);
      scales[n * L.nBlocks + b] = scale;
      zeros[n * L.nBlocks + b] = zero;
      for (let j = k0; j < k0 + L.group; j++) setCode(codes, L, n, j, j < k1 ? quantCode(w[n * K + j], scale, zero, L.qmax) : zero);
    }
  return { ...L, codes, scales, zeros };
}

export function dequantizeHost(p: PackedWeight): Float32Array {
  const out = new Float32Array(p.N * p.K);
  for (let n = 0; n < p.N; n++)
    for (let k = 0; k < p.K; k++) {
      const b = Math.floor(k / p.group);
      out[n * p.K + k] = (getCode(p, n, k) - p.zeros[n * p.nBlocks + b]) * p.scales[n * p.nBlocks + b];
    }
  return out;
}

/** onnxruntime com.microsoft MatMulNBits tensors (bits = 4): B uint8 (N, nBlocks, group/2),
 *  scales f32 (N·nBlocks), zero_points uint8 (N, ceil(nBlocks/2)), two per byte, low nibble first. */
export function toMatMulNBits(p: PackedWeight): { B: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array } {
  if (p.bits !== 4) throw new Error(`MatMulNBits export supports 4 bits here, not ${p.bits}`);
  const blob = p.group / 2;
  if (!Number.isInteger(blob) || p.group < 16 || (p.group & (p.group - 1)) !== 0) throw new Error(`MatMulNBits needs a power-of-two block size >= 16, got group ${p.group}`);
  const B = new Uint8Array(p.codes.buffer.slice(p.codes.byteOffset, p.codes.byteOffset + p.N * p.nBlocks * blob));
  const zp = new Uint8Array(p.N * Math.ceil(p.nBlocks / 2));
  for (let n = 0; n < p.N; n++)
    for (let b = 0; b < p.nBlocks; b++) {
      const z = p.zeros[n * p.nBlocks + b];
      const idx = n * Math.ceil(p.nBlocks / 2) + (b >> 1);
      zp[idx] |= z << ((b & 1) * 4);
    }
  return { B, scales: p.scales.slice(), zeroPoints: zp };
}

export function packedBytes(L: QuantLayout): number {
  return L.N * (L.wordsPerRow * 4 + L.nBlocks * 8);
}
