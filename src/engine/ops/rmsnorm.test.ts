import { describe, expect, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { rmsnormBackward, rmsnormForward, rmsnormLayout, type RmsnormOpts } from './rmsnorm';
import { rmsnormBackwardRef, rmsnormForwardRef } from '../ref/rmsnorm';
import { addForward } from './elementwise';

// lavapipe compiles barrier kernels slowly: the workgroup variant is covered by 32 lanes per row in
// 64-thread workgroups (two rows per workgroup) on every shape, and 64 lanes (= WG) on one.
const VARIANTS: { name: string; o: RmsnormOpts }[] = [
  { name: 'thread', o: { variant: 'thread' } },
  { name: 'workgroup/32 lanes', o: { variant: 'workgroup', lanes: 32 } },
];

describe('rmsnorm', () => {
  it('reference backward matches finite differences', () => {
    for (const [rows, C] of [[3, 7], [1, 1], [2, 16]]) {
      const eps = 1e-5;
      const x = toF64(randn(rows * C, 1)), w = toF64(randn(C, 2)), dy = toF64(randn(rows * C, 3));
      const { dx, dw } = rmsnormBackwardRef(dy, x, w, rows, C, eps);
      expectClose('dx', dx, finiteDiff((xx) => dot(rmsnormForwardRef(xx, w, rows, C, eps).y, dy), x), { atol: 1e-8, rtol: 1e-6 });
      expectClose('dw', dw, finiteDiff((ww) => dot(rmsnormForwardRef(x, ww, rows, C, eps).y, dy), w), { atol: 1e-8, rtol: 1e-6 });
    }
  });

  async function check(rows: number, C: number, o: RmsnormOpts): Promise<void> {
    const gpu = await testGpu();
    const eps = 1e-5;
    const x = randn(rows * C, 4 + rows, 2), w = randn(C, 5), dy = randn(rows * C, 6), dw0 = randn(C, 7);
    const tx = gpu.tensor('x', [rows, C], 'f32', x), tw = gpu.tensor('w', [C], 'f32', w), ty = gpu.tensor('y', [rows, C], 'f32', randn(rows * C, 8)), tr = gpu.tensor('rstd', [rows]);
    rmsnormForward(gpu, ty, tr, tx, tw, rows, C, eps, o);
    const ref = rmsnormForwardRef(x, w, rows, C, eps);
    expectClose('y', await gpu.readF32(ty), ref.y, { atol: 1e-5, rtol: 1e-5 });
    expectClose('rstd', await gpu.readF32(tr), ref.rstd, { atol: 1e-6, rtol: 1e-5 });
    // without rstd: same y
    const ty2 = gpu.tensor('y2', [rows, C]);
    rmsnormForward(gpu, ty2, null, tx, tw, rows, C, eps, o);
    expectClose('y (no rstd)', await gpu.readF32(ty2), ref.y, { atol: 1e-5, rtol: 1e-5 });
    const tdy = gpu.tensor('dy', [rows, C], 'f32', dy), tdx = gpu.tensor('dx', [rows, C], 'f32', randn(rows * C, 9)), tdw = gpu.tensor('dw', [C], 'f32', dw0);
    rmsnormBackward(gpu, tdx, tdw, tdy, tx, tw, tr, rows, C, o);
    const g = rmsnormBackwardRef(dy, x, w, rows, C, eps);
    expectClose('dx (assigns)', await gpu.readF32(tdx), g.dx, { atol: 1e-5, rtol: 1e-4 });
    const dwTol = { atol: 1e-5 * Math.sqrt(rows), rtol: 1e-4 };
    expectClose('dw (accumulates)', await gpu.readF32(tdw), g.dw.map((v, i) => v + dw0[i]), dwTol);
    // a second backward adds again; a frozen norm (dw null) leaves dw alone
    rmsnormBackward(gpu, tdx, tdw, tdy, tx, tw, tr, rows, C, o);
    rmsnormBackward(gpu, tdx, null, tdy, tx, tw, tr, rows, C, o);
    expectClose('dw (accumulates twice)', await gpu.readF32(tdw), g.dw.map((v, i) => 2 * v + dw0[i]), dwTol);
    expectClose('dx (assigns, again)', await gpu.readF32(tdx), g.dx, { atol: 1e-5, rtol: 1e-4 });
    // the fused residual adds = the separate add kernel then the norm, bit for bit:
    // forward hsum = x + add, y = norm(hsum); backward dx = norm'(dy) + addTo
    const add = randn(rows * C, 10), tadd = gpu.tensor('add', [rows, C], 'f32', add);
    const hsum = gpu.tensor('hsum', [rows, C], 'f32', randn(rows * C, 11)), hsep = gpu.tensor('hsep', [rows, C]);
    const yf = gpu.tensor('yf', [rows, C]), rf = gpu.tensor('rf', [rows]), ys = gpu.tensor('ys', [rows, C]), rsep = gpu.tensor('rs', [rows]);
    rmsnormForward(gpu, yf, rf, tx, tw, rows, C, eps, { ...o, residual: { add: tadd, sum: hsum } });
    addForward(gpu, hsep, tx, tadd);
    rmsnormForward(gpu, ys, rsep, hsep, tw, rows, C, eps, o);
    for (const [name, a, b] of [['sum', hsum, hsep], ['y', yf, ys], ['rstd', rf, rsep]] as const) expect(Array.from(await gpu.readF32(a)), `fused ${name}`).toEqual(Array.from(await gpu.readF32(b)));
    expectClose('fused y vs reference', await gpu.readF32(yf), rmsnormForwardRef(Float32Array.from(x, (v, i) => v + add[i]), w, rows, C, eps).y, { atol: 1e-5, rtol: 1e-5 });
    const dxf = gpu.tensor('dxf', [rows, C], 'f32', randn(rows * C, 12)), dxs = gpu.tensor('dxs', [rows, C]), tmp = gpu.tensor('tmp', [rows, C]);
    rmsnormBackward(gpu, dxf, null, tdy, tx, tw, tr, rows, C, { ...o, addTo: tadd });
    rmsnormBackward(gpu, tmp, null, tdy, tx, tw, tr, rows, C, o);
    addForward(gpu, dxs, tmp, tadd);
    expect(Array.from(await gpu.readF32(dxf)), 'fused dx + addTo').toEqual(Array.from(await gpu.readF32(dxs)));
    expect(() => rmsnormForward(gpu, yf, rf, tx, tw, rows, C, eps, { ...o, residual: { add: tadd, sum: tx } })).toThrow(/residual sum "x" must be a tensor of its own/);
    expect(() => rmsnormBackward(gpu, dxf, null, tdy, tx, tw, tr, rows, C, { ...o, addTo: dxf })).toThrow(/addTo "dxf" cannot be dx itself/);
    for (const t of [tx, tw, ty, ty2, tr, tdy, tdx, tdw, tadd, hsum, hsep, yf, rf, ys, rsep, dxf, dxs, tmp]) gpu.free(t);
  }

  for (const { name, o } of VARIANTS)
    for (const rows of [1, 5, 300])
      for (const C of [64, 172, 7])
        it(`${name}: GPU vs reference rows=${rows} C=${C}`, () => check(rows, C, o));

  it('workgroup, one 64-lane workgroup per row: rows=300 C=172', () => check(300, 172, { variant: 'workgroup', lanes: 64 }));

  it('dw is deterministic (bitwise) and matches at rows=2048 C=288 (32 partial chunks)', async () => {
    const gpu = await testGpu();
    const rows = 2048, C = 288;
    const x = randn(rows * C, 1), w = randn(C, 2), dy = randn(rows * C, 3);
    const tx = gpu.tensor('x', [rows, C], 'f32', x), tw = gpu.tensor('w', [C], 'f32', w), ty = gpu.tensor('y', [rows, C]), tr = gpu.tensor('rstd', [rows]);
    const tdy = gpu.tensor('dy', [rows, C], 'f32', dy), tdx = gpu.tensor('dx', [rows, C]), dwA = gpu.tensor('dwA', [C]), dwB = gpu.tensor('dwB', [C]);
    rmsnormForward(gpu, ty, tr, tx, tw, rows, C, 1e-5);
    rmsnormBackward(gpu, tdx, dwA, tdy, tx, tw, tr, rows, C);
    rmsnormBackward(gpu, tdx, dwB, tdy, tx, tw, tr, rows, C);
    const a = await gpu.readF32(dwA), b = await gpu.readF32(dwB);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expectClose('dw', a, rmsnormBackwardRef(dy, x, w, rows, C, 1e-5).dw, { atol: 1e-4, rtol: 1e-4 });
    for (const t of [tx, tw, ty, tr, tdy, tdx, dwA, dwB]) gpu.free(t);
  });

  it('layout', async () => {
    const gpu = await testGpu();
    expect(rmsnormLayout(gpu, 4096, 'workgroup')).toEqual({ WG: 256, LANES: 256 });
    expect(rmsnormLayout(gpu, 64, 'workgroup')).toEqual({ WG: 64, LANES: 32 });
    expect(rmsnormLayout(gpu, 64, 'thread')).toEqual({ WG: 64, LANES: 1 });
    expect(() => rmsnormLayout(gpu, 64, 'workgroup', 3)).toThrow(/power of two/);
  });
});
