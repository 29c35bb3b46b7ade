import { describe, expect, it } from 'vitest';
import { bitDiff, expectClose, randn, testGpu } from '../testing';
import { pickQmatmulVariant, qmatmulBackwardInput, setDxSgRows, qmatmulForward, qmatmulGemvRed, qmatmulGemvWide, QMATMUL_DX_VARIANTS, QMATMUL_VARIANTS, qmatmulVariants, type GpuPacked } from './qmatmul';
import { quantizeHost, type Bits, type PackedWeight } from '../format/pack';
import { qmatmulDxRef, qmatmulRef } from '../ref/quant';
import type { Gpu, Tensor } from '../gpu/runtime';
import { hasSubgroup8 } from './matmul';
import { gemvRedAt16Lanes, gemvRedInputs, type GemvRedCase } from './gemv-red.child';

function upload(gpu: Gpu, p: PackedWeight): GpuPacked {
  return {
    layout: p,
    codes: gpu.tensor('codes', [p.N, p.wordsPerRow], 'u32', p.codes),
    scales: gpu.tensor('scales', [p.N, p.nBlocks], 'f32', p.scales),
    zeros: gpu.tensor('zeros', [p.N, p.nBlocks], 'f32', p.zeros),
  };
}

// fp32 GPU sums of K ≤ 2050 products vs a float64 reference on the same codes: errors are a few
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
    // gemv_sg32 (4 bits, K and group multiples of 32): a last group cut short by K (96 = 64 + 32),
    // per-channel, N not a multiple of 4 or of 32 rows per subgroup
    [1, 96, 37, 4, 64, false], [1, 64, 9, 4, 0, true], [1, 256, 70, 4, 128, false],
    // K % 4 != 0 at M > 1: gemm_sg's scalar x loads (K % 4 == 0 takes gemm_sg4's vec4 loads;
    // K = 172, 100 cover its masked half vec4 at K % 8 == 4)
    [5, 57, 9, 4, 12, false], [18, 99, 33, 4, 32, false], [17, 102, 40, 3, 0, true],
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
      // the prefetching 8x8-tile forms load the next slab early but sum the same products in the
      // same order: the same bits as their plain forms
      const bits8 = async (run: () => void, out: Tensor, n: number) => {
        gpu.write(out, new Float32Array(n).fill(NaN));
        run();
        return gpu.readF32(out);
      };
      expect(bitDiff(await bits8(() => qmatmulForward(gpu, ty, tx, w, M, 'gemm_wg8p'), ty, M * N), await bits8(() => qmatmulForward(gpu, ty, tx, w, M, 'gemm_wg8'), ty, M * N)), 'gemm_wg8p = gemm_wg8').toBe('');
      expect(bitDiff(await bits8(() => qmatmulBackwardInput(gpu, tdx, tdy, w, M, false, 'dx_wg8p'), tdx, M * K), await bits8(() => qmatmulBackwardInput(gpu, tdx, tdy, w, M, false, 'dx_wg8'), tdx, M * K)), 'dx_wg8p = dx_wg8').toBe('');
      // dx_sg's two forms (8 and 16 rows of dY per subgroup; auto takes 16 from M = 16), each at
      // every M here: the same per-row operations, so the same bits
      if (hasSubgroup8(gpu)) {
        const got: Float32Array[] = [];
        try {
          for (const rows of [8, 16] as const) {
            setDxSgRows(gpu, rows);
            gpu.write(tdx, new Float32Array(M * K).fill(NaN));
            qmatmulBackwardInput(gpu, tdx, tdy, w, M, false, 'dx_sg');
            got.push(await gpu.readF32(tdx));
            expectClose(`dx_sg ${rows} rows`, got[got.length - 1], dxRef, tol);
          }
        } finally {
          setDxSgRows(gpu, null);
        }
        expectClose('dx_sg: 16 rows = 8 rows', got[1], got[0], { atol: 0, rtol: 0 });
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

// gemv_red: subgroup reductions for any subgroup size. The cases above run it with the wrapper's
// workgroup shape; these add bit widths, groups and K / N edges, and odd workgroup shapes: 8
// invocations (a partial subgroup where lanes are 16 wide), 24 (16 + 8), rows per workgroup not a
// multiple of the block or of the subgroup count, one row per 256-invocation workgroup (most
// subgroups idle, a 4-row block with one row), and 1 to 4 rows per block.
const redCases: [number, number, Bits, number, boolean][] = [
  // [K, N, bits, group (0 = per-channel), sym]
  [172, 64, 4, 32, false], // K ragged: last chunk and last group partial
  [100, 17, 3, 20, false], // odd group: chunks straddle group edges; 3-bit chunks straddle words
  [57, 6, 8, 12, true], // 8 bits: two words per chunk; K ragged
  [96, 33, 2, 0, false], // 2 bits, per-channel
  [1001, 45, 4, 0, false], // per-channel, K ragged, many chunks per lane
  [2050, 7, 4, 128, false], // long rows, last group of 2 codes
  [5, 3, 4, 32, false], // K shorter than one chunk
  [300, 129, 3, 64, true], // N = 4·32 + 1
  [3, 5, 4, 0, false], // x under 16 bytes: the wrapper runs 'gemv'
];
// (each shape is a pipeline: about a second of lavapipe compile time, hence four)
const redShapes: GemvRedCase['opts'][] = [{}, { wg: 8, rows: 7, rb: 1 }, { wg: 24, rows: 40, rb: 3 }, { wg: 256, rows: 1, rb: 4 }];
const allRed: GemvRedCase[] = redCases.flatMap(([K, N, bits, group, sym]) => redShapes.map((opts) => ({ K, N, bits, group, sym, opts })));
// the child's share (its compiles cost ~1.5 s each uncached): the shapes whose subgroups differ at
// 16 lanes (the default, a partial subgroup, 16 + 8), not the 'gemv' fallback
const childRed = allRed.filter((c) => c.K >= 4 && c.opts.wg !== 256);
const redName = (c: GemvRedCase) => `K=${c.K} N=${c.N} bits=${c.bits} group=${c.group || 'per-channel'}${c.sym ? ' sym' : ''} ${JSON.stringify(c.opts)}`;

describe('gemv_red (int4 and other widths, subgroupAdd, any subgroup size) vs float64 reference', () => {
  it('is listed in QMATMUL_VARIANTS and offered where the adapter has subgroups', async () => {
    const gpu = await testGpu();
    expect(QMATMUL_VARIANTS).toContain('gemv_red');
    expect(qmatmulVariants(gpu).includes('gemv_red')).toBe(gpu.hasSubgroups);
  });

  it('refuses clearly without subgroups', () => {
    const noSg = { hasSubgroups: false, info: { description: 'test adapter', vendor: '' } } as unknown as Gpu;
    const t = (n: number) => ({ numel: n, label: 't' }) as unknown as Tensor;
    const { p } = gemvRedInputs({ K: 64, N: 5, bits: 4, group: 32, sym: false, opts: {} });
    const w = { layout: p, codes: t(p.codes.length), scales: t(p.scales.length), zeros: t(p.zeros.length) };
    expect(() => qmatmulGemvRed(noSg, t(5), t(64), w)).toThrow(/needs WGSL subgroups/);
    expect(() => qmatmulForward(noSg, t(5), t(64), w, 1, 'gemv_red')).toThrow(/needs WGSL subgroups/);
  });

  it('every case and workgroup shape, on this adapter', async (ctx) => {
    const gpu = await testGpu();
    if (!gpu.hasSubgroups) ctx.skip();
    for (const c of allRed) {
      const { p, x } = gemvRedInputs(c);
      const w = upload(gpu, p);
      const tx = gpu.tensor('x', [1, c.K], 'f32', x), ty = gpu.tensor('y', [1, c.N], 'f32', new Float32Array(c.N).fill(NaN));
      qmatmulGemvRed(gpu, ty, tx, w, c.opts);
      expectClose(`gemv_red ${redName(c)} (${gpu.info.subgroupMinSize}-${gpu.info.subgroupMaxSize} lanes)`, await gpu.readF32(ty), qmatmulRef(x, p, 1), tol);
      for (const t of [tx, ty, w.codes, w.scales, w.zeros]) gpu.free(t);
    }
  });

  // lavapipe makes its subgroups 16 wide with LP_NATIVE_VECTOR_WIDTH=512 (AVX-512 hosts); a child
  // process gets its own device under that setting (~1.5 s; 6-7 s with lavapipe's shader cache
  // cold). Skipped where it does not give 16 lanes.
  it('every case and workgroup shape, with 16-lane subgroups (child process, LP_NATIVE_VECTOR_WIDTH=512)', async (ctx) => {
    const gpu = await testGpu();
    if (!gpu.hasSubgroups || !/llvmpipe|lavapipe/i.test(`${gpu.info.description} ${gpu.info.backend}`)) ctx.skip();
    const ys = gemvRedAt16Lanes(childRed);
    if (!ys) return ctx.skip();
    childRed.forEach((c, i) => {
      const { p, x } = gemvRedInputs(c);
      expectClose(`gemv_red ${redName(c)} (16 lanes)`, ys[i], qmatmulRef(x, p, 1), tol); // NaN: an output left unwritten
    });
  });
});

// gemv_wide: 16-byte code loads, RB rows per thread, TPR threads per row block reduced through
// workgroup memory; no subgroups, so it runs on every adapter. Each case names the path it takes:
// fast (2/4/8 bits, words inside one group: x as vec4, scale·(Σx·code − zero·Σx) per group run),
// per-code (3 bits, or groups that split words), or the 'gemv' fallback (rows not on 16 bytes,
// x under 16 bytes). Workgroup shapes: the default, one thread per row (no reduction), 4 threads
// of 3-row blocks in 32 invocations, 16 threads of 4-row blocks in 256.
const wideCases: [number, number, Bits, number, boolean, string][] = [
  // [K, N, bits, group (0 = per-channel), sym, path]
  [172, 64, 4, 32, false, 'fast; K ragged, group padding past K'],
  [256, 70, 4, 16, false, 'fast; two groups per 4-word chunk'],
  [1024, 40, 4, 64, true, 'fast; a group over two chunks'],
  [2050, 7, 4, 128, false, 'fast; last group of 2 codes'],
  [256, 129, 4, 32, false, 'fast; N = 4·32 + 1'],
  [5, 3, 4, 32, false, 'fast; K under one word'],
  [62, 6, 8, 16, false, 'fast; 8 bits, K ragged inside a word'],
  [128, 33, 2, 0, false, 'fast; 2 bits per-channel'],
  [160, 17, 4, 20, false, 'per-code; group 20 splits words'],
  [150, 9, 3, 32, false, 'per-code; 3 bits'],
  [120, 33, 3, 40, true, 'per-code; 3 bits, words inside groups'],
  [1020, 45, 4, 0, false, 'per-code; per-channel, K % 8 ≠ 0'],
  [40, 5, 4, 8, false, "'gemv' fallback; 5 words per row"],
  [3, 5, 4, 0, false, "'gemv' fallback; x under 16 bytes"],
];
const wideShapes: { wg?: number; tpr?: number; rb?: number }[] = [{}, { wg: 64, tpr: 1, rb: 1 }, { wg: 32, tpr: 4, rb: 3 }, { wg: 256, tpr: 16, rb: 4 }];

describe('gemv_wide (16-byte code loads, workgroup reduction, no subgroups) vs float64 reference', () => {
  it('is offered on every adapter and refuses bad shapes clearly', async () => {
    const gpu = await testGpu();
    expect(qmatmulVariants(gpu)).toContain('gemv_wide');
    const p = quantizeHost(randn(5 * 64, 1), 5, 64, { bits: 4, group: 32, sym: false });
    const w = upload(gpu, p);
    const tx = gpu.tensor('x', [1, 64]), ty = gpu.tensor('y', [1, 5]);
    expect(() => qmatmulGemvWide(gpu, ty, tx, w, { rb: 5 })).toThrow(/rb = 5, needs 1\.\.4/);
    expect(() => qmatmulGemvWide(gpu, ty, tx, w, { wg: 64, tpr: 24 })).toThrow(/tpr = 24 must be a power of two dividing wg = 64/);
    expect(() => qmatmulForward(gpu, gpu.tensor('y2', [2, 5]), gpu.tensor('x2', [2, 64]), w, 2, 'gemv_wide')).toThrow(/needs M = 1/);
    for (const t of [tx, ty, w.codes, w.scales, w.zeros]) gpu.free(t);
  });

  for (const [K, N, bits, group, sym, path] of wideCases) {
    it(`K=${K} N=${N} bits=${bits} group=${group || 'per-channel'}${sym ? ' sym' : ''} (${path}): every workgroup shape`, async () => {
      const gpu = await testGpu();
      const p = quantizeHost(randn(N * K, K + N + bits), N, K, { bits, group, sym });
      const x = randn(K, 2);
      const w = upload(gpu, p);
      // x in a longer buffer whose tail is junk: a read past K (the last word's padding codes, a
      // vec4 load that runs over) changes y. (K < 4 keeps its under-16-byte buffer: the fallback.)
      const pad = K < 4 ? 0 : 7;
      const tx = gpu.tensor('x', [1, K + pad], 'f32', Float32Array.from({ length: K + pad }, (_, i) => (i < K ? x[i] : 1e3))), ty = gpu.tensor('y', [1, N]);
      const ref = qmatmulRef(x, p, 1);
      for (const opts of wideShapes) {
        gpu.write(ty, new Float32Array(N).fill(NaN)); // every output must be written
        qmatmulGemvWide(gpu, ty, tx, w, opts);
        expectClose(`gemv_wide ${JSON.stringify(opts)}`, await gpu.readF32(ty), ref, tol);
      }
      for (const t of [tx, ty, w.codes, w.scales, w.zeros]) gpu.free(t);
    });
  }
});
