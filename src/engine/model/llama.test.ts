import { describe, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig } from './config';
import { LlamaModel } from './llama';
import { crossEntropyBackward, crossEntropyForward } from '../ops/loss';
import { namedGrads, refBackward, refForward, refLoss } from '../ref/llama';
import { expectClose, rng, testGpu } from '../testing';
import { PROJECTIONS, PROJECTION_KEY } from './config';

describe('GPU LLaMA vs float64 reference', () => {
  for (const [name, over] of [
    ['GQA 4/2, untied', { nKvHeads: 2, tiedEmbeddings: false }],
    ['MQA 4/1, tied', { nKvHeads: 1, tiedEmbeddings: true }],
  ] as [string, Partial<LlamaConfig>][]) {
    it(`logits, loss and every gradient (${name})`, async () => {
      const gpu = await testGpu();
      const cfg = tinyConfig({ ...over, vocabSize: 37 });
      const w = randomWeights(cfg, 11, 0.5);
      const B = 2, T = 7;
      const r = rng(5);
      const tokens = Array.from({ length: B * T }, () => Math.floor(r() * cfg.vocabSize));
      const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
      const n = targets.filter((t) => t !== 0xffffffff).length;
      const model = LlamaModel.fromWeights(gpu, cfg, w, { trainable: true });
      const acts = model.activations(B, T);
      gpu.write(acts.tokens, new Uint32Array(tokens));
      model.forward(acts);
      const ttg = gpu.tensor('targets', [B * T], 'u32', targets);
      const losses = gpu.tensor('losses', [B * T]);
      const dlogits = gpu.tensor('dlogits', [B * T, cfg.vocabSize]);
      crossEntropyForward(gpu, losses, acts.logits, ttg, B * T, cfg.vocabSize);
      crossEntropyBackward(gpu, dlogits, acts.logits, ttg, B * T, cfg.vocabSize, 1 / n);
      model.zeroGrads();
      model.backward(acts, dlogits);

      const f = refForward(cfg, w, tokens, B, T);
      const ref = refLoss(f.logits, targets, cfg.vocabSize);
      expectClose('logits', await gpu.readF32(acts.logits), f.logits, { atol: 1e-4, rtol: 1e-4 });
      expectClose('probs layer 1', await gpu.readF32(acts.layers[1].probs), f.layers[1].probs, { atol: 1e-5, rtol: 1e-4 });
      expectClose('attention output layer 0', await gpu.readF32(acts.layers[0].attnOut), f.layers[0].attnOut, { atol: 1e-5, rtol: 1e-4 });
      const l = await gpu.readF32(losses);
      expectClose('loss', [l.reduce((s, x) => s + x, 0) / n], [ref.loss], { atol: 1e-5, rtol: 1e-5 });
      const g = namedGrads(refBackward(cfg, w, tokens, B, T, f, ref.dlogits));
      const tol = { atol: 2e-5, rtol: 2e-3 };
      expectClose('d tokEmbed', await model.tokEmbedGrad!.read(gpu), g.get('tokEmbed')!, tol);
      expectClose('d finalNorm', await gpu.readF32(model.finalNormGrad!), g.get('finalNorm')!, tol);
      if (!cfg.tiedEmbeddings) expectClose('d lmHead', await model.lmHead.gradTable!.read(gpu), g.get('lmHead')!, tol);
      for (let li = 0; li < cfg.nLayers; li++) {
        const L = model.layers[li];
        expectClose(`d layers.${li}.attnNorm`, await gpu.readF32(L.attnNormGrad!), g.get(`layers.${li}.attnNorm`)!, tol);
        expectClose(`d layers.${li}.mlpNorm`, await gpu.readF32(L.mlpNormGrad!), g.get(`layers.${li}.mlpNorm`)!, tol);
        for (const p of PROJECTIONS) expectClose(`d layers.${li}.${p}`, await gpu.readF32(L.proj[p].grad!), g.get(`layers.${li}.${PROJECTION_KEY[p]}`)!, tol);
      }
      model.free();
      for (const t of [ttg, losses, dlogits]) gpu.free(t);
    });
  }
});
