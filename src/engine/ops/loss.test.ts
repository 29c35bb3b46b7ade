import { describe, expect, it } from 'vitest';
import { expectClose, finiteDiff, randn, randu, rng, testGpu, toF64 } from '../testing';
import * as L from './loss';
import { attnKlRef, crossEntropyRef, IGNORE, klRef, mseRef } from '../ref/loss';
import { attentionForwardRef } from '../ref/attention';

const sum = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]; return s; };
const FD = { atol: 1e-8, rtol: 1e-6 };
// The workgroup variant is tested with 32 lanes per row in 64-thread workgroups (tree reduction and
// two rows per workgroup) in one pipeline per entry: lavapipe compiles barrier kernels slowly.
const VARIANTS: { name: string; o: L.LossOpts }[] = [
  { name: 'thread', o: { variant: 'thread' } },
  { name: 'workgroup/32 lanes', o: { variant: 'workgroup', lanes: 32 } },
];

/** Random causal attention-like rows (rows = B*NH*T, row length T), normalised over keys 0..t,
 *  with some exact zeros among the valid keys (0·log 0 and the probability floor get exercised). */
function causalProbs(rows: number, T: number, seed: number, zeroFrac: number): Float32Array {
  const r = rng(seed);
  const p = new Float32Array(rows * T);
  for (let row = 0; row < rows; row++) {
    const t = row % T;
    let s = 0;
    for (let j = 0; j <= t; j++) {
      const v = j > 0 && r() < zeroFrac ? 0 : Math.exp(2 * (r() - 0.5));
      p[row * T + j] = v;
      s += v;
    }
    for (let j = 0; j <= t; j++) p[row * T + j] /= s;
  }
  return p;
}

describe('loss references vs finite differences', () => {
  it('cross-entropy, KL with temperature (T = 1, 2, 0.5), MSE', () => {
    const rows = 3, V = 6;
    const z = toF64(randn(rows * V, 1)), zt = toF64(randn(rows * V, 2)), tg = [1, IGNORE, 5];
    expectClose('ce', crossEntropyRef(z, tg, rows, V, 1).dz, finiteDiff((x) => sum(crossEntropyRef(x, tg, rows, V, 1).losses), z), FD);
    for (const temp of [1, 2, 0.5]) {
      expectClose(`kl T=${temp}`, klRef(z, zt, rows, V, temp, 1).dz, finiteDiff((x) => sum(klRef(x, zt, rows, V, temp, 1).losses), z), FD);
      // scale is a plain multiplier of the gradient
      expectClose(`kl T=${temp} scale`, klRef(z, zt, rows, V, temp, 0.3).dz, klRef(z, zt, rows, V, temp, 1).dz.map((g) => 0.3 * g), FD);
    }
    // KL of a distribution with itself is 0 and so is its gradient
    const self = klRef(z, z, rows, V, 2, 1);
    expectClose('kl(p‖p)', [...self.losses, ...self.dz], new Float64Array(rows + rows * V), { atol: 1e-12, rtol: 0 });
    expectClose('mse', mseRef(z, zt, rows, V, 1).dz, finiteDiff((x) => sum(mseRef(x, zt, rows, V, 1).losses), z), FD);
  });
  it('attention-map KL (from attention probabilities, and with exact zeros)', () => {
    const s = { B: 1, T: 4, NH: 2, NKV: 1, HS: 4 };
    const ps = attentionForwardRef(randn(32, 1), randn(16, 2), randn(16, 3), s).probs;
    const pt = attentionForwardRef(randn(32, 4), randn(16, 5), randn(16, 6), s).probs;
    const rows = s.B * s.NH * s.T;
    // Only valid (causal) entries are differentiable inputs.
    const idx = [...Array(rows * s.T).keys()].filter((i) => i % s.T <= Math.floor(i / s.T) % s.T);
    const fd = finiteDiff((x) => sum(attnKlRef(x, pt, rows, s.T, 1).losses), toF64(ps), 1e-7, idx);
    const an = attnKlRef(ps, pt, rows, s.T, 1).dz;
    expectClose('attn kl', idx.map((i) => an[i]), idx.map((i) => fd[i]), { atol: 1e-6, rtol: 1e-5 });
    // teacher with zeros (0·log 0 = 0, gradient 0 there), student strictly positive
    const T = 5, rows2 = 10;
    const pt2 = toF64(causalProbs(rows2, T, 7, 0.3)), ps2 = toF64(causalProbs(rows2, T, 8, 0));
    const idx2 = [...Array(rows2 * T).keys()].filter((i) => i % T <= Math.floor(i / T) % T);
    const fd2 = finiteDiff((x) => 0.7 * sum(attnKlRef(x, pt2, rows2, T, 0.7).losses), ps2, 1e-7, idx2);
    const an2 = attnKlRef(ps2, pt2, rows2, T, 0.7);
    expectClose('attn kl, teacher zeros', idx2.map((i) => an2.dz[i]), idx2.map((i) => fd2[i]), { atol: 1e-6, rtol: 1e-5 });
    expect(pt2.some((v, i) => v === 0 && i % T <= Math.floor(i / T) % T)).toBe(true);
    // identical maps: loss 0
    expectClose('attn kl(p‖p)', attnKlRef(ps2, ps2, rows2, T, 1).losses, new Float64Array(rows2), { atol: 1e-12, rtol: 0 });
    // entries above the diagonal are never read
    const junk = Float64Array.from(ps2);
    for (let i = 0; i < junk.length; i++) if (i % T > Math.floor(i / T) % T) junk[i] = 123;
    expectClose('attn kl ignores the upper triangle', attnKlRef(junk, pt2, rows2, T, 1).losses, an2.losses, { atol: 0, rtol: 0 });
  });
});

