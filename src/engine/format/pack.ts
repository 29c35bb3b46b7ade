// Low-bit weight packing, in ONE place: kernels, references, exporters and loaders use this.
//
// A weight W (N, K) (PyTorch layout, out × in) is quantized per output row n in groups ("blocks")
// of `group` consecutive input columns: nBlocks = ceil(K / group) (per-channel: group = K). The
// last block is ragged when K is not a multiple of the group: its padding codes equal the zero
// point, so they dequantize to exactly 0 (onnxruntime's MatMulNBits pads K the same way).
//   dequant: w = (code − zero) · scale,   code ∈ [0, qmax],  qmax = 2^bits − 1
// Our layout (row-major over n; what the kernels in shaders/qmatmul.wgsl and fakequant.wgsl read):
//   codes  u32 (N, wordsPerRow): code j of row n (j = k; blocks are contiguous, padding only at the
//          end of the row) sits in word j / cpw at bit (j % cpw)·bits, low bits first, with
//          cpw = floor(32 / bits) codes per word: 2-bit 16, 3-bit 10 (bits 30..31 unused),
//          4-bit 8, 8-bit 4; wordsPerRow = ceil(nBlocks·group / cpw).
//          Read as little-endian bytes, 2/4/8-bit rows are byte-for-byte MatMulNBits' B whenever
//          group·bits is a multiple of 32 (e.g. 4-bit: two codes per byte, low nibble first).
//   scales f32 (N, nBlocks)                       = MatMulNBits' scales, as they are
//   zeros  f32 (N, nBlocks), integer-valued codes  (kernels read floats; toMatMulNBits packs them
//          into uint8 bytes, bits-wide fields low first: 4-bit two per byte, (N, ceil(nBlocks/2)))
// Scale choice (round-to-nearest, ties to even as WGSL's round(); float32 arithmetic, so the GPU
// quantizer in shaders/fakequant.wgsl computes the same numbers):
//   asymmetric: lo = min(min(w), 0)·clip, hi = max(max(w), 0)·clip over the block's valid
//               elements (the range always contains 0, so 0 is exactly representable);
//               scale = (hi − lo) / qmax; zero = clamp(round(−lo / scale), 0, qmax)
//   symmetric:  scale = max|w|·clip / (2^(bits−1) − 1); zero = 2^(bits−1): codes zero ± (2^(b−1)−1)
//               (4-bit: 1..15, code 0 unused; the grid is symmetric around 0, and the zero point is
//               the constant MatMulNBits assumes when zero_points are omitted)
//   a block of all zeros gets scale 1 (every code = zero).
//   codes: clamp(round(w / scale) + zero, 0, qmax); with clip < 1 the largest weights clamp.
export type Bits = 2 | 3 | 4 | 8;

