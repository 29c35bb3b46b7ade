// The ONNX export (MatMulNBits) run by onnxruntime-web's wasm provider in Node matches our own int4
// forward on the GPU and the float64 reference on the dequantized weights. The browser providers
// (wasm and webgpu in Chromium) are checked by e2e/tests/02-onnx.mjs.
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-web';
import { randomWeights, tinyConfig, type LlamaConfig } from '../model/config';
import { refForward } from '../ref/llama';
import { testGpu, expectClose } from '../testing';
import { dequantizedWeights, quantizeWeights } from './ptq';
import { exportOnnx } from './onnx';
import { compareLogits, onnxSelfCheck, ourLogits, runOnnx } from './onnx-check';

ort.env.wasm.numThreads = 1;

describe('ONNX export in onnxruntime-web (wasm, Node)', () => {
  for (const [name, over, group] of [
    ['GQA 8/4, tied, K=172 ragged', { dim: 64, hiddenDim: 172, nHeads: 8, nKvHeads: 4, vocabSize: 50, tiedEmbeddings: true }, 32],
    ['MHA, untied, group 64', { dim: 64, hiddenDim: 128, nHeads: 4, nKvHeads: 4, vocabSize: 37, tiedEmbeddings: false }, 64],
    // inv_freq carries the scaling (theta 100, head size 8: one frequency kept, one smoothed, two divided)
    ['GQA 8/4, tied, rope_scaling llama3', { dim: 64, hiddenDim: 128, nHeads: 8, nKvHeads: 4, vocabSize: 40, tiedEmbeddings: true, ropeTheta: 100, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 } }, 32],
  ] as const) {
    it(name, async () => {
      const gpu = await testGpu();
      const cfg = tinyConfig(over as Partial<LlamaConfig>);
      const w = randomWeights(cfg, 3, 0.5);
      const qm = quantizeWeights(cfg, w, { bits: 4, group, sym: false, clipSearch: false });
      const bytes = exportOnnx(cfg, w, qm);
      const tokens = [1, 5, 9, 2, 33, 7, 8, 3];
      const theirs = await runOnnx(ort, bytes, tokens, 'wasm');
      const ref = refForward(cfg, dequantizedWeights(w, qm), tokens, 1, tokens.length).logits;
      expectClose('ORT vs float64 reference', theirs, ref, { atol: 1e-4, rtol: 1e-3 });
      const ours = await ourLogits(gpu, cfg, w, qm, tokens);
      const c = compareLogits(ours, theirs);
      expect(c.maxAbsDiff).toBeLessThan(1e-3 * c.maxAbsLogit);
    });
  }
  it('the studio self-check passes on wasm', async () => {
    const r = await onnxSelfCheck(await testGpu(), ort, ['wasm']);
    expect(r[0].error).toBeUndefined();
    expect(r[0].ok).toBe(true);
  });
});
