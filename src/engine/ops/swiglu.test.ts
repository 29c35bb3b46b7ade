import { describe, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { swigluBackward, swigluForward } from './swiglu';
import { swigluBackwardRef, swigluForwardRef } from '../ref/swiglu';

describe('swiglu', () => {
  it('reference backward matches finite differences', () => {
    const n = 13;
    const g = toF64(randn(n, 1, 2)), u = toF64(randn(n, 2)), d = toF64(randn(n, 3));
    const { dgate, dup } = swigluBackwardRef(d, g, u);
    expectClose('dgate', dgate, finiteDiff((gg) => dot(swigluForwardRef(gg, u), d), g), { atol: 1e-8, rtol: 1e-6 });
    expectClose('dup', dup, finiteDiff((uu) => dot(swigluForwardRef(g, uu), d), u), { atol: 1e-8, rtol: 1e-6 });
  });
  for (const n of [1, 255, 1000]) {
    it(`GPU vs reference n=${n}`, async () => {
      const gpu = await testGpu();
      const g = randn(n, 4, 3), u = randn(n, 5), d = randn(n, 6);
      const tg = gpu.tensor('g', [n], 'f32', g), tu = gpu.tensor('u', [n], 'f32', u), td = gpu.tensor('d', [n], 'f32', d);
      const to = gpu.tensor('o', [n]), tdg = gpu.tensor('dg', [n]), tdu = gpu.tensor('du', [n]);
      swigluForward(gpu, to, tg, tu, n);
      expectClose('out', await gpu.readF32(to), swigluForwardRef(g, u), { atol: 1e-6, rtol: 1e-5 });
      swigluBackward(gpu, tdg, tdu, td, tg, tu, n);
      const r = swigluBackwardRef(d, g, u);
      expectClose('dgate', await gpu.readF32(tdg), r.dgate, { atol: 1e-6, rtol: 1e-5 });
      expectClose('dup', await gpu.readF32(tdu), r.dup, { atol: 1e-6, rtol: 1e-5 });
      for (const t of [tg, tu, td, to, tdg, tdu]) gpu.free(t);
    });
  }
});