export interface QuantConfig {
  bits: Bits;
  /** group size along K; 0 or >= K means per output channel */
  group: number;
  sym: boolean;
  /** clipping ratio applied to the block's range (default 1); a positional clip argument wins */
  clipRatio?: number;
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
export function quantizeHost(w: ArrayLike<number>, N: number, K: number, cfg: QuantConfig, clip: number | ArrayLike<number> = cfg.clipRatio ?? 1): PackedWeight {
  if (w.length < N * K) throw new Error(`quantizeHost: ${w.length} weights, need N·K = ${N * K}`);
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

/** Bytes of one row of MatMulNBits' zero_points: nBlocks fields of `bits` bits, low first. */
function zpRowBytes(nBlocks: number, bits: number): number {
  return Math.ceil((nBlocks * bits) / 8);
}

function checkMatMulNBits(bits: number, group: number): void {
  if (bits !== 2 && bits !== 4 && bits !== 8) throw new Error(`MatMulNBits export supports 2, 4 or 8 bits here, not ${bits}`);
  if (group < 16 || (group & (group - 1)) !== 0) throw new Error(`MatMulNBits needs a power-of-two block size >= 16, got group ${group}`);
}

/** onnxruntime com.microsoft MatMulNBits tensors (bits 2, 4 or 8; block_size = group):
 *    B            uint8 (N, nBlocks, group·bits/8): our codes' bytes, copied (same layout)
 *    scales       f32 (N·nBlocks)
 *    zero_points  uint8 (N, ceil(nBlocks·bits/8)): bits-wide fields, low first (4-bit: two per
 *                 byte, low nibble = even block), each row padded to a whole byte. */
export function toMatMulNBits(p: PackedWeight): { B: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array } {
  checkMatMulNBits(p.bits, p.group);
  const blob = (p.group * p.bits) / 8;
  // group·bits is a multiple of 32 here, so wordsPerRow·4 = nBlocks·blob: rows are contiguous
  const B = new Uint8Array(p.codes.buffer.slice(p.codes.byteOffset, p.codes.byteOffset + p.N * p.nBlocks * blob));
  const zb = zpRowBytes(p.nBlocks, p.bits);
  const zp = new Uint8Array(p.N * zb);
  for (let n = 0; n < p.N; n++)
    for (let b = 0; b < p.nBlocks; b++) {
      const bit = b * p.bits;
      zp[n * zb + (bit >> 3)] |= p.zeros[n * p.nBlocks + b] << (bit & 7);
    }
  return { B, scales: p.scales.slice(), zeroPoints: zp };
}

/** The inverse of toMatMulNBits (e.g. importing an ONNX model). Without zero_points, MatMulNBits'
 *  default zero point 2^(bits−1) is used. */
export function fromMatMulNBits(m: { B: Uint8Array; scales: Float32Array; zeroPoints?: Uint8Array }, N: number, K: number, bits: Bits, group: number): PackedWeight {
  checkMatMulNBits(bits, group);
  const L = layoutOf(N, K, bits, group);
  if (L.group !== group) throw new Error(`MatMulNBits block size ${group} >= K = ${K}: use group = K`);
  const blob = (group * bits) / 8;
  if (m.B.length !== N * L.nBlocks * blob) throw new Error(`MatMulNBits B has ${m.B.length} bytes, expected ${N * L.nBlocks * blob}`);
  if (m.scales.length !== N * L.nBlocks) throw new Error(`MatMulNBits scales has ${m.scales.length} values, expected ${N * L.nBlocks}`);
  const bytes = new Uint8Array(N * L.wordsPerRow * 4);
  bytes.set(m.B);
  const codes = new Uint32Array(bytes.buffer);
  const zb = zpRowBytes(L.nBlocks, bits);
  const zeros = new Float32Array(N * L.nBlocks);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < L.nBlocks; b++) {
      const bit = b * bits;
      zeros[n * L.nBlocks + b] = m.zeroPoints ? (m.zeroPoints[n * zb + (bit >> 3)] >> (bit & 7)) & L.qmax : 2 ** (bits - 1);
    }
  return { ...L, codes, scales: Float32Array.from(m.scales), zeros };
}

/** Integer zero points as uint8, one per block (N, nBlocks) (what safetensors exporters store). */
export function zerosU8(p: PackedWeight): Uint8Array {
  return Uint8Array.from(p.zeros);
}

/** LSQ's initial step size per block (Esser et al. 2020): s = 2·mean|w| / sqrt(Qp), Qp = 2^(bits−1) − 1
 *  (symmetric; zero = 2^(bits−1)). Returns (N, nBlocks) f32 scales. */
export function lsqInitScales(w: ArrayLike<number>, N: number, K: number, bits: Bits, group: number): Float32Array {
  const L = layoutOf(N, K, bits, group);
  const qp = 2 ** (bits - 1) - 1;
  const out = new Float32Array(N * L.nBlocks);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < L.nBlocks; b++) {
      const k0 = b * L.group, k1 = Math.min(K, k0 + L.group);
      let s = 0;
      for (let k = k0; k < k1; k++) s += Math.abs(w[n * K + k]);
      const v = (2 * (s / (k1 - k0))) / Math.sqrt(qp);
      out[n * L.nBlocks + b] = v > 0 ? v : 1;
    }
  return out;
}

export function packedBytes(L: QuantLayout): number {
  return L.N * (L.wordsPerRow * 4 + L.nBlocks * 8);
}
