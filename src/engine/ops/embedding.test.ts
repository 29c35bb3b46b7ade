import { describe, expect, it } from 'vitest';
import { expectClose, randn, rng, testGpu } from '../testing';
import { checkTokens, embeddingBackward, embeddingForward } from './embedding';
import { embeddingBackwardRef, embeddingForwardRef } from '../ref/embedding';

describe('embedding', () => {
  for (const [N, V, C] of [[1, 5, 3], [37, 11, 64], [300, 512, 7]]) {
    it(`gather and scatter-add N=${N} V=${V} C=${C}`, async () => {
      const gpu = await testGpu();
      const r = rng(N + V);
      const tokens = Array.from({ length: N }, () => Math.floor(r() * V));
      const table = randn(V * C, 1), dout = randn(N * C, 2), d0 = randn(V * C, 3);
      const tt = gpu.tensor('tok', [N], 'u32', tokens), tab = gpu.tensor('table', [V, C], 'f32', table), out = gpu.tensor('out', [N, C]);
      embeddingForward(gpu, out, tt, tab, N, C);
      expectClose('gather', await gpu.readF32(out), embeddingForwardRef(tokens, table, C), { atol: 0, rtol: 0 });
      const td = gpu.tensor('dout', [N, C], 'f32', dout), dt = gpu.tensor('dtable', [V, C], 'f32', d0);
      embeddingBackward(gpu, dt, td, tt, N, V, C);
      expectClose('dtable (accumulates)', await gpu.readF32(dt), embeddingBackwardRef(dout, tokens, V, C).map((v, i) => v + d0[i]), { atol: 1e-5, rtol: 1e-5 });
      for (const t of [tt, tab, out, td, dt]) gpu.free(t);
    });
  }
  it('rejects out-of-vocabulary ids on the host', () => {
    expect(() => checkTokens([1, 2, 9], 5)).toThrow(/token id 9 at position 2/);
  });
});
