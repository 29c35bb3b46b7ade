// GGUF (llama.cpp's model file, version 2 and 3) reader, browser- and Node-safe: it reads a
// ByteSource by slices (a Blob in the browser, a file handle in Node), never the whole file.
//
// Layout (little-endian; ggml's docs/gguf.md):
//   u32 magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
//   metadata_kv_count × (string key, u32 value_type, value)       string = u64 length + UTF-8
//   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
//   padding to general.alignment (default 32), then the tensor data; each tensor's offset is
//   relative to the data start and a multiple of the alignment.
// ne[0] is the innermost (fastest) dimension: a PyTorch (N, K) weight is ne = [K, N], stored as N
// rows of K values (quantized rows: K / block blocks).
//
// Validation (every error names the file): magic, version, counts bounded by the file size (an
// absurd count is refused before anything is allocated), strings and arrays within the file,
// known value types, n_dims 1..4, dims positive, ggml types known and supported, rows a multiple
// of the type's block, offsets aligned, every tensor inside the file, no two tensors overlapping,
// no duplicate names or keys.
//
// Block formats dequantized (ggml-common.h / ggml-quants.c, fp16 d = scale):
//   Q8_0 (32 values, 34 B): f16 d, i8 q[32]                     x = q·d
//   Q4_0 (32 values, 18 B): f16 d, u8 qs[16]                    x = (q − 8)·d
//   Q4_1 (32 values, 20 B): f16 d, f16 m, u8 qs[16]             x = q·d + m
//     (Q4: value j < 16 is the low nibble of qs[j], value j + 16 its high nibble)
//   Q5_0 (32 values, 22 B): f16 d, u32 qh, u8 qs[16]             x = (q − 16)·d
//   Q5_1 (32 values, 24 B): f16 d, f16 m, u32 qh, u8 qs[16]      x = q·d + m
//     (Q5: the 4 low bits as Q4, bit 4 of value j is bit j of qh; llama.cpp's quantizer falls back
//     to Q5_0 / Q5_1 where a K-quant's 256-value rows do not fit)
//   Q4_K (256 values, 144 B), Q5_K (176 B), Q6_K (210 B): super-blocks with 6-bit (K4/K5) or
//   8-bit (K6) sub-block scales, as dequantize_row_q4_K / q5_K / q6_K.
//
// loadGgufModel turns a general.architecture = "llama" file into Quench's config and fp32 weights
// (attn_q / attn_k rows are permuted back from llama.cpp's interleaved-pair RoPE to the HF
// rotate_half convention the engine uses, the inverse of convert_hf_to_gguf.py's permute), and a
// tokenizer.ggml.model = "llama" (SentencePiece) vocabulary into a tokenizer.json.
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights } from '../model/config';
import { validateConfig } from '../model/config';
import type { ByteSource } from './source';
import { f16ToF32 } from './safetensors';
import { permuteInterleavedToHalf } from './llama2c';
import { tokenizerJsonFromPieces, type TokenizerJson } from './hf-tokenizer';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types. */
export const GGUF_VALUE = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;
const VALUE_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** ggml tensor types by id (names for all; sizes only for those Quench reads or writes). */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;
const GGML_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};
/** values per block and bytes per block of the types Quench reads */
export const GGML_BLOCK: Record<number, { block: number; bytes: number }> = {
  0: { block: 1, bytes: 4 }, 1: { block: 1, bytes: 2 }, 30: { block: 1, bytes: 2 },
  2: { block: 32, bytes: 18 }, 3: { block: 32, bytes: 20 }, 6: { block: 32, bytes: 22 }, 7: { block: 32, bytes: 24 }, 8: { block: 32, bytes: 34 },
  12: { block: 256, bytes: 144 }, 13: { block: 256, bytes: 176 }, 14: { block: 256, bytes: 210 },
};
export const ggmlTypeName = (t: number): string => GGML_NAMES[t] ?? `unknown type ${t}`;

// ---- fp16 ----
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export { f16ToF32 };

