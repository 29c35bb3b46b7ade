// LLaMA-family config features against the float64 reference (issue 13, part C): rope_scaling
// llama3 (every frequency band: kept, smoothed, divided) and linear, an explicit head_dim, tied and
// untied classifiers. For each: the logits, every gradient of a CE step of the fp32 model, and one
// KD-QAT step (an fp32 teacher, a w4 QAT student, d = KL(T=2)·T² + 0.5·CE) whose student latent
// gradients must be the reference gradients at the dequantized weights passed through the STE.
// Then the same KD-QAT step at real widths and vocabularies at reduced depth: SmolLM2-135M's shape
// (576 wide, MLP 1536, 9/3 heads, vocab 49152, tied) and Llama-3.2-1B's features (2048 wide, 32/8
// heads of 64, llama3 scaling, theta 5e5, tied), with its MLP reduced from 8192 to 2048 (the step
// and its float64 reference cost ~3x less; no feature lives there) and its vocabulary to 8192 (the
// full 128256 x 2048 embedding is 1 GB, more than one storage binding).
import { describe, expect, it } from 'vitest';
import { layerShapes, PROJECTIONS, PROJECTION_KEY, randomWeights, tinyConfig, type LlamaConfig, type LlamaLayerWeights, type LlamaWeights } from './config';
import { LlamaModel } from './llama';
import { QatLinear } from './qat';
import { addForward } from '../ops/elementwise';
import { crossEntropyBackward, klBackward } from '../ops/loss';
import { namedGrads, refBackward, refDecoder, refForward, refKlLoss, refLoss } from '../ref/llama';
import { steRef } from '../ref/quant';
import { dequantizeHost, type PackedWeight } from '../format/pack';
import { expectClose, rng, testGpu } from '../testing';
import type { Gpu } from '../gpu/runtime';

const IGNORE = 0xffffffff;
const rms = (a: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s / a.length);
};

function batch(cfg: LlamaConfig, B: number, T: number, seed: number) {
  const r = rng(seed);
  const tokens = Array.from({ length: B * T }, () => Math.floor(r() * cfg.vocabSize));
  const targets = tokens.map((_, i) => (i % T === T - 1 ? IGNORE : tokens[i + 1]));
  return { tokens, targets, n: targets.filter((t) => t !== IGNORE).length };
}

async function gpuLogits(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, tokens: number[], B: number, T: number): Promise<Float32Array> {
  const m = LlamaModel.fromWeights(gpu, cfg, w);
  const acts = m.activations(B, T, false);
  gpu.write(acts.tokens, new Uint32Array(tokens));
  m.forward(acts);
  const out = await gpu.readF32(acts.logits);
  m.free();
  return out;
}

/** fp32 model, CE loss: logits, loss and every gradient vs the reference (as llama.test.ts). */
async function ceStep(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, B: number, T: number, seed: number): Promise<void> {
  const { tokens, targets, n } = batch(cfg, B, T, seed);
  const model = LlamaModel.fromWeights(gpu, cfg, w, { trainable: true });
  const acts = model.activations(B, T);
  gpu.write(acts.tokens, new Uint32Array(tokens));
  model.forward(acts);
  const tt = gpu.tensor('targets', [B * T], 'u32', targets);
  const dl = gpu.tensor('dlogits', [B * T, cfg.vocabSize]); // (B*T, V) f32
  crossEntropyBackward(gpu, dl, acts.logits, tt, B * T, cfg.vocabSize, 1 / n);
  model.zeroGrads();
  model.backward(acts, dl);
  const f = refForward(cfg, w, tokens, B, T);
  expectClose('logits', await gpu.readF32(acts.logits), f.logits, { atol: 1e-4, rtol: 1e-4 });
  const g = namedGrads(refBackward(cfg, w, tokens, B, T, f, refLoss(f.logits, targets, cfg.vocabSize).dlogits));
  const tol = { atol: 2e-5, rtol: 2e-3 };
  expectClose('d tokEmbed', await model.tokEmbedGrad!.read(gpu), g.get('tokEmbed')!, tol);
  expectClose('d finalNorm', await gpu.readF32(model.finalNormGrad!), g.get('finalNorm')!, tol);
  if (!cfg.tiedEmbeddings) expectClose('d lmHead', await model.lmHead.gradTable!.read(gpu), g.get('lmHead')!, tol);
  for (let l = 0; l < cfg.nLayers; l++) {
    const L = model.layers[l];
    expectClose(`d layers.${l}.attnNorm`, await gpu.readF32(L.attnNormGrad!), g.get(`layers.${l}.attnNorm`)!, tol);
    expectClose(`d layers.${l}.mlpNorm`, await gpu.readF32(L.mlpNormGrad!), g.get(`layers.${l}.mlpNorm`)!, tol);
    for (const p of PROJECTIONS) expectClose(`d layers.${l}.${p}`, await gpu.readF32(L.proj[p].grad!), g.get(`layers.${l}.${PROJECTION_KEY[p]}`)!, tol);
  }
  model.free();
  gpu.free(tt);
  gpu.free(dl);
}

