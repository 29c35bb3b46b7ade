// fp32 gemv_red (shaders/matmul_gemv.wgsl): subgroup reductions for any subgroup size, against the
// float64 reference, on this adapter and (child process) with 16-lane subgroups.
import { describe, expect, it } from 'vitest';
import type { Gpu, Tensor } from '../gpu/runtime';
import { expectClose, testGpu } from '../testing';
import { matmulGemvRed } from './matmul';
import { matmulForwardRef } from '../ref/matmul';
import { fp32GemvRedInputs, gemvRedAt16Lanes, type Fp32GemvRedCase } from './gemv-red.child';

// fp32 sums of K ≤ 2050 products of N(0,1) values against float64: a few ulps of |y| ~ sqrt(K)
const TOL = { atol: 1e-4, rtol: 1e-5 };

// [K, N]: vec4 rows (gemv_red4) and ragged ones (gemv_red), K under one lane's share and longer than
// every lane's, N past a whole number of workgroups
const SHAPES: [number, number][] = [[576, 33], [64, 5], [300, 129], [7, 5], [1001, 45], [2050, 7], [3, 2], [4, 9]];
// workgroup shapes as for the int4 gemv_red: the wrapper's default, 8 invocations (a partial
// subgroup where lanes are 16 wide), 24 (16 + 8) with rows not a multiple of the block or of the
// subgroup count, one row per 256-invocation workgroup (most subgroups idle, a 4-row block with one row)
const WG_SHAPES: Fp32GemvRedCase['opts'][] = [{}, { wg: 8, rows: 7, rb: 1 }, { wg: 24, rows: 40, rb: 3 }, { wg: 256, rows: 1, rb: 4 }];
const CASES: Fp32GemvRedCase[] = SHAPES.flatMap(([K, N], i) => WG_SHAPES.map((opts, j) => ({ fp32: true as const, K, N, accumulate: (i + j) % 2 === 1, opts })));
const name = (c: Fp32GemvRedCase) => `K=${c.K} N=${c.N}${c.accumulate ? ' +=' : ''} ${JSON.stringify(c.opts)}`;

function reference(c: Fp32GemvRedCase): Float64Array {
  const { w, x, y0 } = fp32GemvRedInputs(c);
  const y = matmulForwardRef(x, w, 1, c.K, c.N);
  if (c.accumulate) for (let n = 0; n < c.N; n++) y[n] += y0[n];
  return y;
}

describe('fp32 gemv_red (subgroupAdd, any subgroup size) vs float64 reference', () => {
  it('refuses clearly without subgroups, and a block of more than 4 rows', async () => {
    const noSg = { hasSubgroups: false, info: { description: 'test adapter', vendor: '' } } as unknown as Gpu;
    const t = (n: number) => ({ numel: n, label: 't' }) as unknown as Tensor;
    expect(() => matmulGemvRed(noSg, t(5), t(64), t(320), 64, 5)).toThrow(/fp32 gemv_red needs WGSL subgroups/);
    expect(() => matmulGemvRed(noSg, t(5), t(64), t(300), 64, 5)).toThrow(/has 300 elements, needs 320/);
    const gpu = await testGpu();
    if (gpu.hasSubgroups) expect(() => matmulGemvRed(gpu, t(5), t(64), t(320), 64, 5, { rb: 5 })).toThrow(/rb = 5, needs 1\.\.4/);
  });

  it('every shape and workgroup shape, assigning and accumulating, on this adapter', async (ctx) => {
    const gpu = await testGpu();
    if (!gpu.hasSubgroups) ctx.skip();
    for (const c of CASES) {
      const { w, x, y0 } = fp32GemvRedInputs(c);
      const tw = gpu.tensor('w', [c.N, c.K], 'f32', w), tx = gpu.tensor('x', [1, c.K], 'f32', x);
      // assigning: every output must be written (NaN left behind fails)
      const ty = gpu.tensor('y', [1, c.N], 'f32', c.accumulate ? y0 : new Float32Array(c.N).fill(NaN));
      matmulGemvRed(gpu, ty, tx, tw, c.K, c.N, { ...c.opts, accumulate: c.accumulate });
      expectClose(`fp32 gemv_red ${name(c)} (${gpu.info.subgroupMinSize}-${gpu.info.subgroupMaxSize} lanes)`, await gpu.readF32(ty), reference(c), TOL);
      for (const t of [tw, tx, ty]) gpu.free(t);
    }
  });

  // lavapipe makes its subgroups 16 wide with LP_NATIVE_VECTOR_WIDTH=512 (AVX-512 hosts); the child
  // gets its own device under that setting. Skipped where it does not give 16 lanes.
  it('every shape and workgroup shape with 16-lane subgroups (child process, LP_NATIVE_VECTOR_WIDTH=512)', async (ctx) => {
    const gpu = await testGpu();
    if (!gpu.hasSubgroups || !/llvmpipe|lavapipe/i.test(`${gpu.info.description} ${gpu.info.backend}`)) ctx.skip();
    const cases = CASES.filter((c) => c.opts.wg !== 256); // the shapes whose subgroups differ at 16 lanes
    const ys = gemvRedAt16Lanes(cases);
    if (!ys) return ctx.skip();
    cases.forEach((c, i) => expectClose(`fp32 gemv_red ${name(c)} (16 lanes)`, ys[i], reference(c), TOL)); // NaN: an output left unwritten
  });
});
