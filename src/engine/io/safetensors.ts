// safetensors: 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data.
// Validation follows the reference implementation (huggingface/safetensors, Rust crate,
// SafeTensors::read_metadata + Metadata::validate): header length under 100 MB and within the
// file, UTF-8 JSON starting with '{', known dtypes, byte length = dtype size × numel (overflow
// checked), offsets that tile the data section exactly in order (no overlaps, no holes) and end at
// its end. Every error names the file (and the tensor).
// Writing follows the crate's serialize(): tensors sorted by dtype size (descending, so every
// tensor stays aligned) then name, header JSON padded with spaces to a multiple of 8 bytes.
import type { ByteSource } from './source';
export type { ByteSource } from './source';
export { blobSource, bytesSource } from './source';

export type SafeDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'F8_E8M0' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL' | 'C64';
export const DTYPE_BYTES: Record<SafeDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1, C64: 8 };
/** dtypes the reference knows that Quench does not read (sub-byte floats) */
const SUB_BYTE = ['F4', 'F6_E2M3', 'F6_E3M2'];
const MAX_HEADER = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: SafeDtype;
  shape: number[];
  begin: number; // byte offset inside the data section
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  dataStart: number; // 8 + header length
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export async function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  const f = src.name;
  if (src.size < 8) throw new Error(`${f}: ${src.size} bytes is too short for a safetensors file (no 8-byte header length)`);
  const lenBytes = await src.read(0, 8);
  const n = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER) throw new Error(`${f}: header length ${n} is larger than the 100 MB limit (not a safetensors file, or corrupt)`);
  if (8 + n > src.size) throw new Error(`${f}: header length ${n} runs past the end of the file (${src.size} bytes): truncated or not a safetensors file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await src.read(8, n));
  } catch {
    throw new Error(`${f}: header is not valid UTF-8 (not a safetensors file, or corrupt)`);
  }
  if (!text.startsWith('{')) throw new Error(`${f}: header does not start with '{' (not a safetensors file, or corrupt)`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${f}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${f}: header is not a JSON object`);
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw new Error(`${f}: __metadata__ must map strings to strings`);
      metadata = v as Record<string, string>;
      continue;
    }
    const info = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info !== 'object' || info === null || Array.isArray(info)) throw new Error(`${f}: tensor "${name}" has no description object`);
    if (typeof info.dtype === 'string' && SUB_BYTE.includes(info.dtype)) throw new Error(`${f}: tensor "${name}" has sub-byte dtype ${info.dtype}, which Quench does not read`);
    if (typeof info.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, info.dtype)) throw new Error(`${f}: tensor "${name}" has unknown dtype ${JSON.stringify(info.dtype)}`);
    if (!Array.isArray(info.shape) || info.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${f}: tensor "${name}" has an invalid shape ${JSON.stringify(info.shape)}`);
    const off = info.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((d) => !Number.isInteger(d) || d < 0) || off[1] < off[0]) throw new Error(`${f}: tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    const dtype = info.dtype as SafeDtype;
    const shape = info.shape as number[];
    const numel = shape.reduce((a, b) => a * b, 1);
    const want = numel * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(want)) throw new Error(`${f}: tensor "${name}" shape [${shape.join(', ')}] overflows`);
    if (off[1] - off[0] !== want) throw new Error(`${f}: tensor "${name}" (${dtype} [${shape.join(', ')}]) should take ${want} bytes but its data_offsets [${off[0]}, ${off[1]}] span ${off[1] - off[0]}`);
    tensors.set(name, { name, dtype, shape, begin: off[0], end: off[1] });
  }
  // Offsets must tile [0, data length) exactly.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const t of sorted) {
    if (t.begin < pos) {
      const other = sorted.find((o) => o !== t && o.begin <= t.begin && o.end > t.begin);
      throw new Error(`${f}: tensor "${t.name}" [${t.begin}, ${t.end}) overlaps tensor "${other?.name ?? '?'}"`);
    }
    if (t.begin > pos) throw new Error(`${f}: gap in the data section before tensor "${t.name}" (bytes ${pos}..${t.begin} belong to no tensor)`);
    pos = t.end;
  }
  const dataLen = src.size - 8 - n;
  if (pos !== dataLen) {
    if (pos > dataLen) throw new Error(`${f}: tensors need ${pos} bytes of data but the file has ${dataLen}: truncated`);
    throw new Error(`${f}: ${dataLen - pos} bytes after the last tensor belong to no tensor`);
  }
  return { file: f, dataStart: 8 + n, tensors, metadata };
}

/** IEEE binary16 bits → number (exact); GGUF reads F16 with it too. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float8 e4m3fn (no infinities; S.1111.111 is NaN), as torch.float8_e4m3fn. */
function f8e4m3ToF32(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return s * m * 2 ** -9;
  return s * (1 + m / 8) * 2 ** (e - 7);
}

