// Tokenizers on the 32000-token LLaMA-2 vocabulary: llama2.c tokenizer.bin semantics (checked
// against a literal transcription of run.c's quadratic encode loop and against
// llama-tokenizer-js), tokenizer.json converted from tokenizer.bin and from the SentencePiece
// tokenizer.model, hand-made tokenizer.json variants (Metaspace, unk fusing), streaming decode.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import llamaTokenizer from 'llama-tokenizer-js';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from './data';
import { Llama2cTokenizer, StreamDecoder, bpeMerge } from './tokenizer';
import { HfBpeTokenizer, parseSentencePieceModel, parseTokenizerJson, tokenizerJsonFromPieces, tokenizerJsonFromSentencePiece, type TokenizerJson } from './hf-tokenizer';
import { ByteTokenizer } from './byte-tokenizer';
import { loadTokenizerFile } from './load-node';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

const STRINGS = [
  'Hello world!',
  'Once upon a time, there was a little girl named Lily.',
  ' leading space',
  '   three leading spaces',
  'trailing space ',
  'runs   of    spaces     and  two',
  'line one\nline two\n\nline four\n',
  '\n',
  '\n\n\nnewlines first',
  'windows\r\nline ends',
  'tabs\tand\ttabs\t\t\tmany',
  '\t',
  'unicode: café, naïve, Zürich, Ωμέγα, Привет мир',
  'combining: e\u0301 vs \u00e9, Å',
  'CJK: 我爱自然语言处理 日本語のテキスト 한국어 텍스트',
  'emoji: 🦙🔥👍🏽 and 🇫🇷 and 👩‍👩‍👧',
  'rare: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷺ ꙮ',
  'arabic: مرحبا بالعالم',
  'numbers 1234567890 and 3.14159 and symbols #$%^&*()[]{}<>~`|\\',
  '<s> not a special token </s> <unk> <0x41>',
  'a',
  ' ',
  '  ',
  'The quick brown fox jumps over the lazy dog. '.repeat(3),
];

