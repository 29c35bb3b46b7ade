import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig, type LlamaWeights } from '../model/config';
import { namedGrads, namedWeights, refBackward, refForward, refLoss } from './llama';
import { rng, sampleIndices } from '../testing';


/** Float64 copy of the weights so finite differences are not limited by float32. */
function toF64Weights(w: LlamaWeights): LlamaWeights {
  const c = (a: Float32Array) => Float64Array.from(a) as unknown as Float32Array;
  return {
    tokEmbed: c(w.tokEmbed),
    finalNorm: c(w.finalNorm),
    lmHead: w.lmHead ? c(w.lmHead) : null,
    layers: w.layers.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, c(v)])) as unknown as LlamaWeights['layers'][number]),
  };
}

describe('reference LLaMA', () => {
  for (const [name, over] of [
    ['GQA 4/2, untied', { nKvHeads: 2, tiedEmbeddings: false }],
    ['MQA 4/1, tied', { nKvHeads: 1, tiedEmbeddings: true }],
    ['MHA 4/4, tied', { nKvHeads: 4, tiedEmbeddings: true }],
  ] as [string, Partial<LlamaConfig>][]) {
    it(`every weight gradient matches finite differences (${name})`, () => {
      const cfg = tinyConfig(over);
      const w = toF64Weights(randomWeights(cfg, 7, 0.5));
      const B = 2, T = 5;
      const r = rng(3);
      const tokens = Array.from({ length: B * T }, () => Math.floor(r() * cfg.vocabSize));
      const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
      const lossOf = () => refLoss(refForward(cfg, w, tokens, B, T).logits, targets, cfg.vocabSize).loss;
      const f = refForward(cfg, w, tokens, B, T);
      // probabilities: causal rows summing to one
      const p = f.layers[0].probs;
      for (let row = 0; row < B * cfg.nHeads * T; row++) {
        const t = row % T;
        let s = 0;
        for (let j = 0; j < T; j++) {
          if (j > t) expect(p[row * T + j]).toBe(0);
          s += p[row * T + j];
        }
        expect(Math.abs(s - 1)).toBeLessThan(1e-12);
      }
      const { dlogits } = refLoss(f.logits, targets, cfg.vocabSize);
      const grads = namedGrads(refBackward(cfg, w, tokens, B, T, f, dlogits));
      const named = namedWeights(w);
      expect(grads.size).toBe(named.length);
      const eps = 1e-5;
      for (const [key, arr] of named) {
        const g = grads.get(key)!;
        for (const i of sampleIndices(arr.length, 5, key.length)) {
          const old = arr[i];
          arr[i] = old + eps;
          const lp = lossOf();
          arr[i] = old - eps;
          const lm = lossOf();
          arr[i] = old;
          const fd = (lp - lm) / (2 * eps);
          if (Math.abs(fd - g[i]) > 1e-7 + 1e-5 * Math.abs(fd)) throw new Error(`${key}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
        }
      }
    });
  }
});
