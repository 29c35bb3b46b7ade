import { describe, expect, it } from 'vitest';
import { randn, testGpu } from '../testing';
import type { Gpu } from '../gpu/runtime';
import { applyKernelChoice, currentKernels, defaultKernels, kernelCandidates, timeKernelVariants, validKernelChoice } from './kernel-choice';
import { matmulForward } from './matmul';
import { qmatmulBackwardInput, qmatmulForward } from './qmatmul';
import { allocPacked, freePacked, quantizePack } from './fakequant';
import { layoutOf } from '../format/pack';

/** The kernel entries the calls in `fn` dispatch. */
function entriesOf(gpu: Gpu, fn: () => void): string[] {
  const seen: string[] = [];
  const run = gpu.run;
  gpu.run = (spec, args) => {
    seen.push(spec.entry ?? 'main');
    run.call(gpu, spec, args);
  };
  try {
    fn();
  } finally {
    gpu.run = run;
  }
  return seen;
}

describe('kernel choice per device', () => {
  it('times every variant this adapter runs; the fastest of each family is one of them', async () => {
    const gpu = await testGpu();
    const cand = kernelCandidates(gpu);
    let last = 0;
    const t = await timeKernelVariants(gpu, { shapes: [[9, 40, 24]], reps: 1, capMs: 50, onProgress: (d) => (last = d) });
    const total = 3 * cand.matmul.length + cand.gemm.length + cand.dx.length;
    expect(t.rows.length).toBe(total);
    expect(last).toBe(total);
    for (const v of cand.matmul) for (const op of ['fp32 y=x·Wᵀ', 'fp32 dX', 'fp32 dW']) expect(t.rows.some((r) => r.op === op && r.variant === v), `${op} ${v}`).toBe(true);
    for (const r of t.rows) expect(r.ms > 0 && Number.isFinite(r.gflops), `${r.op} ${r.variant}: ${r.ms} ms`).toBe(true);
    expect(cand.matmul).toContain(t.fastest.matmul);
    expect(cand.gemm).toContain(t.fastest.gemm);
    expect(cand.dx).toContain(t.fastest.dx);
    expect(t.defaults).toEqual(currentKernels(gpu)); // timing changes nothing
    expect(cand.gemm.some((v) => v.startsWith('gemv'))).toBe(false);
  });

  it('an applied choice is what auto dispatches, until it is cleared', async () => {
    const gpu = await testGpu();
    const M = 16, K = 64, N = 40;
    const x = gpu.tensor('x', [M, K], 'f32', randn(M * K, 1)), w = gpu.tensor('w', [N, K], 'f32', randn(N * K, 2)), y = gpu.tensor('y', [M, N]), dx = gpu.tensor('dx', [M, K]);
    const p = allocPacked(gpu, 'w4', layoutOf(N, K, 4, 32));
    quantizePack(gpu, p, w, { sym: false });
    const defaults = defaultKernels(gpu);
    try {
      applyKernelChoice(gpu, { matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8' });
      expect(currentKernels(gpu)).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8' });
      expect(entriesOf(gpu, () => matmulForward(gpu, y, x, w, M, K, N))).toEqual(['tiled8']);
      expect(entriesOf(gpu, () => qmatmulForward(gpu, y, x, p, M))).toEqual(['gemm_wg8']);
      expect(entriesOf(gpu, () => qmatmulBackwardInput(gpu, dx, y, p, M))).toEqual(['dx_wg8']);
      expect(defaultKernels(gpu)).toEqual(defaults); // the adapter's own picks, whatever is applied
      applyKernelChoice(gpu, null);
      expect(currentKernels(gpu)).toEqual(defaults);
      expect(entriesOf(gpu, () => matmulForward(gpu, y, x, w, M, K, N))).not.toEqual(['tiled8']);
    } finally {
      applyKernelChoice(gpu, null);
      for (const t of [x, w, y, dx]) gpu.free(t);
      freePacked(gpu, p);
    }
  });

  it('a stored choice is used only if this adapter runs every part of it', async () => {
    const gpu = await testGpu();
    const ok = { matmul: 'regtile', gemm: 'gemm', dx: 'dx' };
    expect(validKernelChoice(gpu, ok)).toEqual(ok);
    expect(validKernelChoice(gpu, { ...ok, matmul: 'cublas' })).toBeNull();
    expect(validKernelChoice(gpu, { ...ok, gemm: 'gemv' })).toBeNull(); // a decode kernel is not a GEMM choice
    expect(validKernelChoice(gpu, { matmul: 'regtile' })).toBeNull();
    expect(validKernelChoice(gpu, 'shared8')).toBeNull();
    expect(validKernelChoice(gpu, null)).toBeNull();
  });
});
