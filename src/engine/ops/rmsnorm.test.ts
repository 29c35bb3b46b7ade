import { describe, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { rmsnormBackward, rmsnormForward } from './rmsnorm';
import { rmsnormBackwardRef, rmsnormForwardRef } from '../ref/rmsnorm';

describe('rmsnorm', () => {
  it('reference backward matches finite differences', () => {
    const rows = 3, C = 7, eps = 1e-5;
    const x = toF64(randn(rows * C, 1)), w = toF64(randn(C, 2)), dy = toF64(randn(rows * C, 3));
    const { dx, dw } = rmsnormBackwardRef(dy, x, w, rows, C, eps);
    expectClose('dx', dx, finiteDiff((xx) => dot(rmsnormForwardRef(xx, w, rows, C, eps).y, dy), x), { atol: 1e-8, rtol: 1e-6 });
    expectClose('dw', dw, finiteDiff((ww) => dot(rmsnormForwardRef(x, ww, rows, C, eps).y, dy), w), { atol: 1e-8, rtol: 1e-6 });
  });
  for (const [rows, C] of [[1, 64], [5, 172], [300, 7]]) {
    it(`GPU vs reference rows=${rows} C=${C}`, async () => {
      const gpu = await testGpu();
      const eps = 1e-5;
      const x = randn(rows * C, 4), w = randn(C, 5), dy = randn(rows * C, 6), dw0 = randn(C, 7);
      const tx = gpu.tensor('x', [rows, C], 'f32', x), tw = gpu.tensor('w', [C], 'f32', w), ty = gpu.tensor('y', [rows, C]), tr = gpu.tensor('rstd', [rows]);
      rmsnormForward(gpu, ty, tr, tx, tw, rows, C, eps);
      const ref = rmsnormForwardRef(x, w, rows, C, eps);
      expectClose('y', await gpu.readF32(ty), ref.y, { atol: 1e-5, rtol: 1e-5 });
      expectClose('rstd', await gpu.readF32(tr), ref.rstd, { atol: 1e-6, rtol: 1e-5 });
      const tdy = gpu.tensor('dy', [rows, C], 'f32', dy), tdx = gpu.tensor('dx', [rows, C]), tdw = gpu.tensor('dw', [C], 'f32', dw0);
      rmsnormBackward(gpu, tdx, tdw, tdy, tx, tw, tr, rows, C);
      const g = rmsnormBackwardRef(dy, x, w, rows, C, eps);
      expectClose('dx', await gpu.readF32(tdx), g.dx, { atol: 1e-5, rtol: 1e-4 });
      expectClose('dw (accumulates)', await gpu.readF32(tdw), g.dw.map((v, i) => v + dw0[i]), { atol: 1e-4, rtol: 1e-4 });
      for (const t of [tx, tw, ty, tr, tdy, tdx, tdw]) gpu.free(t);
    });
  }
});
