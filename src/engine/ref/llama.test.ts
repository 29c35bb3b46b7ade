// The float64 reference LLaMA checked on its own: every weight gradient (CE, and the full
// distillation loss with mid-network terms) against central finite differences of the reference
// forward; attention rows causal and normalized; causality and batch independence of the logits;
// the KV-cached decoder against the full forward; and, where ../shared is present, llama2.c's
// golden greedy output of stories260K (which checks the forward itself: RoPE, GQA, norms, tied head).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig } from '../model/config';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../io/data';
import { readLlama2cCheckpoint } from '../io/llama2c';
import { Llama2cTokenizer } from '../io/tokenizer';
import {
  IGNORE, namedGrads, namedWeights, refAttnKlLoss, refBackward, refDecoder, refDistillLoss, refForward, refGenerateGreedy, refKlLoss, refLoss, refMseLoss, toF64Weights,
  type RefGrads, type RefWeights,
} from './llama';
import { expectClose, finiteDiff, rng, sampleIndices } from '../testing';

const EPS = 1e-5;
// Central differences at eps=1e-5 in float64: truncation ~eps²·f''' ≈ 1e-10, rounding ≈ 1e-16/eps.
const ATOL = 1e-9;
const RTOL = 1e-6;

/** Check sampled entries of every weight gradient against finite differences of lossOf(). */
function checkAllGrads(w: RefWeights, grads: Map<string, Float64Array>, lossOf: () => number, usedTokens: number[], C: number, perTensor = 6, zeroOk = /^$/): number {
  const named = namedWeights(w);
  expect(new Set(grads.keys())).toEqual(new Set(named.map(([k]) => k)));
  let checked = 0;
  for (const [key, arr] of named) {
    const g = grads.get(key)!;
    expect(g.length, key).toBe(arr.length);
    // a tensor that does not move the loss would make the check vacuous
    if (!zeroOk.test(key)) expect(Math.hypot(...g), `‖d ${key}‖`).toBeGreaterThan(1e-6);
    const idx = sampleIndices(arr.length, perTensor, key.length * 31 + key.charCodeAt(key.length - 1));
    if (key === 'tokEmbed') idx.push(usedTokens[0] * C + 1, usedTokens[usedTokens.length - 1] * C + (C - 1));
    for (const i of idx) {
      const old = arr[i];
      arr[i] = old + EPS;
      const lp = lossOf();
      arr[i] = old - EPS;
      const lm = lossOf();
      arr[i] = old;
      const fd = (lp - lm) / (2 * EPS);
      if (!(Math.abs(fd - g[i]) <= ATOL + RTOL * Math.abs(fd))) throw new Error(`${key}[${i}]: analytic ${g[i]} vs finite difference ${fd} (|diff| ${Math.abs(fd - g[i]).toExponential(2)})`);
      checked++;
    }
  }
  return checked;
}

const CONFIGS: [string, Partial<LlamaConfig>][] = [
  ['GQA 4/2, untied', { nKvHeads: 2, tiedEmbeddings: false }],
  ['GQA 4/2, tied', { nKvHeads: 2, tiedEmbeddings: true }],
  ['MQA 4/1, tied', { nKvHeads: 1, tiedEmbeddings: true }],
  ['MHA 4/4, untied', { nKvHeads: 4, tiedEmbeddings: false }],
];

function batch(cfg: LlamaConfig, B: number, T: number, seed: number): { tokens: number[][]; targets: number[][] } {
  const r = rng(seed);
  const tokens = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(r() * cfg.vocabSize)));
  // next-token targets, the last position ignored; one more ignored position in sequence 0
  const targets = tokens.map((s, b) => s.map((_, t) => (t === T - 1 || (b === 0 && t === 1) ? IGNORE : s[t + 1])));
  return { tokens, targets };
}

