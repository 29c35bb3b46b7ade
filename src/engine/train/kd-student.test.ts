// Distillation into a student of another shape: every student gradient of KL(T)·T² + CE + mapped
// hidden-state MSE matches the float64 reference (refBackward with the KD loss gradient as dlogits
// and the MSE gradients as dhidden); resume = uninterrupted; a different vocabulary is refused.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig } from '../model/config';
import { DenseLinear } from '../model/dense';
import { namedGrads, refBackward, refForward, refKlLoss, refLoss, refMseLoss } from '../ref/llama';
import { expectClose, rng, testGpu } from '../testing';
import { expectStopsOnNonFinite } from './expect-stop';
import { applyPrune } from './prune';
import { StudentDistiller, type StudentKdConfig } from './kd-student';

const tcfg: LlamaConfig = tinyConfig({ dim: 32, hiddenDim: 40, nLayers: 3, nHeads: 8, nKvHeads: 4, vocabSize: 29, maxSeqLen: 32, tiedEmbeddings: false });
const kcOf = (over: Partial<StudentKdConfig> = {}): StudentKdConfig => ({
  loss: { kl: 1, ce: 0.5, hidden: 0.3 }, temperature: 2, layerMap: [0, 2], steps: 6, batch: 2, seq: 8, accum: 1,
  lr: 3e-3, minLrRatio: 0.1, warmup: 2, weightDecay: 0.01, gradClip: 1, beta1: 0.9, beta2: 0.95, seed: 3, ...over,
});
const stream = (() => {
  const r = rng(9);
  return Uint32Array.from({ length: 500 }, () => Math.floor(r() * tcfg.vocabSize));
})();
const tw = randomWeights(tcfg, 1, 0.5);
// a student of another shape: 2 layers, 2 of 4 KV groups (head size kept), 24 of 40 channels
const small = applyPrune(tcfg, randomWeights(tcfg, 2, 0.5), { keepLayers: [0, 2], keepGroups: [[1, 3], [0, 2]], keepChannels: [[...Array(24).keys()].map((i) => i + 8), [...Array(24).keys()]] });

