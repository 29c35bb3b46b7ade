// Hugging Face tokenizer.json, encoded by `@huggingface/tokenizers` (Tokenizers.js: the HF
// pipeline of normalizer, pre-tokenizer, model, decoder) for every kind a small LLaMA ships:
// - byte-level BPE (GPT-2, LLaMA-3, SmolLM: ByteLevel pre-tokenizer, often after a regex Split),
// - SentencePiece-style BPE with byte fallback (LLaMA-1/2, TinyLlama, Mistral: '▁' written by the
//   normalizer Sequence[Prepend('▁'), Replace(' ', '▁')] or by a Metaspace pre-tokenizer),
// - Unigram (SentencePiece unigram models).
// This file validates the JSON first (zod, ids against what the file holds, merges against the
// vocabulary), so a hostile file gets a message naming it, then hands the library a normalised
// copy. BOS and EOS come from tokenizer_config.json / generation_config.json / config.json when
// given, else from the post-processor template and the usual names.
//
// On purpose, as sentencepiece, llama2.c and llama-tokenizer-js (and unlike HF's default):
// special tokens written in the text ("<s>", "<|begin_of_text|>") are encoded as text, not as the
// special id (non-special added tokens are matched as HF does); decode always skips special
// tokens and never "cleans up tokenization spaces", so decode(encode(s)) gives s back.
// Library gaps filled here: Metaspace's `split` (the library never splits on '▁'), Metaspace's
// legacy `add_prefix_space: false`, and the Metaspace-only decoder our BPE trainer used to write
// (byte tokens need ByteFallback: such a file gets Sequence[ByteFallback, Metaspace]).
//
// Also here: converters to such a tokenizer.json from llama2.c's tokenizer.bin (pieces + scores)
// and from SentencePiece's tokenizer.model (a small protobuf reader), with merges ranked by the
// merged piece's score as transformers' LlamaConverter / SentencePieceExtractor does.
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { byteOfPiece, decodeTokenText, type EncodeOptions, type Tokenizer } from './tokenizer';
import { LIMITS, maxOf, parseJsonObject, parseWith, show } from './validate';

const SP = '\u2581'; // ▁
const SPECIALS = ['<unk>', '<s>', '</s>'];
const utf8 = new TextEncoder();

export interface TokenizerJson {
  version?: string;
  model?: { type?: string; vocab?: Record<string, number> | [string, number][]; merges?: (string | [string, string])[]; byte_fallback?: boolean; fuse_unk?: boolean; unk_token?: string | null; unk_id?: number | null; [k: string]: unknown };
  added_tokens?: { id: number; content: string; special?: boolean; [k: string]: unknown }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  [k: string]: unknown;
}

/** The files beside tokenizer.json that name BOS / EOS (text or parsed JSON; any may be absent). */
export interface TokenizerExtras {
  tokenizerConfig?: string | Record<string, unknown> | null;
  generationConfig?: string | Record<string, unknown> | null;
  config?: string | Record<string, unknown> | null;
}

interface Component {
  type?: string;
  [k: string]: unknown;
}

/** The components of a (possibly nested) Sequence, in order; each must be an object with a
 *  string "type", a Sequence must hold an array. */
