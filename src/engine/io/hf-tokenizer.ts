// Hugging Face tokenizer.json for LLaMA-style SentencePiece BPE (LLaMA-1/2, TinyLlama, Mistral):
// model.type "BPE" with merges, byte_fallback and fuse_unk; the '▁' space marker written either by
// the normalizer Sequence[Prepend('▁'), Replace(' ', '▁')] (LLaMA-2 as converted by transformers'
// LlamaConverter) or by a Metaspace pre-tokenizer (replacement '▁', prepend_scheme always / first /
// never, split or not, with HF's rule that nothing is prepended to text already starting with
// '▁'); decoder Sequence[Replace('▁', ' '), ByteFallback, Fuse, Strip(' ', 1, 0)] or Metaspace.
// Byte-level BPE (GPT-2, LLaMA-3: ByteLevel pre-tokenizer) and Unigram models are rejected by name.
//
// Differences from HF's tokenizers library, on purpose: added/special tokens written in the text
// ("<s>") are encoded as text, not as the special id (as sentencepiece, llama2.c and
// llama-tokenizer-js do); decode always skips special tokens (skip_special_tokens=True).
//
// Also here: converters to such a tokenizer.json from llama2.c's tokenizer.bin (pieces + scores)
// and from SentencePiece's tokenizer.model (a small protobuf reader), with merges ranked by the
// merged piece's score as transformers' LlamaConverter / SentencePieceExtractor does.
import { z } from 'zod';
import { bpeMerge, byteOfPiece, decodeIds, decodeTokenText, type EncodeOptions, type Tokenizer } from './tokenizer';
import { LIMITS, maxOf, parseJsonObject, parseWith, show } from './validate';

const SP = '\u2581'; // ▁
const SPECIALS = ['<unk>', '<s>', '</s>'];
const utf8 = new TextEncoder();

export interface TokenizerJson {
  version?: string;
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; fuse_unk?: boolean; unk_token?: string | null; [k: string]: unknown };
  added_tokens?: { id: number; content: string; special?: boolean; [k: string]: unknown }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  [k: string]: unknown;
}

interface Component {
  type?: string;
  [k: string]: unknown;
}

/** The components of a (possibly nested) Sequence, in order; each must be an object with a
 *  string "type", a Sequence must hold an array. */
function flatten(c: unknown, key: 'normalizers' | 'pretokenizers' | 'decoders', file: string, field: string, depth = 0): Component[] {
  if (c === null || c === undefined) return [];
  if (typeof c !== 'object' || Array.isArray(c) || typeof (c as Component).type !== 'string') throw new Error(`${file}: "${field}" must be an object with a string "type", got ${show(c)}`);
  if (depth > 16) throw new Error(`${file}: "${field}" nests Sequences more than 16 deep`);
  const o = c as Component;
  if (o.type === 'Sequence') {
    const list = o[key];
    if (!Array.isArray(list)) throw new Error(`${file}: "${field}" is a Sequence without a "${key}" array`);
    return list.flatMap((x, i) => {
      if (x === null || x === undefined) throw new Error(`${file}: "${field}.${key}.${i}" is null`);
      return flatten(x, key, file, `${field}.${key}.${i}`, depth + 1);
    });
  }
  return [o];
}

const optStr = z.string().nullish();
const MetaspaceSchema = z.looseObject({ replacement: z.string().min(1).nullish(), prepend_scheme: z.enum(['always', 'first', 'never']).nullish(), add_prefix_space: z.boolean().nullish(), split: z.boolean().nullish() });
const ReplaceSchema = z.looseObject({ pattern: z.union([z.looseObject({ String: z.string() }), z.looseObject({ Regex: z.string() })]), content: z.string() });
const PrependSchema = z.looseObject({ prepend: z.string() });
const StripSchema = z.looseObject({ content: optStr, start: z.number().int().min(0).nullish(), stop: z.number().int().min(0).nullish() });
const tokenId = z.number().int().min(0).max(LIMITS.vocabSize - 1);
/** The parts of tokenizer.json this reader uses; everything else passes through. */
const TokenizerJsonSchema = z.looseObject({
  model: z.looseObject({
    vocab: z.record(z.string(), tokenId),
    merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])).nullish(),
    byte_fallback: z.boolean().nullish(),
    fuse_unk: z.boolean().nullish(),
    unk_token: optStr,
  }),
  added_tokens: z.array(z.looseObject({ id: tokenId, content: z.string(), special: z.boolean().nullish() })).nullish(),
});

