// Seeded operands for kernel timings and checks (kernel-choice.ts, attention-check.ts, the studio's
// int4-vs-ORT benchmark): deterministic, so every adapter times and checks the same values.
/** Deterministic values in [-0.1, 0.1) (an LCG): operands for kernel timing and checks, here and in
 *  the studio's int4-vs-ORT benchmark (quant/kernel-bench.ts). */
export function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 0.2;
  });
}

/** n f16 values as bits (two per u32, element 2i in the low half) and as numbers: random signs,
 *  magnitudes in [1/16, 1) (normal f16, so their products never underflow in f16 arithmetic), from
 *  the LCG of `seeded`. Exact f16 values, so the f16-weight kernels' operands need no host rounding
 *  (ops/ cannot reach io/'s f16 conversion; the fp32 x of the checks is drawn the same way). */
export function seededHalf(n: number, seed: number): { packed: Uint32Array; values: Float32Array } {
  if (n % 2 !== 0) throw new Error(`seededHalf: ${n} values, need an even count`);
  let s = seed >>> 0;
  const next = () => (s = (s * 1664525 + 1013904223) >>> 0);
  const packed = new Uint32Array(n / 2), values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = next();
    const sign = r >>> 31, exp = 11 + ((r >>> 29) & 3), mant = (r >>> 10) & 1023; // exponent 11..14: 2^-4 .. 2^-1
    packed[i >> 1] |= ((sign << 15) | (exp << 10) | mant) << (16 * (i & 1));
    values[i] = (sign ? -1 : 1) * 2 ** (exp - 15) * (1 + mant / 1024);
  }
  return { packed, values };
}
