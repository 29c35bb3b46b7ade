import { describe, expect, it } from 'vitest';
import { expectClose, randn, testGpu, dispatchedEntries } from '../testing';
import { fastestPerShape, kernelCandidates, tuneKernelShapes, type ShapeTiming, type VariantCheck } from './kernel-choice';
import { matmulBackwardInput, matmulBackwardWeight, matmulForward, pickMatmulVariant } from './matmul';
import { qmatmulBackwardInput, qmatmulForward } from './qmatmul';
import { allocPacked, freePacked, quantizePack } from './fakequant';
import { layoutOf } from '../format/pack';
import { setShapeChoices, setShapeTuning, shapeChoices, shapeLabel, shapeTuning, startShapeCapture, stopShapeCapture, type ShapeOp } from './shape-choice';
import { attentionForward, pickAttentionVariant } from './attention';
import { attentionForwardRef } from '../ref/attention';
import { matmulBackwardInputRef, matmulBackwardWeightRef, matmulForwardRef } from '../ref/matmul';


describe('matmul kernels per shape', () => {
  it("'auto' dispatches take the shape's choice, other shapes and explicit variants their family's; results stay right", async () => {
    const gpu = await testGpu();
    const cand = kernelCandidates(gpu);
    // two fp32 variants with different entries: the family's default and another
    const fam = pickMatmulVariant(gpu), other = cand.matmul.find((v) => v !== fam && (fam === 'shared' ? v !== 'shared8' : true))!;
    const entry = (v: string) => dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, M, K, N, { variant: v as typeof fam }))[0];
    const M = 21, K = 36, N = 28;
    const xs = randn(M * K, 1), ws = randn(N * K, 2), dys = randn(M * N, 3);
    const x = gpu.tensor('x', [M, K], 'f32', xs), w = gpu.tensor('w', [N, K], 'f32', ws), y = gpu.tensor('y', [M, N]), dx = gpu.tensor('dx', [M, K]), dw = gpu.tensor('dw', [N, K]);
    const dy = gpu.tensor('dy', [M, N], 'f32', dys);
    const famEntry = entry(fam), otherEntry = entry(other);
    expect(famEntry).not.toBe(otherEntry);
    try {
      setShapeChoices(gpu, [{ shape: { op: 'fp32 y=x·Wᵀ', M, K, N }, variant: other }, { shape: { op: 'fp32 dX', M, K, N }, variant: other }, { shape: { op: 'fp32 dW', M, K, N }, variant: other }]);
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, M, K, N))[0]).toBe(otherEntry);
      expectClose('y (shape choice)', await gpu.readF32(y), matmulForwardRef(xs, ws, M, K, N), { atol: 1e-4, rtol: 1e-4 });
      matmulBackwardInput(gpu, dx, dy, w, M, K, N);
      expectClose('dX (shape choice)', await gpu.readF32(dx), matmulBackwardInputRef(dys, ws, M, K, N), { atol: 1e-4, rtol: 1e-4 });
      gpu.zero(dw);
      matmulBackwardWeight(gpu, dw, dy, x, M, K, N);
      expectClose('dW (shape choice)', await gpu.readF32(dw), matmulBackwardWeightRef(dys, xs, M, K, N), { atol: 1e-4, rtol: 1e-4 });
      // another shape (M - 1 rows), and an explicit variant, keep the family's kernel
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, M - 1, K, N))[0]).toBe(famEntry);
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, M, K, N, { variant: fam }))[0]).toBe(famEntry);
      expect(shapeChoices(gpu).length).toBe(3);
      // int4: the GEMM and dX families likewise
      const L = layoutOf(N, K, 4, 12), p = allocPacked(gpu, 'w4', L);
      quantizePack(gpu, p, w, { sym: false });
      const gemmOther = cand.gemm.find((v) => dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, M, v))[0] !== dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, M))[0])!;
      const autoGemm = dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, M))[0];
      setShapeChoices(gpu, [{ shape: { op: 'int4 y=x·Wᵀ', M, K, N, bits: 4, group: 12 }, variant: gemmOther }]);
      const tuned = dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, M))[0];
      expect(tuned).not.toBe(autoGemm);
      expect(tuned).toBe(dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, M, gemmOther))[0]);
      // a layout with another group is another shape
      const p2 = allocPacked(gpu, 'w4b', layoutOf(N, K, 4, 36));
      quantizePack(gpu, p2, w, { sym: false });
      expect(dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p2, M))[0]).toBe(autoGemm);
      freePacked(gpu, p);
      freePacked(gpu, p2);
      await gpu.sync();
    } finally {
      setShapeChoices(gpu, null);
      for (const t of [x, w, y, dx, dw, dy]) gpu.free(t);
    }
  });

  it('capture notes each distinct (product, shape) dispatched with auto, once, and nothing after it stops', async () => {
    const gpu = await testGpu();
    const M = 9, K = 20, N = 12;
    const x = gpu.tensor('x', [M, K], 'f32', randn(M * K, 4)), w = gpu.tensor('w', [N, K], 'f32', randn(N * K, 5)), y = gpu.tensor('y', [M, N]), dx = gpu.tensor('dx', [M, K]);
    const p = allocPacked(gpu, 'w4', layoutOf(N, K, 3, 0));
    quantizePack(gpu, p, w, { sym: true });
    startShapeCapture(gpu);
    matmulForward(gpu, y, x, w, M, K, N);
    matmulForward(gpu, y, x, w, M, K, N);
    matmulForward(gpu, y, x, w, M - 2, K, N);
    matmulForward(gpu, y, x, w, M - 4, K, N, { variant: kernelCandidates(gpu).matmul[0] }); // explicit variants are not noted
    qmatmulForward(gpu, y, x, p, M);
    qmatmulBackwardInput(gpu, dx, y, p, M);
    const got = stopShapeCapture(gpu);
    matmulForward(gpu, y, x, w, 3, K, N);
    expect(stopShapeCapture(gpu)).toEqual([]);
    expect(got).toEqual<ShapeOp[]>([
      { op: 'fp32 y=x·Wᵀ', M, K, N },
      { op: 'fp32 y=x·Wᵀ', M: M - 2, K, N },
      { op: 'int4 y=x·Wᵀ', M, K, N, bits: 3, group: p.layout.group },
      { op: 'int4 dX', M, K, N, bits: 3, group: p.layout.group },
    ]);
    freePacked(gpu, p);
    for (const t of [x, w, y, dx]) gpu.free(t);
  });

  it('the fastest per shape is among the variants that passed their product check', () => {
    const s1: ShapeOp = { op: 'fp32 y=x·Wᵀ', M: 8, K: 8, N: 8 }, s2: ShapeOp = { op: 'int4 dX', M: 8, K: 8, N: 8, bits: 4, group: 8 };
    const rows: ShapeTiming[] = [
      { shape: s1, variant: 'regtile', ms: 2, gflops: 0 }, { shape: s1, variant: 'shared8', ms: 0.5, gflops: 0 }, { shape: s1, variant: 'shared', ms: 1, gflops: 0 },
      { shape: s2, variant: 'dx', ms: 3, gflops: 0 }, { shape: s2, variant: 'dx_wg', ms: 1, gflops: 0 },
    ];
    const checks: VariantCheck[] = [{ op: 'fp32 y=x·Wᵀ', variant: 'shared8', shape: '67×136×130', maxAbsError: 1, ok: false }, { op: 'fp32 dX', variant: 'shared', shape: '67×136×130', maxAbsError: 1, ok: false }];
    expect(fastestPerShape(rows, checks)).toEqual([{ shape: s1, variant: 'shared' }, { shape: s2, variant: 'dx_wg' }]);
  });

  it('tuneKernelShapes checks, times each shape with its family and applies the fastest; tuned shapes are not timed again', async () => {
    const gpu = await testGpu();
    const cand = kernelCandidates(gpu);
    const shapes: ShapeOp[] = [{ op: 'fp32 dW', M: 17, K: 24, N: 20 }, { op: 'int4 y=x·Wᵀ', M: 6, K: 32, N: 12, bits: 4, group: 32 }, { op: 'int4 y=x·Wᵀ', M: 1, K: 32, N: 12, bits: 4, group: 32 }, { op: 'fp32 y=x·Wᵀ', M: 1, K: 32, N: 12 }];
    let last = 0;
    try {
      const t = await tuneKernelShapes(gpu, shapes, { reps: 1, capMs: 20, onProgress: (d) => (last = d) });
      expect(t.checks.length).toBeGreaterThan(0);
      expect(t.rows.filter((r) => r.shape === shapes[0]).map((r) => r.variant)).toEqual(cand.matmul);
      expect(t.rows.filter((r) => r.shape === shapes[1]).map((r) => r.variant)).toEqual(cand.gemm);
      expect(t.rows.some((r) => r.shape === shapes[2])).toBe(false); // M = 1 is the GEMV's, not a GEMM family's
      expect(t.rows.some((r) => r.shape === shapes[3])).toBe(false); // the fp32 GEMV's too (its own family)
      expect(last).toBe(t.rows.length);
      expect(t.chosen.map((c) => c.shape)).toEqual(shapes.slice(0, 2));
      for (const c of t.chosen) expect(t.checks.some((k) => k.op === c.shape.op && k.variant === c.variant && !k.ok)).toBe(false);
      expect(shapeChoices(gpu)).toEqual(t.chosen);
      const again = await tuneKernelShapes(gpu, shapes.slice(0, 2), { reps: 1, capMs: 20 });
      expect(again.rows).toEqual([]);
      expect(shapeChoices(gpu)).toEqual(t.chosen);
      // tuning off clears the table
      setShapeTuning(gpu, true);
      expect(shapeTuning(gpu)).toBe(true);
      setShapeTuning(gpu, false);
      expect(shapeChoices(gpu)).toEqual([]);
    } finally {
      setShapeTuning(gpu, false);
    }
  });
});

