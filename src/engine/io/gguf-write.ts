// GGUF v3 writer (llama.cpp's format; the layout is described in gguf.ts) and the export of a
// Quench model, FP or quantized, as a general.architecture = "llama" file that llama.cpp runs.
//
// Tensor types (a Quench-quantized model keeps its codes; only the scales change precision):
//   asymmetric 4-bit, group a multiple of 32     → Q4_1: d = f16(scale), m = f16(−zero·d)
//   symmetric 4-bit (zero 8, codes 1..15)       → Q4_0: d = f16(scale), same codes
//   symmetric 8-bit (zero 128)                  → Q8_0: d = f16(scale), q = code − 128
//   asymmetric 8-bit                            → Q8_0 re-quantized from our dequantized values
//   any other projection (2/3 bits, other groups, rows not a multiple of 32), embeddings and the
//   classifier of a quantized model            → F16 of our (dequantized) values
//   norms                                       → F32
// A group larger than 32 (64, 128, per channel) is written as consecutive 32-blocks with the same
// d and m. The fp16 d and m round our fp32 scales: the exporter measures the difference between
// the GGUF's dequantized weights and Quench's (max and mean |Δw|, per tensor and over all
// quantized projections) and writes it to the quench.export.* metadata keys and its report.
// An FP model is written as F32 or F16 (norms F32). attn_q / attn_k rows are permuted from the HF
// rotate_half convention to llama.cpp's interleaved-pair RoPE, as convert_hf_to_gguf.py does.
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights, Projection } from '../model/config';
import { PROJECTION_KEY, headSize } from '../model/config';
import { dequantizeHost, getCode, type PackedWeight } from '../quant/pack';
import type { QuantizedModel } from '../quant/ptq';
import { byteOfPiece, Llama2cTokenizer, type Tokenizer } from './tokenizer';
import type { TokenizerJson } from './hf-tokenizer';
import { dequantizeGgml, f16ToF32, f32ToF16, GGML_BLOCK, GGML_TYPE, GGUF_BPE_PRE, GGUF_DEFAULT_ALIGNMENT, GGUF_LAYER_NAMES, GGUF_MAGIC, GGUF_TOKEN_TYPE, GGUF_VALUE, ggmlTypeName } from './gguf';

// ---- the container ----

export type GgufKv =
  | { key: string; type: 'u32' | 'i32' | 'f32' | 'u64' | 'u8'; value: number }
  | { key: string; type: 'bool'; value: boolean }
  | { key: string; type: 'string'; value: string }
  | { key: string; type: 'array'; itemType: 'string'; value: string[] }
  | { key: string; type: 'array'; itemType: 'f32' | 'i32' | 'u32'; value: ArrayLike<number> };

export interface GgufTensorToWrite {
  name: string;
  /** ggml ne order (innermost first): a PyTorch (N, K) weight is [K, N] */
  dims: number[];
  type: number;
  data: Uint8Array;
}

const SCALAR_CODE = { u8: GGUF_VALUE.UINT8, u32: GGUF_VALUE.UINT32, i32: GGUF_VALUE.INT32, f32: GGUF_VALUE.FLOAT32, u64: GGUF_VALUE.UINT64, bool: GGUF_VALUE.BOOL, string: GGUF_VALUE.STRING } as const;

class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private grow(n: number) {
    if (this.len + n <= this.buf.length) return;
    const nb = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }
  u8(v: number) { this.grow(1); this.dv.setUint8(this.len, v); this.len += 1; }
  u32(v: number) { this.grow(4); this.dv.setUint32(this.len, v, true); this.len += 4; }
  i32(v: number) { this.grow(4); this.dv.setInt32(this.len, v, true); this.len += 4; }
  f32(v: number) { this.grow(4); this.dv.setFloat32(this.len, v, true); this.len += 4; }
  u64(v: number) { this.grow(8); this.dv.setBigUint64(this.len, BigInt(v), true); this.len += 8; }
  bytes(b: Uint8Array) { this.grow(b.length); this.buf.set(b, this.len); this.len += b.length; }
  str(s: string) { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  pad(align: number) { while (this.len % align) this.u8(0); }
  done(): Uint8Array { return this.buf.slice(0, this.len); }
}