/** Check a component's fields with a schema, naming the file and the component. */
function checkComponent(schema: z.ZodType, c: Component, file: string, field: string): void {
  parseWith(schema, c, file, `${field} (${c.type})`);
}

type NormOp = (s: string) => string;

export class HfBpeTokenizer implements Tokenizer {
  readonly vocab: string[];
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  private readonly ids = new Map<string, number>();
  private readonly merges = new Map<number, { id: number; priority: number }>(); // a*V+b -> merged
  private readonly byteIds: number[] = new Array(256).fill(-1);
  private readonly special = new Set<number>();
  private readonly byteFallback: boolean;
  private readonly fuseUnk: boolean;
  private readonly normalize: NormOp[] = [];
  private readonly metaspace: { rep: string; prepend: 'always' | 'first' | 'never'; split: boolean } | null = null;
  /** the decoder strips one leading space (Strip(' ', 1, 0), or Metaspace with a prefix) */
  private readonly stripLeading: boolean;
  private readonly spaceRep: string; // what the decoder turns back into ' '

  constructor(json: TokenizerJson, readonly name = 'tokenizer.json') {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${name}: not a JSON object`);
    const m0 = json.model as unknown;
    if (typeof m0 !== 'object' || m0 === null || Array.isArray(m0)) throw new Error(`${name}: "model" must be an object, got ${show(m0)}`);
    const m = m0 as NonNullable<TokenizerJson['model']>;
    const type = m.type ?? (m.merges ? 'BPE' : undefined);
    if (type !== 'BPE' || !m.vocab) throw new Error(`${name}: only BPE tokenizers (LLaMA SentencePiece style) are supported; model.type is ${JSON.stringify(m.type)}`);
    parseWith(TokenizerJsonSchema, json, name);
    const pre = flatten(json.pre_tokenizer, 'pretokenizers', name, 'pre_tokenizer');
    for (const p of pre) {
      if (p.type === 'ByteLevel') throw new Error(`${name}: byte-level BPE (GPT-2 / LLaMA-3 style, ByteLevel pre-tokenizer) is not supported; Quench reads SentencePiece-style BPE (LLaMA-1/2, Mistral)`);
      if (p.type !== 'Metaspace') throw new Error(`${name}: pre-tokenizer ${JSON.stringify(p.type)} is not supported (expected none, or Metaspace)`);
      checkComponent(MetaspaceSchema, p, name, 'pre_tokenizer');
      const scheme = (p.prepend_scheme as string | undefined) ?? (p.add_prefix_space === false ? 'never' : 'always');
      if (scheme !== 'always' && scheme !== 'first' && scheme !== 'never') throw new Error(`${name}: Metaspace prepend_scheme ${JSON.stringify(scheme)} is not supported`);
      this.metaspace = { rep: (p.replacement as string | undefined) ?? SP, prepend: scheme, split: p.split !== false };
    }
    for (const n of flatten(json.normalizer, 'normalizers', name, 'normalizer')) {
      if (n.type === 'Prepend') checkComponent(PrependSchema, n, name, 'normalizer');
      if (n.type === 'Replace') checkComponent(ReplaceSchema, n, name, 'normalizer');
      if (n.type === 'Prepend') {
        const pre = String(n.prepend);
        this.normalize.push((s) => (s.length > 0 ? pre + s : s));
      } else if (n.type === 'Replace') {
        const pat = n.pattern as { String?: string; Regex?: string } | undefined;
        if (typeof pat?.String !== 'string') throw new Error(`${name}: Replace normalizer with a regex pattern is not supported`);
        const from = pat.String, to = String(n.content);
        this.normalize.push((s) => s.split(from).join(to));
      } else throw new Error(`${name}: normalizer ${JSON.stringify(n.type)} is not supported (expected Prepend and Replace, as LLaMA's tokenizer.json)`);
    }
    // Ids index a dense table: the largest id must lie within the number of entries the file holds
    // (a stray id of 1e9 would otherwise allocate a billion-entry table). No spread: a 256k-entry
    // vocabulary overflows the argument stack.
    const entries = Object.entries(m.vocab); // the parsed JSON's own keys: "__proto__" is a piece
    const added = json.added_tokens ?? [];
    if (entries.length === 0) throw new Error(`${name}: model.vocab is empty`);
    const maxId = maxOf(added.map((t) => t.id), maxOf(entries.map((e) => e[1])));
    const held = entries.length + added.length;
    if (maxId >= held) {
      const at = entries.find((e) => e[1] === maxId);
      throw new Error(`${name}: ${at ? `model.vocab piece ${show(at[0])}` : 'an added token'} has id ${maxId}, but the file holds only ${held} tokens`);
    }
    const V = maxId + 1;
    this.vocab = new Array(V).fill('');
    for (const [piece, id] of entries) {
      this.vocab[id] = piece;
      this.ids.set(piece, id);
      const b = byteOfPiece(piece);
      if (b !== null) this.byteIds[b] = id;
    }
    for (const t of added) {
      this.vocab[t.id] = t.content;
      if (!this.ids.has(t.content)) this.ids.set(t.content, t.id);
      if (t.special) this.special.add(t.id);
    }
    (m.merges ?? []).forEach((mg, rank) => {
      let l: string, r: string;
      if (Array.isArray(mg)) [l, r] = mg;
      else {
        const k = mg.indexOf(' ', 1); // old format "a b"; a piece may itself be a space
        if (k < 0) throw new Error(`${name}: merge ${JSON.stringify(mg)} at rank ${rank} is not "left right"`);
        [l, r] = [mg.slice(0, k), mg.slice(k + 1)];
      }
      const a = this.ids.get(l), b = this.ids.get(r), c = this.ids.get(l + r);
      if (a === undefined || b === undefined || c === undefined) throw new Error(`${name}: merge ${JSON.stringify([l, r])} at rank ${rank} uses a piece missing from the vocabulary`);
      const key = a * V + b;
      if (!this.merges.has(key)) this.merges.set(key, { id: c, priority: rank });
    });
    this.byteFallback = m.byte_fallback === true;
    this.fuseUnk = m.fuse_unk === true;
    this.bosId = this.ids.get('<s>') ?? 1;
    this.eosId = this.ids.get('</s>') ?? 2;
    this.unkId = this.ids.get(m.unk_token ?? '<unk>') ?? 0;
    for (const [k, id] of [['BOS "<s>"', this.bosId], ['EOS "</s>"', this.eosId], ['unk', this.unkId]] as const) if (id >= V) throw new Error(`${name}: no ${k} token and the default id ${id} is outside the vocabulary (${V})`);
    const dec = flatten(json.decoder, 'decoders', name, 'decoder');
    for (const d of dec) {
      if (d.type === 'Metaspace') checkComponent(MetaspaceSchema, d, name, 'decoder');
      else if (d.type === 'Replace') checkComponent(ReplaceSchema, d, name, 'decoder');
      else if (d.type === 'Strip') checkComponent(StripSchema, d, name, 'decoder');
    }
    const ms = dec.find((d) => d.type === 'Metaspace');
    const rep = dec.find((d) => d.type === 'Replace' && (d.pattern as { String?: string })?.String !== undefined && d.content === ' ');
    this.spaceRep = ms ? ((ms.replacement as string | undefined) ?? SP) : rep ? (rep.pattern as { String: string }).String : SP;
    const strip = dec.find((d) => d.type === 'Strip');
    this.stripLeading = strip ? (strip.content ?? ' ') === ' ' && Number(strip.start) >= 1 : ms ? ((ms.prepend_scheme as string | undefined) ?? (ms.add_prefix_space === false ? 'never' : 'always')) !== 'never' : false;
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** The text as HF's normalizer and pre-tokenizer leave it: the words BPE runs on. */
  pretokenize(text: string): string[] {
    let s = text;
    for (const f of this.normalize) s = f(s);
    if (s.length === 0) return [];
    const ms = this.metaspace;
    if (!ms) return [s];
    s = s.split(' ').join(ms.rep);
    if (ms.prepend !== 'never' && !s.startsWith(ms.rep)) s = ms.rep + s; // 'first': the text is one section
    if (!ms.split) return [s];
    // split before each replacement character (MergedWithNext)
    const words: string[] = [];
    let cur = '';
    for (const ch of s) {
      if (ch === ms.rep && cur.length > 0) {
        words.push(cur);
        cur = '';
      }
      cur += ch;
    }
    if (cur.length > 0) words.push(cur);
    return words;
  }

  private encodeWord(word: string, out: number[]): void {
    const syms: number[] = [];
    let lastUnk = false;
    for (const ch of word) {
      const id = this.ids.get(ch);
      if (id !== undefined && !this.special.has(id)) {
        syms.push(id);
        lastUnk = false;
        continue;
      }
      if (this.byteFallback) {
        const bs = [...utf8.encode(ch)].map((b) => this.byteIds[b]);
        if (bs.every((b) => b >= 0)) {
          syms.push(...bs);
          lastUnk = false;
          continue;
        }
      }
      if (!(this.fuseUnk && lastUnk)) syms.push(this.unkId);
      lastUnk = true;
    }
    const V = this.vocab.length;
    for (const id of bpeMerge(syms, (a, b) => this.merges.get(a * V + b))) out.push(id);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos ?? true) out.push(this.bosId);
    for (const w of this.pretokenize(text)) this.encodeWord(w, out);
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  tokenBytes(prev: number, id: number): Uint8Array {
    const piece = this.vocab[id];
    if (piece === undefined) throw new Error(`${this.name}: token id ${id} is outside the vocabulary (${this.vocab.length})`);
    if (this.special.has(id)) return new Uint8Array(0);
    const b = byteOfPiece(piece);
    if (b !== null && this.byteFallback) return Uint8Array.of(b);
    let s = piece.split(this.spaceRep).join(' ');
    // Strip the prefix space of the first token (after BOS, or at the very start).
    if ((prev === this.bosId || prev === -1) && this.stripLeading && s.startsWith(' ')) s = s.slice(1);
    return utf8.encode(s);
  }

  decodeToken(prev: number, id: number): string {
    return decodeTokenText(this, prev, id);
  }

  decode(ids: number[]): string {
    return decodeIds(this, ids);
  }
}

/**
 * Build an HF LLaMA tokenizer.json from SentencePiece pieces and scores: llama2.c tokenizer.bin
 * (spaces stored as ' ', BOS/EOS as "\n<s>\n"), or tokenizer.model pieces (already '▁').
 * `special` are the ids written as added special tokens (default 0, 1, 2 = <unk>, <s>, </s>,
 * named so whatever the pieces say). Merges: every split of every non-special piece into two
 * pieces of the vocabulary, ranked by the merged piece's score (descending), ties by id, then by
 * the left piece's id, as transformers' SentencePieceExtractor.
 */
export function tokenizerJsonFromPieces(vocab: string[], scores: ArrayLike<number>, opts: { special?: number[] } = {}): TokenizerJson {
  const special = opts.special ?? [0, 1, 2];
  const specialName = (i: number) => (i < 3 ? SPECIALS[i] : vocab[i]);
  const isSpecial = (i: number) => special.includes(i);
  // A Map, not an object: pieces such as "constructor" or "__proto__" are in real vocabularies.
  const vmap = new Map<string, number>();
  vocab.forEach((p, i) => {
    const piece = isSpecial(i) ? specialName(i) : byteOfPiece(p) !== null ? p : p.replace(/ /g, SP);
    if (!vmap.has(piece)) vmap.set(piece, i);
  });
  const merges: { l: string; r: string; score: number; id: number; li: number }[] = [];
  for (const [piece, id] of vmap) {
    if (isSpecial(id) || byteOfPiece(piece) !== null) continue;
    const cps = [...piece];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join(''), r = cps.slice(k).join('');
      const li = vmap.get(l), ri = vmap.get(r);
      if (li !== undefined && ri !== undefined && !isSpecial(li) && !isSpecial(ri)) merges.push({ l, r, score: scores[id], id, li });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.li - b.li);
  const modelVocab = Object.fromEntries(vmap) as Record<string, number>;
  const bos = special.includes(1) ? 1 : special[0];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((id) => ({ id, content: specialName(id), single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SP }, { type: 'Replace', pattern: { String: ' ' }, content: SP }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: specialName(bos), type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: specialName(bos), type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: specialName(bos), type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { [specialName(bos)]: { id: specialName(bos), ids: [bos], tokens: [specialName(bos)] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab: modelVocab, merges: merges.map((m) => [m.l, m.r] as [string, string]) },
  };
}

export function parseTokenizerJson(text: string, name = 'tokenizer.json'): HfBpeTokenizer {
  return new HfBpeTokenizer(parseJsonObject(text, name) as TokenizerJson, name);
}

// ---- SentencePiece tokenizer.model (protobuf ModelProto) ----

export const SP_PIECE_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  /** TrainerSpec.model_type: 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR */
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  normalizerName: string;
}

/** Parse the fields of sentencepiece_model.proto that tokenization needs. */
export function parseSentencePieceModel(bytes: Uint8Array, name = 'tokenizer.model'): SentencePieceModel {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder('utf-8', { fatal: false });
  const bad = (m: string): never => {
    throw new Error(`${name}: not a SentencePiece model (${m})`);
  };
  // Reads one message's fields in [start, end): calls f(field, wire, value/offsets).
  const walk = (start: number, end: number, f: (field: number, wire: number, v: number, s: number, e: number) => void) => {
    let p = start;
    const varint = (): number => {
      let r = 0, mul = 1, lo = 0;
      for (let k = 0; k < 10; k++) {
        if (p >= end) bad(`varint past the end at byte ${p}`);
        const b = bytes[p++];
        r += (b & 0x7f) * mul;
        if (k < 5) lo = (lo | ((b & 0x7f) << (7 * k))) >>> 0;
        mul *= 128;
        // negative int32 values are written as 10-byte varints: keep their low 32 bits, signed
        if (!(b & 0x80)) return k === 9 ? lo | 0 : r;
      }
      return bad(`varint too long at byte ${p}`);
    };
    while (p < end) {
      const tag = varint();
      const field = Math.floor(tag / 8), wire = tag & 7;
      if (wire === 0) {
        f(field, wire, varint(), 0, 0);
      } else if (wire === 1) {
        if (p + 8 > end) bad('truncated 64-bit field');
        f(field, wire, dv.getFloat64(p, true), p, p + 8);
        p += 8;
      } else if (wire === 2) {
        const len = varint();
        if (p + len > end) bad(`field ${field} of ${len} bytes runs past the end`);
        f(field, wire, len, p, p + len);
        p += len;
      } else if (wire === 5) {
        if (p + 4 > end) bad('truncated 32-bit field');
        f(field, wire, dv.getFloat32(p, true), p, p + 4);
        p += 4;
      } else bad(`unsupported wire type ${wire} at byte ${p}`);
    }
  };
  const m: SentencePieceModel = { pieces: [], modelType: 1, byteFallback: false, unkId: 0, bosId: 1, eosId: 2, padId: -1, addDummyPrefix: true, removeExtraWhitespaces: true, normalizerName: '' };
  walk(0, bytes.byteLength, (field, wire, v, s, e) => {
    if (field === 1 && wire === 2) {
      const piece = { piece: '', score: 0, type: SP_PIECE_TYPE.NORMAL as number };
      walk(s, e, (f2, w2, v2, s2, e2) => {
        if (f2 === 1 && w2 === 2) piece.piece = dec.decode(bytes.subarray(s2, e2));
        else if (f2 === 2 && w2 === 5) piece.score = v2;
        else if (f2 === 3 && w2 === 0) piece.type = v2;
      });
      m.pieces.push(piece);
    } else if (field === 2 && wire === 2) {
      walk(s, e, (f2, w2, v2) => {
        if (w2 !== 0) return;
        if (f2 === 3) m.modelType = v2;
        else if (f2 === 35) m.byteFallback = v2 !== 0;
        else if (f2 === 40) m.unkId = v2;
        else if (f2 === 41) m.bosId = v2;
        else if (f2 === 42) m.eosId = v2;
        else if (f2 === 43) m.padId = v2;
      });
    } else if (field === 3 && wire === 2) {
      walk(s, e, (f2, w2, v2, s2, e2) => {
        if (f2 === 1 && w2 === 2) m.normalizerName = dec.decode(bytes.subarray(s2, e2));
        else if (f2 === 3 && w2 === 0) m.addDummyPrefix = v2 !== 0;
        else if (f2 === 4 && w2 === 0) m.removeExtraWhitespaces = v2 !== 0;
      });
    }
  });
  if (m.pieces.length === 0) bad('no pieces');
  return m;
}

/** tokenizer.json from a SentencePiece BPE tokenizer.model (as transformers' LlamaConverter). */
export function tokenizerJsonFromSentencePiece(bytes: Uint8Array, name = 'tokenizer.model'): TokenizerJson {
  const m = parseSentencePieceModel(bytes, name);
  if (m.modelType !== 2) throw new Error(`${name}: SentencePiece model type ${m.modelType} (${['', 'UNIGRAM', 'BPE', 'WORD', 'CHAR'][m.modelType] ?? '?'}) is not supported; only BPE (LLaMA) converts to a BPE tokenizer.json`);
  if (!m.addDummyPrefix) throw new Error(`${name}: add_dummy_prefix=false is not supported (LLaMA tokenizers add it)`);
  if (m.removeExtraWhitespaces) throw new Error(`${name}: remove_extra_whitespaces=true is not supported (LLaMA tokenizers keep spaces as they are)`);
  const special = m.pieces.flatMap((p, i) => (p.type === SP_PIECE_TYPE.CONTROL || p.type === SP_PIECE_TYPE.UNKNOWN ? [i] : []));
  const json = tokenizerJsonFromPieces(m.pieces.map((p) => p.piece), Float32Array.from(m.pieces, (p) => p.score), { special });
  json.model!.byte_fallback = m.byteFallback;
  return json;
}
