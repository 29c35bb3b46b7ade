// Vocabulary tables split across bindings (model/vocab.ts), on a tiny model made to split: a
// 1000×32 fp32 table is 125 KiB; with one binding forced to 40 KiB (setMaxBindingBytes, the split
// decision only) it is 4 chunks of 320, 320, 320 and a ragged 40 rows, the code path a 1 GB
// Llama-3.2-1B embedding takes on lavapipe (8 chunks of 16384 rows). Logits, greedy generation,
// perplexity, every gradient (full logits and chunked-row losses) = the float64 reference and the
// unsplit model; a KD-QAT step's losses and student gradients and a pretraining step's embedding
// gradient and update = the unsplit runs.
import { afterEach, describe, expect, it } from 'vitest';
import { PROJECTIONS, PROJECTION_KEY, randomWeights, tinyConfig, type LlamaConfig } from './config';
import { LlamaModel } from './llama';
import { maxBindingBytes, setMaxBindingBytes, vocabChunkRows, VocabLinear } from './vocab';
import { generate, sequenceNlls, tokenLogprobsBatch } from './runner';
import { crossEntropyBackward, crossEntropyForward } from '../ops/loss';
import { embeddingForwardRef } from '../ref/embedding';
import { namedGrads, refBackward, refForward, refGenerateGreedy, refLoss } from '../ref/llama';
import { expectClose, rng, testGpu } from '../testing';
import { DEFAULT_DISTILL, Distiller, type DistillConfig } from '../train/distill';
import { parseFreeze } from '../train/freeze';
import { gpuLimits, planDistillMemory } from '../train/memory';
import { LogitLoss } from '../train/logit-loss';
import { Pretrainer } from '../train/pretrain';
import { Rng, sampleBatch } from '../train/data';
import type { Gpu } from '../gpu/runtime';

const V = 1000, C = 32, LIMIT = 40 * 1024;
const base = (over: Partial<LlamaConfig> = {}) => tinyConfig({ dim: C, hiddenDim: 48, nHeads: 4, nKvHeads: 2, vocabSize: V, maxSeqLen: 32, ...over });

let gpuUsed: Gpu | null = null;
afterEach(() => {
  if (gpuUsed) setMaxBindingBytes(gpuUsed, null);
});

/** The same weights as one model with whole tables and one split under LIMIT. */
async function pair(cfg: LlamaConfig, seed: number, opts: Parameters<typeof LlamaModel.fromWeights>[3] = {}) {
  const gpu = await testGpu();
  gpuUsed = gpu;
  const w = randomWeights(cfg, seed, 0.5);
  const whole = LlamaModel.fromWeights(gpu, cfg, w, opts);
  setMaxBindingBytes(gpu, LIMIT);
  const split = LlamaModel.fromWeights(gpu, cfg, w, opts);
  setMaxBindingBytes(gpu, null);
  return { gpu, w, whole, split };
}