/** A GGUF v3 file as parts (header, then each tensor's data with its padding): join them with
 *  `new Blob(parts)` in the browser or write them in order in Node. */
export function writeGgufParts(kvs: GgufKv[], tensors: GgufTensorToWrite[], alignment = GGUF_DEFAULT_ALIGNMENT): { parts: Uint8Array[]; size: number } {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length + (alignment !== GGUF_DEFAULT_ALIGNMENT ? 1 : 0));
  const keys = new Set<string>();
  for (const kv of kvs) {
    if (keys.has(kv.key)) throw new Error(`writeGguf: metadata key "${kv.key}" given twice`);
    keys.add(kv.key);
    w.str(kv.key);
    if (kv.type === 'array') {
      w.u32(GGUF_VALUE.ARRAY);
      w.u32(SCALAR_CODE[kv.itemType]);
      w.u64(kv.value.length);
      for (let i = 0; i < kv.value.length; i++) {
        const v = kv.value[i];
        if (kv.itemType === 'string') w.str(v as string);
        else if (kv.itemType === 'f32') w.f32(v as number);
        else if (kv.itemType === 'i32') w.i32(v as number);
        else w.u32(v as number);
      }
      continue;
    }
    w.u32(SCALAR_CODE[kv.type]);
    if (kv.type === 'string') w.str(kv.value);
    else if (kv.type === 'bool') w.u8(kv.value ? 1 : 0);
    else if (kv.type === 'u8') w.u8(kv.value);
    else if (kv.type === 'u32') w.u32(kv.value);
    else if (kv.type === 'i32') w.i32(kv.value);
    else if (kv.type === 'u64') w.u64(kv.value);
    else w.f32(kv.value);
  }
  if (alignment !== GGUF_DEFAULT_ALIGNMENT) {
    w.str('general.alignment');
    w.u32(GGUF_VALUE.UINT32);
    w.u32(alignment);
  }
  let offset = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`writeGguf: tensor "${t.name}" given twice`);
    names.add(t.name);
    const bl = GGML_BLOCK[t.type];
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (!bl || t.dims[0] % bl.block !== 0 || (n / bl.block) * bl.bytes !== t.data.byteLength) throw new Error(`writeGguf: tensor "${t.name}" ${ggmlTypeName(t.type)} [${t.dims.join(', ')}] does not match its ${t.data.byteLength} bytes`);
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  w.pad(alignment);
  const parts: Uint8Array[] = [w.done()];
  let size = parts[0].byteLength;
  for (const t of tensors) {
    parts.push(t.data);
    size += t.data.byteLength;
    const pad = (alignment - (t.data.byteLength % alignment)) % alignment;
    if (pad) {
      parts.push(new Uint8Array(pad));
      size += pad;
    }
  }
  return { parts, size };
}

export function concatParts(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

// ---- encoders ----

export function encodeF32(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
}

export function encodeF16(x: ArrayLike<number>): Uint8Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF16(x[i]);
  return new Uint8Array(out.buffer);
}

/** ggml's quantize_row_q8_0 (reference): d = max|x| / 127 per 32 values, q = round(x / d). */
export function encodeQ8_0(x: ArrayLike<number>): Uint8Array {
  if (x.length % 32) throw new Error(`Q8_0 needs a multiple of 32 values, got ${x.length}`);
  const out = new Uint8Array((x.length / 32) * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, Math.round(Math.fround(x[b * 32 + j] * id))); // roundf: ties away from 0
  }
  return out;
}

/** Can this packed weight keep its codes in a 32-value ggml block type? */
export function ggmlTypeForPacked(p: PackedWeight, sym: boolean): 'Q4_0' | 'Q4_1' | 'Q8_0' | null {
  if (p.K % 32 !== 0 || p.group % 32 !== 0) return null;
  if (p.bits === 4) return sym ? 'Q4_0' : 'Q4_1';
  if (p.bits === 8) return 'Q8_0';
  return null;
}

