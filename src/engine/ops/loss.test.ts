import { describe, it } from 'vitest';
import { expectClose, finiteDiff, randn, randu, rng, testGpu, toF64 } from '../testing';
import * as L from './loss';
import { attnKlRef, crossEntropyRef, IGNORE, klRef, mseRef } from '../ref/loss';
import { attentionForwardRef } from '../ref/attention';

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]; return s; };
const FD = { atol: 1e-8, rtol: 1e-6 };

describe('loss references vs finite differences', () => {
  it('cross-entropy, KL with temperature, MSE', () => {
    const rows = 3, V = 6;
    const z = toF64(randn(rows * V, 1)), zt = toF64(randn(rows * V, 2)), tg = [1, IGNORE, 5];
    expectClose('ce', crossEntropyRef(z, tg, rows, V, 1).dz, finiteDiff((x) => sum(crossEntropyRef(x, tg, rows, V, 1).losses), z), FD);
    expectClose('kl T=2', klRef(z, zt, rows, V, 2, 1).dz, finiteDiff((x) => sum(klRef(x, zt, rows, V, 2, 1).losses), z), FD);
    expectClose('mse', mseRef(z, zt, rows, V, 1).dz, finiteDiff((x) => sum(mseRef(x, zt, rows, V, 1).losses), z), FD);
  });
  it('attention-map KL', () => {
    const s = { B: 1, T: 4, NH: 2, NKV: 1, HS: 4 };
    const ps = attentionForwardRef(randn(32, 1), randn(16, 2), randn(16, 3), s).probs;
    const pt = attentionForwardRef(randn(32, 4), randn(16, 5), randn(16, 6), s).probs;
    const rows = s.B * s.NH * s.T;
    // Only valid (causal) entries are differentiable inputs.
    const idx = [...Array(rows * s.T).keys()].filter((i) => i % s.T <= Math.floor(i / s.T) % s.T);
    const fd = finiteDiff((x) => sum(attnKlRef(x, pt, rows, s.T, 1).losses), toF64(ps), 1e-7, idx);
    const an = attnKlRef(ps, pt, rows, s.T, 1).dz;
    expectClose('attn kl', idx.map((i) => an[i]), idx.map((i) => fd[i]), { atol: 1e-6, rtol: 1e-5 });
  });
});

describe('loss kernels vs reference', () => {
  for (const [rows, V] of [[3, 512], [3, 1000], [2, 32000], [1, 7]]) {
    it(`ce and kl rows=${rows} V=${V}`, async () => {
      const gpu = await testGpu();
      const r = rng(V);
      const z = randn(rows * V, 1, 3), zt = randn(rows * V, 2, 3);
      const tg = Array.from({ length: rows }, (_, i) => (i === 1 ? IGNORE : Math.floor(r() * V)));
      const tz = gpu.tensor('z', [rows, V], 'f32', z), tzt = gpu.tensor('zt', [rows, V], 'f32', zt), ttg = gpu.tensor('tg', [rows], 'u32', tg);
      const tl = gpu.tensor('l', [rows]), td = gpu.tensor('d', [rows, V]);
      L.crossEntropyForward(gpu, tl, tz, ttg, rows, V);
      L.crossEntropyBackward(gpu, td, tz, ttg, rows, V, 0.5);
      const ce = crossEntropyRef(z, tg, rows, V, 0.5);
      expectClose('ce loss', await gpu.readF32(tl), ce.losses, { atol: 1e-5, rtol: 1e-5 });
      expectClose('ce grad', await gpu.readF32(td), ce.dz, { atol: 1e-7, rtol: 1e-4 });
      L.klForward(gpu, tl, tz, tzt, rows, V, 2);
      L.klBackward(gpu, td, tz, tzt, rows, V, 2, 0.5);
      const kl = klRef(z, zt, rows, V, 2, 0.5);
      expectClose('kl loss', await gpu.readF32(tl), kl.losses, { atol: 1e-5, rtol: 1e-4 });
      expectClose('kl grad', await gpu.readF32(td), kl.dz, { atol: 1e-7, rtol: 1e-4 });
      L.mseForward(gpu, tl, tz, tzt, rows, V);
      L.mseBackward(gpu, td, tz, tzt, rows, V, 0.5);
      const ms = mseRef(z, zt, rows, V, 0.5);
      expectClose('mse loss', await gpu.readF32(tl), ms.losses, { atol: 1e-5, rtol: 1e-5 });
      expectClose('mse grad', await gpu.readF32(td), ms.dz, { atol: 1e-7, rtol: 1e-5 });
      for (const t of [tz, tzt, ttg, tl, td]) gpu.free(t);
    });
  }
  it('attention-map KL, B=2 NH=3 T=9', async () => {
    const gpu = await testGpu();
    const s = { B: 2, T: 9, NH: 3, NKV: 1, HS: 4 };
    const nq = s.B * s.T * s.NH * s.HS, nk = s.B * s.T * s.HS;
    const ps = attentionForwardRef(randn(nq, 1), randn(nk, 2), randn(nk, 3), s).probs;
    const pt = attentionForwardRef(randn(nq, 4), randu(nk, 5), randn(nk, 6), s).probs;
    const rows = s.B * s.NH * s.T;
    const a = gpu.tensor('ps', [ps.length], 'f32', Float32Array.from(ps)), b = gpu.tensor('pt', [pt.length], 'f32', Float32Array.from(pt));
    const tl = gpu.tensor('l', [rows]), td = gpu.tensor('d', [ps.length]);
    L.attnKlForward(gpu, tl, a, b, rows, s.T);
    L.attnKlBackward(gpu, td, a, b, rows, s.T, 0.25);
    const ref = attnKlRef(Float32Array.from(ps), Float32Array.from(pt), rows, s.T, 0.25);
    expectClose('attn kl loss', await gpu.readF32(tl), ref.losses, { atol: 1e-5, rtol: 1e-4 });
    expectClose('attn kl grad', await gpu.readF32(td), ref.dz, { atol: 1e-5, rtol: 1e-4 });
    for (const t of [a, b, tl, td]) gpu.free(t);
  });
});