describe('vocabulary tables split across bindings', () => {
  it('the split: whole rows under the limit, multiples of 64, a ragged last chunk', async () => {
    expect(vocabChunkRows(V, C, LIMIT)).toBe(320);
    expect(vocabChunkRows(V, C, 4 * V * C)).toBe(V); // fits: one chunk
    expect(vocabChunkRows(128256, 2048, 2 ** 27)).toBe(16384); // Llama-3.2-1B on lavapipe: 8 chunks
    expect(vocabChunkRows(32000, 2048, 2 ** 27)).toBe(16384); // TinyLlama: 2
    expect(() => vocabChunkRows(10, 64, 200)).toThrow(/one row of 64 f32 values \(256 bytes\) is more than one binding/);
    const { gpu, whole, split } = await pair(base(), 1);
    expect(maxBindingBytes(gpu)).toBe(Math.min(gpu.device.limits.maxStorageBufferBindingSize, gpu.device.limits.maxBufferSize));
    expect(whole.tokEmbed.chunks.length).toBe(1);
    expect(split.tokEmbed.rows).toEqual([320, 320, 320, 40]);
    expect(split.tokEmbed.starts).toEqual([0, 320, 640, 960]);
    expect(split.tokEmbed.chunks.every((t) => t.bytes <= LIMIT)).toBe(true);
    expect(split.tokEmbed.chunks.map((t) => t.label)).toEqual(['model.tok_embeddings.0', 'model.tok_embeddings.1', 'model.tok_embeddings.2', 'model.tok_embeddings.3']);
    expect(split.weightBytes()).toBe(whole.weightBytes());
    expect(await split.tokEmbed.read(gpu)).toEqual(await whole.tokEmbed.read(gpu));
    whole.free();
    split.free();
  });

  for (const [name, over] of [
    ['tied', { tiedEmbeddings: true }],
    ['untied', { tiedEmbeddings: false }],
  ] as [string, Partial<LlamaConfig>][]) {
    it(`logits, loss and every gradient = float64 reference and the unsplit model (${name})`, async () => {
      const cfg = base(over);
      const { gpu, w, whole, split } = await pair(cfg, 7, { trainable: true });
      expect(split.lmHead.split).toBe(true);
      if (!cfg.tiedEmbeddings) expect(split.lmHead.w.rows).toEqual([320, 320, 320, 40]);
      const B = 2, T = 7, BT = B * T;
      const r = rng(3);
      // ids in every chunk, both ends of the vocabulary
      const tokens = Array.from({ length: BT }, (_, i) => (i === 0 ? 999 : i === 1 ? 0 : i === 2 ? 320 : i === 3 ? 959 : Math.floor(r() * V)));
      const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
      const n = targets.filter((t) => t !== 0xffffffff).length;
      const f = refForward(cfg, w, tokens, B, T);
      const ref = refLoss(f.logits, targets, V);
      const g = namedGrads(refBackward(cfg, w, tokens, B, T, f, ref.dlogits));
      const tol = { atol: 2e-5, rtol: 2e-3 };
      const got: Record<string, Map<string, Float32Array>> = {};
      for (const [which, model] of [['whole', whole], ['split', split]] as const) {
        const acts = model.activations(B, T);
        gpu.write(acts.tokens, new Uint32Array(tokens));
        model.forward(acts);
        const ttg = gpu.tensor('targets', [BT], 'u32', targets);
        const dlogits = gpu.tensor('dlogits', [BT, V]);
        const losses = gpu.tensor('losses', [BT]);
        crossEntropyForward(gpu, losses, acts.logits, ttg, BT, V);
        crossEntropyBackward(gpu, dlogits, acts.logits, ttg, BT, V, 1 / n);
        model.zeroGrads();
        model.backward(acts, dlogits);
        const m = new Map<string, Float32Array>([['logits', await gpu.readF32(acts.logits)], ['x0', await gpu.readF32(acts.x[0])], ['tokEmbed', await model.tokEmbedGrad!.read(gpu)], ['finalNorm', await gpu.readF32(model.finalNormGrad!)]]);
        if (!cfg.tiedEmbeddings) m.set('lmHead', await model.lmHead.gradTable!.read(gpu));
        for (let li = 0; li < cfg.nLayers; li++) for (const p of PROJECTIONS) m.set(`layers.${li}.${PROJECTION_KEY[p]}`, await gpu.readF32(model.layers[li].proj[p].grad!));
        const l = await gpu.readF32(losses);
        expectClose(`${which} loss`, [l.reduce((s, x) => s + x, 0) / n], [ref.loss], { atol: 1e-5, rtol: 1e-5 });
        got[which] = m;
        for (const t of [ttg, dlogits, losses]) gpu.free(t);
      }
      const s = got.split, u = got.whole;
      expectClose('split logits = reference', s.get('logits')!, f.logits, { atol: 1e-4, rtol: 1e-4 });
      expectClose('split embeddings = reference', s.get('x0')!, embeddingForwardRef(tokens, w.tokEmbed, C), { atol: 0, rtol: 0 });
      for (const [k, v] of s) if (k !== 'logits' && k !== 'x0') expectClose(`split d ${k} = reference`, v, g.get(k)!, tol);
      // the same numbers as the unsplit model (each chunk's matmul is the same per-element sum)
      for (const [k, v] of s) expectClose(`split ${k} = unsplit`, v, u.get(k)!, { atol: 1e-6, rtol: 1e-5 });
      whole.free();
      split.free();
    });
  }

  it('chunked-row CE (LogitLoss, 5 of 14 rows) over a split untied classifier = float64 reference gradients', async () => {
    const cfg = base({ tiedEmbeddings: false });
    const { gpu, w, whole, split } = await pair(cfg, 9, { trainable: true });
    whole.free();
    const B = 2, T = 7, BT = B * T;
    const r = rng(8);
    const tokens = Array.from({ length: BT }, () => Math.floor(r() * V));
    const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
    const n = targets.filter((t) => t !== 0xffffffff).length;
    const acts = split.activations(B, T, false, 5, 'residuals');
    gpu.write(acts.tokens, new Uint32Array(tokens));
    split.forwardStart(acts);
    for (let l = 0; l < cfg.nLayers; l++) split.forwardLayer(acts, l);
    split.forwardFinish(acts, false);
    const tt = gpu.tensor('targets', [BT], 'u32', targets), out = gpu.tensor('out', [2]), dxnf = gpu.tensor('dxnf', [BT, cfg.dim]);
    const ll = new LogitLoss(gpu);
    split.zeroGrads();
    ll.run({ student: split, sa: acts, targets: tt, temperature: 1, klScale: 0, ceScale: 1 / n, out, klIndex: 0, ceIndex: 1, dxnf });
    split.backwardFromNorm(acts, dxnf);
    const f = refForward(cfg, w, tokens, B, T);
    const ref = refLoss(f.logits, targets, V);
    expectClose('loss', [(await gpu.readF32(out))[1] / n], [ref.loss], { atol: 1e-5, rtol: 1e-5 });
    const g = namedGrads(refBackward(cfg, w, tokens, B, T, f, ref.dlogits));
    const tol = { atol: 2e-5, rtol: 2e-3 };
    expectClose('d tokEmbed', await split.tokEmbedGrad!.read(gpu), g.get('tokEmbed')!, tol);
    expectClose('d lmHead', await split.lmHead.gradTable!.read(gpu), g.get('lmHead')!, tol);
    expectClose('d finalNorm', await gpu.readF32(split.finalNormGrad!), g.get('finalNorm')!, tol);
    ll.free();
    split.free();
    for (const t of [tt, out, dxnf]) gpu.free(t);
  });

  it('greedy generation, log-probs and batched GPU-scored NLL = float64 reference and the unsplit model', async () => {
    const cfg = base();
    const { gpu, w, whole, split } = await pair(cfg, 5);
    const prompt = [1, 999, 321, 640, 17];
    const want = refGenerateGreedy(cfg, w, prompt, 10);
    expect(await generate(split, prompt, { maxTokens: 10 })).toEqual(want);
    expect(await generate(whole, prompt, { maxTokens: 10 })).toEqual(want);
    const r = rng(2);
    const docs = [Array.from({ length: 20 }, () => Math.floor(r() * V)), Array.from({ length: 13 }, () => Math.floor(r() * V))];
    const a = await tokenLogprobsBatch(split, docs), b = await tokenLogprobsBatch(whole, docs);
    const refNll: number[] = [];
    docs.forEach((d, k) => {
      const f = refForward(cfg, w, d, 1, d.length);
      const lp = new Float64Array(d.length - 1);
      for (let t = 0; t + 1 < d.length; t++) {
        const row = f.logits.subarray(t * V, (t + 1) * V);
        const mx = Math.max(...row);
        lp[t] = row[d[t + 1]] - mx - Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
      }
      expectClose(`log-probs doc ${k} = reference`, a[k], lp, { atol: 1e-4, rtol: 1e-4 });
      expectClose(`log-probs doc ${k} = unsplit`, a[k], b[k], { atol: 1e-6, rtol: 0 });
      refNll.push(-lp.reduce((x, y) => x + y, 0));
    });
    // evaluation's path: batched documents, the log-softmax on the GPU over chunks of 7 logit rows
    const nll = await sequenceNlls(split, docs, { logitBytes: 7 * 4 * V });
    expectClose('summed NLL (sequenceNlls) = reference', nll, refNll, { atol: 1e-3, rtol: 1e-5 });
    expectClose('summed NLL (sequenceNlls) = unsplit', nll, await sequenceNlls(whole, docs, { logitBytes: 7 * 4 * V }), { atol: 1e-5, rtol: 0 });
    whole.free();
    split.free();
  });

  it('KD-QAT: a step over a split embedding and tied classifier = the unsplit step (losses, student gradients)', async () => {
    const gpu = await testGpu();
    gpuUsed = gpu;
    const cfg = base();
    const w = randomWeights(cfg, 21, 0.5);
    const r = rng(9);
    const stream = Uint32Array.from({ length: 600 }, () => Math.floor(r() * V));
    const dc: DistillConfig = { ...DEFAULT_DISTILL, freeze: parseFreeze('ov', cfg.nLayers), steps: 3, batch: 3, seq: 7, warmup: 1, lr: 5e-3, metricsEvery: 1, loss: { kl: 1, ce: 0.5, attnMap: 0, attnOut: 0.3, hidden: 0.2 } };
    const whole = new Distiller(gpu, cfg, w, dc, stream, { logitRows: 4, teacherHalf: false });
    setMaxBindingBytes(gpu, LIMIT);
    const split = new Distiller(gpu, cfg, w, dc, stream, { logitRows: 4, teacherHalf: false });
    setMaxBindingBytes(gpu, null);
    expect(split.teacher.tokEmbed.chunks.length).toBe(4);
    expect(split.student.tokEmbed).toBe(split.teacher.tokEmbed); // shared, frozen
    expect(split.student.lmHead).toBeInstanceOf(VocabLinear);
    for (let s = 0; s < 2; s++) {
      const a = await whole.trainStep(), b = await split.trainStep();
      expect(a.losses.kl).toBeGreaterThan(0);
      for (const k of ['kl', 'ce', 'attnOut', 'hidden'] as const) expect(Math.abs(a.losses[k] - b.losses[k])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(a.losses[k])));
      expect(Math.abs(a.loss - b.loss)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(a.loss)));
      expect(whole.params.map((p) => p.name)).toEqual(split.params.map((p) => p.name));
      for (let i = 0; i < whole.params.length; i++) expectClose(`grad ${whole.params[i].name} step ${s}`, await gpu.readF32(split.params[i].grad), await gpu.readF32(whole.params[i].grad), { atol: 1e-6, rtol: 1e-4 });
    }
    whole.free();
    split.free();
  });

  it('the memory plan counts the chunks and the classifier scratch: the bytes a split Distiller holds after a step', async () => {
    const gpu = await testGpu();
    gpuUsed = gpu;
    const cfg = base();
    const w = randomWeights(cfg, 2, 0.5);
    const r = rng(1);
    const stream = Uint32Array.from({ length: 400 }, () => Math.floor(r() * V));
    const dc: DistillConfig = { ...DEFAULT_DISTILL, scaleInit: 'minmax', freeze: parseFreeze('ov', cfg.nLayers), steps: 2, batch: 2, seq: 10, warmup: 1, metricsEvery: 0 };
    const mem = { logitRows: 8, recompute: false, teacherHalf: false };
    setMaxBindingBytes(gpu, LIMIT);
    const warm = new Distiller(gpu, cfg, w, dc, stream, mem); // grows the kernels' own scratch
    await warm.trainStep();
    warm.free();
    const before = gpu.liveBytes;
    const d = new Distiller(gpu, cfg, w, dc, stream, mem);
    await d.trainStep();
    const held = gpu.liveBytes - before;
    const plan = planDistillMemory(cfg, dc, gpuLimits(gpu), mem);
    expect(plan).toEqual(d.plan); // the Distiller plans with the split it gets
    setMaxBindingBytes(gpu, null);
    const lim = gpuLimits(gpu);
    expect(lim.vocabBindingBytes).toBe(Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize));
    expect(plan.vocabChunks).toBe(4);
    expect(plan.largest.bytes).toBeLessThanOrEqual(Math.max(LIMIT, 4 * 8 * V)); // a chunk, or the logits chunk
    expect(Math.abs(held - plan.bytes.total)).toBeLessThan(4096 + 4 * (d.params.length + 8 * cfg.nLayers));
    const unsplit = planDistillMemory(cfg, dc, lim, mem);
    expect(unsplit.vocabChunks).toBe(1);
    expect(plan.bytes.logits - unsplit.bytes.logits).toBe(2 * 4 * 8 * 320); // teacher's and student's (R, 320) scratch
    d.free();
    expect(gpu.liveBytes).toBe(before);
  });

  for (const tied of [true, false]) {
    it(`pretraining: a step's embedding gradient = float64 reference; AdamW per chunk = the unsplit update (${tied ? 'tied' : 'untied'})`, async () => {
      const gpu = await testGpu();
      gpuUsed = gpu;
      const cfg = base({ tiedEmbeddings: tied });
      const s = Uint32Array.from({ length: 400 }, (_, i) => (i * 379 + (i >> 2) * 17) % V);
      const pc = { steps: 3, batch: 2, seq: 8, lr: 1e-2, warmup: 1, minLrRatio: 0.1, weightDecay: 0.1, gradClip: 1, seed: 3 };
      const w = randomWeights(cfg, 4, 0.5);
      const a = new Pretrainer(gpu, cfg, pc, s, w, 6);
      setMaxBindingBytes(gpu, LIMIT);
      const b = new Pretrainer(gpu, cfg, pc, s, w, 6);
      setMaxBindingBytes(gpu, null);
      expect(b.model.tokEmbed.chunks.length).toBe(4);
      const x = await a.trainStep(), y = await b.trainStep();
      expect(Math.abs(x.loss - y.loss)).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(x.gradNorm - y.gradNorm)).toBeLessThanOrEqual(1e-5 * x.gradNorm);
      // the first batch, drawn as the Pretrainer draws it
      const { inputs, targets } = sampleBatch(s, pc.batch, pc.seq, new Rng(pc.seed));
      const f = refForward(cfg, w, [...inputs], pc.batch, pc.seq);
      const ref = refLoss(f.logits, [...targets], V);
      expect(Math.abs(y.loss - ref.loss)).toBeLessThanOrEqual(1e-5);
      const g = namedGrads(refBackward(cfg, w, [...inputs], pc.batch, pc.seq, f, ref.dlogits));
      expectClose('split d tokEmbed = reference', await b.model.tokEmbedGrad!.read(gpu), g.get('tokEmbed')!, { atol: 2e-5, rtol: 2e-3 });
      if (!tied) expectClose('split d lmHead = reference', await b.model.lmHead.gradTable!.read(gpu), g.get('lmHead')!, { atol: 2e-5, rtol: 2e-3 });
      const wa = await a.weights(), wb = await b.weights();
      expectClose('embedding after one AdamW step: split = unsplit', wb.tokEmbed, wa.tokEmbed, { atol: 1e-6, rtol: 1e-5 });
      if (!tied) expectClose('classifier after one AdamW step: split = unsplit', wb.lmHead!, wa.lmHead!, { atol: 1e-6, rtol: 1e-5 });
      expect(wb.tokEmbed).not.toEqual(w.tokEmbed);
      a.free();
      b.free();
    });
  }
});
