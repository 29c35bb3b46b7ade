// Training losses without B·T·V logits: the logit losses run chunk by chunk of rows (with the
// student's layer activations recomputed in the backward) and give the float64 reference's
// gradients; KD-QAT chunked = unchunked (loss and every gradient) with a chunk that does not
// divide B·T; and at the SmolLM2-135M width and vocabulary (1 layer) a KD-QAT step runs where
// one logits tensor would exceed lavapipe's 128 MiB binding.
import { describe, expect, it } from 'vitest';
import { PROJECTIONS, PROJECTION_KEY, randomWeights, tinyConfig, type LlamaConfig } from '../model/config';
import { LlamaModel } from '../model/llama';
import { namedGrads, refBackward, refForward, refLoss } from '../ref/llama';
import { expectClose, rng, testGpu } from '../testing';
import { DEFAULT_DISTILL, Distiller, type DistillConfig } from './distill';
import { parseFreeze } from './freeze';
import { LogitLoss } from './logit-loss';
import { Pretrainer } from './pretrain';
import type { Gpu } from '../gpu/runtime';

async function grads(gpu: Gpu, d: Distiller): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const p of d.params) out.set(p.name, await gpu.readF32(p.grad));
  return out;
}

describe('chunked logit losses', () => {
  for (const [name, over] of [
    ['untied', { tiedEmbeddings: false }],
    ['tied', { tiedEmbeddings: true }],
  ] as [string, Partial<LlamaConfig>][]) {
    it(`CE in chunks of 5 of 14 rows, layers recomputed in the backward = float64 reference gradients (${name})`, async () => {
      const gpu = await testGpu();
      const cfg = tinyConfig({ ...over, nKvHeads: 2, vocabSize: 37 });
      const w = randomWeights(cfg, 13, 0.5);
      const B = 2, T = 7, BT = B * T;
      const r = rng(8);
      const tokens = Array.from({ length: BT }, () => Math.floor(r() * cfg.vocabSize));
      const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
      const n = targets.filter((t) => t !== 0xffffffff).length;
      const model = LlamaModel.fromWeights(gpu, cfg, w, { trainable: true });
      const acts = model.activations(B, T, false, 5, 'residuals');
      expect(acts.logits.numel).toBe(5 * cfg.vocabSize);
      gpu.write(acts.tokens, new Uint32Array(tokens));
      model.forwardStart(acts);
      for (let l = 0; l < cfg.nLayers; l++) model.forwardLayer(acts, l);
      model.forwardFinish(acts, false);
      const tt = gpu.tensor('targets', [BT], 'u32', targets);
      const out = gpu.tensor('out', [2]);
      const dxnf = gpu.tensor('dxnf', [BT, cfg.dim]);
      const ll = new LogitLoss(gpu);
      model.zeroGrads();
      ll.run({ student: model, sa: acts, targets: tt, temperature: 1, klScale: 0, ceScale: 1 / n, out, klIndex: 0, ceIndex: 1, dxnf });
      model.backwardFromNorm(acts, dxnf);
      const f = refForward(cfg, w, tokens, B, T);
      const ref = refLoss(f.logits, targets, cfg.vocabSize);
      expectClose('loss', [(await gpu.readF32(out))[1] / n], [ref.loss], { atol: 1e-5, rtol: 1e-5 });
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
      ll.free();
      model.free();
      for (const t of [tt, out, dxnf]) gpu.free(t);
    });
  }

  const cfg = tinyConfig({ dim: 32, hiddenDim: 44, nHeads: 4, nKvHeads: 2, vocabSize: 29, maxSeqLen: 32 });
  const stream = (() => {
    const r = rng(9);
    return Uint32Array.from({ length: 600 }, () => Math.floor(r() * cfg.vocabSize));
  })();
  const dcOf = (over: Partial<DistillConfig>): DistillConfig => ({ ...DEFAULT_DISTILL, freeze: parseFreeze('ov', cfg.nLayers), steps: 4, batch: 3, seq: 7, warmup: 1, lr: 5e-3, metricsEvery: 1, ...over });
  for (const [name, loss] of [
    ['KL + CE + attention-output + hidden MSE', { kl: 1, ce: 0.5, attnMap: 0, attnOut: 0.3, hidden: 0.2 }],
    ['KL (T = 2) + attention-map KL', { kl: 1, ce: 0, attnMap: 0.5, attnOut: 0, hidden: 0, temperature: 2 }],
  ] as [string, DistillConfig['loss'] & { temperature?: number }][]) {
    it(`KD-QAT: chunks of 4 of 21 rows with recomputed layers = one full logits tensor (${name})`, async () => {
      const gpu = await testGpu();
      const w = randomWeights(cfg, 21, 0.5);
      const { temperature = 1, ...lw } = loss;
      const dc = dcOf({ loss: lw, temperature });
      const full = new Distiller(gpu, cfg, w, dc, stream, { logitRows: 21, recompute: false, teacherHalf: false });
      const chunked = new Distiller(gpu, cfg, w, dc, stream, { logitRows: 4, recompute: true, teacherHalf: false });
      expect(chunked.plan.logitRows).toBe(4);
      expect(chunked.student.activations(3, 7, lw.attnMap > 0, 4, 'residuals').logits.numel).toBe(4 * cfg.vocabSize);
      for (let s = 0; s < 2; s++) {
        const a = await full.trainStep();
        const b = await chunked.trainStep();
        expect(Math.abs(a.loss - b.loss)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(a.loss)));
        for (const k of ['kl', 'ce', 'attnMap', 'attnOut', 'hidden'] as const) expect(Math.abs(a.losses[k] - b.losses[k])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(a.losses[k])));
        expect(a.losses.kl + a.losses.ce).toBeGreaterThan(0);
        expectClose('hidden rel err', b.hiddenRelErr!, a.hiddenRelErr!, { atol: 1e-6, rtol: 1e-4 });
        expectClose('attnOut rel err', b.attnOutRelErr!, a.attnOutRelErr!, { atol: 1e-6, rtol: 1e-4 });
        const ga = await grads(gpu, full), gb = await grads(gpu, chunked);
        expect([...gb.keys()]).toEqual([...ga.keys()]);
        for (const [k, v] of ga) expectClose(`grad ${k} step ${s}`, gb.get(k)!, v, { atol: 1e-6, rtol: 1e-4 });
      }
      full.free();
      chunked.free();
    });
  }

  it('pretraining: chunks of 6 rows = one full logits tensor (loss curve)', async () => {
    const gpu = await testGpu();
    const c = tinyConfig({ vocabSize: 13, maxSeqLen: 32 });
    const s = Uint32Array.from({ length: 300 }, (_, i) => (i * 7 + (i >> 3)) % 13);
    const pc = { steps: 3, batch: 2, seq: 10, lr: 1e-2, warmup: 1, minLrRatio: 0.1, weightDecay: 0, gradClip: 1, seed: 3 };
    const a = new Pretrainer(gpu, c, pc, s, undefined, 20);
    const b = new Pretrainer(gpu, c, pc, s, undefined, 6);
    for (let i = 0; i < 3; i++) {
      const x = await a.trainStep(), y = await b.trainStep();
      expect(Math.abs(x.loss - y.loss)).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(x.gradNorm - y.gradNorm)).toBeLessThanOrEqual(1e-5 * x.gradNorm);
    }
    a.free();
    b.free();
  });
});