/** Our packed codes as Q4_0 / Q4_1 / Q8_0 blocks (rows of K values, K a multiple of 32). */
export function encodePacked(p: PackedWeight, type: 'Q4_0' | 'Q4_1' | 'Q8_0'): Uint8Array {
  const { N, K, nBlocks } = p;
  const nb = K / 32;
  if (type === 'Q8_0' && [...p.zeros].some((z) => z !== 128)) return encodeQ8_0(dequantizeHost(p)); // asymmetric 8-bit
  const size = GGML_BLOCK[GGML_TYPE[type]].bytes;
  const out = new Uint8Array(N * nb * size);
  const dv = new DataView(out.buffer);
  for (let n = 0; n < N; n++)
    for (let b = 0; b < nb; b++) {
      const g = Math.floor((b * 32) / p.group);
      const scale = p.scales[n * nBlocks + g], zero = p.zeros[n * nBlocks + g];
      const o = (n * nb + b) * size;
      const k0 = b * 32;
      dv.setUint16(o, f32ToF16(scale), true);
      if (type === 'Q8_0') {
        for (let j = 0; j < 32; j++) dv.setInt8(o + 2 + j, getCode(p, n, k0 + j) - 128);
        continue;
      }
      let q = o + 2;
      if (type === 'Q4_1') {
        // m from the rounded d, so that x − Quench's value = (q − zero)·(d − scale) + (m's rounding):
        // the d error is weighted by |q − zero| (≤ 15, usually much less), not by q
        dv.setUint16(o + 2, f32ToF16(-zero * f16ToF32(f32ToF16(scale))), true);
        q = o + 4;
      } else if (zero !== 8) throw new Error(`Q4_0 needs zero point 8 (symmetric), got ${zero}`);
      for (let j = 0; j < 16; j++) out[q + j] = getCode(p, n, k0 + j) | (getCode(p, n, k0 + j + 16) << 4);
    }
  return out;
}

/** Rows of a (heads·HS, ...) weight reordered from rotate_half to interleaved pairs: out row
 *  h·HS + 2i + r = in row h·HS + r·HS/2 + i (convert_hf_to_gguf.py's permute). */
function interleaveRows(heads: number, HS: number): Int32Array {
  const src = new Int32Array(heads * HS);
  const half = HS / 2;
  for (let h = 0; h < heads; h++) for (let i = 0; i < half; i++) for (let r = 0; r < 2; r++) src[h * HS + 2 * i + r] = h * HS + r * half + i;
  return src;
}

function permuteRowsF32(x: Float32Array, src: Int32Array, K: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let n = 0; n < src.length; n++) out.set(x.subarray(src[n] * K, src[n] * K + K), n * K);
  return out;
}

function permuteRowsPacked(p: PackedWeight, src: Int32Array): PackedWeight {
  const codes = new Uint32Array(p.codes.length), scales = new Float32Array(p.scales.length), zeros = new Float32Array(p.zeros.length);
  for (let n = 0; n < src.length; n++) {
    const s = src[n];
    codes.set(p.codes.subarray(s * p.wordsPerRow, (s + 1) * p.wordsPerRow), n * p.wordsPerRow);
    scales.set(p.scales.subarray(s * p.nBlocks, (s + 1) * p.nBlocks), n * p.nBlocks);
    zeros.set(p.zeros.subarray(s * p.nBlocks, (s + 1) * p.nBlocks), n * p.nBlocks);
  }
  return { ...p, codes, scales, zeros };
}

// ---- the tokenizer ----

export interface GgufVocab {
  /** tokenizer.ggml.model: "llama" (SentencePiece BPE, scores; the default) or "gpt2" (byte-level BPE, merges) */
  model?: 'llama' | 'gpt2';
  /** gpt2: tokenizer.ggml.merges ("left right", by rank) and tokenizer.ggml.pre (the pre-tokenizer's llama.cpp name) */
  merges?: string[];
  pre?: string;
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  bosId: number;
  eosId: number;
  unkId: number;
  addSpacePrefix: boolean;
}

const SP = '\u2581';