describe('the attention forward per shape', () => {
  // one prefill shape B×Tq×Tk NH/NKV HS: M = Tq, K = HS, N = Tk
  const B = 1, T = 20, NH = 2, NKV = 1, HS = 8;
  const s: ShapeOp = { op: 'attention forward', M: T, K: HS, N: T, B, NH, NKV };
  const ENTRY: Record<string, string> = { flash: 'flash_forward', flash_tiled: 'flash_forward_tiled', flash_split: 'flash_split' };

  it("'auto' takes the shape's choice at that shape only (not another T, decoding or an explicit variant); results stay right; a capture notes the shape", async () => {
    const gpu = await testGpu();
    const fam = pickAttentionVariant(gpu, false, T, HS);
    const other = (['flash', 'flash_tiled'] as const).find((v) => v !== fam)!;
    const q = randn(B * T * NH * HS, 1), k = randn(B * T * NKV * HS, 2), v = randn(B * T * NKV * HS, 3);
    const tq = gpu.tensor('q', [q.length], 'f32', q), tk = gpu.tensor('k', [k.length], 'f32', k), tv = gpu.tensor('v', [v.length], 'f32', v), out = gpu.tensor('out', [q.length]);
    const run = (Tq: number, variant?: 'flash_split') => dispatchedEntries(gpu, () => attentionForward(gpu, { out, q: tq, k: tk, v: tv, B, Tq, Tk: T, TkMax: T, NH, NKV, HS, pos0: T - Tq, variant }));
    try {
      const before = run(T), shorter = run(T - 4);
      setShapeChoices(gpu, [{ shape: s, variant: other }]);
      expect(shapeChoices(gpu)).toEqual([{ shape: s, variant: other }]); // B, NH, NKV survive the table
      startShapeCapture(gpu);
      expect(run(T)).toEqual([ENTRY[other]]);
      expect(stopShapeCapture(gpu)).toEqual([s]);
      expectClose(`attention ${other} by shape`, await gpu.readF32(out), attentionForwardRef(q, k, v, { B, T, NH, NKV, HS }).out, { atol: 1e-5, rtol: 1e-5 });
      expect(run(T - 4)).toEqual(shorter); // 16 rows against 20 keys: another shape
      expect(run(1)).toEqual(dispatchedEntries(gpu, () => attentionForward(gpu, { out, q: tq, k: tk, v: tv, B, Tq: 1, Tk: T, TkMax: T, NH, NKV, HS, pos0: T - 1, variant: pickAttentionVariant(gpu, false, 1, HS) }))); // decoding: the device's
      expect(run(T, 'flash_split')).toEqual(['flash_split']); // explicit
      setShapeChoices(gpu, null);
      expect(run(T)).toEqual(before);
    } finally {
      setShapeChoices(gpu, null);
      for (const t of [tq, tk, tv, out]) gpu.free(t);
    }
  });

  it('tuneKernelShapes times every flash forward at an attention shape and keeps the fastest that passed its check', async () => {
    const gpu = await testGpu();
    const cand = kernelCandidates(gpu);
    try {
      const t = await tuneKernelShapes(gpu, [s, { ...s, M: 4, N: 4 }], { reps: 1, capMs: 20 });
      expect(t.rows.filter((r) => r.shape === s).map((r) => r.variant)).toEqual(cand.attention);
      expect(t.rows.some((r) => r.shape.M === 4)).toBe(false); // 4 rows: not a prefill chunk (the device's rule)
      for (const r of t.rows) expect(r.ms > 0 && r.gflops > 0, `${r.variant} ${r.ms} ms`).toBe(true);
      expect(t.checks.filter((c) => c.op === 'attention forward').map((c) => c.variant).sort()).toEqual([...cand.attention].sort());
      expect(t.chosen.map((c) => c.shape)).toEqual([s]);
      const best = t.rows.filter((r) => r.shape === s).sort((a, b) => a.ms - b.ms)[0];
      expect(t.chosen[0].variant).toBe(best.variant);
      expect(shapeChoices(gpu)).toEqual(t.chosen);
      expect(shapeLabel(s)).toBe('1×20×20 2/1 HS 8');
      expect(shapeLabel({ op: 'int4 dX', M: 9, K: 64, N: 24, bits: 4, group: 32 })).toBe('9×64×24 w4g32');
    } finally {
      setShapeTuning(gpu, false);
    }
  });
});

