import { describe, expect, it } from 'vitest';
import { expectClose, randn, testGpu } from '../testing';
import { adamwStep, clipScale, sum, sumSquares } from './optim';
import { adamwRef, clipScaleRef, sumSquaresRef } from '../ref/optim';

describe('reductions and AdamW', () => {
  it('sum of squares and sum, sizes 1, 255, 2049, 100003', async () => {
    const gpu = await testGpu();
    const sizes = [1, 255, 2049, 100003];
    const out = gpu.tensor('sums', [2 * sizes.length]);
    const xs = sizes.map((n, i) => randn(n, i + 1));
    const ts = xs.map((x, i) => gpu.tensor(`x${i}`, [x.length], 'f32', x));
    ts.forEach((t, i) => {
      sumSquares(gpu, out, 2 * i, t);
      sum(gpu, out, 2 * i + 1, t);
    });
    const got = await gpu.readF32(out);
    const want = xs.flatMap((x) => [sumSquaresRef(x), x.reduce((a, b) => a + b, 0)]);
    expectClose('sums', got, want, { atol: 1e-3, rtol: 1e-5 });
    for (const t of [out, ...ts]) gpu.free(t);
  });
  it('global-norm clip scale from per-tensor sums of squares', async () => {
    const gpu = await testGpu();
    for (const maxNorm of [0.5, 100]) {
      const ss = [3.5, 0.25, 12];
      const t = gpu.tensor('ss', [3], 'f32', ss), out = gpu.tensor('scale', [2]);
      clipScale(gpu, out, t, 3, maxNorm);
      const r = clipScaleRef(ss, maxNorm);
      expectClose('clip', await gpu.readF32(out), [r.scale, r.norm], { atol: 1e-7, rtol: 1e-6 });
      if (maxNorm === 100) expect((await gpu.readF32(out))[0]).toBe(1);
      gpu.free(t);
      gpu.free(out);
    }
  });
  it('AdamW over 4 steps, with a gradient scale, matches the reference', async () => {
    const gpu = await testGpu();
    const n = 1001;
    const h = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    let P: Float64Array<ArrayBufferLike> = Float64Array.from(randn(n, 1)), M: Float64Array<ArrayBufferLike> = new Float64Array(n), V: Float64Array<ArrayBufferLike> = new Float64Array(n);
    const tp = gpu.tensor('p', [n], 'f32', Float32Array.from(P)), tm = gpu.tensor('m', [n]), tv = gpu.tensor('v', [n]), tg = gpu.tensor('g', [n]), ts = gpu.tensor('s', [2], 'f32', [0.5, 0]);
    for (let t = 1; t <= 4; t++) {
      const g = randn(n, 10 + t);
      gpu.write(tg, g);
      adamwStep(gpu, tp, tg, tm, tv, ts, t, h);
      ({ param: P, m: M, v: V } = adamwRef(P, g, M, V, t, h, 0.5));
    }
    expectClose('param', await gpu.readF32(tp), P, { atol: 1e-6, rtol: 1e-5 });
    expectClose('m', await gpu.readF32(tm), M, { atol: 1e-7, rtol: 1e-5 });
    expectClose('v', await gpu.readF32(tv), V, { atol: 1e-8, rtol: 1e-4 });
    for (const t of [tp, tm, tv, tg, ts]) gpu.free(t);
  });
});