/** A llama2.c tokenizer.bin as a "llama" GGUF vocabulary (spaces as ▁, its own scores). */
export function ggufVocabFromLlama2c(tok: Llama2cTokenizer): GgufVocab {
  const names = ['<unk>', '<s>', '</s>'];
  const tokens = tok.vocab.map((p, i) => (i < 3 ? names[i] : byteOfPiece(p) !== null ? p : p.replace(/ /g, SP)));
  const types = Int32Array.from(tok.vocab, (p, i) => (i === 0 ? GGUF_TOKEN_TYPE.UNKNOWN : i < 3 ? GGUF_TOKEN_TYPE.CONTROL : byteOfPiece(p) !== null ? GGUF_TOKEN_TYPE.BYTE : GGUF_TOKEN_TYPE.NORMAL));
  return { tokens, scores: Float32Array.from(tok.scores), types, bosId: 1, eosId: 2, unkId: 0, addSpacePrefix: true };
}

/** A SentencePiece-style BPE tokenizer.json (▁, byte fallback; ours or LLaMA's) as a "llama"
 *  vocabulary. llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined piece
 *  scores best; scores here are −(rank of the first merge that makes the piece), so it merges in
 *  the order of the merges list (pieces made by no merge get −1e9). */
export function ggufVocabFromTokenizerJson(json: TokenizerJson, name = 'tokenizer.json', specials: { bosId?: number; eosId?: number } = {}): GgufVocab {
  if (JSON.stringify([json.pre_tokenizer ?? null, json.decoder ?? null]).includes('"ByteLevel"')) return ggufByteLevelVocab(json, name, specials);
  const m = json.model;
  if (!m || (m.type ?? 'BPE') !== 'BPE' || !m.vocab) throw new Error(`${name}: GGUF export needs a BPE tokenizer.json (SentencePiece style)`);
  const V = [...Object.values(m.vocab), ...(json.added_tokens ?? []).map((t) => t.id)].reduce((a, b) => Math.max(a, b), -1) + 1;
  const tokens: string[] = new Array(V).fill('');
  const types = new Int32Array(V).fill(GGUF_TOKEN_TYPE.NORMAL);
  const scores = new Float32Array(V).fill(-1e9);
  for (const [piece, id] of Object.entries(m.vocab)) {
    tokens[id] = piece;
    if (byteOfPiece(piece) !== null) types[id] = GGUF_TOKEN_TYPE.BYTE;
  }
  const ids = new Map<string, number>(Object.entries(m.vocab));
  (m.merges ?? []).forEach((mg, rank) => {
    const [l, r] = Array.isArray(mg) ? mg : [mg.slice(0, mg.indexOf(' ', 1)), mg.slice(mg.indexOf(' ', 1) + 1)];
    const id = ids.get(l + r);
    if (id !== undefined && scores[id] === -1e9) scores[id] = -rank;
  });
  for (let i = 0; i < V; i++) if (types[i] === GGUF_TOKEN_TYPE.BYTE || [...tokens[i]].length === 1) scores[i] = Math.max(scores[i], 0);
  for (const t of json.added_tokens ?? []) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? (t.content === m.unk_token ? GGUF_TOKEN_TYPE.UNKNOWN : GGUF_TOKEN_TYPE.CONTROL) : GGUF_TOKEN_TYPE.USER_DEFINED;
    scores[t.id] = 0;
  }
  tokens.forEach((t, i) => {
    if (t === '') {
      tokens[i] = `[PAD${i}]`;
      types[i] = GGUF_TOKEN_TYPE.UNUSED;
    }
  });
  const find = (p: string, d: number) => tokens.indexOf(p) >= 0 ? tokens.indexOf(p) : d;
  // the ▁ prefix: LLaMA's normalizer Prepend('▁'), or a Metaspace pre-tokenizer that prepends
  const text = JSON.stringify([json.normalizer, json.pre_tokenizer]);
  const addSpacePrefix = /"Prepend"/.test(text) || (/"Metaspace"/.test(text) && !/"prepend_scheme":"never"/.test(text) && !/"add_prefix_space":false/.test(text));
  return { tokens, scores, types, bosId: find('<s>', 1), eosId: find('</s>', 2), unkId: find(m.unk_token ?? '<unk>', 0), addSpacePrefix };
}

