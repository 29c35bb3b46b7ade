// A quantized model runs through the packed kernels and agrees with the float64 reference model
// evaluated on the dequantized weights (the same codes).
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../model/config';
import { LlamaModel } from '../model/llama';
import { PackedLinear } from '../model/packed';
import { refForward } from '../ref/llama';
import { expectClose, rng, testGpu } from '../testing';
import { dequantizedWeights, quantizeWeights, searchClip } from './ptq';
import { quantizeHost, dequantizeHost } from './pack';
import { relError } from './ptq';
import { randn } from '../testing';

describe('PTQ', () => {
  for (const [bits, group, sym] of [[4, 32, false], [8, 0, false], [3, 32, true], [2, 32, false]] as const) {
    it(`packed forward = reference on dequantized weights, w${bits}g${group || 'C'}${sym ? ' sym' : ''}`, async () => {
      const gpu = await testGpu();
      const cfg = tinyConfig({ dim: 64, hiddenDim: 172, nHeads: 8, nKvHeads: 4, vocabSize: 50 });
      const w = randomWeights(cfg, 3, 0.5);
      const qm = quantizeWeights(cfg, w, { bits, group, sym, clipSearch: true });
      const model = LlamaModel.fromWeights(gpu, cfg, w, { quantized: qm });
      expect(model.layers[0].proj.down).toBeInstanceOf(PackedLinear);
      const B = 1, T = 9;
      const r = rng(1);
      const tokens = Array.from({ length: T }, () => Math.floor(r() * cfg.vocabSize));
      const acts = model.activations(B, T, false);
      gpu.write(acts.tokens, new Uint32Array(tokens));
      model.forward(acts);
      const ref = refForward(cfg, dequantizedWeights(w, qm), tokens, B, T).logits;
      expectClose('logits', await gpu.readF32(acts.logits), ref, { atol: 2e-4, rtol: 1e-3 });
      // the decode path (GEMV) agrees too: last row through the KV cache
      const cache = model.createKvCache(16);
      const pre = model.activations(1, T - 1, false);
      gpu.write(pre.tokens, new Uint32Array(tokens.slice(0, T - 1)));
      model.forwardCached(pre, cache, 0);
      const one = model.activations(1, 1, false);
      gpu.write(one.tokens, new Uint32Array([tokens[T - 1]]));
      model.forwardCached(one, cache, T - 1);
      expectClose('decode logits', await gpu.readF32(one.logits), ref.subarray((T - 1) * cfg.vocabSize), { atol: 2e-4, rtol: 1e-3 });
      model.freeKvCache(cache);
      model.free();
    });
  }
  it('clip search never loses to min/max on reconstruction error', () => {
    const N = 16, K = 172;
    const w = randn(N * K, 5);
    for (const bits of [2, 3, 4] as const) {
      const rtn = relError(w, dequantizeHost(quantizeHost(w, N, K, { bits, group: 32, sym: false })));
      const clip = searchClip(w, N, K, bits, 32, false);
      const cs = relError(w, dequantizeHost(quantizeHost(w, N, K, { bits, group: 32, sym: false }, clip)));
      expect(cs).toBeLessThanOrEqual(rtn + 1e-12);
      if (bits <= 3) expect(cs).toBeLessThan(rtn * 0.98);
    }
  });
});