/**
 * Where a latent sits within fp32 rounding of a clipping edge (w/s + z = −½ or qmax + ½), the GPU's
 * f32 division may put it on either side of the STE mask: there the reference takes the GPU's side
 * (0 or dWq, nothing else). Returns how many such ties there were (tens of millions of weights at
 * the real shapes give one or two).
 */
function acceptEdgeTies(got: Float32Array, want: Float64Array, dWq: ArrayLike<number>, w: Float32Array, p: PackedWeight): number {
  let ties = 0;
  for (let j = 0; j < want.length; j++) {
    if ((want[j] === 0) === (got[j] === 0) || dWq[j] === 0) continue;
    const n = Math.floor(j / p.K), b = n * p.nBlocks + Math.floor((j % p.K) / p.group);
    const u = w[j] / p.scales[b] + p.zeros[b];
    if (Math.min(Math.abs(u + 0.5), Math.abs(u - p.qmax - 0.5)) > 1e-5 * (Math.abs(u) + 1)) continue; // not a tie: the check fails on it
    want[j] = want[j] === 0 ? dWq[j] : 0;
    ties++;
  }
  return ties;
}

/**
 * One KD-QAT step: the fp32 teacher and a w4 (group 32, asymmetric, clip 0.9) QAT student run the
 * same batch (flash attention: no attention-map loss, as distillation runs by default);
 * d(logits) = KL(T=2)·T² / BT + 0.5·CE / BT (the Distiller's scaling: ignored rows count 0); the
 * student backward. Checked: teacher and student logits, and every student latent gradient =
 * STE(reference dWq at the dequantized weights) (every entry, or with sampleRows 16 bands of 8 rows
 * of each projection), plus the norm gradients.
 */