/** What identifies a byte-level pre-tokenizer to llama.cpp: each step's type, split regex, and
 *  ByteLevel / Digits options (offsets do not change the tokens). */
function preSignature(pre: unknown): string {
  const steps: unknown[] = [];
  const walk = (c: unknown) => {
    if (!c || typeof c !== 'object') return;
    const o = c as Record<string, unknown>;
    if (o.type === 'Sequence') return (o.pretokenizers as unknown[] | undefined)?.forEach(walk);
    steps.push([o.type, (o.pattern as Record<string, unknown> | undefined)?.Regex ?? null, o.behavior ?? null, o.add_prefix_space ?? null, o.use_regex ?? null, o.individual_digits ?? null]);
  };
  walk(pre);
  return JSON.stringify(steps);
}

/** A byte-level BPE tokenizer.json (GPT-2 / Llama-3 / SmolLM / Qwen2 style) as a "gpt2" GGUF
 *  vocabulary: tokens by id, merges in rank order, the pre-tokenizer by its llama.cpp name
 *  (tokenizer.ggml.pre; refused when it is none Quench knows), added tokens as CONTROL (special) or
 *  USER_DEFINED. BOS / EOS: the given ids (the loaded tokenizer's), else the usual names. */
export function ggufByteLevelVocab(json: TokenizerJson, name = 'tokenizer.json', ids: { bosId?: number; eosId?: number } = {}): GgufVocab {
  const m = json.model;
  if (!m || (m.type ?? 'BPE') !== 'BPE' || !m.vocab || !m.merges) throw new Error(`${name}: GGUF export of a byte-level tokenizer needs a BPE model with vocab and merges`);
  const sig = preSignature(json.pre_tokenizer);
  const pre = Object.keys(GGUF_BPE_PRE).find((k) => preSignature(GGUF_BPE_PRE[k]) === sig);
  if (!pre) throw new Error(`${name}: its byte-level pre-tokenizer ${sig.slice(0, 200)} is not one llama.cpp knows by a name Quench writes (${Object.keys(GGUF_BPE_PRE).join(', ')}); GGUF export cannot keep its tokenization`);
  const entries: [string, number][] = Array.isArray(m.vocab) ? m.vocab.map(([p], i) => [p, i]) : Object.entries(m.vocab);
  const V = [...entries.map(([, i]) => i), ...(json.added_tokens ?? []).map((t) => t.id)].reduce((a, b) => Math.max(a, b), -1) + 1; // no spread: 128k arguments overflow the stack
  const tokens: string[] = new Array(V).fill('');
  const types = new Int32Array(V).fill(GGUF_TOKEN_TYPE.NORMAL);
  for (const [p, i] of entries) tokens[i] = p;
  for (const t of json.added_tokens ?? []) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? GGUF_TOKEN_TYPE.CONTROL : GGUF_TOKEN_TYPE.USER_DEFINED;
  }
  tokens.forEach((t, i) => {
    if (t === '') {
      tokens[i] = `[PAD${i}]`;
      types[i] = GGUF_TOKEN_TYPE.UNUSED;
    }
  });
  const merges = m.merges.map((mg) => (Array.isArray(mg) ? `${mg[0]} ${mg[1]}` : mg));
  const find = (names: string[]) => names.map((n) => tokens.indexOf(n)).find((i) => i >= 0);
  const bosId = ids.bosId ?? find(['<|begin_of_text|>', '<s>', '<|endoftext|>', '<|im_start|>']) ?? 0;
  const eosId = ids.eosId ?? find(['<|end_of_text|>', '</s>', '<|endoftext|>', '<|im_end|>']) ?? 0;
  return { model: 'gpt2', merges, pre, tokens, scores: new Float32Array(0), types, bosId, eosId, unkId: -1, addSpacePrefix: false };
}

