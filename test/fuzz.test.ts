// Hostile input (issue 17): property-based fuzzing of every input kind with fast-check, seeded and
// bounded here (npm run fuzz runs the long version), plus the cases the issue measured, each
// expected to be refused with a message naming the file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { arbitraryFor, classify, getBases, KINDS, type FuzzCase } from '../fuzz/cases';
import { parseHfConfig, loadHfModel, hfConfigJson } from '../src/engine/io/hf';
import { bytesSource } from '../src/engine/io/source';
import { parseTokenizerJson, tokenizerJsonFromPieces } from '../src/engine/io/hf-tokenizer';
import { readLlama2cCheckpoint } from '../src/engine/io/llama2c';
import { parseTask } from '../src/engine/eval/tasks';
import { checkVocabularies, requireFiniteResults } from '../src/engine/io/validate';

const dir = mkdtempSync(join(tmpdir(), 'quench-fuzz-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const RUNS = Number(process.env.QUENCH_FUZZ_RUNS ?? 120);

describe('fuzz: every outcome is a clear error naming the file or a correct load', () => {
  const B = getBases();
  if (!B.realTokenizer) console.log('fuzz: ../shared/data/models/stories260K/tok512.bin is absent; tokenizer cases use a synthetic tokenizer');
  for (const kind of KINDS) {
    it(kind, async () => {
      await fc.assert(
        fc.asyncProperty(arbitraryFor(kind), async (c: FuzzCase) => {
          const r = await classify(c, join(dir, kind));
          expect(r.outcome, `${c.mutation} (${c.file}): ${r.detail}`).toMatch(/^(error|load)$/);
        }),
        { seed: 17, numRuns: RUNS },
      );
    });
  }
});

describe('the inputs issue 17 measured', () => {
  const B = getBases();
  const cfgText = new TextDecoder().decode(B.hf['config.json']);
  const cfgWith = (patch: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(cfgText), ...patch });
  it('config.json: wrong types are errors, not defaults; absurd sizes refused up front', () => {
    expect(() => parseHfConfig(cfgWith({ max_position_embeddings: true }))).toThrow(/config\.json: "max_position_embeddings" must be a finite number, got true/);
    expect(() => parseHfConfig(cfgWith({ rms_norm_eps: '0.00001' }))).toThrow(/config\.json: "rms_norm_eps" must be a finite number, got "0\.00001"/);
    expect(() => parseHfConfig(cfgText.replace('"rope_theta": 10000', '"rope_theta": 1e400'))).toThrow(/config\.json: "rope_theta" must be a finite number, got Infinity/);
    expect(() => parseHfConfig(cfgWith({ architectures: 'LlamaForCausalLM' }))).toThrow(/config\.json: "architectures" must be an array/);
    const t0 = performance.now();
    expect(() => parseHfConfig(cfgWith({ num_hidden_layers: 1e7 }))).toThrow(/config\.json: "num_hidden_layers" is 10000000, above the limit 1024/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
  it('quantization_config: bits 5 and a missing group_size name the file and field', async () => {
    const q = JSON.parse(new TextDecoder().decode(B.quant['config.json']));
    const load = (qc: Record<string, unknown>) => loadHfModel(Object.fromEntries(Object.entries({ ...B.quant, 'config.json': new TextEncoder().encode(JSON.stringify({ ...q, quantization_config: qc })) }).map(([k, v]) => [k, bytesSource(k, v)])));
    await expect(load({ ...q.quantization_config, bits: 5 })).rejects.toThrow(/config\.json: "quantization_config\.bits" has the wrong type or value, got 5/);
    const { group_size: _, ...noGroup } = q.quantization_config;
    await expect(load(noGroup)).rejects.toThrow(/config\.json: missing "quantization_config\.group_size"/);
  });
  it('shard index: __proto__, constructor, toString are plain names; null is refused', async () => {
    const files = (index: string) => Object.fromEntries(Object.entries({ ...B.sharded, 'model.safetensors.index.json': new TextEncoder().encode(index) }).map(([k, v]) => [k, bytesSource(k, v)]));
    const idx = new TextDecoder().decode(B.sharded['model.safetensors.index.json']);
    for (const n of ['__proto__', 'constructor', 'toString']) {
      await expect(loadHfModel(files(idx.replace('"model.norm.weight"', `"${n}"`)))).rejects.toThrow(/model\.safetensors\.index\.json/);
      await expect(loadHfModel(files(idx.replace(/"model-00001-of-0000\d\.safetensors"/, `"${n}"`)))).rejects.toThrow(new RegExp(`model\\.safetensors\\.index\\.json.*"${n}"`));
    }
    await expect(loadHfModel(files('null'))).rejects.toThrow(/model\.safetensors\.index\.json: expected a JSON object, got null/);
  });
  it('llama2.c: NaN weights and scales, and a Q8_0 header with n_layers 2^31-1, are refused', () => {
    const v0 = B.v0.slice();
    new DataView(v0.buffer).setFloat32(28 + 4 * 100, NaN, true);
    expect(() => readLlama2cCheckpoint(v0, 'nan.bin')).toThrow(/nan\.bin: tensor token_embedding_table has a non-finite value \(NaN\) at index 100/);
    const q = B.q80.slice();
    new DataView(q.buffer).setInt32(8 + 8, 2 ** 31 - 1, true);
    expect(() => readLlama2cCheckpoint(q, 'q.bin')).toThrow(/q\.bin: llama2\.c v2 header field n_layers is 2147483647, outside 1\.\.1024/);
  });
  it('tokenizer.json: ids 1e9, 1e6, -1, 3.5, "5", null refused; 256k-entry vocabularies load', () => {
    const j = JSON.parse(B.tokJson);
    const withId = (id: unknown) => JSON.stringify({ ...j, model: { ...j.model, vocab: { ...j.model.vocab, zz: id } } });
    expect(() => parseTokenizerJson(withId(1e9), 't.json')).toThrow(/t\.json: field|t\.json: "model\.vocab\.zz" is 1000000000, above the limit/);
    expect(() => parseTokenizerJson(withId(1e6), 't.json')).toThrow(/t\.json: model\.vocab piece "zz" has id 1000000, but the file holds only \d+ tokens/);
    for (const id of [-1, 3.5, '5', null]) expect(() => parseTokenizerJson(withId(id), 't.json')).toThrow(/t\.json: "model\.vocab\.zz"/);
    const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`)];
    for (let i = pieces.length; i < 256_000; i++) pieces.push(`p${i.toString(36)}`);
    const big = parseTokenizerJson(JSON.stringify(tokenizerJsonFromPieces(pieces, Float32Array.from(pieces, (_, i) => -i))), 'big.json');
    expect(big.vocabSize).toBe(256_000);
  });
  it('a 32000-token tokenizer with a 2048-vocabulary model is refused', () => {
    expect(() => checkVocabularies({ vocabSize: 2048 }, { vocabSize: 32000, bosId: 1, eosId: 2 }, 'config.json', 'tokenizer.json')).toThrow(/tokenizer\.json: tokenizer has 32000 tokens but the model \(config\.json\) has vocab_size 2048/);
  });
  it('task files: labels out of range or missing, null lines, empty choices', () => {
    const copa = '{"premise": "p.", "choice1": "a", "choice2": "b", "question": "cause", "label": 2}';
    expect(() => parseTask('copa', copa, undefined, 'val.jsonl')).toThrow(/val\.jsonl:1: "label" has the wrong type or value, got 2/);
    expect(() => parseTask('copa', copa.replace(', "label": 2', ''), undefined, 'val.jsonl')).toThrow(/val\.jsonl:1: missing "label"/);
    expect(() => parseTask('copa', 'null', undefined, 'val.jsonl')).toThrow(/val\.jsonl:1: the top level must be an object, got null/);
    expect(() => parseTask('copa', copa.replace('"a"', '""').replace('2}', '0}'), undefined, 'val.jsonl')).toThrow(/val\.jsonl:1: "choice1"/);
    expect(() => parseTask('piqa', '{"goal": "g", "sol1": "a", "sol2": "b"}', '2\n', 'valid.jsonl', 'valid-labels.lst')).toThrow(/valid-labels\.lst:1: label "2" must be an integer from 0 to 1/);
  });
  it('a non-finite result is an error', () => {
    expect(() => requireFiniteResults('m on t.txt', { perplexity: NaN })).toThrow(/m on t\.txt: perplexity is NaN/);
    void hfConfigJson;
  });
});
