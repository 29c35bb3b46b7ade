import { describe, expect, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, rng, testGpu, toF64 } from '../testing';
import { checkTokens, copyColumns, embeddingBackward, embeddingForward, writeTokens } from './embedding';
import { copyColumnsRef, embeddingBackwardRef, embeddingForwardRef } from '../ref/embedding';

describe('embedding', () => {
  it('reference backward matches finite differences', () => {
    const V = 5, C = 3, tokens = [1, 4, 1, 0, 1];
    const table = toF64(randn(V * C, 1)), dout = toF64(randn(tokens.length * C, 2));
    const fd = finiteDiff((tab) => dot(embeddingForwardRef(tokens, tab, C), dout), table);
    expectClose('dtable', embeddingBackwardRef(dout, tokens, V, C), fd, { atol: 1e-8, rtol: 1e-6 });
  });

  // [N, V, C, token distribution]: uniform ids, heavy repetition, one id repeated everywhere
  const cases: [number, number, number, string][] = [
    [1, 5, 3, 'uniform'],
    [37, 11, 64, 'uniform'],
    [300, 512, 7, 'uniform'],
    [2048, 32000, 8, 'uniform'],
    [513, 32000, 5, 'few'],
    [257, 3, 9, 'one'],
  ];
  for (const [N, V, C, dist] of cases) {
    it(`gather and scatter-add N=${N} V=${V} C=${C} (${dist} ids)`, async () => {
      const gpu = await testGpu();
      const r = rng(N + V);
      const pool = [7, V - 1, 0, Math.floor(V / 2)].map((x) => Math.min(x, V - 1));
      const tokens = Array.from({ length: N }, () => (dist === 'uniform' ? Math.floor(r() * V) : dist === 'few' ? pool[Math.floor(r() * pool.length)] : V - 1));
      const table = randn(V * C, 1), dout = randn(N * C, 2), d0 = randn(V * C, 3);
      const tt = gpu.tensor('tok', [N], 'u32');
      writeTokens(gpu, tt, tokens, V);
      const tab = gpu.tensor('table', [V, C], 'f32', table), out = gpu.tensor('out', [N, C], 'f32', randn(N * C, 4));
      embeddingForward(gpu, out, tt, tab, N, C);
      expectClose('gather', await gpu.readF32(out), embeddingForwardRef(tokens, table, C), { atol: 0, rtol: 0 });
      const td = gpu.tensor('dout', [N, C], 'f32', dout), dt = gpu.tensor('dtable', [V, C], 'f32', d0);
      embeddingBackward(gpu, dt, td, tt, N, V, C);
      const g = embeddingBackwardRef(dout, tokens, V, C);
      const tol = { atol: 1e-6 * Math.sqrt(N), rtol: 1e-5 };
      expectClose('dtable (accumulates)', await gpu.readF32(dt), g.map((v, i) => v + d0[i]), tol);
      const first = await gpu.readF32(dt);
      embeddingBackward(gpu, dt, td, tt, N, V, C);
      const second = await gpu.readF32(dt);
      expectClose('dtable (accumulates twice)', second, g.map((v, i) => 2 * v + d0[i]), { ...tol, atol: 2 * tol.atol });
      // determinism: the same sum in the same order; add it to a fresh copy of d0 and compare bits
      const dt2 = gpu.tensor('dtable2', [V, C], 'f32', d0);
      embeddingBackward(gpu, dt2, td, tt, N, V, C);
      expect(Buffer.from((await gpu.readF32(dt2)).buffer).equals(Buffer.from(first.buffer))).toBe(true);
      for (const t of [tt, tab, out, td, dt, dt2]) gpu.free(t);
    });
  }

  // C = 5: the scalar gather; C = 8: forward4 (vec4 rows)
  for (const C of [5, 8]) it(`out-of-range ids on the GPU: zero rows forward, skipped backward (C=${C})`, async () => {
    const gpu = await testGpu();
    const V = 6, tokens = [2, 6, 0xffffffff, 2, 5, 1000];
    const table = randn(V * C, 1), dout = randn(tokens.length * C, 2);
    const tt = gpu.tensor('tok', [tokens.length], 'u32', tokens), tab = gpu.tensor('table', [V, C], 'f32', table), out = gpu.tensor('out', [tokens.length, C], 'f32', randn(tokens.length * C, 3));
    embeddingForward(gpu, out, tt, tab, tokens.length, C);
    const got = await gpu.readF32(out);
    expectClose('gather', got, embeddingForwardRef(tokens, table, C), { atol: 0, rtol: 0 });
    expect(Array.from(got.slice(C, 3 * C)).every((v) => v === 0)).toBe(true);
    const td = gpu.tensor('dout', [tokens.length, C], 'f32', dout), dt = gpu.tensor('dtable', [V, C]);
    embeddingBackward(gpu, dt, td, tt, tokens.length, V, C);
    expectClose('dtable', await gpu.readF32(dt), embeddingBackwardRef(dout, tokens, V, C), { atol: 1e-6, rtol: 1e-6 });
    for (const t of [tt, tab, out, td, dt]) gpu.free(t);
  });

  it('rejects out-of-vocabulary ids on the host', async () => {
    expect(() => checkTokens([1, 2, 9], 5)).toThrow(/token id 9 at position 2/);
    expect(() => checkTokens([1, -1], 5)).toThrow(/token id -1 at position 1/);
    expect(() => checkTokens([1.5], 5)).toThrow(/token id 1.5/);
    const gpu = await testGpu();
    const t = gpu.tensor('tok', [3], 'u32');
    expect(() => writeTokens(gpu, t, [0, 5, 1], 5)).toThrow(/tokens for "tok": token id 5 at position 1 is outside the vocabulary \[0, 5\)/);
    gpu.free(t);
  });

  for (const C of [7, 12]) it(`a table split into chunks of rows (ragged last, ids in every chunk and outside): gather and scatter-add = reference (C=${C})`, async () => {
    const gpu = await testGpu();
    const V = 203, N = 150, split = [64, 64, 64, 11];
    const r = rng(21);
    // ids of every chunk, its first and last rows, repeats, and ids >= V (zero rows, no gradient)
    const tokens = Array.from({ length: N }, (_, i) => (i % 37 === 5 ? V + i : i % 11 === 0 ? [0, 63, 64, 191, 192, 202][i % 6] : Math.floor(r() * V)));
    const table = randn(V * C, 1), dout = randn(N * C, 2), d0 = randn(V * C, 3);
    const tt = gpu.tensor('tok', [N], 'u32', tokens);
    let v0 = 0;
    const chunks = split.map((rows, k) => {
      const t = gpu.tensor(`table.${k}`, [rows, C], 'f32', table.subarray(v0 * C, (v0 + rows) * C));
      const g = gpu.tensor(`dtable.${k}`, [rows, C], 'f32', d0.subarray(v0 * C, (v0 + rows) * C));
      v0 += rows;
      return { t, g };
    });
    const out = gpu.tensor('out', [N, C], 'f32', randn(N * C, 4)); // stale values: every row must be written
    embeddingForward(gpu, out, tt, chunks.map((c) => c.t), N, C);
    expectClose('gather over chunks', await gpu.readF32(out), embeddingForwardRef(tokens, table, C, V), { atol: 0, rtol: 0 });
    const td = gpu.tensor('dout', [N, C], 'f32', dout);
    embeddingBackward(gpu, chunks.map((c) => c.g), td, tt, N, V, C);
    const got = new Float32Array(V * C);
    v0 = 0;
    for (const [k, c] of chunks.entries()) got.set(await gpu.readF32(c.g), v0 * C), (v0 += split[k]);
    const g = embeddingBackwardRef(dout, tokens, V, C);
    expectClose('scatter-add over chunks (accumulates)', got, g.map((x, i) => x + d0[i]), { atol: 1e-5, rtol: 1e-5 });
    expect(() => embeddingBackward(gpu, chunks.slice(0, 3).map((c) => c.g), td, tt, N, V, C)).toThrow(/192 rows in 3 chunk\(s\), needs 203/);
    for (const t of [tt, out, td, ...chunks.flatMap((c) => [c.t, c.g])]) gpu.free(t);
  });

  it('copyColumns: a block of columns between row strides = reference', async () => {
    const gpu = await testGpu();
    for (const [rows, cols, ss, sc, ds, dc] of [[5, 13, 13, 0, 40, 27], [5, 13, 40, 27, 13, 0], [1, 300, 1000, 700, 300, 0], [3, 1, 9, 8, 4, 2]]) {
      const src = randn(rows * ss, rows + cols), dst0 = randn(rows * ds, 7);
      const ts = gpu.tensor('src', [rows * ss], 'f32', src), td = gpu.tensor('dst', [rows * ds], 'f32', dst0);
      copyColumns(gpu, td, ts, { rows, cols, srcStride: ss, srcCol: sc, dstStride: ds, dstCol: dc });
      expectClose(`copyColumns ${rows}x${cols}`, await gpu.readF32(td), copyColumnsRef(toF64(dst0), src, rows, cols, ss, sc, ds, dc), { atol: 0, rtol: 0 });
      gpu.free(ts), gpu.free(td);
    }
    const t = gpu.tensor('t', [20]);
    expect(() => copyColumns(gpu, t, t, { rows: 2, cols: 6, srcStride: 10, srcCol: 5, dstStride: 10, dstCol: 0 })).toThrow(/do not fit a row/);
    gpu.free(t);
  });
});