/** The vocabulary of a loaded tokenizer (llama2.c's, or a tokenizer.json's text). */
export function ggufVocabOf(tok: Tokenizer | null, tokenizerJson?: string | null): GgufVocab | null {
  if (tok instanceof Llama2cTokenizer) return ggufVocabFromLlama2c(tok);
  if (tokenizerJson) return ggufVocabFromTokenizerJson(JSON.parse(tokenizerJson) as TokenizerJson, 'tokenizer.json', tok ? { bosId: tok.bosId, eosId: tok.eosId } : {});
  return null;
}

// ---- the model ----

export interface GgufTensorReport {
  name: string;
  type: string;
  /** what the values came from: Quench's packed codes, or float weights */
  from: 'packed' | 'float';
  maxAbsError: number;
  meanAbsError: number;
  maxAbsWeight: number;
}

export interface GgufExportReport {
  tensors: GgufTensorReport[];
  /** over the projections that kept their codes (Q4_0 / Q4_1 / Q8_0): |GGUF − Quench dequantized| */
  packed: { tensors: number; maxAbsError: number; meanAbsError: number; maxRelError: number } | null;
  /** over the tensors written as F16 from float32 (projections that fell back, embeddings) */
  f16: { tensors: number; maxAbsError: number; meanAbsError: number } | null;
  fileType: string;
  size: number;
  /** how each quantized projection was stored, e.g. { Q4_1: 20, F16: 5 } */
  projectionTypes: Record<string, number>;
}

export interface GgufExportOptions {
  /** the packed projections of a Quench-quantized model (weights hold their dequantized values) */
  quantized?: QuantizedModel;
  /** FP model / non-projection tensors of an FP model: F32 (default) or F16 */
  floatType?: 'F32' | 'F16';
  /** tensors a quantized model does not quantize (embeddings, classifier): F16 (default) or F32 */
  otherType?: 'F32' | 'F16';
  vocab?: GgufVocab | null;
  name?: string;
  /** extra metadata strings (e.g. the source path, the recipe) */
  extra?: Record<string, string>;
}

const FILE_TYPE: Record<string, number> = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7 };