describe('KD into a smaller student', () => {
  it('student gradients (KL·T² + CE + hidden MSE on mapped layers) = float64 reference', async () => {
    const gpu = await testGpu();
    const kc = kcOf();
    const d = new StudentDistiller(gpu, tcfg, tw, small.config, small.weights, kc, stream);
    const B = 2, T = 7, BT = B * T;
    const r = rng(5);
    const tokens = Array.from({ length: BT }, () => Math.floor(r() * tcfg.vocabSize));
    const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
    const sums = gpu.tensor('sums', [3]);
    gpu.zero(sums);
    d.student.zeroGrads();
    d.microStep(new Uint32Array(tokens), new Uint32Array(targets), B, T, 1, sums, 0);
    // reference
    const ft = refForward(tcfg, tw, tokens, B, T);
    const fs = refForward(small.config, small.weights, tokens, B, T);
    const kl = refKlLoss(fs.logits, ft.logits, tcfg.vocabSize, kc.temperature);
    // the GPU's CE averages over all B·T rows (ignored rows count 0); refLoss over counted rows
    const ce = refLoss(fs.logits, targets, tcfg.vocabSize);
    const n = ce.count;
    const dl = kl.dlogits.map((x, i) => kc.loss.kl * x + kc.loss.ce * ce.dlogits[i] * (n / BT));
    // the GPU's MSE is a mean over C per row then /BT: = refMseLoss (mean over all elements)
    const dhidden = kc.layerMap!.map((tl, l) => refMseLoss(fs.layers[l].out, ft.layers[tl].out).d.map((x) => kc.loss.hidden * x));
    const g = namedGrads(refBackward(small.config, small.weights, null, null, null, fs, dl, { dhidden }));
    const s = d.student;
    const tol = { atol: 3e-5, rtol: 2e-3 };
    expectClose('tokEmbed grad', await s.tokEmbedGrad!.read(gpu), g.get('tokEmbed')!, tol);
    expectClose('lmHead grad', await s.lmHead.gradTable!.read(gpu), g.get('lmHead')!, tol);
    expectClose('finalNorm grad', await gpu.readF32(s.finalNormGrad!), g.get('finalNorm')!, tol);
    const keys = { q: 'wq', k: 'wk', v: 'wv', o: 'wo', gate: 'wGate', up: 'wUp', down: 'wDown' } as const;
    for (let l = 0; l < 2; l++) {
      for (const [p, k] of Object.entries(keys)) expectClose(`layer ${l} ${p} grad`, await gpu.readF32((s.layers[l].proj[p as keyof typeof keys] as DenseLinear).grad!), g.get(`layers.${l}.${k}`)!, tol);
      expectClose(`layer ${l} attnNorm grad`, await gpu.readF32(s.layers[l].attnNormGrad!), g.get(`layers.${l}.attnNorm`)!, tol);
    }
    // the loss sums
    const sv = await gpu.readF32(sums);
    expect(sv[0] / BT).toBeCloseTo(kl.loss, 4);
    expect(sv[1] / BT).toBeCloseTo((ce.loss * n) / BT, 4);
    const hid = kc.layerMap!.reduce((a, tl, l) => a + refMseLoss(fs.layers[l].out, ft.layers[tl].out).loss, 0);
    expect(sv[2] / BT).toBeCloseTo(hid, 4);
    gpu.free(sums);
    d.free();
  });

  it('resume from a checkpoint = uninterrupted (weights, metrics); CE-only needs no teacher', async () => {
    const gpu = await testGpu();
    for (const kc of [kcOf({ accum: 2 }), kcOf({ loss: { kl: 0, ce: 1, hidden: 0 } })]) {
      const full = new StudentDistiller(gpu, tcfg, kc.loss.kl ? tw : null, small.config, small.weights, kc, stream);
      expect(!!full.teacher).toBe(kc.loss.kl > 0);
      for (let i = 0; i < 6; i++) await full.trainStep();
      const a = new StudentDistiller(gpu, tcfg, tw, small.config, small.weights, kc, stream);
      for (let i = 0; i < 3; i++) await a.trainStep();
      const ck = await a.checkpointTensors(), step = a.step, st = a.rng.state, hist = [...a.history];
      a.free();
      const b = new StudentDistiller(gpu, tcfg, tw, small.config, small.weights, kc, stream);
      b.restore(new Map(ck.map((t) => [t.name, t.data])), step, st, hist);
      for (let i = 0; i < 3; i++) await b.trainStep();
      expect(b.history.map((m) => m.loss)).toEqual(full.history.map((m) => m.loss));
      const wf = await full.weights(), wb = await b.weights();
      expect([...wb.layers[1].wDown]).toEqual([...wf.layers[1].wDown]);
      expect([...wb.tokEmbed]).toEqual([...wf.tokEmbed]);
      full.free();
      b.free();
    }
  });

  it('a non-finite loss stops the run, at most maxInFlight steps after the broken one', async () => {
    const gpu = await testGpu();
    const d = new StudentDistiller(gpu, tcfg, tw, small.config, small.weights, kcOf({ steps: 6 }), stream);
    const norm = d.params.find((p) => p.name === 'finalNorm')!;
    gpu.write(norm.param, new Float32Array(norm.param.numel).fill(NaN)); // every student logit NaN from step 0 on
    await expectStopsOnNonFinite(d, 6, /student loss became NaN at step 0/);
    d.free();
  });

  it('refuses a student with another vocabulary, and hidden MSE across widths', async () => {
    const gpu = await testGpu();
    const other = { ...small.config, vocabSize: 31 };
    expect(() => new StudentDistiller(gpu, tcfg, tw, other, randomWeights(other, 1), kcOf(), stream)).toThrow(/vocabulary \(31 tokens\) differs from the teacher's \(29\)/);
    const narrow = { ...tcfg, dim: 16, nLayers: 2 };
    expect(() => new StudentDistiller(gpu, tcfg, tw, narrow, randomWeights(narrow, 1), kcOf(), stream)).toThrow(/same width/);
  });
});
