// Every freeze preset trains, on a model whose MLP projections are larger than its attention ones
// (the shared d(quantized weight) scratch is sized by the trainable projections only: a frozen
// larger projection once failed to build), and a frozen projection's codes never move.
import { describe, expect, it } from 'vitest';
import { PROJECTIONS, randomWeights, type LlamaConfig } from '../model/config';
import { ByteTokenizer } from '../io/byte-tokenizer';
import { FREEZE_PRESETS } from '../train/freeze';
import { testGpu } from '../testing';
import { makeRunSpec } from './spec';
import { runTraining } from './run';

const cfg: LlamaConfig = { dim: 32, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
const weights = randomWeights(cfg, 3, 0.5);
const teacher = { name: 'tiny', config: cfg, weights, tokenizer: new ByteTokenizer() };
const stream = Uint32Array.from({ length: 400 }, (_, i) => (i * 31 + 7) % cfg.vocabSize);

describe('freeze presets', () => {
  it('each preset trains a step and keeps its frozen projections at their initial codes', async () => {
    const gpu = await testGpu();
    for (const [scheme, frozen] of Object.entries(FREEZE_PRESETS)) {
      const spec = makeRunSpec({ bits: 4, group: 32, steps: 2, batch: 2, seq: 16, scheme }, 'test');
      const r = await runTraining(gpu, teacher, spec, stream, [[...stream.slice(0, 20)]]);
      expect(r.status, scheme).toBe('done');
      expect(r.history.every((m) => Number.isFinite(m.loss)), scheme).toBe(true);
      const start = await runTraining(gpu, teacher, makeRunSpec({ ...spec, steps: 1 }, 'test'), stream, [[...stream.slice(0, 20)]], { shouldStop: () => true });
      for (let l = 0; l < cfg.nLayers; l++)
        for (const p of PROJECTIONS) {
          const a = r.student!.quantized.packed[l][p]!.codes, b = start.student!.quantized.packed[l][p]!.codes;
          if (frozen.includes(p)) expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${scheme}: layer ${l} ${p} frozen`).toBe(true);
        }
    }
  });
});
