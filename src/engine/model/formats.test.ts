// stories260K loaded from llama2.c .bin (v0 and the v2 Q8_0 export) and from converted HF
// safetensors in F32 / F16 / BF16: same generation and perplexity.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../io/data';
import { readLlama2cCheckpoint } from '../io/llama2c';
import { Llama2cTokenizer } from '../io/tokenizer';
import { loadHfModel, writeHfModel } from '../io/hf';
import { bytesSource } from '../io/source';
import type { LlamaConfig, LlamaWeights } from './config';
import { LlamaModel } from './llama';
import { generate, sequenceNll } from './runner';
import { encodeDocuments, perplexity, splitDocuments } from '../eval/perplexity';
import { testGpu } from '../testing';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

describe.skipIf(!hasSharedData)('stories260K across formats', () => {
  it('llama2.c .bin, HF F32/F16/BF16 and Q8_0 agree', async () => {
    const gpu = await testGpu();
    const base = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
    const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', base.config.vocabSize);
    const docs = splitDocuments(readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8'), '<|endoftext|>').slice(0, 8);
    const seqs = encodeDocuments(docs, (s) => tok.encode(s), base.config.maxSeqLen);
    const run = async (cfg: LlamaConfig, w: LlamaWeights) => {
      const m = LlamaModel.fromWeights(gpu, cfg, w);
      const ppl = (await perplexity(seqs, (ids) => sequenceNll(m, ids))).ppl;
      const gen = await generate(m, [1], { maxTokens: 64, temperature: 0 });
      m.free();
      return { ppl, gen };
    };
    const ref = await run(base.config, base.weights);
    const viaHf = async (dtype: 'F32' | 'F16' | 'BF16') => {
      const files = writeHfModel(base.config, base.weights, { dtype });
      const hf = await loadHfModel(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, bytesSource(k, v)])));
      expect(hf.config).toEqual(base.config);
      expect(hf.dtypes).toEqual([dtype]);
      return run(hf.config, hf.weights);
    };
    const f32 = await viaHf('F32');
    expect(f32.gen).toEqual(ref.gen);
    expect(Math.abs(f32.ppl - ref.ppl) / ref.ppl).toBeLessThan(1e-6); // bit-identical weights
    const f16 = await viaHf('F16');
    expect(Math.abs(f16.ppl - ref.ppl) / ref.ppl).toBeLessThan(1e-3);
    const bf16 = await viaHf('BF16');
    expect(Math.abs(bf16.ppl - ref.ppl) / ref.ppl).toBeLessThan(1e-3);
    const q8 = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K_q80.bin')), 'stories260K_q80.bin');
    expect(q8.config).toEqual(base.config);
    const q = await run(q8.config, q8.weights);
    expect(Math.abs(q.ppl - ref.ppl) / ref.ppl).toBeLessThan(1e-3);
    console.log(`stories260K ppl on 8 docs: bin ${ref.ppl.toFixed(5)}, HF F32 ${f32.ppl.toFixed(5)}, F16 ${f16.ppl.toFixed(5)}, BF16 ${bf16.ppl.toFixed(5)}, Q8_0 ${q.ppl.toFixed(5)}; F16 greedy same: ${JSON.stringify(f16.gen) === JSON.stringify(ref.gen)}, BF16: ${JSON.stringify(bf16.gen) === JSON.stringify(ref.gen)}`);
  });
});
