import { describe, expect, it } from 'vitest';
import { dequantizeHost, getCode, layoutOf, quantizeHost, roundEven, toMatMulNBits, type Bits } from './pack';
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
});
