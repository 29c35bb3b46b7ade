import { describe, expect, it } from 'vitest';
import { randn, testGpu, dispatchedEntries } from '../testing';
import { applyKernelChoice, checkKernelVariants, currentKernels, defaultKernels, fastestKernels, kernelCandidates, seededHalf, timeKernelVariants, validKernelChoice, withFamily, type VariantTiming } from './kernel-choice';
import { matmulHalfForward } from './matmul-half';
import { adapterAttentionVariant, attentionForward, pickAttentionVariant } from './attention';
import { canGemvRed, hasSubgroup8, matmulForward, preferMatmulVariant, variantGemv } from './matmul';
import { qmatmulBackwardInput, qmatmulForward } from './qmatmul';
import { allocPacked, freePacked, quantizePack } from './fakequant';
import { layoutOf } from '../format/pack';
import { f16ToF32 } from '../io/safetensors';


describe('kernel choice per device', () => {
  it('times every variant this adapter runs; the fastest of each family is one of them', async () => {
    const gpu = await testGpu();
    const cand = kernelCandidates(gpu);
    let last = 0;
    const streamed: VariantTiming[] = [];
    const t = await timeKernelVariants(gpu, { shapes: [[9, 40, 24]], attentionShapes: [{ B: 1, T: 20, NH: 2, NKV: 1, HS: 8 }], reps: 1, capMs: 50, onProgress: (d, _n, r) => ((last = d), streamed.push(r)) });
    expect(streamed).toEqual(t.rows); // each row handed over as it is timed (quench kernels prints them so)
    const matmuls = 3 * cand.matmul.length + cand.gemm.length + cand.dx.length + cand.half.length + cand.gemv.length + cand.fp32gemv.length;
    const total = matmuls + cand.attention.length + cand.decode.length;
    // the attention families: every flash forward this adapter runs, at a prefill and at one row
    expect(cand.attention).toEqual(hasSubgroup8(gpu) ? ['flash', 'flash_tiled', 'flash_sg', 'flash_split'] : ['flash', 'flash_tiled', 'flash_split']);
    expect(cand.decode).toEqual(cand.attention);
    for (const v of cand.attention) {
      expect(t.rows.filter((r) => r.op === 'attention forward' && r.variant === v).map((r) => r.shape), v).toEqual(['1×20×20 2/1 HS 8']);
      expect(t.rows.filter((r) => r.op === 'attention decode' && r.variant === v).map((r) => r.shape), v).toEqual(['1×1×20 2/1 HS 8']);
    }
    expect(cand.attention).toContain(t.fastest.attention);
    expect(cand.decode).toContain(t.fastest.decode);
    // each flash forward's family check is its attention-check row (prefill, decoding)
    for (const v of cand.attention) {
      expect(t.checks.find((c) => c.op === 'attention forward' && c.variant === v)?.shape).toBe(t.attentionChecks.find((c) => c.kernel === `forward ${v}`)?.shape);
      expect(t.checks.some((c) => c.op === 'attention decode' && c.variant === v)).toBe(true);
    }
    expect(t.attentionChecks.filter((c) => !c.ok)).toEqual([]);
    expect(cand.half).toEqual(gpu.hasF16 ? ['half_nt4', 'half_wg8', 'half_wg8p', 'half_wg8h', 'half_wg8hp'] : ['half_nt4', 'half_wg8', 'half_wg8p']);
    expect(cand.gemv).toEqual(expect.arrayContaining(['gemv', 'gemv_rows', 'gemv_wide']));
    expect(cand.gemv.every((v) => v.startsWith('gemv'))).toBe(true);
    // the GEMV decodes one token: timed at 1×K×N whatever the shape's M
    for (const v of cand.gemv) expect(t.rows.filter((r) => r.op === 'int4 GEMV' && r.variant === v).map((r) => r.shape), v).toEqual(['1×40×24']);
    // the fp32 GEMV family: the matmul variants' own GEMVs, and gemv_red where subgroup_id exists
    expect(cand.fp32gemv).toEqual(canGemvRed(gpu) ? ['gemv_rows', 'gemv_wg', 'gemv_red'] : ['gemv_rows', 'gemv_wg']);
    for (const v of cand.fp32gemv) expect(t.rows.filter((r) => r.op === 'fp32 GEMV' && r.variant === v).map((r) => r.shape), v).toEqual(['1×40×24']);
    expect(cand.fp32gemv).toContain(t.fastest.fp32gemv);
    expect(t.rows.length).toBe(total);
    expect(last).toBe(total);
    for (const v of cand.matmul) for (const op of ['fp32 y=x·Wᵀ', 'fp32 dX', 'fp32 dW']) expect(t.rows.some((r) => r.op === op && r.variant === v), `${op} ${v}`).toBe(true);
    for (const v of cand.half) expect(t.rows.some((r) => r.op === 'f16-weight y=x·Wᵀ' && r.variant === v), v).toBe(true);
    for (const r of t.rows) expect(r.ms > 0 && Number.isFinite(r.gflops), `${r.op} ${r.variant}: ${r.ms} ms`).toBe(true);
    expect(cand.matmul).toContain(t.fastest.matmul);
    expect(cand.gemm).toContain(t.fastest.gemm);
    expect(cand.dx).toContain(t.fastest.dx);
    expect(cand.half).toContain(t.fastest.half);
    expect(cand.gemv).toContain(t.fastest.gemv);
    expect(t.defaults).toEqual(currentKernels(gpu)); // timing changes nothing
    // every variant checked before it is timed (one check per matmul product, per attention family;
    // the fp32 GEMVs twice: their vec4 and scalar forms)
    expect(t.checks.length).toBe(total + cand.fp32gemv.length);
    expect(t.checks.filter((c) => !c.ok)).toEqual([]);
    expect(cand.gemm.some((v) => v.startsWith('gemv'))).toBe(false);
  });

  it('an applied choice is what auto dispatches, until it is cleared', async () => {
    const gpu = await testGpu();
    const M = 16, K = 64, N = 40;
    const x = gpu.tensor('x', [M, K], 'f32', randn(M * K, 1)), w = gpu.tensor('w', [N, K], 'f32', randn(N * K, 2)), y = gpu.tensor('y', [M, N]), dx = gpu.tensor('dx', [M, K]);
    const wh = gpu.tensor('wh', [N, K / 2], 'u32', seededHalf(N * K, 3).packed);
    const p = allocPacked(gpu, 'w4', layoutOf(N, K, 4, 32));
    quantizePack(gpu, p, w, { sym: false });
    const defaults = defaultKernels(gpu);
    try {
      expect(dispatchedEntries(gpu, () => matmulHalfForward(gpu, y, x, wh, M, K, N))).toEqual([defaults.half]);
      // the variant's entry, or one of its forms (gemv_sg runs gemv_sg32 at 4 bits, K % 32 == 0)
      const gemvEntries = dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, 1));
      expect(gemvEntries.length).toBe(1);
      expect(gemvEntries[0].startsWith(defaults.gemv), `${gemvEntries[0]} is a form of ${defaults.gemv}`).toBe(true);
      // 'flash' is never an adapter's pick, flash_tiled never its decoding pick
      // the fp32 GEMV family apart from the matmul variant's own (shared8's is gemv_wg)
      const fgemv = canGemvRed(gpu) ? 'gemv_red' : 'gemv_rows';
      applyKernelChoice(gpu, { matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: 'half_wg8', gemv: 'gemv_wide', attention: 'flash', decode: 'flash_tiled', fp32gemv: fgemv });
      expect(currentKernels(gpu)).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: 'half_wg8', gemv: 'gemv_wide', attention: 'flash', decode: 'flash_tiled', fp32gemv: fgemv });
      // what 'auto' runs at M = 1 (K = 64: the vec4 forms); an explicit variant keeps its own GEMV
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, 1, K, N))).toEqual([fgemv === 'gemv_red' ? 'gemv_red4' : 'gemv_rows4']);
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, 1, K, N, { variant: 'shared8' }))).toEqual(['gemv_wg4']);
      expect(pickAttentionVariant(gpu, false, 64, 8)).toBe('flash'); // a chunk over SPLIT_MAX_TQ rows
      expect(pickAttentionVariant(gpu, false, 1, 8)).toBe('flash_tiled'); // one row, any head size
      expect(pickAttentionVariant(gpu, false, 4, 64)).toBe(adapterAttentionVariant(gpu, false, 4, 64)); // in between: the adapter's rule
      expect(pickAttentionVariant(gpu, true, 64, 8)).toBe(adapterAttentionVariant(gpu, true, 64, 8)); // attention maps: materialized
      // what the model's 'auto' forward dispatches: one decoding row against 20 cached keys
      const aq = gpu.tensor('aq', [2 * 8]), ak = gpu.tensor('ak', [20 * 8]), av = gpu.tensor('av', [20 * 8]), ao = gpu.tensor('ao', [2 * 8]);
      expect(dispatchedEntries(gpu, () => attentionForward(gpu, { out: ao, q: aq, k: ak, v: av, B: 1, Tq: 1, Tk: 20, NH: 2, NKV: 1, HS: 8, pos0: 19 }))).toEqual(['flash_forward_tiled']);
      for (const t of [aq, ak, av, ao]) gpu.free(t);
      expect(dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, 1))).toEqual(['gemv_wide']);
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, M, K, N))).toEqual(['tiled8']);
      expect(dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, M))).toEqual(['gemm_wg8']);
      expect(dispatchedEntries(gpu, () => qmatmulBackwardInput(gpu, dx, y, p, M))).toEqual(['dx_wg8']);
      expect(dispatchedEntries(gpu, () => matmulHalfForward(gpu, y, x, wh, M, K, N))).toEqual(['half_wg8']);
      expect(defaultKernels(gpu)).toEqual(defaults); // the adapter's own picks, whatever is applied
      applyKernelChoice(gpu, null);
      expect(currentKernels(gpu)).toEqual(defaults);
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, 1, K, N))).toEqual([defaults.fp32gemv === 'gemv_wg' ? 'gemv_wg4' : 'gemv_rows4']);
      // a choice whose fp32 GEMV is its matmul variant's own: the GEMV follows that variant
      applyKernelChoice(gpu, { ...defaults, matmul: 'shared8', fp32gemv: 'gemv_wg' });
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, 1, K, N))).toEqual(['gemv_wg4']);
      preferMatmulVariant(gpu, 'regtile'); // and moves with it (a preference would have stayed at gemv_wg)
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, 1, K, N))).toEqual(['gemv_rows4']);
      applyKernelChoice(gpu, null);
      expect(pickAttentionVariant(gpu, false, 64, 8)).toBe(adapterAttentionVariant(gpu, false, 64, 8));
      // a family set to the adapter's own pick keeps its rule by shape (decoding at HS 8 is not HS 64's)
      applyKernelChoice(gpu, { ...defaults });
      for (const [Tq, HS] of [[1, 8], [1, 64], [2, 16], [64, 8]]) expect(pickAttentionVariant(gpu, false, Tq, HS), `Tq ${Tq} HS ${HS}`).toBe(adapterAttentionVariant(gpu, false, Tq, HS));
      applyKernelChoice(gpu, null);
      expect(dispatchedEntries(gpu, () => matmulForward(gpu, y, x, w, M, K, N))).not.toEqual(['tiled8']);
      expect(dispatchedEntries(gpu, () => matmulHalfForward(gpu, y, x, wh, M, K, N))).toEqual(['half_nt4']);
      expect(dispatchedEntries(gpu, () => qmatmulForward(gpu, y, x, p, 1))).toEqual(gemvEntries);
    } finally {
      applyKernelChoice(gpu, null);
      for (const t of [x, w, y, dx, wh]) gpu.free(t);
      freePacked(gpu, p);
    }
  });

  it('a stored choice is used only if this adapter runs every part of it', async () => {
    const gpu = await testGpu();
    const ok = { matmul: 'regtile', gemm: 'gemm', dx: 'dx', half: 'half_wg8', gemv: 'gemv_rows', attention: 'flash_tiled', decode: 'flash', fp32gemv: 'gemv_wg' };
    expect(validKernelChoice(gpu, ok)).toEqual(ok);
    // stored before the f16-weight, GEMV, attention or fp32 GEMV families existed: the adapter's
    // kernels for them, and for the fp32 GEMV the stored matmul variant's own (regtile: gemv_rows)
    const { gemv, attention, decode } = defaultKernels(gpu);
    expect(validKernelChoice(gpu, { matmul: 'regtile', gemm: 'gemm', dx: 'dx' })).toEqual({ ...ok, half: 'half_nt4', gemv, attention, decode, fp32gemv: 'gemv_rows' });
    expect(validKernelChoice(gpu, { matmul: 'regtile', gemm: 'gemm', dx: 'dx', half: 'half_wg8' })).toEqual({ ...ok, gemv, attention, decode, fp32gemv: 'gemv_rows' });
    const { fp32gemv: _own, ...sevenFamilies } = ok;
    expect(validKernelChoice(gpu, { ...sevenFamilies, matmul: 'shared8' })).toEqual({ ...ok, matmul: 'shared8', fp32gemv: variantGemv('shared8') });
    expect(validKernelChoice(gpu, { ...ok, fp32gemv: 'gemv_sg' })).toBeNull(); // an int4 GEMV is not an fp32 one
    expect(validKernelChoice(gpu, { ...ok, attention: 'workgroup' })).toBeNull(); // materializing: not a flash choice
    expect(validKernelChoice(gpu, { ...ok, decode: 'flash_xl' })).toBeNull();
    expect(validKernelChoice(gpu, { ...ok, gemv: 'gemm' })).toBeNull(); // a GEMM is not a GEMV choice
    expect(validKernelChoice(gpu, { ...ok, half: 'half_fp8' })).toBeNull();
    expect(validKernelChoice(gpu, { ...ok, half: null })).toBeNull();
    expect(validKernelChoice(gpu, { ...ok, matmul: 'cublas' })).toBeNull();
    expect(validKernelChoice(gpu, { ...ok, gemm: 'gemv' })).toBeNull(); // a decode kernel is not a GEMM choice
    expect(validKernelChoice(gpu, { matmul: 'regtile' })).toBeNull();
    expect(validKernelChoice(gpu, 'shared8')).toBeNull();
    expect(validKernelChoice(gpu, null)).toBeNull();
  });

  it('every variant this adapter runs matches the float64 references (the check the GPU panel runs first)', async () => {
    const gpu = await testGpu();
    const checks = await checkKernelVariants(gpu);
    const cand = kernelCandidates(gpu);
    expect(checks.length).toBe(3 * cand.matmul.length + cand.gemm.length + cand.dx.length + cand.half.length + cand.gemv.length + 2 * cand.fp32gemv.length);
    // the fp32 GEMVs at K 136 (vec4 forms) and 135 (scalar forms)
    expect(checks.filter((c) => c.op === 'fp32 GEMV').map((c) => `${c.variant} ${c.shape}`)).toEqual([...cand.fp32gemv.map((v) => `${v} 1×136×130`), ...cand.fp32gemv.map((v) => `${v} 1×135×130`)]);
    expect(checks.filter((c) => c.op === 'f16-weight y=x·Wᵀ').map((c) => c.variant)).toEqual(cand.half);
    expect(checks.filter((c) => c.op === 'int4 GEMV').map((c) => c.variant)).toEqual(cand.gemv);
    // each says the shape it was checked at: the GEMV one row of it
    for (const c of checks.filter((k) => k.op !== 'fp32 GEMV')) expect(c.shape, `${c.op} ${c.variant}`).toBe(c.op === 'int4 GEMV' ? '1×136×130' : '67×136×130');
    for (const c of checks) expect(c.ok, `${c.op} ${c.variant}: max |error| ${c.maxAbsError}`).toBe(true);
  });

  it('a hand-picked fp32 matmul moves an fp32 GEMV that was its own GEMV; one picked apart stays', () => {
    const c = { matmul: 'shared', gemm: 'gemm_wg', dx: 'dx_wg', half: 'half_nt4', gemv: 'gemv', attention: 'flash_tiled', decode: 'flash_split', fp32gemv: 'gemv_wg' } as const;
    expect(withFamily(c, 'matmul', 'regtile')).toEqual({ ...c, matmul: 'regtile', fp32gemv: 'gemv_rows' });
    expect(withFamily(c, 'matmul', 'shared8')).toEqual({ ...c, matmul: 'shared8', fp32gemv: 'gemv_wg' });
    expect(withFamily({ ...c, fp32gemv: 'gemv_red' }, 'matmul', 'regtile')).toEqual({ ...c, matmul: 'regtile', fp32gemv: 'gemv_red' });
    expect(withFamily(c, 'fp32gemv', 'gemv_red')).toEqual({ ...c, fp32gemv: 'gemv_red' });
    expect(withFamily(c, 'gemm', 'gemm_wg8')).toEqual({ ...c, gemm: 'gemm_wg8' });
  });

  it('seededHalf: exact f16 values with magnitudes in [1/16, 1), bits packed two per u32 (element 2i low)', () => {
    const { packed, values } = seededHalf(1000, 9);
    expect(packed.length).toBe(500);
    for (let i = 0; i < values.length; i++) {
      expect(f16ToF32((packed[i >> 1] >>> (16 * (i & 1))) & 0xffff)).toBe(values[i]);
      expect(Math.abs(values[i]) >= 1 / 16 && Math.abs(values[i]) < 1).toBe(true);
    }
    expect(values.some((v) => v < 0) && values.some((v) => v > 0)).toBe(true);
    expect(new Set(values).size).toBeGreaterThan(900);
  });

  it('a variant that failed its check is never the fastest; with none passing, the default stays', () => {
    const cand = { matmul: ['regtile', 'shared', 'shared8'], gemm: ['gemm', 'gemm_wg8'], dx: ['dx', 'dx_wg8'], half: ['half_nt4', 'half_wg8', 'half_wg8h'], gemv: ['gemv', 'gemv_rows', 'gemv_wide'], attention: ['flash', 'flash_tiled'], decode: ['flash', 'flash_split'], fp32gemv: ['gemv_rows', 'gemv_wg', 'gemv_red'] } as Parameters<typeof fastestKernels>[2];
    const defaults = { matmul: 'regtile', gemm: 'gemm', dx: 'dx', half: 'half_nt4', gemv: 'gemv', attention: 'flash_tiled', decode: 'flash_split', fp32gemv: 'gemv_rows' } as const;
    const row = (op: VariantTiming['op'], variant: string, ms: number): VariantTiming => ({ op, variant, shape: '1×1×1', ms, gflops: 1 });
    const rows = [
      ...['fp32 y=x·Wᵀ', 'fp32 dX', 'fp32 dW'].flatMap((op) => [row(op as VariantTiming['op'], 'regtile', 3), row(op as VariantTiming['op'], 'shared', 2), row(op as VariantTiming['op'], 'shared8', 1)]),
      row('int4 y=x·Wᵀ', 'gemm', 2), row('int4 y=x·Wᵀ', 'gemm_wg8', 1), row('int4 dX', 'dx', 2), row('int4 dX', 'dx_wg8', 1),
      row('f16-weight y=x·Wᵀ', 'half_nt4', 3), row('f16-weight y=x·Wᵀ', 'half_wg8', 2), row('f16-weight y=x·Wᵀ', 'half_wg8h', 1),
      row('int4 GEMV', 'gemv', 3), row('int4 GEMV', 'gemv_rows', 2), row('int4 GEMV', 'gemv_wide', 1),
      row('attention forward', 'flash', 1), row('attention forward', 'flash_tiled', 2), row('attention decode', 'flash', 1), row('attention decode', 'flash_split', 2),
      row('fp32 GEMV', 'gemv_rows', 3), row('fp32 GEMV', 'gemv_wg', 2), row('fp32 GEMV', 'gemv_red', 1),
    ];
    expect(fastestKernels(rows, [], cand, defaults)).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: 'half_wg8h', gemv: 'gemv_wide', attention: 'flash', decode: 'flash', fp32gemv: 'gemv_red' });
    // shared8 wrong in one product only; gemm_wg8 wrong; every dx wrong; half_wg8h wrong
    const bad = [{ op: 'fp32 dW', variant: 'shared8', maxAbsError: 0.1, ok: false }, { op: 'int4 y=x·Wᵀ', variant: 'gemm_wg8', maxAbsError: Infinity, ok: false }, { op: 'int4 dX', variant: 'dx', maxAbsError: 1, ok: false }, { op: 'int4 dX', variant: 'dx_wg8', maxAbsError: 1, ok: false }, { op: 'f16-weight y=x·Wᵀ', variant: 'half_wg8h', maxAbsError: 1, ok: false }, { op: 'int4 GEMV', variant: 'gemv_wide', maxAbsError: 1, ok: false }, { op: 'attention decode', variant: 'flash', maxAbsError: 0.5, ok: false }, { op: 'fp32 GEMV', variant: 'gemv_red', maxAbsError: 1, ok: false }] as Parameters<typeof fastestKernels>[1];
    // flash wrong at decoding only: still the fastest prefill
    expect(fastestKernels(rows, bad, cand, defaults)).toEqual({ matmul: 'shared', gemm: 'gemm', dx: 'dx', half: 'half_wg8', gemv: 'gemv_rows', attention: 'flash', decode: 'flash_split', fp32gemv: 'gemv_wg' });
  });
});