describe('reference LLaMA: gradients vs finite differences', () => {
  for (const [name, over] of CONFIGS) {
    it(`cross-entropy, every weight (${name})`, () => {
      const cfg = tinyConfig(over); // C=16, H=24, L=2, NH=4, V=11
      const w = toF64Weights(randomWeights(cfg, 7, 0.5));
      const B = 2, T = 5;
      const { tokens, targets } = batch(cfg, B, T, 3);
      const f = refForward(cfg, w, tokens);
      expect(f.logits.length).toBe(B * T * cfg.vocabSize);
      const { dlogits, count } = refLoss(f.logits, targets, cfg.vocabSize);
      expect(count).toBe(B * (T - 1) - 1);
      const grads = namedGrads(refBackward(cfg, w, tokens, B, T, f, dlogits));
      const lossOf = () => refLoss(refForward(cfg, w, tokens).logits, targets, cfg.vocabSize).loss;
      const n = checkAllGrads(w, grads, lossOf, tokens.flat(), cfg.dim);
      expect(n).toBeGreaterThan(100);
    });
  }

  it('T = 1, B = 3 (each row attends only to itself)', () => {
    const cfg = tinyConfig({ nKvHeads: 2, tiedEmbeddings: true });
    const w = toF64Weights(randomWeights(cfg, 8, 0.5));
    const tokens = [[4], [9], [0]];
    const targets = [[3], [IGNORE], [10]];
    const f = refForward(cfg, w, tokens);
    for (const lc of f.layers) expect([...lc.probs]).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const grads = namedGrads(refBackward(cfg, w, tokens, 3, 1, f, refLoss(f.logits, targets, cfg.vocabSize).dlogits));
    checkAllGrads(w, grads, () => refLoss(refForward(cfg, w, tokens).logits, targets, cfg.vocabSize).loss, [4, 0], cfg.dim, 4, /\.w[qk]$/);
    // a softmax over one key is constant: q and k do not move the loss
    expect(grads.get('layers.1.wq')!.every((x) => x === 0)).toBe(true);
  });

  it('distillation loss (logit KL at temperature 2 + CE + attention-map KL + attention-output and hidden MSE), every weight', () => {
    for (const over of [CONFIGS[0][1], CONFIGS[2][1]]) {
      const cfg = tinyConfig(over);
      const teacherW = toF64Weights(randomWeights(cfg, 21, 0.5));
      const w = toF64Weights(randomWeights(cfg, 22, 0.5));
      const { tokens, targets } = batch(cfg, 2, 4, 9);
      const teacher = refForward(cfg, teacherW, tokens);
      const weights = { kl: 0.7, ce: 0.3, attnMap: 0.5, attnOut: 2, hidden: 0.25 };
      const opts = { temperature: 2, targets };
      const d = refDistillLoss(cfg, w, refForward(cfg, w, tokens), teacher, weights, opts);
      for (const k of Object.keys(weights) as (keyof typeof weights)[]) expect(d.components[k], k).toBeGreaterThan(0);
      const lossOf = () => refDistillLoss(cfg, w, refForward(cfg, w, tokens), teacher, weights, opts).loss;
      checkAllGrads(w, namedGrads(d.grads), lossOf, tokens.flat(), cfg.dim, 4);
    }
  });

  it('each loss term’s gradient w.r.t. its input matches finite differences', () => {
    const V = 7, rows = 3, T = 4;
    const r = rng(5);
    const s = Float64Array.from({ length: rows * V }, () => 3 * (r() - 0.5));
    const t = Float64Array.from({ length: rows * V }, () => 3 * (r() - 0.5));
    for (const temp of [1, 2.5]) {
      const { loss, dlogits } = refKlLoss(s, t, V, temp);
      expect(loss).toBeGreaterThan(0);
      expect(refKlLoss(t, t, V, temp).loss).toBeCloseTo(0, 14);
      expectClose(`KL T=${temp}`, dlogits, finiteDiff((x) => refKlLoss(x, t, V, temp).loss, s, EPS), { atol: ATOL, rtol: RTOL });
    }
    expectClose('CE', refLoss(s, [2, IGNORE, 6], V).dlogits, finiteDiff((x) => refLoss(x, [2, -1, 6], V).loss, s, EPS), { atol: ATOL, rtol: RTOL });
    expect(refLoss(s, [-1, -1, 0xffffffff], V)).toMatchObject({ loss: 0, count: 0 });
    // causal attention rows: (rows, T, T) with zeros above the diagonal
    const probs = (seed: number) => {
      const g = rng(seed);
      const p = new Float64Array(2 * T * T);
      for (let row = 0; row < 2 * T; row++) {
        const q = row % T;
        let z = 0;
        for (let j = 0; j <= q; j++) z += p[row * T + j] = 0.2 + g();
        for (let j = 0; j <= q; j++) p[row * T + j] /= z;
      }
      return p;
    };
    const ps = probs(1), pt = probs(2);
    const causal = Array.from(ps.keys()).filter((i) => i % T <= Math.floor(i / T) % T);
    expectClose('attention KL', refAttnKlLoss(ps, pt, T).dprobs, finiteDiff((x) => refAttnKlLoss(x, pt, T).loss, ps, EPS, causal), { atol: ATOL, rtol: RTOL });
    expectClose('MSE', refMseLoss(s, t).d, finiteDiff((x) => refMseLoss(x, t).loss, s, EPS), { atol: ATOL, rtol: RTOL });
  });
});

