// llama2.c's own expected greedy output of stories260K: an independent implementation agrees.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../io/data';
import { readLlama2cCheckpoint } from '../io/llama2c';
import { Llama2cTokenizer } from '../io/tokenizer';
import { LlamaModel } from './llama';
import { generate } from './runner';
import { testGpu } from '../testing';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

describe.skipIf(!hasSharedData)('stories260K golden greedy output', () => {
  it('matches llama2.c for 256 steps from BOS', async () => {
    const gpu = await testGpu();
    const { config, weights } = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
    const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', config.vocabSize);
    const model = LlamaModel.fromWeights(gpu, config, weights);
    // llama2.c `run -t 0 -n 256`: prompt = [BOS], 256 steps, stops early on BOS.
    const ids = await generate(model, [tok.bosId], { maxTokens: 256, temperature: 0, stopToken: tok.bosId });
    const text = tok.decode([tok.bosId, ...ids]);
    const golden = readFileSync(sharedPath('models/stories260K/golden_greedy_256.txt'), 'utf8');
    expect(text + '\n').toBe(golden);
    model.free();
  });
});