/** Read a tensor as float32 (F32, F16, BF16, F64, F8_E4M3, F8_E5M2 converted). */
export async function readTensorF32(src: ByteSource, h: SafetensorsHeader, name: string): Promise<Float32Array> {
  const t = h.tensors.get(name);
  if (!t) throw new Error(`${h.file}: no tensor named "${name}"`);
  const bytes = await src.read(h.dataStart + t.begin, t.end - t.begin);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      new Uint8Array(out.buffer).set(bytes);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(2 * i, true));
      break;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
      break;
    }
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true);
      break;
    case 'F8_E4M3':
      for (let i = 0; i < n; i++) out[i] = f8e4m3ToF32(bytes[i]);
      break;
    case 'F8_E5M2':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(bytes[i] << 8); // the top byte of an F16
      break;
    default:
      throw new Error(`${h.file}: tensor "${name}" is ${t.dtype}, expected a float dtype (F32, F16, BF16, F64, F8_E4M3, F8_E5M2); read integer and packed tensors with readTensorBytes`);
  }
  return out;
}

/** readTensorF32 under the name the engine's docs use. */
export const readTensor = (src: ByteSource, h: SafetensorsHeader, name: string): Promise<Float32Array> => readTensorF32(src, h, name);

/** Read a tensor's raw bytes (packed quantized codes, integer tensors: U8, I32, U32 ...); a fresh
 *  aligned copy, so `new Uint32Array(b.buffer)` works. */
export async function readTensorBytes(src: ByteSource, h: SafetensorsHeader, name: string): Promise<Uint8Array> {
  const t = h.tensors.get(name);
  if (!t) throw new Error(`${h.file}: no tensor named "${name}"`);
  return (await src.read(h.dataStart + t.begin, t.end - t.begin)).slice();
}

export interface TensorToWrite {
  name: string;
  dtype: SafeDtype;
  shape: number[];
  data: Uint8Array | Float32Array | Uint32Array | Int32Array | Uint16Array | Int8Array;
}

function f32ToF16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000;
  let e = ((u >>> 23) & 0xff) - 127 + 15;
  let m = u & 0x7fffff;
  if (((u >>> 23) & 0xff) === 0xff) return s | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 31) return s | 0x7c00;
  if (e <= 0) {
    if (e < -10) return s;
    m |= 0x800000;
    const shift = 14 - e;
    let r = m >> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return s | r;
  }
  let r = (e << 10) | (m >> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return s | r;
}

/** Float32 data converted to F16 or BF16 bytes (round to nearest even). */
export function encodeFloats(data: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  if (dtype === 'F16') for (let i = 0; i < data.length; i++) out[i] = f32ToF16(data[i]);
  else {
    const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < data.length; i++) {
      const x = u[i];
      if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) out[i] = (x >>> 16) | 0x40;
      else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return new Uint8Array(out.buffer);
}

/** The pieces of a safetensors file (8-byte length + header, then each tensor's bytes), to hand
 *  to a Blob or a stream without one big copy. Tensors are sorted as the reference does: dtype
 *  size descending, then name (pass sort: false to keep the given order). */
export function writeSafetensorsParts(tensors: TensorToWrite[], metadata?: Record<string, string>, opts: { sort?: boolean } = {}): { parts: Uint8Array[]; size: number } {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new Error('writeSafetensors: "__metadata__" is not a tensor name');
    if (seen.has(t.name)) throw new Error(`writeSafetensors: tensor "${t.name}" given twice`);
    seen.add(t.name);
  }
  const order = opts.sort === false ? tensors : [...tensors].sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let off = 0;
  const datas: Uint8Array[] = [];
  for (const t of order) {
    const bytes = t.data instanceof Uint8Array ? t.data : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const want = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (bytes.byteLength !== want) throw new Error(`writeSafetensors: tensor "${t.name}" has ${bytes.byteLength} bytes, ${t.dtype} [${t.shape.join(', ')}] needs ${want}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.byteLength] };
    off += bytes.byteLength;
    datas.push(bytes);
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = (json.byteLength + 7) & ~7;
  const head = new Uint8Array(8 + padded).fill(0x20); // padded with spaces, as the reference
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { parts: [head, ...datas], size: head.byteLength + off };
}

/** Serialise tensors into one buffer (see writeSafetensorsParts for order and padding). */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>, opts: { sort?: boolean } = {}): Uint8Array<ArrayBuffer> {
  const { parts, size } = writeSafetensorsParts(tensors, metadata, opts);
  const out = new Uint8Array(size);
  let p = 0;
  for (const d of parts) {
    out.set(d, p);
    p += d.byteLength;
  }
  return out;
}