describe('reference LLaMA: forward properties', () => {
  const cfg = tinyConfig({ nKvHeads: 2, vocabSize: 23 });
  const w = randomWeights(cfg, 13, 0.5);
  const B = 2, T = 6;
  const { tokens } = batch(cfg, B, T, 17);

  it('attention probabilities are causal and each row sums to 1', () => {
    const f = refForward(cfg, w, tokens);
    for (const lc of f.layers) {
      expect(lc.probs.length).toBe(B * cfg.nHeads * T * T);
      for (let row = 0; row < B * cfg.nHeads * T; row++) {
        const t = row % T;
        let s = 0;
        for (let j = 0; j < T; j++) {
          const p = lc.probs[row * T + j];
          if (j > t) expect(p).toBe(0);
          else expect(p).toBeGreaterThan(0);
          s += p;
        }
        expect(Math.abs(s - 1)).toBeLessThan(1e-12);
      }
    }
  });

  it('logits at position t do not depend on later tokens, nor on other sequences; flat and nested tokens agree', () => {
    const f = refForward(cfg, w, tokens);
    const V = cfg.vocabSize;
    const flat = refForward(cfg, w, tokens.flat(), B, T);
    expect([...flat.logits]).toEqual([...f.logits]);
    const changed = tokens.map((s) => [...s]);
    changed[0][4] = (changed[0][4] + 1) % V; // change sequence 0 from position 4 on
    const g = refForward(cfg, w, changed);
    const rowsOf = (a: Float64Array, b: number, t0: number, t1: number) => [...a.subarray((b * T + t0) * V, (b * T + t1) * V)];
    expect(rowsOf(g.logits, 0, 0, 4)).toEqual(rowsOf(f.logits, 0, 0, 4));
    expect(rowsOf(g.logits, 0, 4, 5)).not.toEqual(rowsOf(f.logits, 0, 4, 5));
    expect(rowsOf(g.logits, 1, 0, T)).toEqual(rowsOf(f.logits, 1, 0, T));
    // a sequence alone gives the same logits as inside the batch
    expectClose('batch independence', refForward(cfg, w, [tokens[1]]).logits, rowsOf(f.logits, 1, 0, T), { atol: 0, rtol: 1e-13 });
    // captures line up: hidden state after the last layer feeds the final norm
    expect(f.xL).toBe(f.layers[cfg.nLayers - 1].out);
    expect(f.layers[1].x).toBe(f.layers[0].out);
  });

  it('GQA: head h reads KV head floor(h / (NH/NKV)) — equals MHA with each KV head’s rows repeated', () => {
    const HS = cfg.dim / cfg.nHeads;
    for (const nkv of [1, 2]) {
      const c = { ...cfg, nKvHeads: nkv };
      const wg = randomWeights(c, 15, 0.5);
      const group = c.nHeads / nkv;
      const rep = (a: Float32Array) => {
        const out = new Float32Array(c.nHeads * HS * c.dim);
        for (let h = 0; h < c.nHeads; h++) out.set(a.subarray(Math.floor(h / group) * HS * c.dim, (Math.floor(h / group) + 1) * HS * c.dim), h * HS * c.dim);
        return out;
      };
      const wm = { ...wg, layers: wg.layers.map((l) => ({ ...l, wk: rep(l.wk), wv: rep(l.wv) })) };
      const mha = refForward({ ...c, nKvHeads: c.nHeads }, wm, tokens);
      expectClose(`GQA ${c.nHeads}/${nkv} vs repeated MHA`, refForward(c, wg, tokens).logits, mha.logits, { atol: 1e-13, rtol: 1e-12 });
    }
  });

  it('the KV-cached decoder reproduces the full forward at every position; greedy generation follows argmax', () => {
    for (const tied of [false, true]) {
      const c = { ...cfg, tiedEmbeddings: tied, nKvHeads: 1 };
      const wt = randomWeights(c, 14, 0.5);
      const seq = tokens[0];
      const f = refForward(c, wt, [seq]);
      const dec = refDecoder(c, wt);
      seq.forEach((tok, pos) => expectClose(`decode pos ${pos}`, dec.step(tok, pos), f.logits.subarray(pos * c.vocabSize, (pos + 1) * c.vocabSize), { atol: 1e-12, rtol: 1e-10 }));
      const gen = refGenerateGreedy(c, wt, seq.slice(0, 2), 5);
      expect(gen.length).toBe(5);
      const full = refForward(c, wt, [[...seq.slice(0, 2), ...gen.slice(0, 4)]]).logits;
      gen.forEach((tok, i) => {
        const row = full.subarray((1 + i) * c.vocabSize, (2 + i) * c.vocabSize);
        expect(tok).toBe(row.indexOf(Math.max(...row)));
      });
      const first = gen.findIndex((x, i) => i > 0 && gen.indexOf(x) === i); // first new token after the start
      if (first > 0) expect(refGenerateGreedy(c, wt, seq.slice(0, 2), 5, { stopToken: gen[first] })).toEqual(gen.slice(0, first));
    }
  });
});

