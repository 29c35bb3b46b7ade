import { describe, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, sampleIndices, testGpu, toF64 } from '../testing';
import { attentionBackward, attentionForward } from './attention';
import { attentionBackwardRef, attentionForwardRef, type AttnShape } from '../ref/attention';

describe('attention', () => {
  it('reference backward (with an extra probs gradient) matches finite differences', () => {
    const s: AttnShape = { B: 2, T: 4, NH: 4, NKV: 2, HS: 4 };
    const nq = s.B * s.T * s.NH * s.HS, nk = s.B * s.T * s.NKV * s.HS;
    const q = toF64(randn(nq, 1)), k = toF64(randn(nk, 2)), v = toF64(randn(nk, 3));
    const dout = toF64(randn(nq, 4)), dpx = toF64(randn(s.B * s.NH * s.T * s.T, 5));
    const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => {
      const f = attentionForwardRef(qq, kk, vv, s);
      return dot(f.out, dout) + dot(f.probs, dpx);
    };
    const g = attentionBackwardRef(dout, q, k, v, s, dpx);
    const tol = { atol: 1e-8, rtol: 1e-6 };
    expectClose('dq', g.dq, finiteDiff((x) => loss(x, k, v), q), tol);
    expectClose('dk', g.dk, finiteDiff((x) => loss(q, x, v), k), tol);
    expectClose('dv', g.dv, finiteDiff((x) => loss(q, k, x), v), tol);
  });

  const shapes: AttnShape[] = [
    { B: 1, T: 1, NH: 1, NKV: 1, HS: 8 },
    { B: 2, T: 7, NH: 4, NKV: 2, HS: 8 },
    { B: 1, T: 33, NH: 4, NKV: 1, HS: 16 },
    { B: 2, T: 64, NH: 8, NKV: 8, HS: 8 },
  ];
  for (const s of shapes) {
    it(`GPU vs reference B=${s.B} T=${s.T} NH=${s.NH} NKV=${s.NKV} HS=${s.HS}`, async () => {
      const gpu = await testGpu();
      const { B, T, NH, NKV, HS } = s;
      const nq = B * T * NH * HS, nk = B * T * NKV * HS, np = B * NH * T * T;
      const q = randn(nq, 11), k = randn(nk, 12), v = randn(nk, 13), dout = randn(nq, 14), dpx = randn(np, 15);
      const t = (n: string, d: Float32Array | number) => (typeof d === 'number' ? gpu.tensor(n, [d]) : gpu.tensor(n, [d.length], 'f32', d));
      const tq = t('q', q), tk = t('k', k), tv = t('v', v), tout = t('out', nq), tp = t('probs', np);
      attentionForward(gpu, { out: tout, probs: tp, q: tq, k: tk, v: tv, B, Tq: T, Tk: T, TkMax: T, NH, NKV, HS, pos0: 0 });
      const ref = attentionForwardRef(q, k, v, s);
      expectClose('out', await gpu.readF32(tout), ref.out, { atol: 1e-5, rtol: 1e-4 });
      expectClose('probs', await gpu.readF32(tp), ref.probs, { atol: 1e-6, rtol: 1e-4 });
      const tdo = t('dout', dout), tdpx = t('dpx', dpx), tds = t('ds', np), tdq = t('dq', nq), tdk = t('dk', nk), tdv = t('dv', nk);
      attentionBackward(gpu, { dq: tdq, dk: tdk, dv: tdv, dscores: tds, dout: tdo, q: tq, k: tk, v: tv, probs: tp, dprobsExtra: tdpx, B, T, NH, NKV, HS });
      const g = attentionBackwardRef(dout, q, k, v, s, dpx);
      expectClose('dq', await gpu.readF32(tdq), g.dq, { atol: 1e-4, rtol: 1e-4 });
      expectClose('dk', await gpu.readF32(tdk), g.dk, { atol: 1e-4, rtol: 1e-4 });
      expectClose('dv', await gpu.readF32(tdv), g.dv, { atol: 1e-4, rtol: 1e-4 });
      for (const x of [tq, tk, tv, tout, tp, tdo, tdpx, tds, tdq, tdk, tdv]) gpu.free(x);
    });
  }

  it('KV-cached decoding equals the full forward, row by row', async () => {
    const gpu = await testGpu();
    const s: AttnShape = { B: 1, T: 9, NH: 4, NKV: 2, HS: 8 };
    const { T, NH, NKV, HS } = s;
    const cap = 16;
    const q = randn(T * NH * HS, 21), k = randn(T * NKV * HS, 22), v = randn(T * NKV * HS, 23);
    const ref = attentionForwardRef(q, k, v, s);
    const kc = new Float32Array(cap * NKV * HS), vc = new Float32Array(cap * NKV * HS);
    kc.set(k);
    vc.set(v);
    const tk = gpu.tensor('kc', [cap, NKV * HS], 'f32', kc), tv = gpu.tensor('vc', [cap, NKV * HS], 'f32', vc);
    for (const pos of sampleIndices(T, 4, 1)) {
      const tq = gpu.tensor('q1', [NH * HS], 'f32', q.subarray(pos * NH * HS, (pos + 1) * NH * HS));
      const to = gpu.tensor('o1', [NH * HS]);
      attentionForward(gpu, { out: to, q: tq, k: tk, v: tv, B: 1, Tq: 1, Tk: pos + 1, TkMax: cap, NH, NKV, HS, pos0: pos });
      expectClose(`row ${pos}`, await gpu.readF32(to), ref.out.subarray(pos * NH * HS, (pos + 1) * NH * HS), { atol: 1e-5, rtol: 1e-4 });
      gpu.free(tq);
      gpu.free(to);
    }
  });
});
