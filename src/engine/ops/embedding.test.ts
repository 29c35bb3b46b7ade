import { describe, expect, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, rng, testGpu, toF64 } from '../testing';
import { checkTokens, embeddingBackward, embeddingForward, writeTokens } from './embedding';
import { embeddingBackwardRef, embeddingForwardRef } from '../ref/embedding';

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

  it('out-of-range ids on the GPU: zero rows forward, skipped backward', async () => {
    const gpu = await testGpu();
    const V = 6, C = 5, tokens = [2, 6, 0xffffffff, 2, 5, 1000];
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
});
