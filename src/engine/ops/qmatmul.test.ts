import { describe, it } from 'vitest';
import { expectClose, randn, testGpu } from '../testing';
import { qmatmulBackwardInput, qmatmulForward, type GpuPacked } from './qmatmul';
import { quantizeHost, type Bits, type PackedWeight } from '../quant/pack';
import { qmatmulDxRef, qmatmulRef } from '../ref/quant';
import type { Gpu } from '../gpu/runtime';

function upload(gpu: Gpu, p: PackedWeight): GpuPacked {
  return {
    layout: p,
    codes: gpu.tensor('codes', [p.N, p.wordsPerRow], 'u32', p.codes),
    scales: gpu.tensor('scales', [p.N, p.nBlocks], 'f32', p.scales),
    zeros: gpu.tensor('zeros', [p.N, p.nBlocks], 'f32', p.zeros),
  };
}

describe('packed low-bit matmul vs float64 reference on the same codes', () => {
  const cases: [number, number, number, Bits, number][] = [
    [1, 172, 64, 4, 32], [3, 172, 5, 4, 32], [33, 64, 172, 4, 64], [1, 100, 17, 4, 128], [5, 100, 9, 4, 0],
    [1, 64, 33, 8, 32], [7, 172, 12, 8, 64], [1, 96, 8, 2, 32], [4, 172, 6, 3, 32], [1, 2048, 3, 4, 32],
  ];
  for (const [M, K, N, bits, group] of cases) {
    it(`M=${M} K=${K} N=${N} bits=${bits} group=${group || 'per-channel'}`, async () => {
      const gpu = await testGpu();
      const p = quantizeHost(randn(N * K, K + N), N, K, { bits, group, sym: false });
      const x = randn(M * K, 2), dy = randn(M * N, 3);
      const w = upload(gpu, p);
      const tx = gpu.tensor('x', [M, K], 'f32', x), ty = gpu.tensor('y', [M, N]), tdy = gpu.tensor('dy', [M, N], 'f32', dy), tdx = gpu.tensor('dx', [M, K]);
      const ref = qmatmulRef(x, p, M);
      const tol = { atol: 1e-4, rtol: 1e-4 };
      qmatmulForward(gpu, ty, tx, w, M, 'gemm');
      expectClose('gemm', await gpu.readF32(ty), ref, tol);
      if (M === 1) {
        qmatmulForward(gpu, ty, tx, w, M, 'gemv');
        expectClose('gemv', await gpu.readF32(ty), ref, tol);
        qmatmulForward(gpu, ty, tx, w, M, 'gemv_rows');
        expectClose('gemv_rows', await gpu.readF32(ty), ref, tol);
      }
      qmatmulBackwardInput(gpu, tdx, tdy, w, M);
      const dxRef = qmatmulDxRef(dy, p, M);
      expectClose('dx', await gpu.readF32(tdx), dxRef, tol);
      qmatmulBackwardInput(gpu, tdx, tdy, w, M, true);
      expectClose('dx accumulated', await gpu.readF32(tdx), dxRef.map((v) => 2 * v), tol);
      for (const t of [tx, ty, tdy, tdx, w.codes, w.scales, w.zeros]) gpu.free(t);
    });
  }
});
