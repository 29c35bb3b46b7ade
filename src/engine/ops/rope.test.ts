import { describe, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { ropeBackward, ropeForward } from './rope';
import { ropeRef } from '../ref/rope';

describe('rope', () => {
  it('reference backward (inverse rotation) matches finite differences', () => {
    const [B, T, NH, HS] = [2, 3, 2, 6];
    const x = toF64(randn(B * T * NH * HS, 1)), d = toF64(randn(x.length, 2));
    const fd = finiteDiff((xx) => dot(ropeRef(xx, B, T, NH, HS, 10000, 5), d), x);
    expectClose('dx', ropeRef(d, B, T, NH, HS, 10000, 5, true), fd, { atol: 1e-8, rtol: 1e-6 });
  });
  for (const [B, T, NH, HS, pos0, theta] of [[1, 1, 1, 8, 0, 10000], [2, 7, 4, 8, 3, 10000], [1, 33, 2, 64, 100, 500000]]) {
    it(`GPU vs reference B=${B} T=${T} NH=${NH} HS=${HS} pos0=${pos0}`, async () => {
      const gpu = await testGpu();
      const x = randn(B * T * NH * HS, 3);
      const t = gpu.tensor('x', [B, T, NH * HS], 'f32', x);
      ropeForward(gpu, t, B, T, NH, HS, theta, pos0);
      expectClose('rope', await gpu.readF32(t), ropeRef(x, B, T, NH, HS, theta, pos0), { atol: 2e-5, rtol: 1e-4 });
      ropeBackward(gpu, t, B, T, NH, HS, theta, pos0);
      expectClose('inverse', await gpu.readF32(t), x, { atol: 5e-5, rtol: 1e-4 });
      gpu.free(t);
    });
  }
});
