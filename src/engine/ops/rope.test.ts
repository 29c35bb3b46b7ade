import { describe, expect, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64 } from '../testing';
import { releaseRopeTables, ropeBackward, ropeForward, ropeQK } from './rope';
import { ropeInvFreq, ropeRef, type RopeSpec } from '../ref/rope';

// Llama-3.2's rope_scaling (config.json of Llama-3.2-1B): theta 5e5, head_dim 64
const LLAMA32: RopeSpec = { theta: 500000, scaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } };

// GPU tolerance: cos/sin come from a float64 table rounded to f32 (rel 2^-24), and each output is
// a·c − b·s in f32, so |err| <= ~3·2^-24·(|a|+|b|) <= ~2e-6 for randn inputs (|x| < 6).
const TOL = { atol: 2e-6, rtol: 1e-6 };

describe('rope', () => {
  it('reference follows HF rotate_half (hand-computed values)', () => {
    // HS=4: pairs (0,2) with inv_freq 1 and (1,3) with inv_freq theta^(-1/2) = 0.01 for theta=1e4.
    const pos = 3;
    const y = ropeRef([1, 0, 0, 0], 1, 1, 1, 4, 10000, pos);
    expectClose('e0', y, [Math.cos(3), 0, Math.sin(3), 0], { atol: 1e-15, rtol: 0 });
    const z = ropeRef([0, 0, 0, 1], 1, 1, 1, 4, 10000, pos);
    expectClose('e3', z, [0, -Math.sin(0.03), 0, Math.cos(0.03)], { atol: 1e-15, rtol: 0 });
    // position 0 is the identity; the rotation of t-th row uses pos0 + t
    expectClose('pos0', ropeRef([1, 2, 3, 4], 1, 1, 1, 4, 10000, 0), [1, 2, 3, 4], { atol: 0, rtol: 0 });
    const two = ropeRef([1, 0, 0, 0, 1, 0, 0, 0], 1, 2, 1, 4, 10000, 5);
    expectClose('rows', two, [Math.cos(5), 0, Math.sin(5), 0, Math.cos(6), 0, Math.sin(6), 0], { atol: 1e-15, rtol: 0 });
  });

  it('llama3 inverse frequencies = transformers _compute_llama3_parameters (values from a Python transcription of it)', () => {
    const inv = ropeInvFreq(64, LLAMA32);
    const plain = ropeInvFreq(64, 500000);
    // pairs with wavelength < 8192/4 keep their frequency, > 8192/1 are divided by 32, between: smoothed
    const want: [number, number][] = [[0, 1.0], [14, 0.0032114459947525913], [15, 0.001290547928209264], [16, 0.00042955679655936815], [17, 9.70828780262767e-5], [18, 1.9461638184831125e-5], [31, 9.418306725434909e-8]];
    for (const [i, v] of want) expectClose(`invFreq[${i}]`, [inv[i]], [v], { atol: 0, rtol: 1e-14 });
    for (let i = 0; i < 15; i++) expect(inv[i]).toBe(plain[i]);
    for (let i = 18; i < 32; i++) expectClose(`low ${i}`, [inv[i]], [plain[i] / 32], { atol: 0, rtol: 1e-15 });
    for (const i of [15, 16, 17]) expect(inv[i] < plain[i] && inv[i] > plain[i] / 32).toBe(true);
  });

  it('linear scaling divides the positions by factor', () => {
    const x = toF64(randn(2 * 8, 7));
    const lin: RopeSpec = { theta: 10000, scaling: { type: 'linear', factor: 4 } };
    // position 12 scaled by 4 is position 3 unscaled
    expectClose('pos 12 / 4', ropeRef(x, 1, 1, 2, 8, lin, 12), ropeRef(x, 1, 1, 2, 8, 10000, 3), { atol: 1e-15, rtol: 1e-14 });
    expectClose('invFreq', ropeInvFreq(8, lin), Array.from(ropeInvFreq(8, 10000), (v) => v / 4), { atol: 0, rtol: 1e-15 });
  });

  it('reference backward (inverse rotation) matches finite differences', () => {
    const [B, T, NH, HS] = [2, 3, 2, 6];
    const x = toF64(randn(B * T * NH * HS, 1)), d = toF64(randn(x.length, 2));
    const fd = finiteDiff((xx) => dot(ropeRef(xx, B, T, NH, HS, 10000, 5), d), x);
    expectClose('dx', ropeRef(d, B, T, NH, HS, 10000, 5, true), fd, { atol: 1e-9, rtol: 1e-7 });
  });

  // ropeQK takes rope_qk_inplace4 (vec4s) at HS % 8 == 0 (8, 64, 128 here), rope_qk_inplace otherwise
  const cases: [B: number, T: number, NH: number, HS: number, pos0: number, theta: RopeSpec][] = [
    [1, 1, 1, 8, 0, 10000],
    [1, 1, 1, 2, 7, 10000],
    [2, 7, 4, 8, 3, 10000],
    [3, 5, 3, 6, 0, 10000],
    [1, 33, 2, 64, 100, 500000],
    [1, 5, 2, 128, 2040, 10000], // large angles: where in-kernel fp32 sin/cos would drift
    [2, 6, 3, 64, 8190, LLAMA32], // Llama-3.2's llama3 scaling around its original context length
    [1, 9, 2, 10, 40, { theta: 10000, scaling: { type: 'linear', factor: 2.5 } }],
  ];
  for (const [B, T, NH, HS, pos0, theta] of cases) {
    it(`GPU vs reference B=${B} T=${T} NH=${NH} HS=${HS} pos0=${pos0} rope=${JSON.stringify(theta)}`, async () => {
      const gpu = await testGpu();
      const n = B * T * NH * HS;
      const x = randn(n, 3 + T), dy = randn(n, 4 + T);
      const tx = gpu.tensor('x', [B, T, NH * HS], 'f32', x), ty = gpu.tensor('y', [B, T, NH * HS]);
      const tdy = gpu.tensor('dy', [B, T, NH * HS], 'f32', dy), tdx = gpu.tensor('dx', [B, T, NH * HS]);
      // out of place
      ropeForward(gpu, ty, tx, B, T, NH, HS, theta, pos0);
      expectClose('forward', await gpu.readF32(ty), ropeRef(x, B, T, NH, HS, theta, pos0), TOL);
      expectClose('x untouched', await gpu.readF32(tx), x, { atol: 0, rtol: 0 });
      ropeBackward(gpu, tdx, tdy, B, T, NH, HS, theta, pos0);
      expectClose('backward', await gpu.readF32(tdx), ropeRef(dy, B, T, NH, HS, theta, pos0, true), TOL);
      // in place (both call forms)
      ropeForward(gpu, tx, tx, B, T, NH, HS, theta, pos0);
      expectClose('forward in place', await gpu.readF32(tx), ropeRef(x, B, T, NH, HS, theta, pos0), TOL);
      ropeBackward(gpu, tx, B, T, NH, HS, theta, pos0);
      expectClose('backward in place undoes forward', await gpu.readF32(tx), x, { atol: 4e-6, rtol: 2e-6 });
      ropeBackward(gpu, tdy, tdy, B, T, NH, HS, theta, pos0);
      expectClose('backward in place', await gpu.readF32(tdy), ropeRef(dy, B, T, NH, HS, theta, pos0, true), TOL);
      // q (NH heads) and k (NKV heads) in one dispatch = two single calls, bit for bit
      const NKV = Math.max(1, NH - 1), nk = B * T * NKV * HS, kx = randn(nk, 5 + T);
      for (const sign of [1, -1] as const) {
        const q1 = gpu.tensor('q1', [n], 'f32', x), k1 = gpu.tensor('k1', [nk], 'f32', kx), q2 = gpu.tensor('q2', [n], 'f32', x), k2 = gpu.tensor('k2', [nk], 'f32', kx);
        ropeQK(gpu, q1, k1, B, T, NH, NKV, HS, theta, pos0, sign);
        (sign === 1 ? ropeForward : ropeBackward)(gpu, q2, B, T, NH, HS, theta, pos0);
        (sign === 1 ? ropeForward : ropeBackward)(gpu, k2, B, T, NKV, HS, theta, pos0);
        expect(Array.from(await gpu.readF32(q1)), `ropeQK q (sign ${sign})`).toEqual(Array.from(await gpu.readF32(q2)));
        expect(Array.from(await gpu.readF32(k1)), `ropeQK k (sign ${sign})`).toEqual(Array.from(await gpu.readF32(k2)));
        expectClose(`ropeQK k vs reference (sign ${sign})`, await gpu.readF32(k1), ropeRef(kx, B, T, NKV, HS, theta, pos0, sign === -1), TOL);
        for (const t of [q1, k1, q2, k2]) gpu.free(t);
      }
      for (const t of [tx, ty, tdy, tdx]) gpu.free(t);
    });
  }

  it('table grows with the position range and is released', async () => {
    const gpu = await testGpu();
    releaseRopeTables(gpu);
    const base = gpu.liveBytes;
    const [HS, NH] = [8, 2];
    const x = randn(NH * HS, 9);
    const tx = gpu.tensor('x', [1, 1, NH * HS], 'f32', x), ty = gpu.tensor('y', [1, 1, NH * HS]);
    for (const pos0 of [0, 63, 64, 1000, 5]) {
      ropeForward(gpu, ty, tx, 1, 1, NH, HS, 10000, pos0);
      expectClose(`pos0=${pos0}`, await gpu.readF32(ty), ropeRef(x, 1, 1, NH, HS, 10000, pos0), TOL);
    }
    gpu.free(tx);
    gpu.free(ty);
    expect(gpu.liveBytes - base).toBe(1024 * (HS / 2) * 2 * 4); // one table, 1024 positions
    // a scaled RoPE of the same theta and head size is another table, not the cached plain one
    const lin: RopeSpec = { theta: 10000, scaling: { type: 'linear', factor: 8 } };
    const tx2 = gpu.tensor('x', [1, 1, NH * HS], 'f32', x), tz = gpu.tensor('z', [1, 1, NH * HS]);
    ropeForward(gpu, tz, tx2, 1, 1, NH, HS, lin, 16);
    expectClose('linear, after plain', await gpu.readF32(tz), ropeRef(x, 1, 1, NH, HS, 10000, 2), TOL);
    gpu.free(tx2);
    gpu.free(tz);
    releaseRopeTables(gpu);
    expect(gpu.liveBytes).toBe(base);
  });
});
