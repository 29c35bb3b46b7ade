import { describe, expect, it } from 'vitest';
import type { Gpu } from '../gpu/runtime';
import { bitDiff, dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { hasSubgroup8, isSoftwareMatmulAdapter, matmulBackwardInput, matmulBackwardWeight, matmulForward, matmulVariants, pickMatmulVariant } from './matmul';
import { matmulBackwardInputRef, matmulBackwardWeightRef, matmulForwardRef } from '../ref/matmul';

// fp32 accumulation over K (or M) products of N(0,1) values against float64: errors grow ~ sqrt(R)·ulp.
const TOL = { atol: 2e-5, rtol: 1e-5 };

// (M, K, N): decode rows, LLaMA-ish aligned shapes (vec4 paths), awkward shapes (scalar paths, partial
// tiles in every direction, several workgroup-memory slabs), N not a multiple of 4 with K aligned.
const SHAPES: [number, number, number][] = [
  [1, 7, 5], [1, 300, 129], [1, 64, 64], [2, 8, 12], [3, 64, 172], [33, 65, 17], [128, 64, 64], [67, 20, 130], [70, 132, 68],
  // the subgroup kernel's 32x16 blocks: partial in both directions, R a multiple of 4 and not, R < 4
  [5, 63, 129], [65, 17, 3], [129, 36, 33], [63, 3, 65],
  // sg_nnv / sg_tnv (dX, dW with K and N multiples of 4): 32x32 blocks partial in both directions, dW's r
  // (= M) odd (unrolled by 2, one tail step) and M = 1; K % 4 with N % 4 != 0 and the reverse (other entries)
  [37, 36, 44], [65, 100, 36], [1, 32, 4], [7, 4, 96], [33, 68, 8], [6, 40, 9], [9, 10, 40],
];

describe('matmul float64 references vs finite differences', () => {
  it('dX and dW of L = <y, g> with y = x·Wᵀ', () => {
    const M = 3, K = 5, N = 4;
    const x = toF64(randn(M * K, 1)), w = toF64(randn(N * K, 2)), g = toF64(randn(M * N, 3));
    const dx = matmulBackwardInputRef(g, w, M, K, N);
    const dw = matmulBackwardWeightRef(g, x, M, K, N);
    expectClose('dx vs finite differences', dx, finiteDiff((xx) => dot(matmulForwardRef(xx, w, M, K, N), g), x), { atol: 1e-8, rtol: 1e-7 });
    expectClose('dw vs finite differences', dw, finiteDiff((ww) => dot(matmulForwardRef(x, ww, M, K, N), g), w), { atol: 1e-8, rtol: 1e-7 });
  });
});

describe('pickMatmulVariant', () => {
  const fake = (description: string, vendor = '', sg = 0) =>
    ({ hasSubgroups: sg > 0, info: { vendor, architecture: '', device: '', description, features: [], limits: {}, backend: 'dawn', subgroupMinSize: sg, subgroupMaxSize: sg } }) as unknown as Gpu;
  it('register tiles on software adapters (subgroup broadcasts where subgroups are 8 wide), workgroup memory on GPUs', async () => {
    expect(pickMatmulVariant(fake('llvmpipe (LLVM 19.1.7, 256 bits)', 'mesa', 8))).toBe('subgroup');
    expect(pickMatmulVariant(fake('llvmpipe (LLVM 19.1.7, 256 bits)', 'mesa'))).toBe('regtile');
    expect(pickMatmulVariant(fake('llvmpipe (LLVM 19.1.7, 512 bits)', 'mesa', 16))).toBe('regtile');
    expect(pickMatmulVariant(fake('SwiftShader Device (Subzero)', 'google', 4))).toBe('regtile');
    expect(pickMatmulVariant(fake('NVIDIA GeForce RTX 4090', 'nvidia', 32))).toBe('shared');
    expect(pickMatmulVariant(fake('', 'apple'))).toBe('shared');
    const gpu = await testGpu(); // this machine: lavapipe (8-wide subgroups) or SwiftShader; with QUENCH_PICKS=gpu, a GPU's picks
    expect(pickMatmulVariant(gpu)).toBe(!isSoftwareMatmulAdapter(gpu) ? 'shared' : hasSubgroup8(gpu) ? 'subgroup' : 'regtile');
    const t = { numel: 64, label: 't' } as never;
    expect(() => matmulForward(fake('SwiftShader', 'google', 4), t, t, t, 2, 2, 2, { variant: 'subgroup' })).toThrow(/subgroups of exactly 8 lanes.*SwiftShader.*4-4/);
  });
});

describe('matmul GPU vs float64 reference', () => {
  for (const [M, K, N] of SHAPES) {
    it(`forward, dX, dW at M=${M} K=${K} N=${N}, every variant`, async () => {
      const gpu = await testGpu();
      const x = randn(M * K, 1), w = randn(N * K, 2), dy = randn(M * N, 3), dw0 = randn(N * K, 4), y0 = randn(M * N, 5);
      const yRef = matmulForwardRef(x, w, M, K, N);
      const dxRef = matmulBackwardInputRef(dy, w, M, K, N);
      const dwRef = matmulBackwardWeightRef(dy, x, M, K, N).map((v, i) => v + dw0[i]);
      const tx = gpu.tensor('x', [M, K], 'f32', x), tw = gpu.tensor('w', [N, K], 'f32', w), tdy = gpu.tensor('dy', [M, N], 'f32', dy);
      const ty = gpu.tensor('y', [M, N]), tdx = gpu.tensor('dx', [M, K]), tdw = gpu.tensor('dw', [N, K]);
      for (const variant of matmulVariants(gpu)) {
        for (const gemv of M === 1 ? [true, false] : [true]) {
          const tag = `${variant}${M === 1 ? (gemv ? ' gemv' : ' gemm') : ''}`;
          gpu.write(ty, y0);
          matmulForward(gpu, ty, tx, tw, M, K, N, { variant, gemv });
          expectClose(`y (${tag})`, await gpu.readF32(ty), yRef, TOL);
          matmulForward(gpu, ty, tx, tw, M, K, N, { variant, gemv, accumulate: true });
          expectClose(`y accumulated (${tag})`, await gpu.readF32(ty), yRef.map((v) => 2 * v), TOL);
        }
        gpu.write(tdx, randn(M * K, 6)); // stale contents must be overwritten
        matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N, { variant });
        expectClose(`dx (${variant})`, await gpu.readF32(tdx), dxRef, TOL);
        matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N, { variant, accumulate: true });
        expectClose(`dx accumulated (${variant})`, await gpu.readF32(tdx), dxRef.map((v) => 2 * v), TOL);
        gpu.write(tdw, dw0);
        matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N, { variant });
        expectClose(`dw accumulates (${variant})`, await gpu.readF32(tdw), dwRef, TOL);
        matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N, { variant, assign: true }); // stale dw0 + dW overwritten
        expectClose(`dw assigned (${variant})`, await gpu.readF32(tdw), dwRef.map((v, i) => v - dw0[i]), TOL);
        if (variant === 'subgroup') {
          // the strided-B dX / dW kernels, also on the shapes where the vec4-B ones normally run
          gpu.write(tdx, randn(M * K, 6));
          matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N, { variant, stridedB: true });
          expectClose('dx (subgroup, strided B)', await gpu.readF32(tdx), dxRef, TOL);
          gpu.write(tdw, dw0);
          matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N, { variant, stridedB: true });
          expectClose('dw accumulates (subgroup, strided B)', await gpu.readF32(tdw), dwRef, TOL);
          matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N, { variant, stridedB: true, assign: true });
          expectClose('dw assigned (subgroup, strided B)', await gpu.readF32(tdw), dwRef.map((v, i) => v - dw0[i]), TOL);
        }
      }
      // shared8p prefetches the next slab but sums the same products in the same order as shared8: the same bits
      const bits = async (variant: 'shared8' | 'shared8p') => {
        matmulForward(gpu, ty, tx, tw, M, K, N, { variant, gemv: false });
        matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N, { variant });
        matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N, { variant, assign: true });
        return [await gpu.readF32(ty), await gpu.readF32(tdx), await gpu.readF32(tdw)];
      };
      const [pre, plain] = [await bits('shared8p'), await bits('shared8')];
      for (let o = 0; o < 3; o++) expect(bitDiff(pre[o], plain[o]), `shared8p = shared8 (${['y', 'dx', 'dw'][o]})`).toBe('');
      for (const t of [tx, tw, tdy, ty, tdx, tdw]) gpu.free(t);
    });
  }

  it('the legacy gemv alias and the default variant', async () => {
    const gpu = await testGpu();
    const M = 1, K = 96, N = 40;
    const x = randn(M * K, 7), w = randn(N * K, 8);
    const tx = gpu.tensor('x', [M, K], 'f32', x), tw = gpu.tensor('w', [N, K], 'f32', w), ty = gpu.tensor('y', [M, N]);
    for (const variant of ['gemv', 'auto', undefined] as const) {
      gpu.zero(ty);
      matmulForward(gpu, ty, tx, tw, M, K, N, { variant });
      expectClose(`y (${variant})`, await gpu.readF32(ty), matmulForwardRef(x, w, M, K, N), TOL);
    }
    for (const t of [tx, tw, ty]) gpu.free(t);
  });
});