export function exportGguf(cfg: LlamaConfig, w: LlamaWeights, opts: GgufExportOptions = {}): { parts: Uint8Array[]; size: number; report: GgufExportReport } {
  const qm = opts.quantized;
  const HS = headSize(cfg);
  // llama.cpp spells scaled RoPE differently (linear: llama.rope.scaling.*; llama3: a rope_freqs
  // tensor); neither is written or checked against llama.cpp yet, so refuse rather than drop it.
  if (cfg.ropeScaling) throw new Error(`exportGguf: rope_scaling of type "${cfg.ropeScaling.type}" cannot be written to GGUF yet (export safetensors or ONNX instead)`);
  const floatType = opts.floatType ?? 'F32';
  const otherType = qm ? (opts.otherType ?? 'F16') : floatType;
  const tensors: GgufTensorToWrite[] = [];
  const reports: GgufTensorReport[] = [];
  const projTypes: Record<string, number> = {};
  const measure = (name: string, type: number, data: Uint8Array, ref: Float32Array, from: 'packed' | 'float') => {
    const back = dequantizeGgml(type, data, ref.length);
    let max = 0, sum = 0, wmax = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs(back[i] - ref[i]);
      if (d > max) max = d;
      sum += d;
      wmax = Math.max(wmax, Math.abs(ref[i]));
    }
    reports.push({ name, type: ggmlTypeName(type), from, maxAbsError: max, meanAbsError: sum / ref.length, maxAbsWeight: wmax });
  };
  const floatTensor = (name: string, x: Float32Array, dims: number[], type: 'F32' | 'F16') => {
    const t = GGML_TYPE[type];
    const data = type === 'F32' ? encodeF32(x) : encodeF16(x);
    tensors.push({ name, dims, type: t, data });
    if (type === 'F16') measure(name, t, data, x, 'float');
  };
  floatTensor('token_embd.weight', w.tokEmbed, [cfg.dim, cfg.vocabSize], otherType);
  const rowsQ = interleaveRows(cfg.nHeads, HS), rowsK = interleaveRows(cfg.nKvHeads, HS);
  w.layers.forEach((lw, l) => {
    for (const [k, n] of Object.entries(GGUF_LAYER_NAMES) as [keyof LlamaLayerWeights, string][]) {
      const name = `blk.${l}.${n}.weight`;
      const x = lw[k];
      if (k === 'attnNorm' || k === 'mlpNorm') {
        floatTensor(name, x, [cfg.dim], 'F32');
        continue;
      }
      const K = k === 'wo' ? cfg.nHeads * HS : k === 'wDown' ? cfg.hiddenDim : cfg.dim;
      const N = x.length / K;
      const perm = k === 'wq' ? rowsQ : k === 'wk' ? rowsK : null;
      const proj = (Object.entries(PROJECTION_KEY) as [Projection, keyof LlamaLayerWeights][]).find(([, v]) => v === k)![0];
      const pw0 = qm?.packed[l]?.[proj];
      if (!pw0) {
        floatTensor(name, perm ? permuteRowsF32(x, perm, K) : x, [K, N], otherType);
        continue;
      }
      const pw = perm ? permuteRowsPacked(pw0, perm) : pw0;
      const ref = dequantizeHost(pw);
      const gt = ggmlTypeForPacked(pw, qm!.ptq.sym);
      if (gt) {
        const t = GGML_TYPE[gt];
        const data = encodePacked(pw, gt);
        tensors.push({ name, dims: [K, N], type: t, data });
        measure(name, t, data, ref, 'packed');
        projTypes[gt] = (projTypes[gt] ?? 0) + 1;
      } else {
        floatTensor(name, ref, [K, N], 'F16');
        projTypes.F16 = (projTypes.F16 ?? 0) + 1;
      }
    }
  });
  floatTensor('output_norm.weight', w.finalNorm, [cfg.dim], 'F32');
  if (!cfg.tiedEmbeddings) {
    if (!w.lmHead) throw new Error('exportGguf: the config has untied embeddings but the weights have no lmHead');
    floatTensor('output.weight', w.lmHead, [cfg.dim, cfg.vocabSize], otherType);
  }
  const packed = reports.filter((r) => r.from === 'packed');
  const f16 = reports.filter((r) => r.from === 'float');
  const weightedMean = (rs: GgufTensorReport[]) => {
    let s = 0, n = 0;
    for (const r of rs) {
      const t = tensors.find((x) => x.name === r.name)!;
      const cnt = t.dims.reduce((a, b) => a * b, 1);
      s += r.meanAbsError * cnt;
      n += cnt;
    }
    return s / n;
  };
  const main = Object.entries(projTypes).sort((a, b) => b[1] - a[1])[0]?.[0] ?? (floatType === 'F16' ? 'F16' : 'F32');
  const report: GgufExportReport = {
    tensors: reports,
    packed: packed.length ? { tensors: packed.length, maxAbsError: Math.max(...packed.map((r) => r.maxAbsError)), meanAbsError: weightedMean(packed), maxRelError: Math.max(...packed.map((r) => r.maxAbsError / Math.max(r.maxAbsWeight, 1e-30))) } : null,
    f16: f16.length ? { tensors: f16.length, maxAbsError: Math.max(...f16.map((r) => r.maxAbsError)), meanAbsError: weightedMean(f16) } : null,
    fileType: main,
    size: 0,
    projectionTypes: projTypes,
  };
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: 'string', value: 'llama' },
    { key: 'general.name', type: 'string', value: opts.name ?? 'quench-export' },
    { key: 'general.file_type', type: 'u32', value: FILE_TYPE[main] ?? 1 },
    ...(Object.keys(projTypes).some((t) => t.startsWith('Q')) ? [{ key: 'general.quantization_version', type: 'u32', value: 2 } as GgufKv] : []),
    { key: 'llama.context_length', type: 'u32', value: cfg.maxSeqLen },
    { key: 'llama.embedding_length', type: 'u32', value: cfg.dim },
    { key: 'llama.block_count', type: 'u32', value: cfg.nLayers },
    { key: 'llama.feed_forward_length', type: 'u32', value: cfg.hiddenDim },
    { key: 'llama.rope.dimension_count', type: 'u32', value: HS },
    { key: 'llama.attention.head_count', type: 'u32', value: cfg.nHeads },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: cfg.nKvHeads },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: cfg.normEps },
    { key: 'llama.rope.freq_base', type: 'f32', value: cfg.ropeTheta },
    { key: 'llama.vocab_size', type: 'u32', value: cfg.vocabSize },
  ];
  const v = opts.vocab;
  if (v) {
    if (v.tokens.length > cfg.vocabSize) throw new Error(`exportGguf: the tokenizer has ${v.tokens.length} tokens, the model ${cfg.vocabSize}`);
    const gpt2 = v.model === 'gpt2';
    const tokens = [...v.tokens], scores = Array.from(v.scores), types = Array.from(v.types);
    for (let i = tokens.length; i < cfg.vocabSize; i++) {
      tokens.push(`[PAD${i}]`);
      if (!gpt2) scores.push(-1e9);
      types.push(GGUF_TOKEN_TYPE.UNUSED);
    }
    kvs.push(
      { key: 'tokenizer.ggml.model', type: 'string', value: gpt2 ? 'gpt2' : 'llama' },
      ...(gpt2 ? [{ key: 'tokenizer.ggml.pre', type: 'string', value: v.pre! } as GgufKv] : []),
      { key: 'tokenizer.ggml.tokens', type: 'array', itemType: 'string', value: tokens },
      ...(gpt2 ? [] : [{ key: 'tokenizer.ggml.scores', type: 'array', itemType: 'f32', value: scores } as GgufKv]),
      { key: 'tokenizer.ggml.token_type', type: 'array', itemType: 'i32', value: types },
      ...(gpt2 ? [{ key: 'tokenizer.ggml.merges', type: 'array', itemType: 'string', value: v.merges ?? [] } as GgufKv] : []),
      { key: 'tokenizer.ggml.bos_token_id', type: 'u32', value: v.bosId },
      { key: 'tokenizer.ggml.eos_token_id', type: 'u32', value: v.eosId },
      ...(v.unkId >= 0 ? [{ key: 'tokenizer.ggml.unknown_token_id', type: 'u32', value: v.unkId } as GgufKv] : []),
      { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: true },
      { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false },
      ...(gpt2 ? [] : [{ key: 'tokenizer.ggml.add_space_prefix', type: 'bool', value: v.addSpacePrefix } as GgufKv]),
    );
  }
  if (qm) {
    kvs.push({ key: 'quench.quantization', type: 'string', value: `${qm.ptq.bits}-bit, group ${qm.ptq.group || 'per channel'}, ${qm.ptq.sym ? 'symmetric' : 'asymmetric'}${qm.ptq.clipSearch ? ', clip search' : ''}` });
    kvs.push({ key: 'quench.export.projection_types', type: 'string', value: JSON.stringify(projTypes) });
    if (report.packed) {
      kvs.push({ key: 'quench.export.scale_rounding', type: 'string', value: 'fp16 block scales (and Q4_1 minimums) round Quench fp32 scales; error = |GGUF dequantized - Quench dequantized| over the projections that kept their codes' });
      kvs.push({ key: 'quench.export.scale_rounding.max_abs_error', type: 'f32', value: report.packed.maxAbsError });
      kvs.push({ key: 'quench.export.scale_rounding.mean_abs_error', type: 'f32', value: report.packed.meanAbsError });
      kvs.push({ key: 'quench.export.scale_rounding.max_rel_error', type: 'f32', value: report.packed.maxRelError });
    }
  }
  if (report.f16) {
    kvs.push({ key: 'quench.export.f16_rounding.max_abs_error', type: 'f32', value: report.f16.maxAbsError });
    kvs.push({ key: 'quench.export.f16_rounding.mean_abs_error', type: 'f32', value: report.f16.meanAbsError });
  }
  for (const [k, s] of Object.entries(opts.extra ?? {})) kvs.push({ key: `quench.${k}`, type: 'string', value: s });
  const out = writeGgufParts(kvs, tensors);
  report.size = out.size;
  return { ...out, report };
}
