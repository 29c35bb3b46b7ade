// Evaluation scoring on the GPU: per-token NLL (log-softmax + gather, chunks of rows) and
// per-document sums (segsum.wgsl, Kahan) against float64 references on awkward shapes; batched
// documents (sequenceNlls) = the float64 reference model and = host log-softmax of the same logits;
// on stories260K, the batched perplexity equals the one-document-at-a-time path to 1e-5.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from './config';
import { LlamaModel } from './llama';
import { sequenceNlls, tokenLogprobsBatch } from './runner';
import { refForward } from '../ref/llama';
import { crossEntropyRef, IGNORE, segmentSumsRef, sequenceNllRef } from '../ref/loss';
import { segmentSums, tokenNllRows, type LossOpts } from '../ops/loss';
import { encodeDocuments, perplexity, perplexityBatched, splitDocuments } from '../eval/perplexity';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../io/data';
import { readLlama2cCheckpoint } from '../io/llama2c';
import { Llama2cTokenizer } from '../io/tokenizer';
import { quantizeWeights } from '../quant/ptq';
import { expectClose, randn, rng, testGpu } from '../testing';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

describe('evaluation scoring kernels', () => {
  it('segment sums = float64 sums: 67 segments (not a multiple of the workgroup), strided, and 3000 terms kept to f32 precision', async () => {
    const gpu = await testGpu();
    const nSeg = 67, len = 37, stride = 41;
    const x = randn(nSeg * stride, 3);
    const tx = gpu.tensor('x', [x.length], 'f32', x), out = gpu.tensor('out', [nSeg + 2]);
    segmentSums(gpu, out, tx, nSeg, len, stride, 2);
    const got = await gpu.readF32(out);
    expectClose('segsum', got.subarray(2), segmentSumsRef(x, nSeg, len, stride), { atol: 1e-5, rtol: 1e-5 });
    // 3000 NLL-sized terms: segment 0 all 2.3, where a plain f32 running sum is off by 2.6e-5
    // relative (its roundings all lean one way) and Kahan by 2e-8; segment 1 random in [2.3, 3)
    const n = 3000, r = rng(5);
    const y = Float32Array.from({ length: 2 * n }, (_, i) => (i < n ? 2.3 : 2.3 + 0.7 * r()));
    const ty = gpu.tensor('y', [y.length], 'f32', y), o2 = gpu.tensor('o2', [2]);
    segmentSums(gpu, o2, ty, 2, n);
    const want = segmentSumsRef(y, 2, n);
    const g2 = await gpu.readF32(o2);
    for (let s = 0; s < 2; s++) expect(Math.abs(g2[s] - want[s]) / want[s]).toBeLessThan(1e-6);
    for (const t of [tx, out, ty, o2]) gpu.free(t);
  });

  for (const [name, o] of [['thread', { variant: 'thread' }], ['workgroup/32 lanes', { variant: 'workgroup', lanes: 32 }]] as [string, LossOpts][])
    it(`per-token NLL in chunks of 5 of 13 rows, V = 203, ignored rows = float64 (${name})`, async () => {
      const gpu = await testGpu();
      const rows = 13, V = 203, chunk = 5;
      const z = randn(rows * V, 7, 3);
      const r = rng(8);
      const tg = Array.from({ length: rows }, (_, i) => (i % 4 === 3 ? IGNORE : Math.floor(r() * V)));
      const tt = gpu.tensor('t', [rows], 'u32', tg), nll = gpu.tensor('nll', [rows]);
      const logits = gpu.tensor('z', [chunk, V]), tc = gpu.tensor('tc', [chunk], 'u32'), lc = gpu.tensor('lc', [chunk]);
      gpu.write(nll, new Float32Array(rows).fill(NaN)); // every row must be written
      for (let r0 = 0; r0 < rows; r0 += chunk) {
        const n = Math.min(chunk, rows - r0);
        gpu.write(logits, z.subarray(r0 * V, (r0 + n) * V));
        tokenNllRows(gpu, nll, logits, tt, r0, n, V, tc, lc, o);
      }
      expectClose('nll', await gpu.readF32(nll), crossEntropyRef(z, tg, rows, V, 1).losses, { atol: 2e-5, rtol: 1e-5 });
      for (const t of [tt, nll, logits, tc, lc]) gpu.free(t);
    });
});

describe('batched evaluation (sequenceNlls)', () => {
  it('documents batched and padded, logits in chunks of 7 rows across documents, V = 203: = the float64 model and = host log-softmax', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 32, hiddenDim: 44, nHeads: 4, nKvHeads: 2, vocabSize: 203, maxSeqLen: 24 });
    const w = randomWeights(cfg, 4, 0.5);
    const model = LlamaModel.fromWeights(gpu, cfg, w);
    const r = rng(11);
    // lengths: one longer than maxSeqLen (keeps its end), a single token (nothing to predict)
    const seqs = [9, 24, 3, 30, 1, 17, 2, 11].map((n) => Array.from({ length: n }, () => Math.floor(r() * cfg.vocabSize)));
    try {
      const got = await sequenceNlls(model, seqs, { maxTokens: 40, padWork: 100, logitBytes: 7 * 4 * cfg.vocabSize });
      const want = seqs.map((s) => {
        const keep = s.slice(Math.max(0, s.length - cfg.maxSeqLen));
        return sequenceNllRef(refForward(cfg, w, [keep]).logits, keep, cfg.vocabSize);
      });
      expect(got[4]).toBe(0);
      expectClose('vs float64 model', got, want, { atol: 1e-4, rtol: 1e-5 });
      const host = (await tokenLogprobsBatch(model, seqs)).map((lp) => -lp.reduce((a, b) => a + b, 0));
      expectClose('vs host log-softmax', got, host, { atol: 1e-5, rtol: 1e-5 });
      // one document per forward gives the same sums
      expectClose('batch of 1', await sequenceNlls(model, seqs, { maxTokens: 1 }), got, { atol: 1e-5, rtol: 1e-6 });
    } finally {
      model.free();
    }
  });

  it.skipIf(!hasSharedData)('stories260K w4g32, 12 documents: batched perplexity = one document at a time with the host log-softmax, to 1e-5', async () => {
    const gpu = await testGpu();
    const { config: cfg, weights } = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
    const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', cfg.vocabSize);
    const docs = splitDocuments(readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8'), '<|endoftext|>').slice(0, 12);
    const seqs = encodeDocuments(docs, (s) => tok.encode(s, { bos: true }), cfg.maxSeqLen);
    const model = LlamaModel.fromWeights(gpu, cfg, weights, { quantized: quantizeWeights(cfg, weights, { bits: 4, group: 32, sym: false, clipSearch: false }) });
    try {
      const before = await perplexity(seqs, async (ids) => -(await tokenLogprobsBatch(model, [ids]))[0].reduce((a, b) => a + b, 0));
      let calls = 0;
      const after = await perplexityBatched(seqs, (s, p) => sequenceNlls(model, s, { maxTokens: 1024, onProgress: (d, n) => (calls++, p?.(d, n)) }));
      expect(after.tokens).toBe(before.tokens);
      expect(after.documents).toBe(12);
      expect(calls).toBeGreaterThanOrEqual(2); // several batches
      expect(Math.abs(after.ppl - before.ppl) / before.ppl).toBeLessThan(1e-5);
      expect(Math.abs(after.nll - before.nll) / before.nll).toBeLessThan(1e-5);
    } finally {
      model.free();
    }
  });
});