/** number → IEEE binary16 bits, rounding the float32 value to nearest even (as F16C / ggml). */
export function f32ToF16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0];
  const s = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let m = u & 0x7fffff;
  if (exp === 0xff) return s | 0x7c00 | (m ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return s | 0x7c00;
  if (e <= 0) {
    if (e < -10) return s;
    m |= 0x800000;
    const shift = 14 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return s | r;
  }
  let r = (e << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return s | r;
}

/** x rounded to the nearest fp16 value. */
export const roundF16 = (x: number): number => f16ToF32(f32ToF16(x));

// ---- dequantization ----

/** Dequantize `n` values of ggml type `type` from `bytes` (which holds exactly their blocks). */
export function dequantizeGgml(type: number, bytes: Uint8Array, n: number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  const h = (o: number) => f16ToF32(dv.getUint16(o, true));
  switch (type) {
    case GGML_TYPE.F32:
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    case GGML_TYPE.F16:
      for (let i = 0; i < n; i++) out[i] = h(2 * i);
      return out;
    case GGML_TYPE.BF16:
      for (let i = 0; i < n; i++) {
        u32buf[0] = dv.getUint16(2 * i, true) << 16;
        out[i] = f32buf[0];
      }
      return out;
    case GGML_TYPE.Q8_0:
      for (let b = 0; b < n / 32; b++) {
        const o = b * 34, d = h(o);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = dv.getInt8(o + 2 + j) * d;
      }
      return out;
    case GGML_TYPE.Q4_0:
      for (let b = 0; b < n / 32; b++) {
        const o = b * 18, d = h(o);
        for (let j = 0; j < 16; j++) {
          const q = bytes[o + 2 + j];
          out[b * 32 + j] = ((q & 15) - 8) * d;
          out[b * 32 + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      return out;
    case GGML_TYPE.Q4_1:
      for (let b = 0; b < n / 32; b++) {
        const o = b * 20, d = h(o), m = h(o + 2);
        for (let j = 0; j < 16; j++) {
          const q = bytes[o + 4 + j];
          out[b * 32 + j] = Math.fround((q & 15) * d) + m;
          out[b * 32 + j + 16] = Math.fround((q >> 4) * d) + m;
        }
      }
      return out;
    case GGML_TYPE.Q5_0:
    case GGML_TYPE.Q5_1: {
      const one = type === GGML_TYPE.Q5_1, size = one ? 24 : 22;
      for (let b = 0; b < n / 32; b++) {
        const o = b * size, d = h(o), m = one ? h(o + 2) : 0;
        const qh = dv.getUint32(o + (one ? 4 : 2), true), qs = o + (one ? 8 : 6);
        for (let j = 0; j < 16; j++) {
          const x0 = (bytes[qs + j] & 15) | (((qh >>> j) << 4) & 0x10);
          const x1 = (bytes[qs + j] >> 4) | ((qh >>> (j + 12)) & 0x10);
          out[b * 32 + j] = one ? Math.fround(x0 * d) + m : (x0 - 16) * d;
          out[b * 32 + j + 16] = one ? Math.fround(x1 * d) + m : (x1 - 16) * d;
        }
      }
      return out;
    }
    case GGML_TYPE.Q4_K:
    case GGML_TYPE.Q5_K: {
      const five = type === GGML_TYPE.Q5_K;
      const size = five ? 176 : 144;
      for (let b = 0; b < n / 256; b++) {
        const o = b * size, d = h(o), dmin = h(o + 2);
        const sc = bytes.subarray(o + 4, o + 16);
        const qh = five ? bytes.subarray(o + 16, o + 48) : null;
        const qs = bytes.subarray(o + (five ? 48 : 16));
        let y = b * 256, is = 0, u1 = 1, u2 = 2;
        for (let j = 0; j < 256; j += 64) {
          const [s1, m1] = scaleMinK4(is, sc), [s2, m2] = scaleMinK4(is + 1, sc);
          const d1 = d * s1, mm1 = dmin * m1, d2 = d * s2, mm2 = dmin * m2;
          const q = qs.subarray(j / 2, j / 2 + 32);
          for (let l = 0; l < 32; l++) out[y++] = d1 * ((q[l] & 15) + (qh && qh[l] & u1 ? 16 : 0)) - mm1;
          for (let l = 0; l < 32; l++) out[y++] = d2 * ((q[l] >> 4) + (qh && qh[l] & u2 ? 16 : 0)) - mm2;
          is += 2;
          u1 <<= 2;
          u2 <<= 2;
        }
      }
      return out;
    }
    case GGML_TYPE.Q6_K:
      for (let b = 0; b < n / 256; b++) {
        const o = b * 210, d = h(o + 208);
        for (let half = 0; half < 2; half++) {
          const ql = o + half * 64, qh = o + 128 + half * 32, sc = o + 192 + half * 8, y = b * 256 + half * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const a = bytes[ql + l], c = bytes[ql + l + 32], hh = bytes[qh + l];
            const q1 = ((a & 15) | (((hh >> 0) & 3) << 4)) - 32;
            const q2 = ((c & 15) | (((hh >> 2) & 3) << 4)) - 32;
            const q3 = ((a >> 4) | (((hh >> 4) & 3) << 4)) - 32;
            const q4 = ((c >> 4) | (((hh >> 6) & 3) << 4)) - 32;
            out[y + l] = d * dv.getInt8(sc + is) * q1;
            out[y + l + 32] = d * dv.getInt8(sc + is + 2) * q2;
            out[y + l + 64] = d * dv.getInt8(sc + is + 4) * q3;
            out[y + l + 96] = d * dv.getInt8(sc + is + 6) * q4;
          }
        }
      }
      return out;
    default:
      throw new Error(`ggml type ${ggmlTypeName(type)} cannot be dequantized here`);
  }
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K / Q5_K super-block. */
function scaleMinK4(j: number, q: Uint8Array): [number, number] {
  if (j < 4) return [q[j] & 63, q[j + 4] & 63];
  return [(q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)];
}

// ---- header ----

export type GgufValue = number | bigint | string | boolean | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml ne order: dims[0] is the innermost */
  dims: number[];
  type: number;
  typeName: string;
  /** relative to the data section */
  offset: number;
  nbytes: number;
  nElements: number;
}

export interface GgufHeader {
  file: string;
  version: number;
  metadata: Map<string, GgufValue>;
  /** value type of each key (arrays: GGUF_VALUE.ARRAY) */
  metadataTypes: Map<string, number>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  /** absolute offset of the tensor data section */
  dataStart: number;
}

/** A forward reader over a ByteSource that reads chunks as it goes. */
class Cursor {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private dv = new DataView(this.buf.buffer);
  private bufStart = 0;
  constructor(private readonly src: ByteSource, private readonly fail: (m: string) => never) {}
  get remaining(): number {
    return this.src.size - this.pos;
  }
  private async need(n: number, what: string): Promise<number> {
    if (this.pos + n > this.src.size) this.fail(`truncated: ${what} at byte ${this.pos} needs ${n} bytes, the file has ${this.src.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.byteLength) {
      const len = Math.min(this.src.size - this.pos, Math.max(n, 1 << 20));
      this.buf = await this.src.read(this.pos, len);
      this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }
  async u8(what: string) {
    return this.buf[await this.need(1, what)];
  }
  async u32(what: string) {
    const at = await this.need(4, what);
    return this.dv.getUint32(at, true);
  }
  async u64(what: string): Promise<number> {
    const at = await this.need(8, what);
    const v = this.dv.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} is ${v}, beyond any file size`);
    return Number(v);
  }
  /** A string read without awaiting when its length and bytes are already buffered (vocabularies
   *  hold 10^5 of them); undefined when the slow path (a read, or an error) is needed. */
  strBuffered(): string | undefined {
    const at = this.pos - this.bufStart;
    if (at < 0 || at + 8 > this.buf.byteLength) return undefined;
    const len = Number(this.dv.getBigUint64(at, true));
    if (at + 8 + len > this.buf.byteLength) return undefined;
    this.pos += 8 + len;
    return utf8.decode(this.buf.subarray(at + 8, at + 8 + len));
  }
  async str(what: string, maxLen = this.remaining): Promise<string> {
    const len = await this.u64(`${what} length`);
    if (len > maxLen || len > this.remaining) this.fail(`${what} at byte ${this.pos - 8} claims ${len} bytes, the file has ${this.remaining} left`);
    const at = await this.need(len, what);
    return utf8.decode(this.buf.subarray(at, at + len));
  }
  async scalar(type: number, what: string): Promise<GgufValue> {
    const size = VALUE_SIZE[type];
    const at = await this.need(size, what);
    const dv = this.dv;
    switch (type) {
      case 0: return dv.getUint8(at);
      case 1: return dv.getInt8(at);
      case 2: return dv.getUint16(at, true);
      case 3: return dv.getInt16(at, true);
      case 4: return dv.getUint32(at, true);
      case 5: return dv.getInt32(at, true);
      case 6: return dv.getFloat32(at, true);
      case 7: {
        const b = dv.getUint8(at);
        if (b > 1) this.fail(`${what}: bool value ${b} is neither 0 nor 1`);
        return b === 1;
      }
      case 10: {
        const v = dv.getBigUint64(at, true);
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case 11: {
        const v = dv.getBigInt64(at, true);
        return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
      }
      default: return dv.getFloat64(at, true);
    }
  }
}

const utf8 = new TextDecoder('utf-8');

/** Parse the header (metadata + tensor infos) and validate every tensor's place in the file. */
export async function readGgufHeader(src: ByteSource): Promise<GgufHeader> {
  const file = src.name;
  const fail = (m: string): never => {
    throw new Error(`${file}: not a valid GGUF file: ${m}`);
  };
  if (src.size < 24) fail(`${src.size} bytes, shorter than the 24-byte GGUF header`);
  const c = new Cursor(src, fail);
  const magic = await c.u32('magic');
  if (magic !== GGUF_MAGIC) {
    const m = new Uint8Array([magic & 255, (magic >> 8) & 255, (magic >> 16) & 255, magic >>> 24]);
    fail(`bad magic ${JSON.stringify(String.fromCharCode(...m))} (expected "GGUF")`);
  }
  const version = await c.u32('version');
  if (version === 0x03000000 || version === 0x02000000) fail(`big-endian GGUF (version bytes ${version.toString(16)}) is not supported`);
  if (version === 1) fail('GGUF version 1 (32-bit counts, before August 2023) is not supported; re-convert with a current llama.cpp');
  if (version !== 2 && version !== 3) fail(`unsupported GGUF version ${version} (Quench reads 2 and 3)`);
  const nTensors = await c.u64('tensor_count');
  const nKv = await c.u64('metadata_kv_count');
  // each tensor info takes at least 8 (name) + 4 + 8 + 4 + 8 bytes, each kv 8 + 4 + 1
  if (nTensors > (src.size - 24) / 32) fail(`tensor_count ${nTensors} is impossible in a file of ${src.size} bytes`);
  if (nKv > (src.size - 24) / 13) fail(`metadata_kv_count ${nKv} is impossible in a file of ${src.size} bytes`);
  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, number>();
  const readValue = async (type: number, what: string, depth: number): Promise<GgufValue> => {
    if (type === GGUF_VALUE.STRING) return c.str(what);
    if (type === GGUF_VALUE.ARRAY) {
      if (depth > 4) fail(`${what}: arrays nested deeper than 4`);
      const itemType = await c.u32(`${what} item type`);
      const n = await c.u64(`${what} length`);
      const minSize = itemType === GGUF_VALUE.STRING ? 8 : itemType === GGUF_VALUE.ARRAY ? 12 : VALUE_SIZE[itemType];
      if (minSize === undefined) fail(`${what}: unknown array item type ${itemType}`);
      if (n * minSize > c.remaining) fail(`${what}: array of ${n} items cannot fit in the ${c.remaining} bytes left`);
      const arr: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) arr[i] = (itemType === GGUF_VALUE.STRING ? c.strBuffered() : undefined) ?? (await readValue(itemType, what, depth + 1));
      return arr;
    }
    if (VALUE_SIZE[type] === undefined) fail(`${what}: unknown value type ${type}`);
    return c.scalar(type, what);
  };
  for (let i = 0; i < nKv; i++) {
    const key = await c.str(`metadata key ${i}`, 65535);
    if (metadata.has(key)) fail(`metadata key "${key}" appears twice`);
    const type = await c.u32(`type of "${key}"`);
    // a corrupted key can be long binary garbage: messages show its start only
    metadata.set(key, await readValue(type, `metadata "${key.length > 48 ? `${key.slice(0, 48)}…` : key}"`, 0));
    metadataTypes.set(key, type);
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (typeof a !== 'number' || !Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0 || a > 1 << 20) fail(`general.alignment ${String(a)} is not a power of two`);
    alignment = a as number;
  }
  const tensors = new Map<string, GgufTensorInfo>();
  for (let i = 0; i < nTensors; i++) {
    const name = await c.str(`tensor ${i} name`, 65535);
    if (tensors.has(name)) fail(`tensor "${name}" appears twice`);
    const nDims = await c.u32(`tensor "${name}" n_dims`);
    if (nDims < 1 || nDims > 4) fail(`tensor "${name}" has ${nDims} dimensions (ggml allows 1 to 4)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(await c.u64(`tensor "${name}" dimension ${d}`));
    if (dims.some((d) => d < 1)) fail(`tensor "${name}" has shape [${dims.join(', ')}] with a zero dimension`);
    const nElements = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(nElements)) fail(`tensor "${name}" has an absurd shape [${dims.join(', ')}]`);
    const type = await c.u32(`tensor "${name}" type`);
    const offset = await c.u64(`tensor "${name}" offset`);
    const bl = GGML_BLOCK[type];
    if (!bl) fail(`tensor "${name}" has ggml type ${ggmlTypeName(type)}, which Quench does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)`);
    if (dims[0] % bl.block !== 0) fail(`tensor "${name}" rows of ${dims[0]} values are not a whole number of ${ggmlTypeName(type)} blocks (${bl.block})`);
    if (offset % alignment !== 0) fail(`tensor "${name}" offset ${offset} is not a multiple of the alignment ${alignment}`);
    tensors.set(name, { name, dims, type, typeName: ggmlTypeName(type), offset, nbytes: (nElements / bl.block) * bl.bytes, nElements });
  }
  const dataStart = Math.ceil(c.pos / alignment) * alignment;
  const sorted = [...tensors.values()].sort((a, b) => a.offset - b.offset);
  let end = 0;
  let prev = '';
  for (const t of sorted) {
    if (t.offset < end) fail(`tensor "${t.name}" (bytes ${t.offset}..${t.offset + t.nbytes} of the data) overlaps "${prev}"`);
    if (dataStart + t.offset + t.nbytes > src.size) fail(`tensor "${t.name}" (${t.typeName} [${t.dims.join(', ')}], ${t.nbytes} bytes at data offset ${t.offset}) runs past the end of the file (${src.size} bytes, data from ${dataStart})`);
    end = t.offset + t.nbytes;
    prev = t.name;
  }
  return { file, version, metadata, metadataTypes, tensors, alignment, dataStart };
}

/** One tensor's values as float32 (dequantized). */
export async function readGgufTensorF32(src: ByteSource, h: GgufHeader, name: string): Promise<Float32Array> {
  const t = h.tensors.get(name);
  if (!t) throw new Error(`${h.file}: no tensor "${name}"`);
  const bytes = await src.read(h.dataStart + t.offset, t.nbytes);
  return dequantizeGgml(t.type, bytes, t.nElements);
}

// ---- the llama architecture ----

/** llama.cpp's tensor name for each Quench layer weight. */
export const GGUF_LAYER_NAMES: Record<keyof LlamaLayerWeights, string> = {
  attnNorm: 'attn_norm', wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output', mlpNorm: 'ffn_norm', wGate: 'ffn_gate', wUp: 'ffn_up', wDown: 'ffn_down',
};

export interface GgufModel {
  config: LlamaConfig;
  weights: LlamaWeights;
  /** tokenizer.json built from the GGUF vocabulary (null when the file has none) */
  tokenizerJson: string | null;
  /** BOS / EOS ids from tokenizer.ggml.* (pass as the tokenizer's generationConfig) */
  specialIds: { bos_token_id?: number; eos_token_id?: number };
  /** ggml types of the tensors, e.g. ['F32', 'Q4_1', 'F16'] */
  dtypes: string[];
  header: GgufHeader;
}

function metaOf(h: GgufHeader) {
  const bad = (m: string): never => {
    throw new Error(`${h.file}: ${m}`);
  };
  const num = (k: string, dflt?: number): number => {
    const v = h.metadata.get(k);
    if (v === undefined) {
      if (dflt !== undefined) return dflt;
      return bad(`metadata "${k}" is missing`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`metadata "${k}" is ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}, expected a number`);
    return v;
  };
  const str = (k: string): string | undefined => {
    const v = h.metadata.get(k);
    if (v !== undefined && typeof v !== 'string') bad(`metadata "${k}" should be a string`);
    return v as string | undefined;
  };
  const arr = (k: string): GgufValue[] | undefined => {
    const v = h.metadata.get(k);
    if (v !== undefined && !Array.isArray(v)) bad(`metadata "${k}" should be an array`);
    return v as GgufValue[] | undefined;
  };
  return { bad, num, str, arr };
}

/** Config from llama.* metadata (and the tensor shapes where metadata is silent). */
export function ggufLlamaConfig(h: GgufHeader): LlamaConfig {
  const { bad, num, str } = metaOf(h);
  const arch = str('general.architecture');
  if (arch !== 'llama') bad(`general.architecture is ${JSON.stringify(arch)}; Quench reads "llama" GGUF files`);
  const emb = h.tensors.get('token_embd.weight');
  if (!emb || emb.dims.length !== 2) bad('no 2-D tensor "token_embd.weight"');
  const nHeads = num('llama.attention.head_count');
  const dim = num('llama.embedding_length');
  const cfg: LlamaConfig = {
    dim,
    hiddenDim: num('llama.feed_forward_length'),
    nLayers: num('llama.block_count'),
    nHeads,
    nKvHeads: num('llama.attention.head_count_kv', nHeads),
    vocabSize: num('llama.vocab_size', emb!.dims[1]),
    maxSeqLen: num('llama.context_length', 2048),
    normEps: num('llama.attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: num('llama.rope.freq_base', 10000),
    tiedEmbeddings: !h.tensors.has('output.weight'),
  };
  for (const k of ['llama.expert_count', 'llama.rope.scaling.type', 'llama.attention.key_length', 'llama.attention.value_length', 'llama.rope.dimension_count']) {
    if (!h.metadata.has(k)) continue;
    const v = h.metadata.get(k);
    if (k === 'llama.expert_count' && v !== 0) bad(`mixture-of-experts GGUF (llama.expert_count = ${String(v)}) is not supported`);
    if (k === 'llama.rope.scaling.type' && v !== 'none') bad(`RoPE scaling "${String(v)}" is not supported`);
    if ((k === 'llama.attention.key_length' || k === 'llama.attention.value_length' || k === 'llama.rope.dimension_count') && v !== dim / nHeads) bad(`${k} = ${String(v)} differs from embedding_length / head_count = ${dim / nHeads}; not supported`);
  }
  if (h.tensors.has('rope_freqs.weight')) bad('tensor "rope_freqs.weight" (LLaMA-3.1 RoPE frequency factors) is not supported');
  validateConfig(cfg, h.file);
  return cfg;
}

/** GGUF token types (llama_token_type) */
export const GGUF_TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Byte-level pre-tokenizers by tokenizer.ggml.pre (llama.cpp's names; the regexes are those of the
 *  tokenizer.json files the names stand for, as convert_hf_to_gguf.py identifies them). llama.cpp's
 *  "default" (also what it assumes when the key is missing) splits punctuation first, like no
 *  tokenizer.json Quench knows, so it is refused rather than guessed. */
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
export const GGUF_BPE_PRE: Record<string, unknown> = {
  'llama-bpe': { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
  qwen2: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
  smollm: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] },
  'gpt-2': { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
};
/** other names llama.cpp gives the same pre-tokenizers (read, never written) */
export const GGUF_BPE_PRE_ALIASES: Record<string, string> = { llama3: 'llama-bpe', 'llama-v3': 'llama-bpe' };

/** tokenizer.json for a GGUF vocabulary: tokenizer.ggml.model "llama" (SentencePiece BPE: pieces
 *  and scores) or "gpt2" (byte-level BPE: tokens, merges and tokenizer.ggml.pre, which names the
 *  pre-tokenizer); null when the file has none. Other models are refused by name. */
export function ggufTokenizerJson(h: GgufHeader): TokenizerJson | null {
  const { bad, str, arr } = metaOf(h);
  const model = str('tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model === 'gpt2') return ggufByteLevelTokenizerJson(h);
  if (model !== 'llama') bad(`tokenizer.ggml.model "${model}" is not supported (Quench reads "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`);
  const tokens = arr('tokenizer.ggml.tokens');
  if (!tokens || !tokens.every((t) => typeof t === 'string')) return bad('tokenizer.ggml.tokens is missing or not an array of strings');
  const scores = arr('tokenizer.ggml.scores') ?? [];
  const types = arr('tokenizer.ggml.token_type') ?? [];
  if (scores.length !== 0 && scores.length !== tokens.length) bad(`tokenizer.ggml.scores has ${scores.length} entries, tokens ${tokens.length}`);
  if (types.length !== 0 && types.length !== tokens.length) bad(`tokenizer.ggml.token_type has ${types.length} entries, tokens ${tokens.length}`);
  const special: number[] = [];
  let hasBytes = false;
  types.forEach((t, i) => {
    if (t === GGUF_TOKEN_TYPE.CONTROL || t === GGUF_TOKEN_TYPE.UNKNOWN) special.push(i);
    if (t === GGUF_TOKEN_TYPE.BYTE) hasBytes = true;
  });
  const sc = Float32Array.from(scores.length ? (scores as number[]) : tokens.map((_, i) => -i));
  const json = tokenizerJsonFromPieces(tokens as string[], sc, { special: special.length ? special : [0, 1, 2] });
  json.model!.byte_fallback = hasBytes || types.length === 0;
  if (h.metadata.get('tokenizer.ggml.add_space_prefix') === false) {
    json.normalizer = { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' };
    json.decoder = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] };
  }
  return json;
}

/** A "gpt2" (byte-level BPE) GGUF vocabulary as a tokenizer.json: model.vocab from
 *  tokenizer.ggml.tokens, model.merges from tokenizer.ggml.merges ("left right"), control and
 *  unknown tokens as special added tokens, user-defined ones as added tokens, the pre-tokenizer
 *  named by tokenizer.ggml.pre, a ByteLevel decoder, BOS prepended unless add_bos_token is false. */
function ggufByteLevelTokenizerJson(h: GgufHeader): TokenizerJson {
  const { bad, str, arr } = metaOf(h);
  const tokens = arr('tokenizer.ggml.tokens');
  if (!tokens || !tokens.every((t) => typeof t === 'string')) return bad('tokenizer.ggml.tokens is missing or not an array of strings');
  const merges = arr('tokenizer.ggml.merges');
  if (!merges || !merges.every((m) => typeof m === 'string')) return bad('tokenizer.ggml.model is "gpt2" but tokenizer.ggml.merges is missing or not an array of strings');
  const types = arr('tokenizer.ggml.token_type') ?? [];
  if (types.length !== 0 && types.length !== tokens.length) bad(`tokenizer.ggml.token_type has ${types.length} entries, tokens ${tokens.length}`);
  const preName = str('tokenizer.ggml.pre');
  const known = [...Object.keys(GGUF_BPE_PRE), ...Object.keys(GGUF_BPE_PRE_ALIASES)].join(', ');
  if (preName === undefined) bad(`tokenizer.ggml.model is "gpt2" but tokenizer.ggml.pre is missing, so the pre-tokenizer is unknown (Quench reads ${known}); give the model's tokenizer.json with --tokenizer`);
  const canonical = GGUF_BPE_PRE_ALIASES[preName!] ?? preName!;
  const pre = GGUF_BPE_PRE[canonical];
  if (!pre) bad(`tokenizer.ggml.pre "${preName}" is a byte-level pre-tokenizer Quench does not know (it reads ${known}); give the model's tokenizer.json with --tokenizer`);
  const vocab = new Map<string, number>();
  const added: NonNullable<TokenizerJson['added_tokens']> = [];
  (tokens as string[]).forEach((t, i) => {
    const ty = types[i];
    if (ty === GGUF_TOKEN_TYPE.CONTROL || ty === GGUF_TOKEN_TYPE.UNKNOWN || ty === GGUF_TOKEN_TYPE.USER_DEFINED) added.push({ id: i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: ty === GGUF_TOKEN_TYPE.USER_DEFINED, special: ty !== GGUF_TOKEN_TYPE.USER_DEFINED });
    if (!vocab.has(t)) vocab.set(t, i);
  });
  const mergeList = (merges as string[]).map((m, k) => {
    const at = m.indexOf(' ', 1);
    if (at < 0) bad(`tokenizer.ggml.merges[${k}] ${JSON.stringify(m.slice(0, 40))} is not "left right"`);
    return [m.slice(0, at), m.slice(at + 1)] as [string, string];
  });
  const bosId = h.metadata.get('tokenizer.ggml.bos_token_id');
  const addBos = h.metadata.get('tokenizer.ggml.add_bos_token') !== false && typeof bosId === 'number' && bosId >= 0 && bosId < tokens.length;
  const bos = addBos ? (tokens[bosId as number] as string) : null;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: pre,
    post_processor: bos
      ? { type: 'TemplateProcessing', single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }], pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }], special_tokens: { [bos]: { id: bos, ids: [bosId as number], tokens: [bos] } } }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    // ignore_merges as llama.cpp's vocabulary loader sets it (llama-bpe only)
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: canonical === 'llama-bpe', vocab: Object.fromEntries(vocab), merges: mergeList },
  };
}