async function kdqatStep(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, B: number, T: number, seed: number, sampleRows = false, tol = { atol: 2e-5, rtol: 2e-3 }): Promise<void> {
  const BT = B * T, V = cfg.vocabSize, temp = 2, ceW = 0.5;
  const { tokens, targets, n } = batch(cfg, B, T, seed);
  const teacher = LlamaModel.fromWeights(gpu, cfg, w, { label: 'teacher' });
  const student = LlamaModel.fromWeights(gpu, cfg, w, {
    label: 'student', trainable: true, trainEmbeddings: false,
    makeProjection: (l, p, W, N, K) => new QatLinear(gpu, `s.${l}.${p}`, W, N, K, { bits: 4, group: 32, sym: false, clip: 0.9, frozen: false }),
  });
  const ta = teacher.activations(B, T, false), sa = student.activations(B, T, false);
  gpu.write(ta.tokens, new Uint32Array(tokens));
  gpu.write(sa.tokens, new Uint32Array(tokens));
  for (const L of student.layers) for (const p of PROJECTIONS) (L.proj[p] as QatLinear).requantize();
  teacher.forward(ta);
  student.forward(sa);
  const tt = gpu.tensor('targets', [BT], 'u32', targets);
  const dkl = gpu.tensor('dkl', [BT, V]), dce = gpu.tensor('dce', [BT, V]), dl = gpu.tensor('dl', [BT, V]); // (BT, V) f32
  klBackward(gpu, dkl, sa.logits, ta.logits, BT, V, temp, 1 / BT);
  crossEntropyBackward(gpu, dce, sa.logits, tt, BT, V, ceW / BT);
  addForward(gpu, dl, dkl, dce);
  student.zeroGrads();
  student.backward(sa, dl);
  // reference: the teacher at w, the student at its dequantized weights
  const packed: PackedWeight[][] = [];
  const wq: LlamaWeights = { ...w, layers: [] };
  for (let l = 0; l < cfg.nLayers; l++) {
    const lw = { ...w.layers[l] };
    packed.push([]);
    for (const p of PROJECTIONS) {
      const q = student.layers[l].proj[p] as QatLinear;
      const pw: PackedWeight = { ...q.packed.layout, codes: (await gpu.read(q.packed.codes)) as Uint32Array, scales: await gpu.readF32(q.packed.scales), zeros: await gpu.readF32(q.packed.zeros) };
      packed[l].push(pw);
      lw[PROJECTION_KEY[p]] = dequantizeHost(pw);
    }
    wq.layers.push(lw);
  }
  const ft = refForward(cfg, w, tokens, B, T);
  const fs = refForward(cfg, wq, tokens, B, T);
  // fp32 sums of K terms err by ~sqrt(K)·2⁻²⁴ of their scale: at 2048 wide that is ~1e-5 of the
  // logits' spread (sd 22 there), more than a fixed 1e-4 allows
  const lt = { atol: Math.max(1e-4, 2e-5 * rms(ft.logits)), rtol: 1e-4 };
  expectClose('teacher logits', await gpu.readF32(ta.logits), ft.logits, lt);
  expectClose('student logits', await gpu.readF32(sa.logits), fs.logits, lt);
  const kl = refKlLoss(fs.logits, ft.logits, V, temp);
  const ce = refLoss(fs.logits, targets, V);
  const d = kl.dlogits.map((x, i) => x + ceW * ce.dlogits[i] * (n / BT));
  const g = namedGrads(refBackward(cfg, wq, tokens, B, T, fs, d));
  let blocked = 0, ties = 0;
  for (let l = 0; l < cfg.nLayers; l++) {
    for (const [i, p] of PROJECTIONS.entries()) {
      const q = student.layers[l].proj[p] as QatLinear, pw = packed[l][i], K = pw.K;
      const dWq = g.get(`layers.${l}.${PROJECTION_KEY[p]}`)!, lw = w.layers[l][PROJECTION_KEY[p]];
      // every row, or (large shapes) bands of 8 rows spread over the output dimension (every head,
      // every column): reading and checking 60 M gradient entries would cost more than the step
      // fp32 error of a gradient entry follows the scale of the terms summed into it (V, C, H wide
      // sums of both signs), not the entry: at 2048 wide a few entries err by ~1e-4 of the tensor's
      // rms (measured 4.6e-5 at rms 0.37); the tiny models' fixed atol is far above that
      const gt = { ...tol, atol: Math.max(tol.atol, 2e-4 * rms(dWq)) };
      const bands: [number, number][] = sampleRows && pw.N > 16 * 8 ? Array.from({ length: 16 }, (_, k) => Math.floor((k * (pw.N - 8)) / 15)).map((r) => [r, r + 8]) : [[0, pw.N]];
      for (const [r0, r1] of bands) {
        const sub: PackedWeight = { ...pw, N: r1 - r0, scales: pw.scales.subarray(r0 * pw.nBlocks, r1 * pw.nBlocks), zeros: pw.zeros.subarray(r0 * pw.nBlocks, r1 * pw.nBlocks) };
        const dsub = dWq.subarray(r0 * K, r1 * K), wsub = lw.subarray(r0 * K, r1 * K);
        const want = steRef(dsub, wsub, sub);
        blocked += want.filter((x, j) => x === 0 && dsub[j] !== 0).length;
        const got = new Float32Array(await gpu.readBytes(q.grad!.buffer, (r1 - r0) * K * 4, r0 * K * 4));
        ties += acceptEdgeTies(got, want, dsub, wsub, sub);
        expectClose(`latent grad layers.${l}.${p} rows ${r0}..${r1 - 1}`, got, want, gt);
      }
    }
    // a norm's gradient sums B·T rows of terms that already carry the attention and matmul
    // backwards' fp32 error (summation order differs per kernel variant): like the projections',
    // its error follows the tensor's scale (measured 9.4e-5 at rms 0.5 with the subgroup flash
    // backward at head size 64), so the same 2e-4·rms floor applies
    for (const nk of ['attnNorm', 'mlpNorm'] as const) {
      const want = g.get(`layers.${l}.${nk}`)!;
      expectClose(`d layers.${l}.${nk}`, await gpu.readF32(student.layers[l][`${nk}Grad`]!), want, { ...tol, atol: Math.max(tol.atol, 2e-4 * rms(want)) });
    }
  }
  expectClose('d finalNorm', await gpu.readF32(student.finalNormGrad!), g.get('finalNorm')!, tol);
  expect(blocked).toBeGreaterThan(0); // clip 0.9: the STE mask is not all ones
  expect(ties).toBeLessThanOrEqual(4);
  teacher.free();
  student.free();
  for (const t of [tt, dkl, dce, dl]) gpu.free(t);
}

