import { describe, it } from 'vitest';
import { expectClose, randn, testGpu } from '../testing';
import { matmulBackwardInput, matmulBackwardWeight, matmulForward } from './matmul';
import { matmulBackwardInputRef, matmulBackwardWeightRef, matmulForwardRef } from '../ref/matmul';

const TOL = { atol: 1e-5, rtol: 1e-5 };

describe('matmul vs float64 reference', () => {
  for (const [M, K, N] of [[1, 7, 5], [3, 64, 172], [33, 65, 17], [128, 64, 64], [1, 300, 129]]) {
    it(`forward, dX, dW at M=${M} K=${K} N=${N}`, async () => {
      const gpu = await testGpu();
      const x = randn(M * K, 1), w = randn(N * K, 2), dy = randn(M * N, 3), dw0 = randn(N * K, 4);
      const tx = gpu.tensor('x', [M, K], 'f32', x), tw = gpu.tensor('w', [N, K], 'f32', w), tdy = gpu.tensor('dy', [M, N], 'f32', dy);
      const ty = gpu.tensor('y', [M, N]), tdx = gpu.tensor('dx', [M, K]), tdw = gpu.tensor('dw', [N, K], 'f32', dw0);
      matmulForward(gpu, ty, tx, tw, M, K, N);
      expectClose('y', await gpu.readF32(ty), matmulForwardRef(x, w, M, K, N), TOL);
      if (M === 1) {
        matmulForward(gpu, ty, tx, tw, M, K, N, { variant: 'gemv' });
        expectClose('y (gemv)', await gpu.readF32(ty), matmulForwardRef(x, w, M, K, N), TOL);
      }
      matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N);
      const dxRef = matmulBackwardInputRef(dy, w, M, K, N);
      expectClose('dx', await gpu.readF32(tdx), dxRef, TOL);
      matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N, { accumulate: true });
      expectClose('dx accumulated', await gpu.readF32(tdx), dxRef.map((v) => 2 * v), TOL);
      matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N);
      const dwRef = matmulBackwardWeightRef(dy, x, M, K, N).map((v, i) => v + dw0[i]);
      expectClose('dw (accumulates)', await gpu.readF32(tdw), dwRef, TOL);
      for (const t of [tx, tw, tdy, ty, tdx, tdw]) gpu.free(t);
    });
  }
});
