import { describe, expect, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { swigluBackward, swigluForward } from './swiglu';
import { swigluBackwardRef, swigluForwardRef } from '../ref/swiglu';

describe('swiglu', () => {
  it('reference backward matches finite differences', () => {
    const n = 13;
    const g = toF64(randn(n, 1, 2)), u = toF64(randn(n, 2)), d = toF64(randn(n, 3));
    g[0] = -30; g[1] = 25; g[2] = 0;
    const { dgate, dup } = swigluBackwardRef(d, g, u);
    expectClose('dgate', dgate, finiteDiff((gg) => dot(swigluForwardRef(gg, u), d), g), { atol: 1e-8, rtol: 1e-6 });
    expectClose('dup', dup, finiteDiff((uu) => dot(swigluForwardRef(g, uu), d), u), { atol: 1e-8, rtol: 1e-6 });
  });

  async function check(g: Float32Array, u: Float32Array, d: Float32Array): Promise<void> {
    const gpu = await testGpu();
    const n = g.length;
    const tg = gpu.tensor('g', [n], 'f32', g), tu = gpu.tensor('u', [n], 'f32', u), td = gpu.tensor('d', [n], 'f32', d);
    const to = gpu.tensor('o', [n], 'f32', randn(n, 7)), tdg = gpu.tensor('dg', [n], 'f32', randn(n, 8)), tdu = gpu.tensor('du', [n], 'f32', randn(n, 9));
    swigluForward(gpu, to, tg, tu, n);
    const out = await gpu.readF32(to);
    expect(out.every(Number.isFinite)).toBe(true);
    expectClose('out', out, swigluForwardRef(g, u), { atol: 1e-6, rtol: 1e-5 });
    swigluBackward(gpu, tdg, tdu, td, tg, tu, n);
    const r = swigluBackwardRef(d, g, u);
    const dg = await gpu.readF32(tdg), du = await gpu.readF32(tdu);
    expect(dg.every(Number.isFinite) && du.every(Number.isFinite)).toBe(true);
    expectClose('dgate (assigns)', dg, r.dgate, { atol: 1e-6, rtol: 1e-5 });
    expectClose('dup (assigns)', du, r.dup, { atol: 1e-6, rtol: 1e-5 });
    for (const t of [tg, tu, td, to, tdg, tdu]) gpu.free(t);
  }

  for (const n of [1, 255, 257, 1000, 70000]) it(`GPU vs reference n=${n}`, () => check(randn(n, 4, 3), randn(n, 5), randn(n, 6)));

  it('large |gate| (no overflow in the sigmoid), scalar (13) and vec4 (16 elements) entries', async () => {
    const g = Float32Array.from([-200, -100, -89, -88, -30, -1e-3, 0, 1e-3, 30, 88, 89, 100, 200]);
    await check(g, randn(g.length, 1), randn(g.length, 2));
    const g16 = Float32Array.from([...g, -1000, 1000, -50]);
    await check(g16, randn(g16.length, 1), randn(g16.length, 2));
  });
});
