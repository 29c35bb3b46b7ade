// Structured pruning: the pruned model's GPU forward equals the float64 reference forward of the
// teacher with the same layers / KV groups (with their query heads) / MLP channels removed, the
// reference weights sliced here independently (head by head, channel by channel); the importance
// ranks what it should; bad options get clear messages.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig, type LlamaLayerWeights, type LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { refForward } from '../ref/llama';
import { expectClose, rng, testGpu } from '../testing';
import { applyPrune, calibrationFrom, checkPruneOptions, measureImportance, pruneModel, type PrunePlan } from './prune';

const cfg: LlamaConfig = tinyConfig({ dim: 32, hiddenDim: 40, nLayers: 4, nHeads: 8, nKvHeads: 4, vocabSize: 23, maxSeqLen: 32, tiedEmbeddings: false });
const HS = 4; // 32 / 8

/** Independent slicing: element by element from the (out, in) layouts. */
function refSlice(w: LlamaWeights, plan: PrunePlan): { cfg: LlamaConfig; w: LlamaWeights } {
  const C = cfg.dim, H = cfg.hiddenDim, NH = cfg.nHeads, QG = NH / cfg.nKvHeads;
  const layers: LlamaLayerWeights[] = plan.keepLayers.map((l, i) => {
    const src = w.layers[l];
    const heads: number[] = []; // query heads of the kept KV groups
    for (const g of plan.keepGroups[i]) for (let j = 0; j < QG; j++) heads.push(g * QG + j);
    const kv = plan.keepGroups[i];
    const ch = plan.keepChannels[i];
    const wq = new Float32Array(heads.length * HS * C), wo = new Float32Array(C * heads.length * HS);
    heads.forEach((h, hi) => {
      for (let d = 0; d < HS; d++)
        for (let c = 0; c < C; c++) {
          wq[(hi * HS + d) * C + c] = src.wq[(h * HS + d) * C + c];
          wo[c * heads.length * HS + hi * HS + d] = src.wo[c * NH * HS + h * HS + d];
        }
    });
    const wk = new Float32Array(kv.length * HS * C), wv = new Float32Array(kv.length * HS * C);
    kv.forEach((g, gi) => {
      for (let d = 0; d < HS; d++)
        for (let c = 0; c < C; c++) {
          wk[(gi * HS + d) * C + c] = src.wk[(g * HS + d) * C + c];
          wv[(gi * HS + d) * C + c] = src.wv[(g * HS + d) * C + c];
        }
    });
    const wGate = new Float32Array(ch.length * C), wUp = new Float32Array(ch.length * C), wDown = new Float32Array(C * ch.length);
    ch.forEach((j, ji) => {
      for (let c = 0; c < C; c++) {
        wGate[ji * C + c] = src.wGate[j * C + c];
        wUp[ji * C + c] = src.wUp[j * C + c];
        wDown[c * ch.length + ji] = src.wDown[c * H + j];
      }
    });
    return { attnNorm: src.attnNorm, mlpNorm: src.mlpNorm, wq, wk, wv, wo, wGate, wUp, wDown };
  });
  const nHeads = plan.keepGroups[0].length * QG;
  return { cfg: { ...cfg, nLayers: layers.length, nHeads, nKvHeads: plan.keepGroups[0].length, hiddenDim: plan.keepChannels[0].length, headDim: HS }, w: { ...w, layers } };
}

describe('structured pruning', () => {
  it('the pruned model (layers, KV groups, channels) = the reference forward of the teacher with them removed', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 3, 0.5);
    const r = rng(4);
    const stream = Uint32Array.from({ length: 400 }, () => Math.floor(r() * cfg.vocabSize));
    const res = pruneModel(cfg, w, calibrationFrom(stream, 3, 12), { layers: 3, headsKeep: 0.5, mlpKeep: 0.6, channelMetric: 'taylor' });
    expect(res.config).toMatchObject({ nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 24, headDim: 4 });
    expect(res.importance!.layers).toHaveLength(4);
    // the dropped layer is the one whose skip costs least
    const rises = res.importance!.layers.map((x) => x.lossRise);
    expect(res.plan.keepLayers).not.toContain(rises.indexOf(Math.min(...rises)));
    // not the trivial choice: some kept group or channel is not the first ones
    expect(res.plan.keepGroups.some((g) => g.join() !== '0,1') || res.plan.keepChannels.some((c) => c[c.length - 1] !== 23)).toBe(true);
    const ref = refSlice(w, res.plan);
    const B = 2, T = 9;
    const tokens = Array.from({ length: B * T }, () => Math.floor(r() * cfg.vocabSize));
    const f = refForward(ref.cfg, ref.w, tokens, B, T);
    const model = LlamaModel.fromWeights(gpu, res.config, res.weights);
    const acts = model.activations(B, T, false);
    gpu.write(acts.tokens, new Uint32Array(tokens));
    model.forward(acts);
    expectClose('pruned logits', await gpu.readF32(acts.logits), f.logits, { atol: 2e-5, rtol: 1e-4 });
    model.free();
  });

  it('magnitude ranking and cosine layer choice; named layers; ranks follow the scores', () => {
    const w = randomWeights(cfg, 5, 0.5);
    const r = rng(6);
    const stream = Uint32Array.from({ length: 300 }, () => Math.floor(r() * cfg.vocabSize));
    const calib = calibrationFrom(stream, 2, 10);
    const imp = measureImportance(cfg, w, calib, { channelMetric: 'magnitude', layerMetric: 'cosine' });
    const res = pruneModel(cfg, w, calib, { layers: 2, layerMetric: 'cosine', channelMetric: 'magnitude', mlpKeep: 0.5 });
    const cosDrop = imp.layers.map((x, i) => [1 - x.cosine, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 2).map((x) => x[1]).sort();
    expect(res.plan.keepLayers).toEqual(cosDrop);
    res.plan.keepChannels.forEach((ch, i) => {
      const s = imp.channels[res.plan.keepLayers[i]];
      const minKept = Math.min(...ch.map((j) => s[j]));
      const maxDropped = Math.max(...[...s].filter((_, j) => !ch.includes(j)));
      expect(minKept).toBeGreaterThanOrEqual(maxDropped);
    });
    const named = applyPrune(cfg, w, { keepLayers: [0, 3], keepGroups: [[0, 1, 2, 3], [0, 1, 2, 3]], keepChannels: [[...Array(40).keys()], [...Array(40).keys()]] });
    expect(named.config.headDim).toBeUndefined();
    expect(named.weights.layers[1].wq).toEqual(w.layers[3].wq);
    expect(pruneModel(cfg, w, null, { dropLayers: [1, 2] }).config.nLayers).toBe(2);
  });

  it('clear messages for bad options', () => {
    const e = (o: Parameters<typeof checkPruneOptions>[1]) => () => checkPruneOptions(cfg, o);
    expect(e({ headsKeep: 12 })).toThrow(/only 8 attention heads; cannot keep 12/);
    expect(e({ headsKeep: 3 })).toThrow(/breaks GQA.*multiple of 2 heads/);
    expect(e({ headsKeep: 0.3 })).toThrow(/breaks GQA/);
    expect(e({ dropLayers: [1, 4] })).toThrow(/layer 4 out of range; the teacher has layers 0\.\.3/);
    expect(e({ dropLayers: [0, 1, 2, 3] })).toThrow(/drops every layer/);
    expect(e({ layers: 5 })).toThrow(/1\.\.4/);
    expect(e({ mlpKeep: 1.5 })).toThrow(/mlp-keep/);
    expect(e({ layers: 2, dropLayers: [0] })).toThrow(/not both/);
  });
});