/** run.c's encode(), transcribed literally (quadratic scan), as the reference for merge order. */
function runcEncode(tok: Llama2cTokenizer, text: string): number[] {
  const lookup = new Map<string, number>();
  tok.vocab.forEach((v, i) => {
    if (!lookup.has(v)) lookup.set(v, i);
  });
  const t: number[] = [1];
  if (text.length > 0) t.push(lookup.get(' ')!);
  for (const ch of text) {
    const id = lookup.get(ch);
    if (id !== undefined) t.push(id);
    else for (const b of new TextEncoder().encode(ch)) t.push(b + 3);
  }
  for (;;) {
    let best = -1e10, bestId = -1, bestIdx = -1;
    for (let i = 0; i < t.length - 1; i++) {
      const id = lookup.get(tok.vocab[t[i]] + tok.vocab[t[i + 1]]);
      if (id !== undefined && tok.scores[id] > best) {
        best = tok.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    t.splice(bestIdx, 2, bestId);
  }
  return t;
}

describe('bpeMerge', () => {
  it('merges lowest priority first, leftmost among equals', () => {
    // pieces: 0 a, 1 b, 2 ab, 3 aab, 4 bb; a+b -> ab (p1), a+ab -> aab (p0), b+b -> bb (p1)
    const table: Record<string, { id: number; priority: number }> = { '0,1': { id: 2, priority: 1 }, '0,2': { id: 3, priority: 0 }, '1,1': { id: 4, priority: 1 } };
    const pair = (a: number, b: number) => table[`${a},${b}`];
    expect(bpeMerge([0, 0, 1], pair)).toEqual([3]); // a a b -> a ab -> aab
    expect(bpeMerge([1, 1, 1], pair)).toEqual([4, 1]); // leftmost bb first
    expect(bpeMerge([0, 1, 1], pair)).toEqual([2, 1]); // ab (pos 0) before bb (pos 1), same priority
    expect(bpeMerge([], pair)).toEqual([]);
    expect(bpeMerge([1], pair)).toEqual([1]);
  });
});

describe.skipIf(!hasSharedData)('LLaMA-2 32000-token vocabulary', () => {
  const bin = () => new Llama2cTokenizer(readFileSync(sharedPath('tokenizers/llama2/tokenizer.bin')), 'tokenizer.bin');
  const docs = () => readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').map((d) => d.trim());

  it('tokenizer.bin encodes as run.c and as llama-tokenizer-js, and round-trips', () => {
    const tok = bin();
    expect(tok.vocabSize).toBe(32000);
    for (const s of STRINGS) {
      const ids = tok.encode(s, { bos: true });
      expect(ids, JSON.stringify(s)).toEqual(runcEncode(tok, s));
      // llama-tokenizer-js: BOS + dummy prefix space, like run.c (but '' gives [] there)
      expect(ids, JSON.stringify(s)).toEqual(llamaTokenizer.encode(s));
      expect(tok.decode(ids), JSON.stringify(s)).toBe(s);
      expect(tok.encode(s, { bos: false })).toEqual(ids.slice(1));
    }
    for (const d of docs().slice(0, 10)) expect(tok.encode(d)).toEqual(runcEncode(tok, d));
    // a few known ids (sentencepiece's own output for the LLaMA-2 tokenizer)
    expect(tok.encode('Hello world')).toEqual([1, 15043, 3186]);
    expect(tok.encode('\n')).toEqual([1, 29871, 13]);
  });

  it("a literal '▁' in the text: llama2.c byte-falls-back (run.c has ' ' in its vocabulary), tokenizer.json and llama-tokenizer-js read it as a space marker", () => {
    const tb = bin();
    const tj = parseTokenizerJson(JSON.stringify(tokenizerJsonFromPieces(tb.vocab, tb.scores)));
    const s = '▁ marker ▁▁x';
    expect(tb.encode(s)).toEqual(runcEncode(tb, s));
    expect(tb.encode(s).slice(2, 5)).toEqual([0xe2 + 3, 0x96 + 3, 0x81 + 3]);
    expect(tb.decode(tb.encode(s))).toBe(s);
    expect(tj.encode(s)).toEqual(llamaTokenizer.encode(s));
    expect(tj.decode(tj.encode(s))).toBe('  marker   x'); // as sentencepiece: '▁' is whitespace
  });

  it('empty string is just BOS; eos on request', () => {
    const tok = bin();
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { bos: false })).toEqual([]);
    expect(tok.encode('hi', { bos: false, eos: true }).at(-1)).toBe(2);
    expect(tok.decode([1])).toBe('');
  });

  it('the tokenizer.json converted from tokenizer.bin agrees with it (encode and decode)', () => {
    const tb = bin();
    const json = JSON.stringify(tokenizerJsonFromPieces(tb.vocab, tb.scores));
    const tj = parseTokenizerJson(json);
    expect(tj).toBeInstanceOf(HfBpeTokenizer);
    expect(tj.vocabSize).toBe(32000);
    for (const s of STRINGS) {
      const ids = tj.encode(s, { bos: true });
      expect(ids, JSON.stringify(s)).toEqual(tb.encode(s, { bos: true }));
      expect(tj.decode(ids)).toBe(s);
    }
    expect(tj.encode('')).toEqual([1]);
    for (const d of docs().slice(0, 40)) expect(tj.encode(d)).toEqual(tb.encode(d));
  });

  it('tokenizer.model (SentencePiece protobuf): same pieces and scores; its tokenizer.json is the same file', () => {
    const model = readFileSync(sharedPath('tokenizers/llama2/tokenizer.model'));
    const sp = parseSentencePieceModel(model);
    expect(sp.pieces.length).toBe(32000);
    expect(sp.modelType).toBe(2); // BPE
    expect(sp.byteFallback).toBe(true);
    expect(sp.addDummyPrefix).toBe(true);
    expect(sp.removeExtraWhitespaces).toBe(false);
    expect([sp.unkId, sp.bosId, sp.eosId, sp.padId]).toEqual([0, 1, 2, -1]);
    expect(sp.pieces.slice(0, 4).map((p) => p.piece)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(sp.pieces[1].type).toBe(3); // CONTROL
    expect(sp.pieces[3].type).toBe(6); // BYTE
    const tb = bin();
    for (let i = 3; i < 32000; i++) {
      if (sp.pieces[i].piece.replace(/\u2581/g, ' ') !== tb.vocab[i] || Math.fround(sp.pieces[i].score) !== tb.scores[i]) throw new Error(`piece ${i}: ${sp.pieces[i].piece} ${sp.pieces[i].score} vs ${tb.vocab[i]} ${tb.scores[i]}`);
    }
    const fromModel = JSON.stringify(tokenizerJsonFromSentencePiece(model));
    const fromBin = JSON.stringify(tokenizerJsonFromPieces(tb.vocab, tb.scores));
    expect(fromModel).toBe(fromBin);
    // and the Node loader takes a tokenizer.model path directly
    const viaPath = loadTokenizerFile(sharedPath('tokenizers/llama2/tokenizer.model'));
    for (const s of STRINGS) expect(viaPath.encode(s)).toEqual(tb.encode(s));
    expect(() => parseSentencePieceModel(new TextEncoder().encode('{"not": "protobuf"}'), 'x.model')).toThrow(/x\.model: not a SentencePiece model/);
  });

  it('linear-time merges: all of tiny-shakespeare (1.1 MB) as one text, same as llama-tokenizer-js on a slice', () => {
    const tok = bin();
    const text = readFileSync(sharedPath('text/tinyshakespeare.txt'), 'utf8');
    // O(n log n), not quadratic (run.c's scan), in the text's length: the merge work of an eighth of
    // it, then of all of it, counted (not timed): n log n gives ~9x, quadratic ~64x
    const eighth = text.slice(0, Math.floor(text.length / 8));
    const wEighth = { steps: 0 }, wAll = { steps: 0 };
    tok.encode(eighth, { work: wEighth });
    const ids = tok.encode(text, { work: wAll });
    const ratio = wAll.steps / wEighth.steps;
    expect(ids.length).toBeGreaterThan(250_000);
    expect(wAll.steps, 'merge work of 1.1 MB of text').toBeLessThan(40 * text.length);
    expect(ratio, `all of it took ${ratio.toFixed(1)}x the merge work of an eighth`).toBeLessThan(12);
    expect(tok.decode(ids)).toBe(text);
    const slice = text.slice(0, 20_000);
    expect(tok.encode(slice)).toEqual(llamaTokenizer.encode(slice));
  });

  it('streaming decode: StreamDecoder rebuilds multi-byte characters split over byte tokens', () => {
    const tok = bin();
    for (const s of STRINGS) {
      const ids = tok.encode(s);
      const sd = new StreamDecoder(tok);
      let out = '';
      for (const id of ids) {
        const piece = sd.push(id);
        expect(piece.includes('\uFFFD')).toBe(false);
        out += piece;
      }
      out += sd.flush();
      expect(out).toBe(s);
    }
    const ids = tok.encode('𝔘'); // not in the vocabulary: 4 byte tokens after '▁'
    expect(ids.slice(2)).toEqual([0xf0 + 3, 0x9d + 3, 0x94 + 3, 0x98 + 3]);
    expect(tok.decodeToken(ids[1], ids[2])).toBe('\uFFFD'); // one byte alone is not a character
    expect(tok.decodeToken(1, tok.encode('Hello')[1])).toBe('Hello'); // space stripped after BOS
    expect(tok.decodeToken(15043, tok.encode('Hello')[1])).toBe(' Hello');
  });

  it('Metaspace pre-tokenizer variant (prepend_scheme first, split or not) behaves as HF', () => {
    const tb = bin();
    const base = tokenizerJsonFromPieces(tb.vocab, tb.scores);
    const withMs = (split: boolean): TokenizerJson => ({ ...base, normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split }, decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split } });
    const ms = new HfBpeTokenizer(withMs(false));
    const mss = new HfBpeTokenizer(withMs(true));
    for (const s of STRINGS.filter((x) => !x.startsWith(' ') && !x.startsWith('▁'))) {
      expect(ms.encode(s), JSON.stringify(s)).toEqual(tb.encode(s));
      expect(ms.decode(ms.encode(s))).toBe(s);
    }
    // HF's Metaspace prepends nothing to text that already starts with a space
    expect(ms.encode(' leading')).toEqual(tb.encode('leading'));
    // split: BPE runs per '▁'-word, never across
    expect(mss.pretokenize('hello  world')).toEqual(['▁hello', '▁', '▁world']);
    expect(mss.encode('hello  world').slice(1).map((i) => mss.vocab[i])).toEqual(['▁hello', '▁', '▁world']);
  });
});

