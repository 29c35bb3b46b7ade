// Scoring computes logits in row chunks under the binding limit: on a SmolLM2-135M-shaped model
// at reduced depth (2 layers; full width 576, MLP 1536, 9/3 heads, vocabulary 49152, tied), the
// chunked log-probabilities equal the unchunked ones, across sequence boundaries of a batch; and a
// prompt longer than one binding of logits still generates.
import { describe, expect, it } from 'vitest';
import { randomWeights, type LlamaConfig } from './config';
import { LlamaModel } from './llama';
import { generate, tokenLogprobsBatch } from './runner';
import { testGpu } from '../testing';
import { Rng } from '../train/data';

const CFG: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: 2, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };

function tokens(n: number, seed: number): number[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : Math.floor(r.next() * CFG.vocabSize)));
}

const maxDiff = (a: Float64Array[], b: Float64Array[]) => Math.max(...a.map((x, k) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - b[k][i])), 0)));

describe('chunked logits (SmolLM2-135M width and vocabulary, 2 layers)', () => {
  it('log-probs in chunks of rows equal one full logits tensor; long prompts generate', async () => {
    const gpu = await testGpu();
    const model = LlamaModel.fromWeights(gpu, CFG, randomWeights(CFG, 3, 0.05));
    try {
      const V = CFG.vocabSize;
      const full = 2 ** 27; // 682 rows: every row of these documents in one tensor
      const t0 = performance.now();
      // one 360-token document: default chunks (341 + 19 rows) against one tensor
      const doc = [tokens(360, 1)];
      const one = await tokenLogprobsBatch(model, doc, 16, full);
      const dflt = await tokenLogprobsBatch(model, doc);
      expect(one[0].length).toBe(359);
      expect(one[0].every((x) => Number.isFinite(x) && x < 0)).toBe(true);
      expect(maxDiff(dflt, one)).toBeLessThanOrEqual(1e-6);
      // a batch of three (one 3 x 50 forward): chunks of 37 rows cross the sequences' boundaries
      const batch = [tokens(50, 2), tokens(30, 3), tokens(41, 4)];
      const b1 = await tokenLogprobsBatch(model, batch, 16, full);
      const b2 = await tokenLogprobsBatch(model, batch, 16, 37 * 4 * V);
      expect(b1.map((x) => x.length)).toEqual([49, 29, 40]);
      expect(maxDiff(b2, b1)).toBeLessThanOrEqual(1e-6);
      const t1 = performance.now();
      // generation: the prefill computes only the last row's logits (700 x 49152 x 4 bytes would
      // be 138 MB, more than lavapipe's 128 MiB binding)
      const g = await generate(model, tokens(700, 5), { maxTokens: 2 });
      expect(g.length).toBe(2);
      expect(g.every((t) => t >= 0 && t < V)).toBe(true);
      console.log(`chunked logits: scoring ${((t1 - t0) / 1000).toFixed(1)} s, 700-token prefill + 2 tokens ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    } finally {
      model.free();
    }
  }, 600_000);
});
