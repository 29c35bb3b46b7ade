// Hostile tokenizer.json files (issue 13, part C): a 256k-entry byte-level BPE vocabulary loads and
// encodes (and a model with a smaller vocab_size refuses it by name); ids of 1e9 and ids beyond the
// model's vocabulary; malformed files. Every refusal names the file; nothing crashes or allocates
// by a stray id. (The fuzz harness, npm run fuzz, mutates the SentencePiece-style file at random.)
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTokenizerJson, tokenizerJsonFromPieces } from './hf-tokenizer';
import { byteLevelJson } from './byte-level-fixture';
import { checkVocabularies } from './validate';
import { writeHfModel } from './hf';
import { loadModelFromPath } from './load-node';
import { randomWeights, tinyConfig } from '../model/config';

const cfgText = (o: Record<string, unknown>) => JSON.stringify({ architectures: ['LlamaForCausalLM'], ...o });

describe('hostile tokenizer.json', () => {
  const N = 262144 - 2; // 256k entries with the two special tokens
  const big = byteLevelJson(N);
  const bigText = JSON.stringify(big);

  it('a 256k-entry byte-level BPE vocabulary loads, encodes by its merges and round-trips; a model with a smaller vocab_size refuses it by name', () => {
    const tok = parseTokenizerJson(bigText, 'big/tokenizer.json');
    expect(tok.vocabSize).toBe(262144);
    expect(tok.kind).toBe('byte-level BPE');
    expect(tok.bosId).toBe(N);
    expect(tok.eosId).toBe(N + 1);
    const b = (s: string) => s.charCodeAt(0);
    // "abc" is one three-byte piece, "hi" one two-byte piece, "zzz" (first byte past the table) two pieces
    expect(tok.encode('abc', { bos: false })).toEqual([65792 + 256 * b('b') + b('c')]);
    expect(tok.encode('hi', { bos: true })).toEqual([N, 256 + 256 * b('h') + b('i')]);
    expect(tok.encode('zzz', { bos: false })).toEqual([256 + 256 * b('z') + b('z'), b('z')]);
    for (const s of ['hello world', 'café Ωμέγα 🦙', 'tabs\tand\nnewlines  ']) expect(tok.decode(tok.encode(s, { bos: true }))).toBe(s);
    expect(() => checkVocabularies({ vocabSize: 128256 }, tok, 'llama/config.json', 'big/tokenizer.json')).toThrow(/big\/tokenizer\.json: tokenizer has 262144 tokens but the model \(llama\/config\.json\) has vocab_size 128256; they do not belong together/);
    expect(() => checkVocabularies({ vocabSize: 262144 }, tok, 'config.json', 'tokenizer.json')).not.toThrow();
  });

  it('ids of 1e9 (vocabulary, added tokens, BOS/EOS from the files beside it) are refused by name, without a billion-entry table', () => {
    const small = byteLevelJson(300);
    const piece = Object.keys(small.model!.vocab as Record<string, number>)[290];
    const withId = (id: unknown) => JSON.stringify({ ...small, model: { ...small.model, vocab: { ...(small.model!.vocab as object), [piece]: id } } });
    // above the id limit (2^20): refused by the schema, naming the piece
    expect(() => parseTokenizerJson(withId(1e9), 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: "model\.vocab\..*" is 1000000000, above the limit 1048575/);
    // under it but past the entries the file holds: refused before the id table is allocated
    expect(() => parseTokenizerJson(withId(1_000_000), 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: model\.vocab piece .* has id 1000000, but the file holds only 302 tokens/);
    expect(() => parseTokenizerJson(withId(2 ** 53), 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: /);
    expect(() => parseTokenizerJson(withId(-1), 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: .*model\.vocab/);
    expect(() => parseTokenizerJson(withId(2.5), 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: .*model\.vocab/);
    const added = JSON.stringify({ ...small, added_tokens: [{ id: 1e9, content: '<|x|>', special: true }] });
    expect(() => parseTokenizerJson(added, 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: "added_tokens\.0\.id" is 1000000000, above the limit/);
    const added2 = JSON.stringify({ ...small, added_tokens: [{ id: 999_999, content: '<|x|>', special: true }] });
    expect(() => parseTokenizerJson(added2, 'x/tokenizer.json')).toThrow(/x\/tokenizer\.json: an added token has id 999999, but the file holds only 301 tokens/);
    const text = JSON.stringify(small);
    expect(() => parseTokenizerJson(text, 'x/tokenizer.json', { config: cfgText({ bos_token_id: 1e9 }) })).toThrow(/config\.json: bos_token_id 1000000000 is outside the vocabulary of x\/tokenizer\.json \(302\)/);
    expect(() => parseTokenizerJson(text, 'x/tokenizer.json', { generationConfig: JSON.stringify({ eos_token_id: [1e9, 2] }) })).toThrow(/generation_config\.json: eos_token_id 1000000000 is outside the vocabulary of x\/tokenizer\.json/);
    expect(() => parseTokenizerJson(text, 'x/tokenizer.json', { tokenizerConfig: JSON.stringify({ bos_token: '<|nope|>' }) })).toThrow(/tokenizer_config\.json: bos_token "<\|nope\|>" is not a token of x\/tokenizer\.json/);
  });

  it('a tokenizer with ids beyond the model\'s vocab_size is refused by name before any work (quench loaders)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quench-hostile-tok-'));
    const cfg = tinyConfig({ vocabSize: 11 });
    for (const [f, b] of Object.entries(writeHfModel(cfg, randomWeights(cfg, 1), { tokenizerJson: JSON.stringify(byteLevelJson(300)) }))) writeFileSync(join(dir, f), b);
    await expect(loadModelFromPath(dir)).rejects.toThrow(/tokenizer\.json: tokenizer has 302 tokens but the model \(.*config\.json\) has vocab_size 11/);
    // a tokenizer that fits, but config.json's BOS does not
    const pieces = ['<unk>', '<s>', '</s>', ' ', 'a', 'b'];
    for (const [f, b] of Object.entries(writeHfModel(cfg, randomWeights(cfg, 1), { tokenizerJson: JSON.stringify(tokenizerJsonFromPieces(pieces, Float32Array.from(pieces, (_, i) => -i))) }))) writeFileSync(join(dir, f), b);
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 40 }));
    await expect(loadModelFromPath(dir)).rejects.toThrow(/generation_config\.json: bos_token_id 40 is outside the vocabulary of .*tokenizer\.json \(6\)/);
  });

  it('malformed files: each refusal names the file and the problem', () => {
    const small = byteLevelJson(300);
    const text = JSON.stringify(small);
    const bad = (t: string) => () => parseTokenizerJson(t, 'm/tokenizer.json');
    expect(bad(text.slice(0, text.length / 2))).toThrow(/m\/tokenizer\.json: not valid JSON/);
    expect(bad('')).toThrow(/m\/tokenizer\.json: not valid JSON/);
    expect(bad('null')).toThrow(/m\/tokenizer\.json: /);
    expect(bad('[1, 2]')).toThrow(/m\/tokenizer\.json: /);
    expect(bad(JSON.stringify({ ...small, model: { ...small.model, vocab: {} } }))).toThrow(/m\/tokenizer\.json: model\.vocab is empty/);
    expect(bad(JSON.stringify({ ...small, model: { ...small.model, type: 'WordPiece' } }))).toThrow(/m\/tokenizer\.json: model\.type "WordPiece" is not supported/);
    expect(bad(JSON.stringify({ ...small, model: { ...small.model, merges: [['a', 'zz-missing']] } }))).toThrow(/m\/tokenizer\.json: merge \["a","zz-missing"\] at rank 0 uses a piece missing from the vocabulary/);
    expect(bad(JSON.stringify({ ...small, model: { ...small.model, merges: [[1, 2]] } }))).toThrow(/m\/tokenizer\.json: /);
    expect(bad(JSON.stringify({ ...small, pre_tokenizer: { type: 'UnicodeScripts' } }))).toThrow(/m\/tokenizer\.json: pre-tokenizer "UnicodeScripts" is not supported/);
    expect(bad(JSON.stringify({ ...small, decoder: { type: 'CTC' } }))).toThrow(/m\/tokenizer\.json: decoder "CTC" is not supported/);
    // a ByteLevel step over a vocabulary without the 256 byte characters
    const sp = tokenizerJsonFromPieces(['<unk>', '<s>', '</s>', ' ', 'a'], Float32Array.from([0, 0, 0, -1, -2]));
    expect(bad(JSON.stringify({ ...sp, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true } }))).toThrow(/m\/tokenizer\.json: a ByteLevel pre-tokenizer or decoder, but \d+ of the 256 byte-level characters are not in model\.vocab/);
    // Sequences nested without end
    let deep: unknown = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    for (let i = 0; i < 40; i++) deep = { type: 'Sequence', pretokenizers: [deep] };
    expect(bad(JSON.stringify({ ...small, pre_tokenizer: deep }))).toThrow(/m\/tokenizer\.json: "pre_tokenizer(\.pretokenizers\.0)+" nests Sequences more than 16 deep/);
  });
});
