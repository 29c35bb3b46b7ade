// The f16-weight forward against the float64 reference on the f16-rounded weights (awkward M and
// N: partial 4x4 tiles; K a multiple of 4), accumulate mode, and the bad shapes it refuses; and a
// teacher with f16 projections: logits within a stated tolerance of the fp32 teacher's.
import { describe, expect, it } from 'vitest';
import { expectClose, randn, rng, testGpu } from '../testing';
import { matmulHalfForward } from './matmul-half';
import { matmulForwardRef } from '../ref/matmul';
import { roundF16 } from '../io/gguf';
import { HalfLinear, packHalf } from '../model/half';
import { LlamaModel } from '../model/llama';
import { randomWeights, tinyConfig } from '../model/config';
import { f16ToF32 } from '../io/safetensors';
import { refForward } from '../ref/llama';

describe('matmul with f16 weights (forward only)', () => {
  it('packHalf: two binary16 per u32, element 2i in the low half, round to nearest even', () => {
    const w = Float32Array.of(1, -2, 1 + 2 ** -11, 65504, 1e-8, 3.14159);
    const p = packHalf(w);
    expect(p.length).toBe(3);
    expect(f16ToF32(p[0] & 0xffff)).toBe(1);
    expect(f16ToF32(p[0] >>> 16)).toBe(-2);
    expect(f16ToF32(p[1] & 0xffff)).toBe(1); // tie to even
    expect(f16ToF32(p[1] >>> 16)).toBe(65504);
    for (let i = 0; i < w.length; i++) expect(f16ToF32((p[i >> 1] >>> (16 * (i & 1))) & 0xffff)).toBe(roundF16(w[i]));
    expect(() => packHalf(new Float32Array(3))).toThrow(/even/);
  });

  for (const [M, K, N] of [[1, 4, 1], [5, 8, 3], [33, 64, 17], [70, 132, 69], [16, 576, 192]] as [number, number, number][]) {
    it(`y = x·Wᵀ at ${M}x${K}x${N} = float64 reference on the f16-rounded W`, async () => {
      const gpu = await testGpu();
      const x = randn(M * K, M + K), w = randn(N * K, N + 7);
      const tx = gpu.tensor('x', [M, K], 'f32', x), tw = gpu.tensor('w', [N, K / 2], 'u32', packHalf(w)), ty = gpu.tensor('y', [M, N]);
      matmulHalfForward(gpu, ty, tx, tw, M, K, N);
      const want = matmulForwardRef(x, Float64Array.from(w, roundF16), M, K, N);
      expectClose('y', await gpu.readF32(ty), want, { atol: 2e-5, rtol: 1e-5 });
      matmulHalfForward(gpu, ty, tx, tw, M, K, N, true);
      expectClose('y accumulated', await gpu.readF32(ty), want.map((v) => 2 * v), { atol: 4e-5, rtol: 1e-5 });
      for (const t of [tx, tw, ty]) gpu.free(t);
    });
  }

  it('refuses K not a multiple of 4 and f32 weights by name', async () => {
    const gpu = await testGpu();
    const x = gpu.tensor('x', [2, 6]), w = gpu.tensor('w', [3, 3], 'u32'), y = gpu.tensor('y', [2, 3]);
    expect(() => matmulHalfForward(gpu, y, x, w, 2, 6, 3)).toThrow(/K = 6 must be a multiple of 4/);
    const wf = gpu.tensor('wf32', [3, 2]);
    expect(() => matmulHalfForward(gpu, y, gpu.tensor('x4', [2, 4]), wf, 2, 4, 3)).toThrow(/"wf32" must be u32/);
    expect(HalfLinear.fits(6)).toBe(false);
    for (const t of [x, w, y, wf]) gpu.free(t);
  });

  it('a teacher with f16 projections = the float64 reference at f16-rounded projections; next to the fp32 teacher: KL < 1e-4 nats per row', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 64, hiddenDim: 172, nHeads: 4, nKvHeads: 2, vocabSize: 61 });
    const w = randomWeights(cfg, 5, 0.5);
    const f32 = LlamaModel.fromWeights(gpu, cfg, w, { label: 't32' });
    const f16 = LlamaModel.fromWeights(gpu, cfg, w, { label: 't16', halfProjections: true });
    expect(f16.layers[0].proj.q).toBeInstanceOf(HalfLinear);
    expect(f16.layers[0].proj.down).toBeInstanceOf(HalfLinear); // K = 172
    expect(f16.layers[0].proj.q.bytes * 2).toBe(f32.layers[0].proj.q.bytes);
    const B = 2, T = 9, V = cfg.vocabSize;
    const r = rng(3);
    const tokens = Array.from({ length: B * T }, () => Math.floor(r() * V));
    const a32 = f32.activations(B, T, false), a16 = f16.activations(B, T, false);
    gpu.write(a32.tokens, Uint32Array.from(tokens));
    gpu.write(a16.tokens, Uint32Array.from(tokens));
    f32.forward(a32);
    f16.forward(a16);
    const z32 = await gpu.readF32(a32.logits), z16 = await gpu.readF32(a16.logits);
    // exact: the float64 model whose projections are the f16-rounded weights
    const wh = { ...w, layers: w.layers.map((l) => ({ ...l, ...Object.fromEntries((['wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'] as const).map((k) => [k, Float32Array.from(l[k], roundF16)])) })) };
    expectClose('f16 teacher logits vs float64 reference at f16 weights', z16, refForward(cfg, wh, tokens, B, T).logits, { atol: 1e-4, rtol: 1e-4 });
    // against the fp32 teacher (this random model at weight scale 0.5 is far more sensitive than a trained one)
    let maxd = 0, maxKl = 0;
    for (let row = 0; row < B * T; row++) {
      const a = z32.subarray(row * V, (row + 1) * V), b = z16.subarray(row * V, (row + 1) * V);
      const lse = (z: Float32Array) => { const m = Math.max(...z); return m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)); };
      const la = lse(a), lb = lse(b);
      let kl = 0;
      for (let v = 0; v < V; v++) {
        kl += Math.exp(a[v] - la) * (a[v] - la - (b[v] - lb));
        maxd = Math.max(maxd, Math.abs(a[v] - b[v]));
      }
      maxKl = Math.max(maxKl, kl);
    }
    expect(maxd).toBeGreaterThan(0); // the weights really are rounded
    expect(maxd).toBeLessThan(0.05);
    expect(maxKl).toBeLessThan(1e-4);
    console.log(`f16 teacher vs fp32: max |logit difference| ${maxd.toExponential(2)}, max KL(fp32 || f16) per row ${maxKl.toExponential(2)} nats (max |z| ${Math.max(...z32.map(Math.abs)).toFixed(2)})`);
    f32.free();
    f16.free();
  });
});