/** randomWeights' scales (norms near 1, projections sd 0.5/sqrt(in/16), embedding sd 0.5) drawn
 *  uniform rather than normal: Box-Muller over 30-60 M values costs seconds a test need not spend. */
function fastWeights(cfg: LlamaConfig, seed: number): LlamaWeights {
  const w = randomWeights({ ...cfg, nLayers: 0, vocabSize: 1, tiedEmbeddings: true }, seed, 0.5);
  let s = seed >>> 0;
  const uni = (n: number, sd: number) => {
    const a = new Float32Array(n), h = sd * Math.sqrt(3);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = h * (2 * (s / 4294967296) - 1);
    }
    return a;
  };
  const shapes = layerShapes(cfg);
  for (let l = 0; l < cfg.nLayers; l++) {
    const lw = {} as LlamaLayerWeights;
    for (const [k, sh] of Object.entries(shapes) as [keyof LlamaLayerWeights, number[]][]) lw[k] = sh.length === 1 ? uni(sh[0], 0.03).map((x) => 1 + x) : uni(sh[0] * sh[1], 0.5 / Math.sqrt(sh[1] / 16));
    w.layers.push(lw);
  }
  return { ...w, tokEmbed: uni(cfg.vocabSize * cfg.dim, 0.5), lmHead: cfg.tiedEmbeddings ? null : uni(cfg.vocabSize * cfg.dim, 0.5) };
}

const LLAMA3 = (orig: number, factor: number) => ({ type: 'llama3' as const, factor, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: orig });

