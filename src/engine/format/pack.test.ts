import { describe, expect, it } from 'vitest';
import { dequantizeHost, fromMatMulNBits, getCode, layoutOf, lsqInitScales, quantizeHost, roundEven, toMatMulNBits, type Bits } from './pack';
import { randn } from '../testing';

describe('packing', () => {
  it('round half to even, like WGSL round()', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundEven)).toEqual([0, 2, 2, -0, -2, 2, 3]);
  });
  for (const bits of [2, 3, 4, 8] as Bits[])
    for (const [K, group] of [[172, 32], [64, 64], [100, 0], [33, 128]])
      for (const sym of [false, true]) {
        it(`bits=${bits} K=${K} group=${group || 'per-channel'} ${sym ? 'sym' : 'asym'}: error within half a step, padding = zero`, () => {
          const N = 5;
          const w = randn(N * K, bits * K + group);
          const p = quantizeHost(w, N, K, { bits, group, sym });
          const L = layoutOf(N, K, bits, group);
          expect(p.wordsPerRow).toBe(L.wordsPerRow);
          const dq = dequantizeHost(p);
          for (let n = 0; n < N; n++)
            for (let k = 0; k < K; k++) {
              const s = p.scales[n * p.nBlocks + Math.floor(k / p.group)];
              // inside the range the error is at most half a step (sym clips nothing: absmax maps to ±(2^(b-1)-1))
              expect(Math.abs(dq[n * K + k] - w[n * K + k])).toBeLessThanOrEqual(s / 2 + 1e-6);
            }
          // ragged padding codes equal the zero point (dequantize to 0)
          for (let n = 0; n < N; n++)
            for (let j = K; j < p.nBlocks * p.group; j++) expect(getCode(p, n, j)).toBe(p.zeros[n * p.nBlocks + p.nBlocks - 1]);
        });
      }
  it('4-bit codes are MatMulNBits bytes: two per byte, low nibble first; zero points packed', () => {
    const N = 3, K = 64;
    const w = randn(N * K, 9);
    const p = quantizeHost(w, N, K, { bits: 4, group: 32, sym: false });
    const m = toMatMulNBits(p);
    expect(m.B.length).toBe(N * 2 * 16);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const byte = m.B[n * 32 + (k >> 1)];
        expect((byte >> ((k & 1) * 4)) & 15).toBe(getCode(p, n, k));
      }
    for (let n = 0; n < N; n++) {
      expect(m.zeroPoints[n] & 15).toBe(p.zeros[n * 2]);
      expect(m.zeroPoints[n] >> 4).toBe(p.zeros[n * 2 + 1]);
    }
  });

  // MatMulNBits decoded independently from onnxruntime's description: B (N, nBlocks, blob) with
  // blob = block_size·bits/8, element i of a block at bits [i·bits, (i+1)·bits) of the blob, low
  // first; zero_points (N, ceil(nBlocks·bits/8)) likewise; dequant (q − zp)·scale.
  for (const [bits, K, group] of [[4, 160, 32], [4, 172, 64], [2, 96, 16], [8, 100, 32], [4, 64, 64]] as [Bits, number, number][]) {
    it(`MatMulNBits tensors decode to our dequantized weights: bits=${bits} K=${K} block=${group}`, () => {
      const N = 3;
      const w = randn(N * K, K + bits);
      const p = quantizeHost(w, N, K, { bits, group, sym: false });
      const m = toMatMulNBits(p);
      const nB = Math.ceil(K / group), blob = (group * bits) / 8, zb = Math.ceil((nB * bits) / 8);
      expect(m.B.length).toBe(N * nB * blob);
      expect(m.zeroPoints.length).toBe(N * zb);
      const mask = (1 << bits) - 1;
      const dq = dequantizeHost(p);
      for (let n = 0; n < N; n++)
        for (let k = 0; k < nB * group; k++) {
          const b = Math.floor(k / group), i = k % group;
          const q = (m.B[(n * nB + b) * blob + ((i * bits) >> 3)] >> ((i * bits) & 7)) & mask;
          const zp = (m.zeroPoints[n * zb + ((b * bits) >> 3)] >> ((b * bits) & 7)) & mask;
          const v = (q - zp) * m.scales[n * nB + b];
          if (k < K) expect(Math.fround(v)).toBe(dq[n * K + k]);
          else expect(v).toBe(0); // padding
        }
      const back = fromMatMulNBits(m, N, K, bits, group);
      expect(back.codes).toEqual(p.codes);
      expect(back.zeros).toEqual(p.zeros);
      expect(back.scales).toEqual(p.scales);
    });
  }
  it('MatMulNBits without zero_points means zero point 2^(bits-1); unsupported shapes throw', () => {
    const N = 2, K = 32;
    const p = quantizeHost(randn(N * K, 4), N, K, { bits: 4, group: 32, sym: true });
    const { B, scales } = toMatMulNBits(p);
    expect(fromMatMulNBits({ B, scales }, N, K, 4, 32).zeros).toEqual(p.zeros);
    expect(() => toMatMulNBits(quantizeHost(randn(N * K, 4), N, K, { bits: 3, group: 32, sym: true }))).toThrow();
    expect(() => toMatMulNBits(quantizeHost(randn(N * 40, 4), N, 40, { bits: 4, group: 20, sym: true }))).toThrow();
  });
  it('scale rules: asymmetric range spans min..max (with 0), symmetric zero = 2^(bits-1), clipRatio', () => {
    const w = Float32Array.of(-1.2, 0.6, 2, 0.25, /* group 2 */ 3, 1, 2, 1.5);
    const a = quantizeHost(w, 1, 8, { bits: 4, group: 4, sym: false });
    expect(a.scales[0]).toBeCloseTo(3.2 / 15, 7);
    expect(a.zeros[0]).toBe(6); // round(1.2 / (3.2 / 15)) = round(5.625)
    expect(a.scales[1]).toBeCloseTo(3 / 15, 7); // range [0, 3]: 0 included
    expect(a.zeros[1]).toBe(0);
    expect([0, 1, 2, 3].map((k) => getCode(a, 0, k))).toEqual([0, 6 + 3, 6 + 9, 6 + 1]);
    const s = quantizeHost(w, 1, 8, { bits: 4, group: 4, sym: true });
    expect(s.zeros[0]).toBe(8);
    expect(s.scales[0]).toBeCloseTo(2 / 7, 7);
    expect([0, 1, 2, 3].map((k) => getCode(s, 0, k))).toEqual([8 - 4, 8 + 2, 8 + 7, 8 + 1]); // -1.2 / (2/7) = -4.2
    const c = quantizeHost(w, 1, 8, { bits: 4, group: 4, sym: true, clipRatio: 0.5 });
    expect(c.scales[0]).toBeCloseTo(1 / 7, 7);
    expect(getCode(c, 0, 2)).toBe(15); // 2 / (1/7) = 14 → clamped to +7
    expect(c).toEqual(quantizeHost(w, 1, 8, { bits: 4, group: 4, sym: true }, 0.5));
  });
  it('LSQ initial step size 2·mean|w|/sqrt(Qp) per block', () => {
    const w = Float32Array.of(1, -3, 2, 0, /* */ 0, 0, 0, 0, /* ragged */ 4);
    const s = lsqInitScales(w, 1, 9, 4, 4);
    expect(Array.from(s)).toEqual([Math.fround(2 * 1.5 / Math.sqrt(7)), 1, Math.fround(8 / Math.sqrt(7))]);
  });
});