function flatten(c: unknown, key: 'normalizers' | 'pretokenizers' | 'decoders' | 'processors', file: string, field: string, depth = 0): Component[] {
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

/** A copy of a component tree with each non-Sequence component passed through f. */
function mapComponents(c: unknown, key: 'normalizers' | 'pretokenizers' | 'decoders', f: (c: Component) => Component): unknown {
  if (c === null || c === undefined) return null;
  const o = c as Component;
  if (o.type === 'Sequence') return { ...o, [key]: (o[key] as unknown[]).map((x) => mapComponents(x, key, f)) };
  return f(o);
}

const optStr = z.string().nullish();
const MetaspaceSchema = z.looseObject({ replacement: z.string().min(1).nullish(), prepend_scheme: z.enum(['always', 'first', 'never']).nullish(), add_prefix_space: z.boolean().nullish(), split: z.boolean().nullish() });
const ReplaceSchema = z.looseObject({ pattern: z.union([z.looseObject({ String: z.string() }), z.looseObject({ Regex: z.string() })]), content: z.string() });
const PrependSchema = z.looseObject({ prepend: z.string() });
const StripSchema = z.looseObject({ content: optStr, start: z.number().int().min(0).nullish(), stop: z.number().int().min(0).nullish() });
const SplitSchema = z.looseObject({ pattern: z.union([z.looseObject({ String: z.string() }), z.looseObject({ Regex: z.string() })]), behavior: z.enum(['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']).nullish(), invert: z.boolean().nullish() });
const ByteLevelSchema = z.looseObject({ add_prefix_space: z.boolean().nullish(), trim_offsets: z.boolean().nullish(), use_regex: z.boolean().nullish() });
const tokenId = z.number().int().min(0).max(LIMITS.vocabSize - 1);
const AddedSchema = z.array(z.looseObject({ id: tokenId, content: z.string(), special: z.boolean().nullish(), normalized: z.boolean().nullish(), lstrip: z.boolean().nullish(), rstrip: z.boolean().nullish() })).nullish();
/** The parts of tokenizer.json this reader uses; everything else passes through. */
const BpeJsonSchema = z.looseObject({
  model: z.looseObject({
    vocab: z.record(z.string(), tokenId),
    merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])).nullish(),
    byte_fallback: z.boolean().nullish(),
    fuse_unk: z.boolean().nullish(),
    ignore_merges: z.boolean().nullish(),
    unk_token: optStr,
    continuing_subword_prefix: optStr,
    end_of_word_suffix: optStr,
  }),
  added_tokens: AddedSchema,
});
const UnigramJsonSchema = z.looseObject({
  model: z.looseObject({
    vocab: z.array(z.tuple([z.string(), z.number()])).min(1).max(LIMITS.vocabSize),
    unk_id: z.number().int().min(0).nullish(),
    byte_fallback: z.boolean().nullish(),
  }),
  added_tokens: AddedSchema,
});
/** tokenizer_config.json fields: a token is a string or an AddedToken-like object. */
const tokenRef = z.union([z.string(), z.looseObject({ content: z.string() })]).nullish();
const TokenizerConfigSchema = z.looseObject({ bos_token: tokenRef, eos_token: tokenRef, add_bos_token: z.boolean().nullish() });
const idRef = z.union([z.number().int().min(0), z.array(z.number().int().min(0))]).nullish();
const IdsSchema = z.looseObject({ bos_token_id: idRef, eos_token_id: idRef });

/** Check a component's fields with a schema, naming the file and the component. */
function checkComponent(schema: z.ZodType, c: Component, file: string, field: string): void {
  parseWith(schema, c, file, `${field} (${c.type})`);
}

const NORMALIZERS = new Set(['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'Strip', 'StripAccents', 'Replace', 'Prepend', 'Precompiled', 'BertNormalizer']);
const PRE_TOKENIZERS = new Set(['ByteLevel', 'Metaspace', 'Split', 'Digits', 'Punctuation', 'Whitespace', 'WhitespaceSplit', 'BertPreTokenizer', 'CharDelimiterSplit', 'Replace']);
const DECODERS = new Set(['ByteLevel', 'Metaspace', 'Replace', 'ByteFallback', 'Fuse', 'Strip', 'BPEDecoder', 'WordPiece']);

/** GPT-2's bytes_to_unicode, inverted: the byte each ByteLevel character stands for. */
const BYTE_OF_CHAR: Map<string, number> = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCharCode(cs[i]), b]));
})();

export type TokenizerKind = 'byte-level BPE' | 'SentencePiece BPE' | 'Unigram';

function parseExtra(v: string | Record<string, unknown> | null | undefined, file: string): Record<string, unknown> | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? parseJsonObject(v, file) : v;
}