describe('LLaMA-family configs vs the float64 reference', () => {
  // HS = 8, theta 100: inverse frequencies 1, 0.316, 0.1, 0.0316 (wavelengths 6.3, 19.9, 62.8,
  // 199); with original length 32, low/high_freq_factor 1/4 the bands are < 8 kept, 8..32 smoothed,
  // > 32 divided: pair 0 kept, pair 1 smoothed, pairs 2 and 3 divided by the factor.
  const cases: [string, LlamaConfig][] = [
    ['rope_scaling llama3 (kept, smoothed and divided frequencies), GQA 4/2, untied', tinyConfig({ dim: 32, hiddenDim: 40, nHeads: 4, nKvHeads: 2, vocabSize: 37, ropeTheta: 100, ropeScaling: LLAMA3(32, 8) })],
    ['rope_scaling linear (factor 4), MQA 4/1, tied', tinyConfig({ dim: 32, hiddenDim: 40, nHeads: 4, nKvHeads: 1, vocabSize: 37, ropeTheta: 100, tiedEmbeddings: true, ropeScaling: { type: 'linear', factor: 4 } })],
    ['explicit head_dim 12 (not dim/heads) with llama3 scaling, tied', { ...tinyConfig({ dim: 32, hiddenDim: 40, nHeads: 4, nKvHeads: 2, vocabSize: 37, ropeTheta: 100, tiedEmbeddings: true, ropeScaling: LLAMA3(32, 8) }), headDim: 12 }],
  ];
  for (const [name, cfg] of cases) {
    it(`${name}: logits and every CE gradient; one KD-QAT step's student gradients`, async () => {
      const gpu = await testGpu();
      const w = randomWeights(cfg, 21, 0.5);
      const B = 2, T = 9;
      await ceStep(gpu, cfg, w, B, T, 3);
      await kdqatStep(gpu, cfg, w, B, T, 4);
      // the scaling changes the model (so the checks above would see it ignored on one side)
      const { tokens } = batch(cfg, B, T, 3);
      const plain = { ...cfg, ropeScaling: undefined };
      const a = await gpuLogits(gpu, cfg, w, tokens, B, T), b = refForward(plain, w, tokens, B, T).logits;
      expect(Math.max(...a.map((x, i) => Math.abs(x - b[i])))).toBeGreaterThan(1e-2);
    });
  }
});

describe('KV-cached decoding with a scaled RoPE', () => {
  it('llama3 scaling, token by token past original_max_position_embeddings: logits = the float64 decoder', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 32, hiddenDim: 40, nHeads: 4, nKvHeads: 2, vocabSize: 37, maxSeqLen: 64, ropeTheta: 100, ropeScaling: LLAMA3(32, 8) });
    const w = randomWeights(cfg, 23, 0.5);
    const m = LlamaModel.fromWeights(gpu, cfg, w);
    const cache = m.createKvCache(48);
    const dec = refDecoder(cfg, w);
    const acts = m.activations(1, 1, false);
    const r = rng(9);
    for (let pos = 0; pos < 48; pos++) {
      const tok = Math.floor(r() * cfg.vocabSize);
      gpu.write(acts.tokens, new Uint32Array([tok]));
      m.forwardCached(acts, cache, pos);
      const want = dec.step(tok, pos);
      if (pos % 8 === 7) expectClose(`logits at position ${pos}`, await gpu.readF32(acts.logits), want, { atol: 1e-4, rtol: 1e-4 });
    }
    m.freeKvCache(cache);
    m.free();
  });
});

describe('real widths and vocabularies at reduced depth', () => {
  it('SmolLM2-135M shape (576, MLP 1536, 9/3 heads, vocab 49152, tied), 1 layer: one KD-QAT step', async () => {
    const gpu = await testGpu();
    const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: 1, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 8192, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
    await kdqatStep(gpu, cfg, fastWeights(cfg, 5), 1, 6, 6);
  }, 300_000);

  it('Llama-3.2-1B features (2048 wide, 32/8 heads of 64, llama3 scaling, theta 5e5, tied; MLP 2048, vocab 8192), 1 layer: one KD-QAT step', async () => {
    const gpu = await testGpu();
    const cfg: LlamaConfig = { dim: 2048, hiddenDim: 2048, nLayers: 1, nHeads: 32, nKvHeads: 8, vocabSize: 8192, maxSeqLen: 131072, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true, ropeScaling: LLAMA3(8192, 32) };
    await kdqatStep(gpu, cfg, fastWeights(cfg, 7), 1, 4, 8, true);
  }, 300_000);
});