// SmolLM2-135M width, MLP, heads and vocabulary at 1 layer: B·T = 700 rows of 49152 logits would
// be 138 MB, more than one binding on lavapipe (128 MiB); the chunked step never holds them.
// (The classifier's matmuls over 700 rows dominate: ~40 s on 2 quiet cores.)
const SMOL2: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: 1, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };

describe('chunked KD-QAT at the SmolLM2-135M width and vocabulary (1 layer)', () => {
  it('a KD-QAT step over 700 rows runs where one logits tensor would not fit a binding', async () => {
    const gpu = await testGpu();
    const V = SMOL2.vocabSize, BT = 700;
    const bind = gpu.device.limits.maxStorageBufferBindingSize;
    expect(BT * V * 4).toBeGreaterThan(bind);
    expect(() => gpu.tensor('unchunked.logits', [BT, V])).toThrow(/maxStorageBufferBindingSize/);
    const r = rng(4);
    const stream = Uint32Array.from({ length: 2000 }, () => Math.floor(r() * V));
    const dc: DistillConfig = { ...DEFAULT_DISTILL, scaleInit: 'minmax', freeze: parseFreeze('ov', 1), steps: 1, batch: 1, seq: 700, warmup: 1, metricsEvery: 0 };
    const peak0 = gpu.peakBytes;
    gpu.peakBytes = gpu.liveBytes;
    const w = randomWeights(SMOL2, 3, 0.05);
    for (let i = 0; i < w.tokEmbed.length; i++) w.tokEmbed[i] *= 0.05; // logits of a few units, not hundreds
    const d = new Distiller(gpu, SMOL2, w, dc, stream);
    try {
      const m = await d.trainStep();
      expect(Number.isFinite(m.loss)).toBe(true);
      expect(m.losses.kl).toBeGreaterThan(0); // a 4-bit student differs from its teacher
      expect(m.losses.ce).toBeGreaterThan(0);
      expect(Math.abs(m.loss - (m.losses.kl + 0.5 * m.losses.ce))).toBeLessThan(1e-5 * m.loss);
      expect(m.gradNorm).toBeGreaterThan(0);
      const biggest = gpu.memoryReport()[0];
      expect(biggest.bytes).toBeLessThan(BT * V * 4);
      expect(d.plan.logitRows).toBeLessThan(BT);
      console.log(`SmolLM2 width, 1 layer, 1x700 KD-QAT step: loss ${m.loss.toFixed(4)}, ${d.plan.logitRows} logit rows per chunk, peak ${(gpu.peakBytes / 2 ** 20).toFixed(0)} MiB, largest tensor ${biggest.label} ${(biggest.bytes / 2 ** 20).toFixed(0)} MiB`);
    } finally {
      d.free();
      gpu.peakBytes = Math.max(peak0, gpu.peakBytes);
    }
  }, 600_000);
});