describe('a run that tunes its kernels', () => {
  it("dx_deq chosen for an int4 dX shape: a capture notes that shape only, not its inner fp32 dX", async () => {
    const gpu = await testGpu();
    const M = 9, K = 64, N = 24;
    const ws = randn(N * K, 7), dys = randn(M * N, 8);
    const w = gpu.tensor('w', [N, K], 'f32', ws), dy = gpu.tensor('dy', [M, N], 'f32', dys), dx = gpu.tensor('dx', [M, K]);
    const L = layoutOf(N, K, 4, 32), p = allocPacked(gpu, 'w4', L);
    quantizePack(gpu, p, w, { sym: false });
    const s: ShapeOp = { op: 'int4 dX', M, K, N, bits: 4, group: 32 };
    try {
      setShapeChoices(gpu, [{ shape: s, variant: 'dx_deq' }]);
      startShapeCapture(gpu);
      qmatmulBackwardInput(gpu, dx, dy, p, M);
      const seen = stopShapeCapture(gpu);
      expect(seen).toEqual([s]);
      await gpu.readF32(dx);
    } finally {
      setShapeChoices(gpu, null);
      freePacked(gpu, p);
      for (const t of [w, dy, dx]) gpu.free(t);
    }
  });

  it("runTraining with tuning on: the first step's shapes are tuned (progress reported), the run finishes on them, a second run tunes nothing new", async () => {
    const { runTraining } = await import('../workflow/run');
    const { makeRunSpec } = await import('../workflow/spec');
    const { randomWeights, tinyConfig } = await import('../model/config');
    const { ByteTokenizer } = await import('../io/byte-tokenizer');
    const { rng } = await import('../testing');
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 32, hiddenDim: 64, nHeads: 2, nKvHeads: 1, vocabSize: 260, maxSeqLen: 32 });
    const teacher = { name: 'm', config: cfg, weights: randomWeights(cfg, 1, 0.3), tokenizer: new ByteTokenizer() };
    const r = rng(5);
    const stream = Uint32Array.from({ length: 600 }, () => Math.floor(r() * cfg.vocabSize));
    const spec = makeRunSpec({ steps: 3, batch: 2, seq: 16, scheme: 'none', scaleInit: 'minmax' }, 'tune');
    setShapeTuning(gpu, true);
    try {
      const phases: string[] = [];
      const out = await runTraining(gpu, teacher, spec, stream, [[1, 2, 3, 4, 5]], { onProgress: (p) => phases.push(p.phase) });
      expect(out.status).toBe('done');
      expect(out.history.length).toBe(3);
      expect(out.history.every((m) => Number.isFinite(m.loss))).toBe(true);
      expect(phases.indexOf('tune')).toBeGreaterThan(-1);
      expect(phases.indexOf('tune')).toBeLessThan(phases.lastIndexOf('train'));
      const tuned = shapeChoices(gpu);
      // the student's int4 forward and dX at B·T = 32 rows, and the fp32 products, each chose one
      expect(tuned.some((c) => c.shape.op === 'int4 y=x·Wᵀ' && c.shape.M === 32)).toBe(true);
      expect(tuned.some((c) => c.shape.op === 'int4 dX' && c.shape.M === 32)).toBe(true);
      expect(tuned.some((c) => c.shape.op === 'fp32 y=x·Wᵀ')).toBe(true);
      // and the attention forward over the run's B×T×T, its heads and head size
      expect(tuned.filter((c) => c.shape.op === 'attention forward').map((c) => c.shape)).toEqual([{ op: 'attention forward', M: 16, K: 16, N: 16, B: 2, NH: 2, NKV: 1 }]);
      const again: string[] = [];
      await runTraining(gpu, teacher, spec, stream, [[1, 2, 3]], { onProgress: (p) => p.phase === 'tune' && again.push(`${p.done}/${p.total}`) });
      expect(again.filter((x) => x !== '0/0'), JSON.stringify({ again, tuned })).toEqual([]); // the same shapes: nothing timed again
      expect(shapeChoices(gpu)).toEqual(tuned);
    } finally {
      setShapeTuning(gpu, false);
    }
  });
});