/** BOS / EOS ids from the GGUF metadata, in generation_config.json's form (for the tokenizer's
 *  loader; absent keys are left out). */
export function ggufSpecialIds(h: GgufHeader): { bos_token_id?: number; eos_token_id?: number } {
  const out: { bos_token_id?: number; eos_token_id?: number } = {};
  for (const [k, o] of [['tokenizer.ggml.bos_token_id', 'bos_token_id'], ['tokenizer.ggml.eos_token_id', 'eos_token_id']] as const) {
    const v = h.metadata.get(k);
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) out[o] = v;
  }
  return out;
}

/** A "llama" GGUF file as Quench's config and fp32 weights (every tensor dequantized). */
export async function loadGgufModel(src: ByteSource, opts: { skipTokenizer?: boolean } = {}): Promise<GgufModel> {
  const h = await readGgufHeader(src);
  const config = ggufLlamaConfig(h);
  const { dim: C, hiddenDim: H, vocabSize: V, nLayers: L, nHeads: NH, nKvHeads: NKV } = config;
  const HS = C / NH;
  const expected = new Map<string, number[]>(); // ggml order
  expected.set('token_embd.weight', [C, V]);
  const shapes: Record<keyof LlamaLayerWeights, number[]> = { attnNorm: [C], wq: [C, NH * HS], wk: [C, NKV * HS], wv: [C, NKV * HS], wo: [NH * HS, C], mlpNorm: [C], wGate: [C, H], wUp: [C, H], wDown: [H, C] };
  for (let l = 0; l < L; l++) for (const [k, n] of Object.entries(GGUF_LAYER_NAMES)) expected.set(`blk.${l}.${n}.weight`, shapes[k as keyof LlamaLayerWeights]);
  expected.set('output_norm.weight', [C]);
  if (!config.tiedEmbeddings) expected.set('output.weight', [C, V]);
  const missing = [...expected.keys()].filter((n) => !h.tensors.has(n));
  if (missing.length) throw new Error(`${h.file}: missing tensors ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} (metadata: ${L} layers)`);
  const extra = [...h.tensors.keys()].filter((n) => !expected.has(n));
  if (extra.length) throw new Error(`${h.file}: unexpected tensors ${extra.slice(0, 5).join(', ')} (not part of a LLaMA model with this metadata)`);
  const dtypes = new Set<string>();
  const read = async (name: string): Promise<Float32Array> => {
    const t = h.tensors.get(name)!;
    const want = expected.get(name)!;
    if (t.dims.length !== want.length || t.dims.some((d, k) => d !== want[k])) throw new Error(`${h.file}: tensor "${name}" has ggml shape [${t.dims.join(', ')}] but the metadata implies [${want.join(', ')}]`);
    dtypes.add(t.typeName);
    const x = await readGgufTensorF32(src, h, name);
    for (let k = 0; k < x.length; k++) if (!Number.isFinite(x[k])) throw new Error(`${h.file}: tensor "${name}" has a non-finite value (${x[k]}) at index ${k}`);
    return x;
  };
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < L; l++) {
    const lw = {} as LlamaLayerWeights;
    for (const [k, n] of Object.entries(GGUF_LAYER_NAMES)) lw[k as keyof LlamaLayerWeights] = await read(`blk.${l}.${n}.weight`);
    lw.wq = permuteInterleavedToHalf(lw.wq, NH, HS, C);
    lw.wk = permuteInterleavedToHalf(lw.wk, NKV, HS, C);
    layers.push(lw);
  }
  const weights: LlamaWeights = {
    tokEmbed: await read('token_embd.weight'),
    layers,
    finalNorm: await read('output_norm.weight'),
    lmHead: config.tiedEmbeddings ? null : await read('output.weight'),
  };
  const tj = opts.skipTokenizer ? null : ggufTokenizerJson(h);
  return { config, weights, tokenizerJson: tj ? JSON.stringify(tj) : null, specialIds: ggufSpecialIds(h), dtypes: [...dtypes], header: h };
}