describe.skipIf(!hasSharedData)('stories260K 512-token tokenizer', () => {
  it('round-trips TinyStories text; its converted tokenizer.json agrees', () => {
    const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin');
    expect(tok.vocabSize).toBe(512);
    const tj = parseTokenizerJson(JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores)), 'tok512.json');
    const docs = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').slice(0, 20).map((d) => d.trim());
    for (const d of [...docs, ...STRINGS]) {
      const ids = tok.encode(d);
      expect(ids).toEqual(runcEncode(tok, d));
      expect(tok.decode(ids)).toBe(d);
      expect(tj.encode(d)).toEqual(ids);
      expect(tj.decode(ids)).toBe(d);
    }
  });
});

describe('hand-made tokenizer.json', () => {
  const tiny = (over: Partial<NonNullable<TokenizerJson['model']>> = {}, extra: Partial<TokenizerJson> = {}): TokenizerJson => ({
    added_tokens: [
      { id: 0, content: '<unk>', special: true },
      { id: 1, content: '<s>', special: true },
      { id: 2, content: '</s>', special: true },
    ],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3, a: 4, b: 5, '▁a': 6, ab: 7 }, merges: ['▁ a', 'a b'], byte_fallback: false, fuse_unk: true, unk_token: '<unk>', ...over },
    ...extra,
  });
  it('unknown characters become <unk>, fused when fuse_unk (no byte fallback here)', () => {
    expect(new HfBpeTokenizer(tiny()).encode('a xyz b')).toEqual([1, 6, 3, 0, 3, 5]);
    expect(new HfBpeTokenizer(tiny({ fuse_unk: false })).encode('a xyz b')).toEqual([1, 6, 3, 0, 0, 0, 3, 5]);
    expect(new HfBpeTokenizer(tiny()).encode('ab')).toEqual([1, 6, 5]); // '▁ a' ranks before 'a b'
    expect(new HfBpeTokenizer(tiny({ merges: [['a', 'b'], ['▁', 'a']] })).encode('ab')).toEqual([1, 3, 7]);
    expect(new HfBpeTokenizer(tiny()).decode([1, 6, 3, 0, 3, 5])).toBe('a  b'); // <unk> is special: skipped
  });
  it('rejects what it cannot run, by name', () => {
    expect(() => new HfBpeTokenizer(tiny({ type: 'WordPiece' }), 't.json')).toThrow(/t\.json: model\.type "WordPiece" is not supported/);
    expect(() => new HfBpeTokenizer(tiny({ type: 'Unigram' }), 't.json')).toThrow(/t\.json: "model\.vocab" must be an array/);
    expect(() => new HfBpeTokenizer(tiny({}, { pre_tokenizer: { type: 'Frobnicate' } }), 't.json')).toThrow(/t\.json: pre-tokenizer "Frobnicate" is not supported/);
    expect(() => new HfBpeTokenizer(tiny({}, { normalizer: { type: 'Frobnicate' } }), 't.json')).toThrow(/t\.json: normalizer "Frobnicate" is not supported/);
    expect(() => new HfBpeTokenizer(tiny({}, { decoder: { type: 'CTC' } }), 't.json')).toThrow(/t\.json: decoder "CTC" is not supported/);
    expect(() => new HfBpeTokenizer(tiny({}, { pre_tokenizer: { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated' } }), 't.json')).toThrow(/t\.json: @huggingface\/tokenizers cannot build this tokenizer/);
    // what the library runs now: NFKC, ByteLevel
    expect(new HfBpeTokenizer(tiny({}, { normalizer: { type: 'NFKC' } }), 't.json').encode('a')).toEqual([1, 4]); // (no '▁' prepended now)
    expect(() => new HfBpeTokenizer(tiny({}, { pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false } }), 't.json')).toThrow(/t\.json: a ByteLevel pre-tokenizer or decoder, but 254 of the 256 byte-level characters are not in model\.vocab/);
    expect(() => new HfBpeTokenizer(tiny({ merges: ['a q'] }), 't.json')).toThrow(/t\.json: merge \["a","q"\] at rank 0 uses a piece missing/);
    expect(() => parseTokenizerJson('{"model": ', 'bad.json')).toThrow(/bad\.json: not valid JSON/);
  });
});

describe('byte tokenizer', () => {
  it('round-trips any text through UTF-8 bytes', () => {
    const t = new ByteTokenizer();
    for (const s of STRINGS) {
      const ids = t.encode(s);
      expect(ids[0]).toBe(1);
      expect(t.decode(ids)).toBe(s);
      const sd = new StreamDecoder(t);
      expect(ids.map((i) => sd.push(i)).join('') + sd.flush()).toBe(s);
    }
  });
});
