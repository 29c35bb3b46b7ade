import { describe, expect, it } from 'vitest';
import { testGpu } from '../testing';
import { ATTENTION_CHECK_TOL, checkAttentionVariants, relError } from './attention-check';
import { ATTENTION_VARIANTS } from './attention';
import { hasSubgroup8 } from './matmul';

describe('checkAttentionVariants (quench kernels: every attention kernel on this adapter vs float64)', () => {
  it('passes every forward (prefill and decoding) and every backward here', async () => {
    const gpu = await testGpu();
    const checks = await checkAttentionVariants(gpu);
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    const forwards = ATTENTION_VARIANTS.filter((v) => v !== 'flash_sg' || hasSubgroup8(gpu));
    for (const v of forwards) {
      expect(checks.some((c) => c.kernel === `forward ${v}`)).toBe(true);
      expect(checks.some((c) => c.kernel === `decode ${v}`)).toBe(true);
      // each labelled by stage and variant (the kernel-choice families read those, not the label)
      expect(checks.filter((c) => c.stage === 'forward' && c.variant === v).map((c) => c.kernel)).toEqual([`forward ${v}`]);
      expect(checks.filter((c) => c.stage === 'decode' && c.variant === v).map((c) => c.kernel)).toEqual([`decode ${v}`]);
    }
    expect(checks.filter((c) => c.stage === 'backward').every((c) => ['thread', 'sg', 'workgroup'].includes(c.variant))).toBe(true);
    for (const k of ['flash backward thread dq', 'backward thread dk', 'backward workgroup dv']) expect(checks.some((c) => c.kernel === k)).toBe(true);
    // fp32 against float64: far inside the bound, so the bound can catch real faults
    for (const c of checks) expect(c.relError).toBeLessThan((c.kernel.startsWith('forward') || c.kernel.startsWith('decode') ? ATTENTION_CHECK_TOL.forward : ATTENTION_CHECK_TOL.backward) / 10);
  }, 300_000);

  it('relError: a wrong value, a NaN or a missing write fails the bound', () => {
    const ref = Float64Array.from({ length: 100 }, (_, i) => Math.sin(i));
    const got = Float32Array.from(ref);
    expect(relError(got, ref)).toBeLessThan(1e-7);
    got[37] += 0.01; // a wrong key in one row moves it by ~1e-2
    expect(relError(got, ref)).toBeGreaterThan(ATTENTION_CHECK_TOL.forward);
    got[37] = Number.NaN; // never written
    expect(relError(got, ref)).toBe(Infinity);
  });
});
