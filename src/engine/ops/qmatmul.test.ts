import { describe, expect, it } from 'vitest';
import { expectClose, randn, testGpu } from '../testing';
import { pickQmatmulVariant, qmatmulBackwardInput, qmatmulForward, QMATMUL_DX_VARIANTS, qmatmulVariants, type GpuPacked } from './qmatmul';
import { quantizeHost, type Bits, type PackedWeight } from '../format/pack';
import { qmatmulDxRef, qmatmulRef } from '../ref/quant';
import type { Gpu } from '../gpu/runtime';
import { hasSubgroup8 } from './matmul';

function upload(gpu: Gpu, p: PackedWeight): GpuPacked {
  return {
    layout: p,
    codes: gpu.tensor('codes', [p.N, p.wordsPerRow], 'u32', p.codes),
    scales: gpu.tensor('scales', [p.N, p.nBlocks], 'f32', p.scales),
    zeros: gpu.tensor('zeros', [p.N, p.nBlocks], 'f32', p.zeros),
  };
}

// fp32 GPU sums of K ≤ 2048 products vs a float64 reference on the same codes: errors are a few
// ulps of the partial sums (|y| ~ sqrt(K)·|w|), so 1e-4 absolute + relative is ample and still
// far below one quantization step's effect (a wrong code moves y by ~scale ≈ 0.1·|w|).
const tol = { atol: 1e-4, rtol: 1e-4 };

describe('packed low-bit matmul vs float64 reference on the same codes', () => {
  // [M, K, N, bits, group (0 = per-channel), sym]
  const cases: [number, number, number, Bits, number, boolean][] = [
    [1, 172, 64, 4, 32, false], [3, 172, 5, 4, 32, false], [33, 64, 172, 4, 64, false], [1, 100, 17, 4, 128, false],
    [5, 100, 9, 4, 0, false], [33, 172, 64, 4, 0, true], [3, 64, 5, 4, 128, true], [1, 172, 172, 4, 64, false],
    [1, 64, 33, 8, 32, false], [7, 172, 12, 8, 64, true], [33, 100, 5, 8, 0, false],
    [1, 96, 8, 2, 32, false], [3, 172, 7, 2, 64, false],
    [4, 172, 6, 3, 32, false], [1, 100, 9, 3, 0, true],
    // odd group sizes: 8-code chunks straddle group edges
    [3, 100, 7, 4, 20, false], [1, 57, 6, 3, 12, false],
    [1, 2048, 3, 4, 32, false], [66, 40, 70, 4, 32, false],
  ];
  for (const [M, K, N, bits, group, sym] of cases) {
    it(`M=${M} K=${K} N=${N} bits=${bits} group=${group || 'per-channel'}${sym ? ' sym' : ''}: every variant, dx`, async () => {
      const gpu = await testGpu();
      const p = quantizeHost(randn(N * K, K + N + bits), N, K, { bits, group, sym });
      const x = randn(M * K, 2), dy = randn(M * N, 3);
      const w = upload(gpu, p);
      const tx = gpu.tensor('x', [M, K], 'f32', x), ty = gpu.tensor('y', [M, N]), tdy = gpu.tensor('dy', [M, N], 'f32', dy), tdx = gpu.tensor('dx', [M, K]);
      const ref = qmatmulRef(x, p, M);
      for (const v of qmatmulVariants(gpu)) {
        if (v.startsWith('gemv') && M !== 1) continue;
        gpu.write(ty, new Float32Array(M * N).fill(NaN)); // every output must be written
        qmatmulForward(gpu, ty, tx, w, M, v);
        expectClose(v, await gpu.readF32(ty), ref, tol);
      }
      qmatmulForward(gpu, ty, tx, w, M);
      expectClose(`auto (${pickQmatmulVariant(gpu, M)})`, await gpu.readF32(ty), ref, tol);
      const dxRef = qmatmulDxRef(dy, p, M);
      for (const v of [...QMATMUL_DX_VARIANTS.filter((x) => x !== 'dx_sg' || hasSubgroup8(gpu)), 'auto'] as const) {
        gpu.write(tdx, new Float32Array(M * K).fill(NaN));
        qmatmulBackwardInput(gpu, tdx, tdy, w, M, false, v);
        expectClose(v, await gpu.readF32(tdx), dxRef, tol);
        qmatmulBackwardInput(gpu, tdx, tdy, w, M, true, v);
        expectClose(`${v} accumulated`, await gpu.readF32(tdx), dxRef.map((x) => 2 * x), tol);
      }
      for (const t of [tx, ty, tdy, tdx, w.codes, w.scales, w.zeros]) gpu.free(t);
    });
  }

  it('the check catches a one-code error (tolerance is tight enough)', async () => {
    const gpu = await testGpu();
    const M = 3, K = 64, N = 5;
    const p = quantizeHost(randn(N * K, 1), N, K, { bits: 4, group: 32, sym: false });
    const x = randn(M * K, 2);
    const ref = qmatmulRef(x, p, M);
    const bad = { ...p, codes: p.codes.slice() };
    bad.codes[0] ^= 1; // flip the low bit of code (0, 0)
    const w = upload(gpu, bad);
    const tx = gpu.tensor('x', [M, K], 'f32', x), ty = gpu.tensor('y', [M, N]);
    qmatmulForward(gpu, ty, tx, w, M, 'gemm');
    const got = await gpu.readF32(ty);
    expect(() => expectClose('corrupted', got, ref, tol)).toThrow();
    for (const t of [tx, ty, w.codes, w.scales, w.zeros]) gpu.free(t);
  });
});