if (!hasSharedData) console.warn(SKIP_MESSAGE);

describe.skipIf(!hasSharedData)('reference LLaMA: stories260K', () => {
  it('greedy output matches llama2.c’s golden output (run -t 0 -n 256 from BOS)', () => {
    const { config, weights } = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
    const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', config.vocabSize);
    // llama2.c: prompt [BOS], 256 forward passes, stops before printing a BOS; prints "\n" at the end
    const ids = refGenerateGreedy(config, weights, [tok.bosId], 256, { stopToken: tok.bosId });
    const golden = readFileSync(sharedPath('models/stories260K/golden_greedy_256.txt'), 'utf8');
    expect(tok.decode([tok.bosId, ...ids]) + '\n').toBe(golden);
  });

  it('the real model’s gradients match finite differences (sampled, first 2 layers, 5 tokens)', () => {
    const { config, weights } = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
    const cfg = { ...config, nLayers: 2 };
    const w = toF64Weights({ ...weights, layers: weights.layers.slice(0, 2) });
    const tokens = [[1, 403, 261, 378, 285]];
    const targets = [[403, 261, 378, 285, IGNORE]];
    const f = refForward(cfg, w, tokens);
    const g: RefGrads = refBackward(cfg, w, tokens, 1, 5, f, refLoss(f.logits, targets, cfg.vocabSize).dlogits);
    checkAllGrads(w, namedGrads(g), () => refLoss(refForward(cfg, w, tokens).logits, targets, cfg.vocabSize).loss, tokens[0], cfg.dim, 3);
  });
});
