// Tokenizers on the 32000-token LLaMA-2 vocabulary: llama2.c tokenizer.bin semantics, the
// tokenizer.json converted from it, and llama-tokenizer-js (same vocabulary) as a second opinion.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import llamaTokenizer from 'llama-tokenizer-js';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from './data';
import { Llama2cTokenizer } from './tokenizer';
import { HfBpeTokenizer, parseTokenizerJson, tokenizerJsonFromPieces } from './hf-tokenizer';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

const STRINGS = [
  'Hello world!',
  'Once upon a time, there was a little girl named Lily.',
  ' leading space',
  'trailing space ',
  'runs   of    spaces',
  'line one\nline two\n\nline four',
  'tabs\tand\ttabs',
  'unicode: café, naïve, Zürich, Ωμέγα',
  'CJK: 我爱自然语言处理 日本語のテキスト',
  'emoji: 🦙🔥👍🏽 and 🇫🇷',
  'numbers 1234567890 and symbols #$%^&*()[]{}<>',
  '<s> not a special token </s>',
  'a',
  '  ',
  'The quick brown fox jumps over the lazy dog.'.repeat(3),
];

describe.skipIf(!hasSharedData)('LLaMA-2 32000-token vocabulary', () => {
  const bin = () => new Llama2cTokenizer(readFileSync(sharedPath('tokenizers/llama2/tokenizer.bin')), 'tokenizer.bin');
  it('tokenizer.bin encodes like llama-tokenizer-js and round-trips', () => {
    const tok = bin();
    expect(tok.vocabSize).toBe(32000);
    for (const s of STRINGS) {
      const ids = tok.encode(s, { bos: true });
      expect(ids, JSON.stringify(s)).toEqual(llamaTokenizer.encode(s));
      expect(tok.decode(ids)).toBe(s);
    }
  });
  it('the converted tokenizer.json agrees with tokenizer.bin (encode and decode)', () => {
    const tb = bin();
    const json = JSON.stringify(tokenizerJsonFromPieces(tb.vocab, tb.scores));
    const tj = parseTokenizerJson(json);
    expect(tj).toBeInstanceOf(HfBpeTokenizer);
    for (const s of STRINGS) {
      const ids = tj.encode(s, { bos: true });
      expect(ids, JSON.stringify(s)).toEqual(tb.encode(s, { bos: true }));
      expect(tj.decode(ids)).toBe(s);
    }
    // and on real text, many documents
    const docs = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').slice(0, 40);
    for (const d of docs) expect(tj.encode(d.trim())).toEqual(tb.encode(d.trim()));
  });
  it('empty string is just BOS; eos on request', () => {
    const tok = bin();
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('hi', { bos: false, eos: true }).at(-1)).toBe(2);
  });
});

describe.skipIf(!hasSharedData)('stories260K 512-token tokenizer', () => {
  it('round-trips TinyStories text', () => {
    const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin');
    expect(tok.vocabSize).toBe(512);
    const docs = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').slice(0, 20);
    for (const d of docs) expect(tok.decode(tok.encode(d.trim()))).toBe(d.trim());
  });
});