describe('loss kernels vs reference', () => {
  const cases: [number, number, number][] = [[3, 512, 3], [3, 1000, 20], [3, 32000, 3], [1, 7, 1], [70, 7, 2]];
  for (const { name, o } of VARIANTS)
    for (const [rows, V, zs] of cases) {
      it(`${name}: ce, kl, mse rows=${rows} V=${V}`, async () => {
        const gpu = await testGpu();
        const r = rng(V + rows);
        const z = randn(rows * V, 1, zs), zt = randn(rows * V, 2, zs);
        // row 1 ignored; the last row of the 70-row case has an out-of-range target
        const tg = Array.from({ length: rows }, (_, i) => (i === 1 ? IGNORE : rows > 3 && i === rows - 1 ? V + 3 : Math.floor(r() * V)));
        const tz = gpu.tensor('z', [rows, V], 'f32', z), tzt = gpu.tensor('zt', [rows, V], 'f32', zt), ttg = gpu.tensor('tg', [rows], 'u32', tg);
        const tl = gpu.tensor('l', [rows]), td = gpu.tensor('d', [rows, V], 'f32', randn(rows * V, 9));
        L.crossEntropyForward(gpu, tl, tz, ttg, rows, V, o);
        L.crossEntropyBackward(gpu, td, tz, ttg, rows, V, 0.5, o);
        const ce = crossEntropyRef(z, tg, rows, V, 0.5);
        const gotL = await gpu.readF32(tl);
        const bad = tg.map((t, i) => (t !== IGNORE && t >= V ? i : -1)).filter((i) => i >= 0);
        for (const i of bad) expect(Number.isNaN(gotL[i]), `row ${i} (target out of range) gives NaN`).toBe(true);
        const keep = (a: ArrayLike<number>) => Array.from(a).filter((_, i) => !bad.includes(i));
        expectClose('ce loss', keep(gotL), keep(ce.losses), { atol: 1e-5, rtol: 1e-5 });
        expectClose('ce grad', await gpu.readF32(td), ce.dz, { atol: 1e-7, rtol: 1e-4 });
        for (const temp of [2, 0.7]) {
          L.klForward(gpu, tl, tz, tzt, rows, V, temp, o);
          L.klBackward(gpu, td, tz, tzt, rows, V, temp, 0.5, o);
          const kl = klRef(z, zt, rows, V, temp, 0.5);
          expectClose(`kl loss T=${temp}`, await gpu.readF32(tl), kl.losses, { atol: 1e-5, rtol: 1e-4 });
          expectClose(`kl grad T=${temp}`, await gpu.readF32(td), kl.dz, { atol: 1e-7, rtol: 1e-4 });
        }
        L.mseForward(gpu, tl, tz, tzt, rows, V, o);
        L.mseBackward(gpu, td, tz, tzt, rows, V, 0.5, o);
        const ms = mseRef(z, zt, rows, V, 0.5);
        expectClose('mse loss', await gpu.readF32(tl), ms.losses, { atol: 1e-5, rtol: 1e-5 });
        expectClose('mse grad', await gpu.readF32(td), ms.dz, { atol: 1e-7, rtol: 1e-5 });
        for (const t of [tz, tzt, ttg, tl, td]) gpu.free(t);
      });
    }

  for (const { name, o } of VARIANTS) {
    it(`${name}: attention-map KL, B=2 NH=3 T=9 (attention probs) and T=1, T=37 (with zeros)`, async () => {
      const gpu = await testGpu();
      const s = { B: 2, T: 9, NH: 3, NKV: 1, HS: 4 };
      const nq = s.B * s.T * s.NH * s.HS, nk = s.B * s.T * s.HS;
      const ps = Float32Array.from(attentionForwardRef(randn(nq, 1), randn(nk, 2), randn(nk, 3), s).probs);
      const pt = Float32Array.from(attentionForwardRef(randn(nq, 4), randu(nk, 5), randn(nk, 6), s).probs);
      const pairs: [Float32Array, Float32Array, number, number][] = [[ps, pt, s.B * s.NH * s.T, s.T]];
      pairs.push([causalProbs(6, 1, 3, 0), causalProbs(6, 1, 4, 0), 6, 1]);
      // student with exact zeros too: the 1e-12 floor gives large but finite values
      pairs.push([causalProbs(2 * 37, 37, 5, 0.1), causalProbs(2 * 37, 37, 6, 0.3), 2 * 37, 37]);
      for (const [a, b, rows, T] of pairs) {
        // garbage above the diagonal: must be skipped
        for (let i = 0; i < a.length; i++) if (i % T > Math.floor(i / T) % T) { a[i] = 0.5; b[i] = 0.25; }
        const ta = gpu.tensor('ps', [a.length], 'f32', a), tb = gpu.tensor('pt', [b.length], 'f32', b);
        const tl = gpu.tensor('l', [rows]), td = gpu.tensor('d', [a.length], 'f32', randn(a.length, 3));
        L.attnKlForward(gpu, tl, ta, tb, rows, T, o);
        L.attnKlBackward(gpu, td, ta, tb, rows, T, 0.25, o);
        const ref = attnKlRef(a, b, rows, T, 0.25);
        expect(ref.losses.every(Number.isFinite)).toBe(true);
        expectClose(`attn kl loss T=${T}`, await gpu.readF32(tl), ref.losses, { atol: 1e-5, rtol: 1e-4 });
        expectClose(`attn kl grad T=${T}`, await gpu.readF32(td), ref.dz, { atol: 1e-5, rtol: 1e-4 });
        for (const t of [ta, tb, tl, td]) gpu.free(t);
      }
    });
  }

  // 64 lanes in 64-thread workgroups: one workgroup per row, as the default layout for large V
  // (256 lanes, not compiled here: lavapipe takes seconds over a 256-thread barrier kernel).
  it('workgroup, one workgroup per row (64 lanes): cross-entropy rows=3 V=32000', async () => {
    const gpu = await testGpu();
    const rows = 3, V = 32000;
    const o: L.LossOpts = { variant: 'workgroup', lanes: 64 };
    expect(L.lossLayout(gpu, V, 'workgroup')).toEqual({ WG: 256, LANES: 256 });
    expect(L.lossLayout(gpu, V, 'workgroup', 64)).toEqual({ WG: 64, LANES: 64 });
    const z = randn(rows * V, 11, 4), tg = [5, IGNORE, V - 1];
    const tz = gpu.tensor('z', [rows, V], 'f32', z), ttg = gpu.tensor('tg', [rows], 'u32', tg), tl = gpu.tensor('l', [rows]), td = gpu.tensor('d', [rows, V]);
    L.crossEntropyForward(gpu, tl, tz, ttg, rows, V, o);
    L.crossEntropyBackward(gpu, td, tz, ttg, rows, V, 1 / 2, o);
    const ce = crossEntropyRef(z, tg, rows, V, 1 / 2);
    expectClose('ce loss', await gpu.readF32(tl), ce.losses, { atol: 1e-5, rtol: 1e-5 });
    expectClose('ce grad', await gpu.readF32(td), ce.dz, { atol: 1e-7, rtol: 1e-4 });
    for (const t of [tz, ttg, tl, td]) gpu.free(t);
  });

  it('layout: auto picks a variant, workgroup lanes are powers of two dividing WG', async () => {
    const gpu = await testGpu();
    for (const len of [1, 7, 100, 1000, 32000]) {
      const { WG, LANES } = L.lossLayout(gpu, len, 'workgroup');
      expect(LANES & (LANES - 1)).toBe(0);
      expect(WG % LANES).toBe(0);
    }
    expect(L.lossLayout(gpu, 32000, 'workgroup').LANES).toBe(256);
    expect(L.lossLayout(gpu, 32000, 'thread').LANES).toBe(1);
    expect(L.lossLayout(gpu, 7, 'workgroup', 128)).toEqual({ WG: 128, LANES: 128 });
    expect(() => L.lossLayout(gpu, 7, 'workgroup', 48)).toThrow(/power of two/);
  });

  it('host checks: targets and shapes', async () => {
    expect(() => L.checkTargets([1, IGNORE, 4], 5)).not.toThrow();
    expect(() => L.checkTargets([1, 5], 5)).toThrow(/target id 5 at position 1/);
    const gpu = await testGpu();
    const small = gpu.tensor('small', [3]);
    expect(() => L.mseForward(gpu, small, small, small, 2, 4)).toThrow(/mseForward: a "small" has 3 elements, needs 8/);
    gpu.free(small);
  });
});