export class HfTokenizer implements Tokenizer {
  readonly kind: TokenizerKind;
  /** id -> piece ('' where the file has no token with that id) */
  readonly vocab: string[];
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** where BOS / EOS came from, for the model card */
  readonly specialSource: string;
  private readonly ids = new Map<string, number>();
  private readonly special = new Set<number>();
  private readonly added = new Set<number>();
  private readonly lib: HfLibTokenizer;
  private readonly byteFallback: boolean;
  /** the decoder strips one leading space (Strip(' ', 1, 0), or Metaspace with a prefix) */
  private readonly stripLeading: boolean;
  private readonly spaceRep: string; // what the decoder turns back into ' '
  /** no piece holds '\n' (so no merge crosses one) and nothing else splits the text: words are
   *  cut at each '\n' before BPE, which gives the same ids and keeps a megabyte-long text from
   *  being one word (the library's BPE is 8x slower on one 1 MB word than on its lines) */
  private readonly splitNewlines: boolean;

  constructor(json: TokenizerJson, readonly name = 'tokenizer.json', extras: TokenizerExtras = {}) {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${name}: not a JSON object`);
    const m0 = json.model as unknown;
    if (typeof m0 !== 'object' || m0 === null || Array.isArray(m0)) throw new Error(`${name}: "model" must be an object, got ${show(m0)}`);
    const m = m0 as NonNullable<TokenizerJson['model']>;
    const type = m.type ?? (m.merges ? 'BPE' : Array.isArray(m.vocab) ? 'Unigram' : undefined);
    if (type !== 'BPE' && type !== 'Unigram') throw new Error(`${name}: model.type ${JSON.stringify(m.type)} is not supported (BPE, byte-level or SentencePiece style, and Unigram are)`);
    if (!m.vocab) throw new Error(`${name}: missing "model.vocab"`);
    parseWith(type === 'BPE' ? BpeJsonSchema : UnigramJsonSchema, json, name);
    if (type === 'Unigram' && m.byte_fallback) throw new Error(`${name}: Unigram with byte_fallback is not supported (@huggingface/tokenizers would emit <unk> where HF emits bytes)`);

    // components: known types, checked fields
    const pre = flatten(json.pre_tokenizer, 'pretokenizers', name, 'pre_tokenizer');
    for (const p of pre) {
      if (!PRE_TOKENIZERS.has(p.type!)) throw new Error(`${name}: pre-tokenizer ${JSON.stringify(p.type)} is not supported`);
      if (p.type === 'Metaspace') checkComponent(MetaspaceSchema, p, name, 'pre_tokenizer');
      if (p.type === 'Split') checkComponent(SplitSchema, p, name, 'pre_tokenizer');
      if (p.type === 'ByteLevel') checkComponent(ByteLevelSchema, p, name, 'pre_tokenizer');
    }
    for (const n of flatten(json.normalizer, 'normalizers', name, 'normalizer')) {
      if (!NORMALIZERS.has(n.type!)) throw new Error(`${name}: normalizer ${JSON.stringify(n.type)} is not supported`);
      if (n.type === 'Prepend') checkComponent(PrependSchema, n, name, 'normalizer');
      if (n.type === 'Replace') checkComponent(ReplaceSchema, n, name, 'normalizer');
    }
    const dec = flatten(json.decoder, 'decoders', name, 'decoder');
    for (const d of dec) {
      if (!DECODERS.has(d.type!)) throw new Error(`${name}: decoder ${JSON.stringify(d.type)} is not supported`);
      if (d.type === 'Metaspace') checkComponent(MetaspaceSchema, d, name, 'decoder');
      else if (d.type === 'Replace') checkComponent(ReplaceSchema, d, name, 'decoder');
      else if (d.type === 'Strip') checkComponent(StripSchema, d, name, 'decoder');
      else if (d.type === 'ByteLevel') checkComponent(ByteLevelSchema, d, name, 'decoder');
    }

    // Ids index a dense table: the largest id must lie within the number of entries the file holds
    // (a stray id of 1e9 would otherwise allocate a billion-entry table). No spread: a 256k-entry
    // vocabulary overflows the argument stack.
    const entries: [string, number][] = Array.isArray(m.vocab) ? m.vocab.map((e, i) => [e[0], i]) : Object.entries(m.vocab); // own keys: "__proto__" is a piece
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
      if (!this.ids.has(piece)) this.ids.set(piece, id);
    }
    for (const t of added) {
      this.vocab[t.id] = t.content;
      if (!this.ids.has(t.content)) this.ids.set(t.content, t.id);
      this.added.add(t.id);
      if (t.special) this.special.add(t.id);
    }
    if (type === 'BPE') {
      (m.merges ?? []).forEach((mg, rank) => {
        let l: string, r: string;
        if (Array.isArray(mg)) [l, r] = mg;
        else {
          const k = mg.indexOf(' ', 1); // old format "a b"; a piece may itself be a space
          if (k < 0) throw new Error(`${name}: merge ${JSON.stringify(mg)} at rank ${rank} is not "left right"`);
          [l, r] = [mg.slice(0, k), mg.slice(k + 1)];
        }
        if (!this.ids.has(l) || !this.ids.has(r) || !this.ids.has(l + r)) throw new Error(`${name}: merge ${JSON.stringify([l, r])} at rank ${rank} uses a piece missing from the vocabulary`);
      });
    }

    this.kind = pre.some((p) => p.type === 'ByteLevel') || dec.some((d) => d.type === 'ByteLevel') ? 'byte-level BPE' : type === 'Unigram' ? 'Unigram' : 'SentencePiece BPE';
    if (this.kind === 'byte-level BPE') {
      // a byte-level vocabulary holds the 256 characters standing for bytes (GPT-2's alphabet);
      // without them the text would encode to unknowns (a ByteLevel step on a SentencePiece vocabulary)
      let missing = 0;
      for (const ch of BYTE_OF_CHAR.keys()) if (!this.ids.has(ch)) missing++;
      if (missing > 0) throw new Error(`${name}: a ByteLevel pre-tokenizer or decoder, but ${missing} of the 256 byte-level characters are not in model.vocab (not a byte-level BPE vocabulary)`);
    }
    this.unkId = type === 'Unigram' ? (m.unk_id ?? 0) : (this.ids.get(m.unk_token ?? '<unk>') ?? -1);

    // BOS / EOS: tokenizer_config.json names them; generation_config.json / config.json give ids;
    // else the post-processor's template, else the usual names.
    const { bos, eos, source } = this.resolveSpecials(json, extras);
    this.bosId = bos;
    this.eosId = eos;
    this.specialSource = source;

    // decoding as the decoder says (for tokenBytes; decode goes through the library)
    const hasByteFallbackDecoder = dec.some((d) => d.type === 'ByteFallback');
    const legacyMetaspaceOnly = m.byte_fallback === true && !hasByteFallbackDecoder && dec.length > 0 && dec.every((d) => d.type === 'Metaspace');
    this.byteFallback = m.byte_fallback === true && (hasByteFallbackDecoder || legacyMetaspaceOnly);
    const ms = dec.find((d) => d.type === 'Metaspace');
    const rep = dec.find((d) => d.type === 'Replace' && (d.pattern as { String?: string })?.String !== undefined && d.content === ' ');
    this.spaceRep = ms ? ((ms.replacement as string | undefined) ?? SP) : rep ? (rep.pattern as { String: string }).String : SP;
    const strip = dec.find((d) => d.type === 'Strip');
    const msScheme = (c: Component) => (c.prepend_scheme as string | undefined) ?? (c.add_prefix_space === false ? 'never' : 'always');
    this.stripLeading = strip ? (strip.content ?? ' ') === ' ' && Number(strip.start) >= 1 : ms ? msScheme(ms) !== 'never' : false;

    // the library's copy: specials left out of the added-token matcher (they are text here), no
    // post-processor (BOS/EOS are added here), Metaspace normalised to what the library reads
    const fixMs = (c: Component): Component => (c.type === 'Metaspace' ? { ...c, prepend_scheme: msScheme(c) } : c);
    let decoder = mapComponents(json.decoder, 'decoders', (c) => (c.type === 'Metaspace' && msScheme(c) === 'never' ? { type: 'Replace', pattern: { String: (c.replacement as string | undefined) ?? SP }, content: ' ' } : c));
    if (legacyMetaspaceOnly) decoder = { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, decoder] };
    const model = type === 'BPE' ? { ...m, type, merges: m.merges ?? [] } : { ...m, type };
    const libJson = {
      ...json,
      model,
      added_tokens: added.filter((t) => !t.special),
      normalizer: json.normalizer ?? null,
      pre_tokenizer: mapComponents(json.pre_tokenizer, 'pretokenizers', fixMs),
      post_processor: null,
      decoder,
    };
    try {
      this.lib = new HfLibTokenizer(libJson, {});
    } catch (e) {
      throw new Error(`${name}: @huggingface/tokenizers cannot build this tokenizer (${(e as Error).message.slice(0, 120)})`);
    }
    this.splitNewlines = type === 'BPE' && !added.some((t) => !t.special) && !this.vocab.some((p, id) => !this.special.has(id) && p.includes('\n'));
    // Metaspace split (HF's default): the words BPE runs on end before each '▁' (MergedWithNext)
    const splitMs = pre.find((p) => p.type === 'Metaspace' && p.split !== false);
    const libPre = this.lib.pre_tokenizer;
    if (splitMs && libPre) {
      const r = (splitMs.replacement as string | undefined) ?? SP;
      const wrapped = (text: string | string[], opts?: unknown) => (libPre as unknown as (t: string | string[], o?: unknown) => string[])(text, opts).flatMap((w) => splitBefore(w, r));
      (this.lib as unknown as { pre_tokenizer: unknown }).pre_tokenizer = wrapped;
    }
  }

  private resolveSpecials(json: TokenizerJson, extras: TokenizerExtras): { bos: number; eos: number; source: string } {
    const name = this.name;
    const V = this.vocab.length;
    const byName = (t: unknown, file: string, k: string): number | undefined => {
      if (t === null || t === undefined) return undefined;
      const s = typeof t === 'string' ? t : (t as { content: string }).content;
      const id = this.ids.get(s);
      if (id === undefined) throw new Error(`${file}: ${k} ${show(s)} is not a token of ${name}`);
      return id;
    };
    const byId = (v: number | number[] | null | undefined, file: string, k: string): number | undefined => {
      if (v === null || v === undefined) return undefined;
      const id = Array.isArray(v) ? v[0] : v;
      if (id === undefined) return undefined;
      if (id >= V) throw new Error(`${file}: ${k} ${id} is outside the vocabulary of ${name} (${V})`);
      return id;
    };
    let bos: number | undefined, eos: number | undefined;
    const from: string[] = [];
    const tc = parseExtra(extras.tokenizerConfig, 'tokenizer_config.json');
    if (tc) {
      const c = parseWith(TokenizerConfigSchema, tc, 'tokenizer_config.json');
      bos = byName(c.bos_token, 'tokenizer_config.json', 'bos_token');
      eos = byName(c.eos_token, 'tokenizer_config.json', 'eos_token');
      if (bos !== undefined || eos !== undefined) from.push('tokenizer_config.json');
    }
    for (const [file, v] of [['generation_config.json', extras.generationConfig], ['config.json', extras.config]] as const) {
      const o = parseExtra(v, file);
      if (!o) continue;
      const c = parseWith(IdsSchema, o, file);
      const b = bos === undefined ? byId(c.bos_token_id, file, 'bos_token_id') : undefined;
      const e = eos === undefined ? byId(c.eos_token_id, file, 'eos_token_id') : undefined;
      if (b !== undefined || e !== undefined) from.push(file);
      bos ??= b;
      eos ??= e;
    }
    if (bos === undefined) {
      // the post-processor's template: its first special token
      const tpl = flatten(json.post_processor, 'processors', name, 'post_processor').find((p) => p.type === 'TemplateProcessing');
      const single = Array.isArray(tpl?.single) ? (tpl.single as { SpecialToken?: { id?: unknown } }[]) : [];
      const first = single.find((x) => x && typeof x === 'object' && 'SpecialToken' in x);
      const s = first?.SpecialToken?.id;
      const id = typeof s === 'string' ? this.ids.get(s) : undefined;
      if (id !== undefined && single.indexOf(first!) === 0) {
        bos = id;
        from.push('the post-processor');
      }
    }
    const named = (list: string[]) => list.map((s) => this.ids.get(s)).find((i) => i !== undefined);
    if (bos === undefined) bos = named(['<s>', '<|begin_of_text|>', '<|endoftext|>', '<bos>', '<|startoftext|>']);
    if (eos === undefined) eos = named(['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>']);
    // the historical default (LLaMA ids) where the file names nothing
    bos ??= 1;
    eos ??= 2;
    for (const [k, id] of [['BOS', bos], ['EOS', eos]] as const) if (id >= V) throw new Error(`${name}: no ${k} token (none named by tokenizer_config.json, config.json or the file) and the default id ${id} is outside the vocabulary (${V})`);
    return { bos, eos, source: from.length ? from.join(', ') : 'the token names' };
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** The text as the normalizer and pre-tokenizer leave it: the words the model runs on. */
  pretokenize(text: string): string[] {
    const lib = this.lib as unknown as { normalizer: ((s: string) => string) | null; pre_tokenizer: ((s: string, o: unknown) => string[]) | null };
    const s = lib.normalizer ? lib.normalizer(text) : text;
    if (s.length === 0) return [];
    return lib.pre_tokenizer ? lib.pre_tokenizer(s, { section_index: 0 }) : [s];
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos ?? true) out.push(this.bosId);
    if (text.length > 0) {
      if (this.splitNewlines) {
        const model = this.lib.model as unknown as ((words: string[]) => string[]) & { tokens_to_ids: Map<string, number>; unk_token_id?: number };
        const words = this.pretokenize(text).flatMap((w) => (w.includes('\n') ? w.split(/(\n)/).filter((x) => x.length > 0) : [w]));
        for (const t of model(words)) {
          const id = model.tokens_to_ids.get(t) ?? model.unk_token_id;
          if (id === undefined) throw new Error(`${this.name}: "${t}" has no id and the model has no unk token`);
          out.push(id);
        }
      } else for (const id of this.lib.encode(text, { add_special_tokens: false }).ids) out.push(id);
    }
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  tokenBytes(prev: number, id: number): Uint8Array {
    const piece = this.vocab[id];
    if (piece === undefined) throw new Error(`${this.name}: token id ${id} is outside the vocabulary (${this.vocab.length})`);
    if (this.special.has(id)) return new Uint8Array(0);
    if (this.added.has(id)) return utf8.encode(piece);
    if (this.kind === 'byte-level BPE') {
      const out = new Uint8Array(piece.length * 3);
      let n = 0;
      for (const ch of piece) {
        const b = BYTE_OF_CHAR.get(ch);
        if (b !== undefined) out[n++] = b;
        else for (const x of utf8.encode(ch)) out[n++] = x;
      }
      return out.slice(0, n);
    }
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

  /** Through the library's decoder; special tokens skipped, no clean-up of spaces. */
  decode(ids: number[]): string {
    const keep: number[] = [];
    for (const id of ids) {
      if (this.vocab[id] === undefined) throw new Error(`${this.name}: token id ${id} is outside the vocabulary (${this.vocab.length})`);
      if (!this.special.has(id)) keep.push(id);
    }
    if (keep.length === 0) return '';
    return this.lib.decode(keep, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/** Split a word before each occurrence of `rep` (a leading one stays with its word). */
function splitBefore(w: string, rep: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = w.indexOf(rep, 1); i > 0; i = w.indexOf(rep, i + rep.length)) {
    if (i > start) out.push(w.slice(start, i));
    start = i;
  }
  out.push(w.slice(start));
  return out;
}

/** The former name (every tokenizer.json is one class now). */
export const HfBpeTokenizer = HfTokenizer;
export type HfBpeTokenizer = HfTokenizer;

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

/** The loaders' entry: a tokenizer.json's text (and, where present, the files naming BOS/EOS). */
export function parseTokenizerJson(text: string, name = 'tokenizer.json', extras: TokenizerExtras = {}): HfTokenizer {
  return new HfTokenizer(parseJsonObject(text, name) as TokenizerJson, name, extras);
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
