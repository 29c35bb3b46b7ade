// KD-QAT student: gradient check against the CPU reference (STE by its definition), frozen
// projections, determinism, and resume = uninterrupted.
import { describe, expect, it } from 'vitest';
import { PROJECTIONS, PROJECTION_KEY, randomWeights, tinyConfig, type LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { QatLinear, type QatOptions } from '../model/qat';
import { crossEntropyBackward } from '../ops/loss';
import { namedGrads, refBackward, refForward, refLoss } from '../ref/llama';
import { lsqScaleGradRef, steRef } from '../ref/quant';
import { dequantizeHost, quantizeHost, type PackedWeight } from '../format/pack';
import { searchClip } from '../quant/ptq';
import { expectClose, rng, testGpu } from '../testing';
import { expectStopsOnNonFinite } from './expect-stop';
import { DEFAULT_DISTILL, Distiller, lrAt, type DistillConfig, type StepMetrics } from './distill';
import { parseFreeze } from './freeze';
import type { Gpu } from '../gpu/runtime';

const cfg = tinyConfig({ dim: 32, hiddenDim: 44, nHeads: 4, nKvHeads: 2, vocabSize: 29, maxSeqLen: 32 });
const stream = (() => {
  const r = rng(9);
  return Uint32Array.from({ length: 600 }, () => Math.floor(r() * cfg.vocabSize));
})();
const dcOf = (over: Partial<DistillConfig> = {}): DistillConfig => ({ ...DEFAULT_DISTILL, freeze: parseFreeze('none', cfg.nLayers), steps: 6, batch: 2, seq: 8, warmup: 2, lr: 5e-3, metricsEvery: 0, ...over });

async function packedOf(gpu: Gpu, q: QatLinear): Promise<PackedWeight> {
  return { ...q.packed.layout, codes: (await gpu.read(q.packed.codes)) as Uint32Array, scales: await gpu.readF32(q.packed.scales), zeros: await gpu.readF32(q.packed.zeros) };
}

/** One CE forward/backward of a QAT student, and the float64 reference at its dequantized weights. */
async function studentStep(gpu: Gpu, w: LlamaWeights, qo: Omit<QatOptions, 'frozen'>, B: number, T: number, seed: number) {
  const student = LlamaModel.fromWeights(gpu, cfg, w, {
    trainable: true, trainEmbeddings: false,
    makeProjection: (l, p, W, N, K) => new QatLinear(gpu, `s.${l}.${p}`, W, N, K, { ...qo, frozen: false }),
  });
  const r = rng(seed);
  const tokens = Array.from({ length: B * T }, () => Math.floor(r() * cfg.vocabSize));
  const targets = tokens.map((_, i) => (i % T === T - 1 ? 0xffffffff : tokens[i + 1]));
  const acts = student.activations(B, T);
  gpu.write(acts.tokens, new Uint32Array(tokens));
  student.forward(acts);
  const tt = gpu.tensor('t', [B * T], 'u32', targets), dl = gpu.tensor('dl', [B * T, cfg.vocabSize]);
  crossEntropyBackward(gpu, dl, acts.logits, tt, B * T, cfg.vocabSize, 1 / targets.filter((t) => t !== 0xffffffff).length);
  student.zeroGrads();
  for (const L of student.layers) for (const p of PROJECTIONS) if ((L.proj[p] as QatLinear).scaleGrad) gpu.zero((L.proj[p] as QatLinear).scaleGrad!);
  student.backward(acts, dl);
  // reference: the model at the dequantized weights
  const packed: PackedWeight[][] = [];
  const wq: LlamaWeights = { ...w, layers: [] };
  for (let l = 0; l < cfg.nLayers; l++) {
    const lw = { ...w.layers[l] };
    packed.push([]);
    for (const p of PROJECTIONS) {
      const pw = await packedOf(gpu, student.layers[l].proj[p] as QatLinear);
      packed[l].push(pw);
      lw[PROJECTION_KEY[p]] = dequantizeHost(pw);
    }
    wq.layers.push(lw);
  }
  const f = refForward(cfg, wq, tokens, B, T);
  const g = namedGrads(refBackward(cfg, wq, tokens, B, T, f, refLoss(f.logits, targets, cfg.vocabSize).dlogits));
  gpu.free(tt);
  gpu.free(dl);
  return { student, packed, g };
}

describe('KD-QAT student', () => {
  it('student gradients = reference gradients at the quantized weights, passed through the STE (clip 0.8)', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 4, 0.5);
    const { student, packed, g } = await studentStep(gpu, w, { bits: 4, group: 16, sym: false, clip: 0.8 }, 2, 6, 2);
    let blocked = 0;
    for (let l = 0; l < cfg.nLayers; l++)
      for (const [i, p] of PROJECTIONS.entries()) {
        const dWq = g.get(`layers.${l}.${PROJECTION_KEY[p]}`)!;
        const want = steRef(dWq, w.layers[l][PROJECTION_KEY[p]], packed[l][i]);
        blocked += want.filter((x, j) => x === 0 && dWq[j] !== 0).length;
        expectClose(`latent grad layer ${l} ${p}`, await gpu.readF32((student.layers[l].proj[p] as QatLinear).grad!), want, { atol: 2e-5, rtol: 2e-3 });
      }
    expect(blocked).toBeGreaterThan(0); // the clip made the STE mask non-trivial
    expectClose('attnNorm grad', await gpu.readF32(student.layers[0].attnNormGrad!), g.get('layers.0.attnNorm')!, { atol: 2e-5, rtol: 2e-3 });
    student.free();
  });

  it('learned scales (LSQ): the scale gradient is the LSQ step-size gradient of the reference dWq; scales train and codes follow them', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 7, 0.5);
    const { student, packed, g } = await studentStep(gpu, w, { bits: 3, group: 16, sym: false, clip: 0.9, learnScales: true }, 2, 5, 3);
    for (let l = 0; l < cfg.nLayers; l++)
      for (const [i, p] of PROJECTIONS.entries()) {
        const dWq = g.get(`layers.${l}.${PROJECTION_KEY[p]}`)!;
        const want = lsqScaleGradRef(dWq, w.layers[l][PROJECTION_KEY[p]], packed[l][i]);
        expectClose(`scale grad layer ${l} ${p}`, await gpu.readF32((student.layers[l].proj[p] as QatLinear).scaleGrad!), want, { atol: 2e-5, rtol: 3e-3 });
      }
    student.free();
    // in a run: scales are parameters, they move, and the codes are those of the learned scales
    const d = new Distiller(gpu, cfg, w, dcOf({ scales: 'learned', scaleLrRatio: 1, steps: 3 }), stream);
    const q0 = d.student.layers[0].proj.q as QatLinear;
    const s0 = await gpu.readF32(q0.packed.scales);
    expect(d.params.filter((x) => x.isScale).length).toBe(cfg.nLayers * PROJECTIONS.length);
    for (let i = 0; i < 3; i++) await d.trainStep();
    d.requantize();
    const pw = await packedOf(gpu, q0);
    expect([...pw.scales]).not.toEqual([...s0]);
    const lat = await gpu.readF32(q0.latent!);
    const deq = dequantizeHost(pw);
    let mismatched = 0, notMinMax = 0;
    for (let n = 0; n < pw.N; n++) {
      for (let k = 0; k < pw.K; k++) {
        const b = n * pw.nBlocks + Math.floor(k / pw.group);
        const code = Math.min(2 ** pw.bits - 1, Math.max(0, Math.round(lat[n * pw.K + k] / pw.scales[b]) + pw.zeros[b]));
        if (Math.abs(deq[n * pw.K + k] - (code - pw.zeros[b]) * pw.scales[b]) > 1e-6) mismatched++;
      }
      // the scales are not those min/max would give the latents now: they were learned
      for (let b = 0; b < pw.nBlocks; b++) {
        const g = Array.from(lat.subarray(n * pw.K + b * pw.group, Math.min((n + 1) * pw.K, n * pw.K + (b + 1) * pw.group)));
        const mm = (Math.max(0, ...g) - Math.min(0, ...g)) / (2 ** pw.bits - 1);
        if (Math.abs(mm - pw.scales[n * pw.nBlocks + b]) > 1e-4 * mm) notMinMax++;
      }
    }
    expect(notMinMax).toBeGreaterThan((pw.N * pw.nBlocks) / 2);
    expect(mismatched).toBeLessThanOrEqual(2); // ties within an ulp may round either way on the GPU
    d.free();
  });

  it('frozen projections keep their codes, hold no fp32 latent and never get a gradient', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 5, 0.5);
    const d = new Distiller(gpu, cfg, w, dcOf({ freeze: parseFreeze('ov', cfg.nLayers), steps: 3 }), stream);
    const before = new Map<string, Uint32Array>();
    for (let l = 0; l < cfg.nLayers; l++) for (const p of PROJECTIONS) before.set(`${l}.${p}`, (await gpu.read((d.student.layers[l].proj[p] as QatLinear).packed.codes)) as Uint32Array);
    for (let i = 0; i < 3; i++) await d.trainStep();
    d.requantize();
    for (let l = 0; l < cfg.nLayers; l++)
      for (const p of PROJECTIONS) {
        const q = d.student.layers[l].proj[p] as QatLinear;
        const codes = (await gpu.read(q.packed.codes)) as Uint32Array;
        if (p === 'o' || p === 'v') {
          expect(q.grad).toBeNull();
          expect(q.latent).toBeNull(); // packed codes, scales and zeros only
          expect(q.bytes).toBe(q.packed.codes.bytes + q.packed.scales.bytes + q.packed.zeros.bytes);
          expect([...codes]).toEqual([...before.get(`${l}.${p}`)!]);
        } else {
          expect(q.grad).not.toBeNull();
          expect([...(await gpu.readF32(q.latent!))]).not.toEqual([...w.layers[l][PROJECTION_KEY[p]]]);
        }
      }
    d.free();
  });

  it('clip-search initialisation: frozen projections keep the searched quantization; learned scales start from it', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 8, 0.5);
    const d = new Distiller(gpu, cfg, w, dcOf({ bits: 2, freeze: parseFreeze('ov', cfg.nLayers), scales: 'learned', scaleInit: 'search', steps: 2 }), stream);
    const searched = (l: number, p: 'o' | 'q') => {
      const W = w.layers[l][PROJECTION_KEY[p]], q = d.student.layers[l].proj[p] as QatLinear;
      return quantizeHost(W, q.N, q.K, { bits: 2, group: DEFAULT_DISTILL.group, sym: false }, searchClip(W, q.N, q.K, 2, DEFAULT_DISTILL.group, false));
    };
    const o0 = await packedOf(gpu, d.student.layers[0].proj.o as QatLinear);
    const want = searched(0, 'o');
    expect([...o0.scales]).toEqual([...want.scales]);
    expect([...o0.zeros]).toEqual([...want.zeros]);
    expect(want.scales.some((s, i) => s !== quantizeHost(w.layers[0].wo, o0.N, o0.K, { bits: 2, group: DEFAULT_DISTILL.group, sym: false }).scales[i])).toBe(true); // the search clipped somewhere
    const deq = dequantizeHost(o0), deqWant = dequantizeHost(want);
    expect(deq.filter((x, i) => Math.abs(x - deqWant[i]) > 1e-6).length).toBeLessThanOrEqual(2); // GPU ties
    expect([...(await packedOf(gpu, d.student.layers[0].proj.q as QatLinear)).scales]).toEqual([...searched(0, 'q').scales]);
    await d.trainStep();
    await d.trainStep();
    d.requantize();
    const o1 = await packedOf(gpu, d.student.layers[0].proj.o as QatLinear);
    expect([...o1.codes]).toEqual([...o0.codes]);
    expect([...o1.scales]).toEqual([...o0.scales]);
    d.free();
  });

  it('same seed gives the same loss curve; resume equals an uninterrupted run', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 6, 0.5);
    for (const scales of ['minmax', 'learned'] as const) {
    const dc = dcOf({ loss: { kl: 1, ce: 0.5, attnMap: 0.1, attnOut: 0.1, hidden: 0.1 }, steps: 4, accum: 2, scales });
    const runAll = async () => {
      const d = new Distiller(gpu, cfg, w, dc, stream);
      const losses: number[] = [];
      for (let i = 0; i < 4; i++) losses.push((await d.trainStep()).loss);
      const params = await d.checkpointTensors();
      d.free();
      return { losses, params };
    };
    const a = await runAll();
    const b = await runAll();
    expect(b.losses).toEqual(a.losses);
    // interrupted after 2 steps, restored into a fresh trainer
    const d1 = new Distiller(gpu, cfg, w, dc, stream);
    const first = [(await d1.trainStep()).loss, (await d1.trainStep()).loss];
    const ck = new Map((await d1.checkpointTensors()).map((t) => [t.name, t.data]));
    const state = { step: d1.step, rng: d1.rng.state };
    d1.free();
    const d2 = new Distiller(gpu, cfg, w, dc, stream);
    d2.restore(ck, state.step, state.rng);
    const rest = [(await d2.trainStep()).loss, (await d2.trainStep()).loss];
    expect([...first, ...rest]).toEqual(a.losses);
    const final = await d2.checkpointTensors();
    final.forEach((t, i) => expect([...t.data]).toEqual([...a.params[i].data]));
    if (scales === 'learned') expect(final.some((t) => t.name.endsWith('.scales.param'))).toBe(true);
    d2.free();
    }
  });

  it('submitted steps never wait on the GPU; drained, they give the waited-for run bit for bit', async () => {
    const gpu = await testGpu();
    const w = randomWeights(cfg, 6, 0.5);
    // metrics every 2 steps: the detailed metrics (incl. code flips) also leave asynchronously
    const dc = dcOf({ loss: { kl: 1, ce: 0.5, attnMap: 0, attnOut: 0, hidden: 0.1 }, steps: 5, metricsEvery: 2 });
    const waited = new Distiller(gpu, cfg, w, dc, stream);
    await waited.snapshotCodes();
    for (let i = 0; i < 5; i++) await waited.trainStep();
    const wantParams = await waited.checkpointTensors();
    waited.free();
    const d = new Distiller(gpu, cfg, w, dc, stream);
    await d.snapshotCodes();
    d.maxInFlight = 5;
    const c0 = { ...gpu.counts };
    const landed: StepMetrics[] = [];
    for (let i = 0; i < 5; i++) landed.push(...(await d.submitStep()));
    expect(gpu.counts.hostWaits - c0.hostWaits, 'host waits inside 5 submitted steps').toBe(0);
    expect(gpu.counts.throttleWaits - c0.throttleWaits).toBe(0);
    expect(gpu.counts.asyncReads - c0.asyncReads).toBe(5);
    expect(d.step).toBe(5);
    landed.push(...(await d.drain()));
    expect(d.pendingSteps).toBe(0);
    expect(landed.map((m) => m.step)).toEqual([0, 1, 2, 3, 4]);
    expect(d.history).toEqual(landed);
    const strip = (m: (typeof landed)[number]) => ({ ...m, tokensPerSec: 0 });
    expect(d.history.map(strip)).toEqual(waited.history.map(strip));
    expect(d.history[2].codeFlips).toBeDefined();
    expect(d.history[1].gradSq).toBeUndefined();
    const got = await d.checkpointTensors();
    got.forEach((t, i) => expect([...t.data]).toEqual([...wantParams[i].data]));
    // with the default window the loop waits only for steps maxInFlight back (throttle), never inside a step for its own results
    const e = new Distiller(gpu, cfg, w, { ...dc, metricsEvery: 0 }, stream);
    const c1 = { ...gpu.counts };
    for (let i = 0; i < 5; i++) await e.submitStep();
    expect(gpu.counts.hostWaits - c1.hostWaits).toBe(0);
    expect(e.pendingSteps).toBeLessThanOrEqual(e.maxInFlight);
    await e.drain();
    expect(e.history.map((m) => m.loss)).toEqual(waited.history.map((m) => m.loss));
    e.free();
    d.free();
  });

  it('a non-finite loss still stops the run, at most maxInFlight steps after the broken one', async () => {
    const gpu = await testGpu();
    const d = new Distiller(gpu, cfg, randomWeights(cfg, 6, 0.5), dcOf({ steps: 6 }), stream);
    const norm = d.params.find((p) => p.name === 'finalNorm')!;
    gpu.write(norm.param, new Float32Array(norm.param.numel).fill(NaN)); // every logit NaN from step 0 on
    await expectStopsOnNonFinite(d, 6, /loss became NaN at step 0/);
    d.free();
  });

  it('learning rate: linear warm-up then cosine to minLrRatio', () => {
    const c = { lr: 1, warmup: 10, steps: 110, minLrRatio: 0.1 };
    expect(lrAt(0, c)).toBeCloseTo(0.1);
    expect(lrAt(9, c)).toBeCloseTo(1);
    expect(lrAt(60, c)).toBeCloseTo(0.55);
    expect(lrAt(110, c)).toBeCloseTo(0.1);
  });
});
