import { describe, expect, it } from 'vitest';
import { dot, expectClose, finiteDiff, randn, testGpu, toF64, type Tol } from '../testing';
import type { Gpu, Tensor } from '../gpu/runtime';
import { attentionBackward, attentionBackwardFlash, attentionForward, pickAttentionVariant, setFlashSgRows, setFlashUnroll, setFlashSplitThreads, SPLIT_MAX_TQ, splitThreads, type AttentionVariant } from './attention';
import { attentionBackwardRef, attentionCachedForwardRef, attentionForwardRef, type AttnShape } from '../ref/attention';
import { hasSubgroup8 } from './matmul';

// GPU (fp32) vs float64 reference on randn inputs. Scores are O(1) (q·k/sqrt(HS)); every output is
// a convex combination (out) or a sum of up to T·NH/NKV O(1) terms (gradients), each term
// rounded at ~2^-24 relative: out/probs errors are ~1e-7 absolute, gradients grow with the
// summation length, so their atol is scaled by sqrt(T·group) (random-walk rounding) below.
const FWD: Tol = { atol: 1e-6, rtol: 1e-5 };
const gradTol = (T: number, group: number): Tol => ({ atol: 1e-6 * Math.sqrt(T * group), rtol: 1e-5 });

const VARIANTS: ('thread' | 'workgroup')[] = ['thread', 'workgroup'];
// flash_sg runs where the adapter has 8-wide subgroups (lavapipe: yes); elsewhere its cases return early
const FLASH: ('flash' | 'flash_tiled' | 'flash_sg' | 'flash_split')[] = ['flash', 'flash_tiled', 'flash_sg', 'flash_split'];
const runs = (gpu: Gpu, variant: string) => variant !== 'flash_sg' || hasSubgroup8(gpu);

function up(gpu: Gpu, name: string, d: Float32Array | number): Tensor {
  return typeof d === 'number' ? gpu.tensor(name, [d]) : gpu.tensor(name, [d.length], 'f32', d);
}

describe('attention reference', () => {
  it('backward (with an extra probs gradient) matches finite differences', () => {
    for (const s of [
      { B: 2, T: 4, NH: 4, NKV: 2, HS: 4 },
      { B: 1, T: 5, NH: 4, NKV: 1, HS: 3 },
    ] as AttnShape[]) {
      const nq = s.B * s.T * s.NH * s.HS, nk = s.B * s.T * s.NKV * s.HS;
      const q = toF64(randn(nq, 1)), k = toF64(randn(nk, 2)), v = toF64(randn(nk, 3));
      const dout = toF64(randn(nq, 4)), dpx = toF64(randn(s.B * s.NH * s.T * s.T, 5));
      const loss = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => {
        const f = attentionForwardRef(qq, kk, vv, s);
        return dot(f.out, dout) + dot(f.probs, dpx);
      };
      const g = attentionBackwardRef(dout, q, k, v, s, dpx);
      const tol = { atol: 1e-8, rtol: 1e-6 };
      expectClose('dq', g.dq, finiteDiff((x) => loss(x, k, v), q, 1e-5), tol);
      expectClose('dk', g.dk, finiteDiff((x) => loss(q, x, v), k, 1e-5), tol);
      expectClose('dv', g.dv, finiteDiff((x) => loss(q, k, x), v, 1e-5), tol);
    }
  });

  it('GQA: head h reads kv head floor(h / (NH/NKV)) (= attention with k/v heads repeated)', () => {
    const s: AttnShape = { B: 2, T: 5, NH: 6, NKV: 2, HS: 4 };
    const { B, T, NH, NKV, HS } = s;
    const q = randn(B * T * NH * HS, 1), k = randn(B * T * NKV * HS, 2), v = randn(B * T * NKV * HS, 3);
    const rep = (x: Float32Array) => {
      const r = new Float32Array(B * T * NH * HS);
      for (let bt = 0; bt < B * T; bt++)
        for (let h = 0; h < NH; h++)
          for (let i = 0; i < HS; i++) r[(bt * NH + h) * HS + i] = x[(bt * NKV + Math.floor(h / (NH / NKV))) * HS + i];
      return r;
    };
    const a = attentionForwardRef(q, k, v, s), b = attentionForwardRef(q, rep(k), rep(v), { ...s, NKV: NH });
    expectClose('out', a.out, b.out, { atol: 0, rtol: 0 });
    expectClose('probs', a.probs, b.probs, { atol: 0, rtol: 0 });
    // causal: T=1 copies v; probs rows sum to 1 and vanish above the diagonal
    for (let row = 0; row < B * NH * T; row++) {
      const t = row % T;
      let sum = 0;
      for (let j = 0; j < T; j++) {
        const pr = a.probs[row * T + j];
        if (j > t) expect(pr).toBe(0);
        sum += pr;
      }
      expect(Math.abs(sum - 1)).toBeLessThan(1e-12);
    }
  });
});

describe('attention GPU', () => {
  const shapes: (AttnShape & { grow?: boolean })[] = [
    { B: 1, T: 1, NH: 1, NKV: 1, HS: 8 },
    { B: 2, T: 7, NH: 4, NKV: 2, HS: 8 },
    { B: 1, T: 33, NH: 4, NKV: 1, HS: 16 },
    { B: 2, T: 64, NH: 8, NKV: 8, HS: 8 },
    { B: 1, T: 5, NH: 2, NKV: 1, HS: 128 },
    { B: 1, T: 70, NH: 2, NKV: 2, HS: 72 },
    { B: 1, T: 512, NH: 2, NKV: 1, HS: 8 },
    // keys grow along the sequence, so later chunks of WG keys raise the running max (online
    // softmax rescaling of every accumulator, incl. the workgroup kernels' second dim d >= WG)
    { B: 1, T: 150, NH: 2, NKV: 1, HS: 96, grow: true },
  ];
  for (const variant of VARIANTS)
    for (const s of shapes) {
      it(`${variant}: forward + backward vs reference B=${s.B} T=${s.T} NH=${s.NH} NKV=${s.NKV} HS=${s.HS}${s.grow ? ' (growing keys)' : ''}`, async () => {
        const gpu = await testGpu();
        const { B, T, NH, NKV, HS } = s;
        const nq = B * T * NH * HS, nk = B * T * NKV * HS, np = B * NH * T * T;
        const q = randn(nq, 11), k = randn(nk, 12), v = randn(nk, 13), dout = randn(nq, 14), dpx = randn(np, 15);
        if (s.grow) for (let i = 0; i < nk; i++) k[i] *= 1 + (Math.floor(i / (NKV * HS)) % T) / T;
        const tq = up(gpu, 'q', q), tk = up(gpu, 'k', k), tv = up(gpu, 'v', v), tout = up(gpu, 'out', nq), tp = up(gpu, 'probs', np);
        attentionForward(gpu, { out: tout, probs: tp, q: tq, k: tk, v: tv, B, Tq: T, Tk: T, TkMax: T, NH, NKV, HS, pos0: 0, variant });
        const ref = attentionForwardRef(q, k, v, s);
        // growing keys double the late scores, and the fp32 score error (~2^-24·Σ|q_i k_i|/sqrt(HS)) with them
        const fwd = s.grow ? { ...FWD, atol: 2.5 * FWD.atol } : FWD;
        expectClose('out', await gpu.readF32(tout), ref.out, fwd);
        expectClose('probs', await gpu.readF32(tp), ref.probs, fwd);
        // without probs: same out
        const tout2 = up(gpu, 'out2', nq);
        attentionForward(gpu, { out: tout2, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant });
        expectClose('out (no probs)', await gpu.readF32(tout2), await gpu.readF32(tout), { atol: 0, rtol: 0 });
        const tdo = up(gpu, 'dout', dout), tdpx = up(gpu, 'dpx', dpx), tds = up(gpu, 'ds', np), tdq = up(gpu, 'dq', nq), tdk = up(gpu, 'dk', nk), tdv = up(gpu, 'dv', nk);
        const tol = gradTol(T, NH / NKV);
        if (s.grow) tol.atol *= 2.5;
        for (const extra of [true, false]) {
          attentionBackward(gpu, { dq: tdq, dk: tdk, dv: tdv, dscores: tds, dout: tdo, q: tq, k: tk, v: tv, probs: tp, dprobsExtra: extra ? tdpx : undefined, B, T, NH, NKV, HS, variant });
          const g = attentionBackwardRef(dout, q, k, v, s, extra ? dpx : undefined);
          expectClose(`dq (extra=${extra})`, await gpu.readF32(tdq), g.dq, tol);
          expectClose(`dk (extra=${extra})`, await gpu.readF32(tdk), g.dk, tol);
          expectClose(`dv (extra=${extra})`, await gpu.readF32(tdv), g.dv, tol);
        }
        for (const x of [tq, tk, tv, tout, tout2, tp, tdo, tdpx, tds, tdq, tdk, tdv]) gpu.free(x);
      });
    }

  it('both variants agree; backward is deterministic (bitwise equal on repeat)', async () => {
    const gpu = await testGpu();
    const s: AttnShape = { B: 2, T: 37, NH: 4, NKV: 1, HS: 24 };
    const { B, T, NH, NKV, HS } = s;
    const nq = B * T * NH * HS, nk = B * T * NKV * HS, np = B * NH * T * T;
    const tq = up(gpu, 'q', randn(nq, 1)), tk = up(gpu, 'k', randn(nk, 2)), tv = up(gpu, 'v', randn(nk, 3)), tdo = up(gpu, 'dout', randn(nq, 4)), tdpx = up(gpu, 'dpx', randn(np, 5));
    const tout = up(gpu, 'out', nq), tp = up(gpu, 'probs', np), tds = up(gpu, 'ds', np), tdq = up(gpu, 'dq', nq), tdk = up(gpu, 'dk', nk), tdv = up(gpu, 'dv', nk);
    const results: Float32Array[][] = [];
    for (const variant of ['thread', 'workgroup', 'workgroup', 'thread'] as const) {
      attentionForward(gpu, { out: tout, probs: tp, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant });
      attentionBackward(gpu, { dq: tdq, dk: tdk, dv: tdv, dscores: tds, dout: tdo, q: tq, k: tk, v: tv, probs: tp, dprobsExtra: tdpx, B, T, NH, NKV, HS, variant });
      results.push(await Promise.all([tout, tp, tdq, tdk, tdv].map((t) => gpu.readF32(t))));
    }
    const names = ['out', 'probs', 'dq', 'dk', 'dv'];
    results[0].forEach((r, i) => {
      expectClose(`thread repeat ${names[i]}`, results[3][i], r, { atol: 0, rtol: 0 });
      expectClose(`workgroup repeat ${names[i]}`, results[2][i], results[1][i], { atol: 0, rtol: 0 });
      expectClose(`thread vs workgroup ${names[i]}`, results[1][i], r, gradTol(T, NH / NKV));
    });
    for (const x of [tq, tk, tv, tdo, tdpx, tout, tp, tds, tdq, tdk, tdv]) gpu.free(x);
  });

  for (const variant of VARIANTS)
    it(`${variant}: KV-cached decoding in chunks (B=2, cache 16) equals the reference and the full forward`, async () => {
      const gpu = await testGpu();
      const [B, T, NH, NKV, HS, cap] = [2, 9, 4, 2, 8, 16];
      const s: AttnShape = { B, T, NH, NKV, HS };
      const q = randn(B * T * NH * HS, 21), k = randn(B * T * NKV * HS, 22), v = randn(B * T * NKV * HS, 23);
      const full = attentionForwardRef(q, k, v, s);
      // caches (B, cap, NKV*HS), garbage beyond the filled rows (must never be read)
      const kc = randn(B * cap * NKV * HS, 24, 100), vc = randn(B * cap * NKV * HS, 25, 100);
      const row = NKV * HS;
      const tkc = gpu.tensor('kc', [B, cap, row], 'f32', kc), tvc = gpu.tensor('vc', [B, cap, row], 'f32', vc);
      let pos0 = 0;
      for (const Tq of [3, 1, 4, 1]) {
        // append rows pos0..pos0+Tq-1 of k/v into the caches
        for (let b = 0; b < B; b++)
          for (let t = 0; t < Tq; t++) {
            kc.set(k.subarray((b * T + pos0 + t) * row, (b * T + pos0 + t + 1) * row), (b * cap + pos0 + t) * row);
            vc.set(v.subarray((b * T + pos0 + t) * row, (b * T + pos0 + t + 1) * row), (b * cap + pos0 + t) * row);
          }
        gpu.write(tkc, kc);
        gpu.write(tvc, vc);
        const qc = new Float32Array(B * Tq * NH * HS);
        for (let b = 0; b < B; b++) qc.set(q.subarray((b * T + pos0) * NH * HS, (b * T + pos0 + Tq) * NH * HS), b * Tq * NH * HS);
        const Tk = pos0 + Tq;
        const tq = gpu.tensor('qc', [B, Tq, NH * HS], 'f32', qc), to = gpu.tensor('oc', [B, Tq, NH * HS]), tp = gpu.tensor('pc', [B, NH, Tq, Tk]);
        attentionForward(gpu, { out: to, probs: tp, q: tq, k: tkc, v: tvc, B, Tq, Tk, TkMax: cap, NH, NKV, HS, pos0, variant });
        const ref = attentionCachedForwardRef(qc, kc, vc, { B, Tq, Tk, TkMax: cap, NH, NKV, HS, pos0 });
        const got = await gpu.readF32(to);
        expectClose(`out pos0=${pos0}`, got, ref.out, FWD);
        expectClose(`probs pos0=${pos0}`, await gpu.readF32(tp), ref.probs, FWD);
        const fullRows = new Float64Array(B * Tq * NH * HS);
        for (let b = 0; b < B; b++) fullRows.set(full.out.subarray((b * T + pos0) * NH * HS, (b * T + pos0 + Tq) * NH * HS), b * Tq * NH * HS);
        expectClose(`out = full forward rows, pos0=${pos0}`, got, fullRows, FWD);
        for (const x of [tq, to, tp]) gpu.free(x);
        pos0 += Tq;
      }
      gpu.free(tkc);
      gpu.free(tvc);
    });

  // Flash (online-softmax, no T×T matrix) forward + saved log-sum-exp, and the flash backward
  // that recomputes the probabilities from it. Awkward T (1, 7, 33, 130, 513, 2048: partial key
  // blocks of 4, partial query tiles of 64, several K/V tiles), odd head sizes (partial vec4),
  // GQA, MQA, B > 1.
  const flashShapes: (AttnShape & { bwd?: boolean })[] = [
    { B: 1, T: 1, NH: 1, NKV: 1, HS: 8, bwd: true },
    { B: 2, T: 7, NH: 4, NKV: 2, HS: 8, bwd: true },
    { B: 1, T: 33, NH: 4, NKV: 1, HS: 5, bwd: true },
    { B: 3, T: 130, NH: 6, NKV: 3, HS: 12, bwd: true },
    { B: 1, T: 130, NH: 2, NKV: 1, HS: 72, bwd: true },
    { B: 1, T: 70, NH: 2, NKV: 2, HS: 128, bwd: true },
    { B: 2, T: 513, NH: 2, NKV: 1, HS: 8, bwd: true },
    { B: 1, T: 513, NH: 4, NKV: 4, HS: 33 },
    { B: 1, T: 2048, NH: 2, NKV: 1, HS: 8 },
  ];
  for (const variant of FLASH)
    for (const s of flashShapes)
      it(`${variant}: forward (+ lse${s.bwd ? `, flash backward (${variant === 'flash_sg' ? 'sg' : 'thread'})` : ''}) vs reference B=${s.B} T=${s.T} NH=${s.NH} NKV=${s.NKV} HS=${s.HS}`, async () => {
        const gpu = await testGpu();
        if (!runs(gpu, variant)) return;
        const { B, T, NH, NKV, HS } = s;
        const nq = B * T * NH * HS, nk = B * T * NKV * HS, nr = B * NH * T;
        const q = randn(nq, 31), k = randn(nk, 32), v = randn(nk, 33), dout = randn(nq, 34);
        const tq = up(gpu, 'q', q), tk = up(gpu, 'k', k), tv = up(gpu, 'v', v), tout = up(gpu, 'out', nq), tl = up(gpu, 'lse', nr);
        attentionForward(gpu, { out: tout, lse: tl, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant });
        const ref = attentionForwardRef(q, k, v, s);
        expectClose('out', await gpu.readF32(tout), ref.out, FWD);
        // lse = m + log Σ exp: O(log T) magnitude, fp32 sum of up to T terms
        expectClose('lse', await gpu.readF32(tl), ref.lse, { atol: 1e-6 * Math.sqrt(T), rtol: 1e-5 });
        const tout2 = up(gpu, 'out2', nq);
        attentionForward(gpu, { out: tout2, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant });
        expectClose('out (no lse)', await gpu.readF32(tout2), await gpu.readF32(tout), { atol: 0, rtol: 0 });
        const tmp = [tq, tk, tv, tout, tout2, tl];
        // the backward: the per-thread kernels after flash / flash_tiled, the subgroup ones after flash_sg
        const bv = variant === 'flash_sg' ? 'sg' : 'thread';
        if (s.bwd) {
          const tdo = up(gpu, 'dout', dout), tdr = up(gpu, 'drow', nr), tdq = up(gpu, 'dq', nq), tdk = up(gpu, 'dk', nk), tdv = up(gpu, 'dv', nk);
          attentionBackwardFlash(gpu, { dq: tdq, dk: tdk, dv: tdv, drow: tdr, dout: tdo, q: tq, k: tk, v: tv, out: tout, lse: tl, B, T, NH, NKV, HS, variant: bv });
          const g = attentionBackwardRef(dout, q, k, v, s);
          const tol = gradTol(T, NH / NKV);
          expectClose('dq', await gpu.readF32(tdq), g.dq, tol);
          expectClose('dk', await gpu.readF32(tdk), g.dk, tol);
          expectClose('dv', await gpu.readF32(tdv), g.dv, tol);
          const again = [await gpu.readF32(tdq), await gpu.readF32(tdk), await gpu.readF32(tdv)];
          attentionBackwardFlash(gpu, { dq: tdq, dk: tdk, dv: tdv, drow: tdr, dout: tdo, q: tq, k: tk, v: tv, out: tout, lse: tl, B, T, NH, NKV, HS, variant: bv });
          expectClose('dq repeat', await gpu.readF32(tdq), again[0], { atol: 0, rtol: 0 });
          expectClose('dk repeat', await gpu.readF32(tdk), again[1], { atol: 0, rtol: 0 });
          tmp.push(tdo, tdr, tdq, tdk, tdv);
        }
        for (const x of tmp) gpu.free(x);
      }, 360_000); // lavapipe compiles the thread backward at HS 72 / 128 for 20-60 s with a cold shader cache (CI); 'flash' forward at HS 128 took 193-300 s before its loops stopped unrolling above HS 32

  // Above UNROLL_HS the flash kernels loop over the head at run time (CPU adapters: 32); real GPUs
  // compile them unrolled up to 128. Both forms, here on one adapter at HS 36: the same operations
  // in the same order, so the same bits, and both match the reference. The per-thread kernels
  // (flash forward, thread backward), and the subgroup ones (flash_sg, sg backward) where the
  // adapter has 8-wide subgroups.
  it('flash forward and backward: the unrolled (GPU) and looped (CPU) forms agree bit for bit at HS=36', async () => {
    const gpu = await testGpu();
    const s = { B: 2, T: 19, NH: 2, NKV: 1, HS: 36 };
    const { B, T, NH, NKV, HS } = s;
    const nq = B * T * NH * HS, nk = B * T * NKV * HS, nr = B * NH * T;
    const q = randn(nq, 51), k = randn(nk, 52), v = randn(nk, 53), dout = randn(nq, 54);
    const ts = [up(gpu, 'q', q), up(gpu, 'k', k), up(gpu, 'v', v), up(gpu, 'dout', dout)];
    const [tq, tk, tv, tdo] = ts;
    const pairs: ['flash' | 'flash_sg', 'thread' | 'sg'][] = [['flash', 'thread'], ...(hasSubgroup8(gpu) ? [['flash_sg', 'sg'] as ['flash_sg', 'sg']] : [])];
    const results: Record<string, Float32Array[][]> = {};
    try {
      for (const [fwd, bwd] of pairs)
        for (const unroll of [null, 128]) {
          setFlashUnroll(gpu, unroll);
          const tout = up(gpu, 'out', nq), tl = up(gpu, 'lse', nr), tdr = up(gpu, 'drow', nr), tdq = up(gpu, 'dq', nq), tdk = up(gpu, 'dk', nk), tdv = up(gpu, 'dv', nk);
          attentionForward(gpu, { out: tout, lse: tl, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant: fwd });
          attentionBackwardFlash(gpu, { dq: tdq, dk: tdk, dv: tdv, drow: tdr, dout: tdo, q: tq, k: tk, v: tv, out: tout, lse: tl, B, T, NH, NKV, HS, variant: bwd });
          (results[fwd] ??= []).push([await gpu.readF32(tout), await gpu.readF32(tdq), await gpu.readF32(tdk), await gpu.readF32(tdv)]);
          for (const x of [tout, tl, tdr, tdq, tdk, tdv]) gpu.free(x);
        }
    } finally {
      setFlashUnroll(gpu, null);
      for (const x of ts) gpu.free(x);
    }
    const g = attentionBackwardRef(dout, q, k, v, s);
    for (const [fwd] of pairs) {
      const r = results[fwd];
      expectClose(`${fwd} out`, r[0][0], attentionForwardRef(q, k, v, s).out, FWD);
      expectClose(`${fwd} dq`, r[0][1], g.dq, gradTol(T, NH / NKV));
      ['out', 'dq', 'dk', 'dv'].forEach((name, i) => expectClose(`${fwd} ${name}: unrolled = looped`, r[1][i], r[0][i], { atol: 0, rtol: 0 }));
    }
  }, 360_000);

  // flash_sg's forward and the sg backward take 32 rows per subgroup from T = 32
  // (shaders/attention_sg.wgsl, one template per kernel) and 8 below: each row's operations are the same in the same
  // order, so both forms must give the same bits, at partial tiles (T % 32 != 0), GQA and MQA,
  // heads past UNROLL_HS (36 on CPU adapters: looped) and off the vec4 grid (5), and a chunk of
  // queries after cached keys (pos0 > 0, Tk < TkMax: forward only).
  it('flash_sg forward and sg backward: the 32-row and 8-row kernels agree bit for bit, and match the reference', async () => {
    const gpu = await testGpu();
    if (!hasSubgroup8(gpu)) return;
    const cases = [
      { B: 2, Tq: 45, NH: 4, NKV: 2, HS: 8, pos0: 0, TkMax: 45 },
      { B: 1, Tq: 70, NH: 3, NKV: 1, HS: 36, pos0: 0, TkMax: 70 },
      { B: 2, Tq: 33, NH: 2, NKV: 2, HS: 12, pos0: 9, TkMax: 50 },
      { B: 1, Tq: 5, NH: 2, NKV: 1, HS: 8, pos0: 60, TkMax: 80 },
      { B: 1, Tq: 40, NH: 4, NKV: 1, HS: 8, pos0: 0, TkMax: 40 },
      { B: 1, Tq: 40, NH: 2, NKV: 2, HS: 5, pos0: 0, TkMax: 40 },
    ];
    try {
      for (const c of cases) {
        const { B, Tq, NH, NKV, HS, pos0, TkMax } = c;
        const Tk = pos0 + Tq;
        const q = randn(B * Tq * NH * HS, 61 + Tq), k = randn(B * TkMax * NKV * HS, 62 + Tq), v = randn(B * TkMax * NKV * HS, 63 + Tq);
        const tq = up(gpu, 'q', q), tk = up(gpu, 'k', k), tv = up(gpu, 'v', v);
        // training-shaped cases (pos0 = 0, Tk = TkMax = Tq) run the sg backward too
        const train = pos0 === 0 && TkMax === Tq;
        const dout = randn(B * Tq * NH * HS, 64 + Tq), tdo = up(gpu, 'dout', dout);
        const got: Float32Array[][] = [];
        for (const rows of [8, 32] as const) {
          setFlashSgRows(gpu, rows);
          const tout = up(gpu, 'out', B * Tq * NH * HS), tl = up(gpu, 'lse', B * NH * Tq);
          attentionForward(gpu, { out: tout, lse: tl, q: tq, k: tk, v: tv, B, Tq, Tk, TkMax, NH, NKV, HS, pos0, variant: 'flash_sg' });
          const r = [await gpu.readF32(tout), await gpu.readF32(tl)];
          if (train) {
            const tdr = up(gpu, 'drow', B * NH * Tq), tdq = up(gpu, 'dq', B * Tq * NH * HS), tdk = up(gpu, 'dk', B * Tq * NKV * HS), tdv = up(gpu, 'dv', B * Tq * NKV * HS);
            attentionBackwardFlash(gpu, { dq: tdq, dk: tdk, dv: tdv, drow: tdr, dout: tdo, q: tq, k: tk, v: tv, out: tout, lse: tl, B, T: Tq, NH, NKV, HS, variant: 'sg' });
            r.push(await gpu.readF32(tdq), await gpu.readF32(tdk), await gpu.readF32(tdv), await gpu.readF32(tdr));
            for (const x of [tdr, tdq, tdk, tdv]) gpu.free(x);
          }
          got.push(r);
          gpu.free(tout);
          gpu.free(tl);
        }
        gpu.free(tdo);
        const ref = attentionCachedForwardRef(q, k, v, { B, Tq, Tk, TkMax, NH, NKV, HS, pos0 });
        const at = `B=${B} Tq=${Tq} NH=${NH} NKV=${NKV} HS=${HS} pos0=${pos0}`;
        expectClose(`out ${at}`, got[1][0], ref.out, FWD);
        expectClose(`lse ${at}`, got[1][1], ref.lse, { atol: 1e-5, rtol: 1e-5 });
        expectClose(`out ${at}: 32 rows = 8 rows`, got[1][0], got[0][0], { atol: 0, rtol: 0 });
        expectClose(`lse ${at}: 32 rows = 8 rows`, got[1][1], got[0][1], { atol: 0, rtol: 0 });
        if (train) {
          const g = attentionBackwardRef(dout, q, k, v, { B, T: Tq, NH, NKV, HS });
          const tol = gradTol(Tq, NH / NKV);
          expectClose(`dq ${at}`, got[1][2], g.dq, tol);
          expectClose(`dk ${at}`, got[1][3], g.dk, tol);
          expectClose(`dv ${at}`, got[1][4], g.dv, tol);
          // The same bits where the head fills whole vec4s. At HS 5 lavapipe's compiler fuses a
          // multiply-add (WGSL allows it) differently in the two dq kernels: dq then differs in the
          // last bits (2.4e-7 at |dq| ~ 1 seen), so there it must agree to 8 ulp of its largest entry.
          ['dq', 'dk', 'dv', 'drow'].forEach((name, i) => {
            const a = got[1][2 + i], b = got[0][2 + i];
            const ulp8 = HS % 4 === 0 ? 0 : 2 ** -20 * b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
            expectClose(`${name} ${at}: 32 rows = 8 rows`, a, b, { atol: ulp8, rtol: 0 });
          });
        }
        for (const x of [tq, tk, tv]) gpu.free(x);
      }
    } finally {
      setFlashSgRows(gpu, null);
    }
  }, 120_000);

  for (const variant of FLASH)
    it(`${variant}: KV-cached decoding in chunks (B=2, cache 80, growing keys) equals the reference`, async () => {
      const gpu = await testGpu();
      if (!runs(gpu, variant)) return;
      const [B, NH, NKV, HS, cap] = [2, 4, 2, 12, 80];
      const row = NKV * HS;
      const kc = randn(B * cap * row, 42, 100), vc = randn(B * cap * row, 43, 100); // garbage rows must never be read
      for (let i = 0; i < kc.length; i++) kc[i] /= 100 / (1 + (Math.floor(i / row) % cap) / cap);
      for (let i = 0; i < vc.length; i++) vc[i] /= 100;
      const tkc = gpu.tensor('kc', [B, cap, row], 'f32', kc), tvc = gpu.tensor('vc', [B, cap, row], 'f32', vc);
      let pos0 = 0;
      for (const Tq of [65, 1, 3, 1]) {
        const Tk = pos0 + Tq;
        const qc = randn(B * Tq * NH * HS, 44 + pos0);
        const tq = gpu.tensor('qc', [B, Tq, NH * HS], 'f32', qc), to = gpu.tensor('oc', [B, Tq, NH * HS]), tl = gpu.tensor('lc', [B, NH, Tq]);
        attentionForward(gpu, { out: to, lse: tl, q: tq, k: tkc, v: tvc, B, Tq, Tk, TkMax: cap, NH, NKV, HS, pos0, variant });
        const ref = attentionCachedForwardRef(qc, kc, vc, { B, Tq, Tk, TkMax: cap, NH, NKV, HS, pos0 });
        expectClose(`out pos0=${pos0}`, await gpu.readF32(to), ref.out, FWD);
        expectClose(`lse pos0=${pos0}`, await gpu.readF32(tl), ref.lse, { atol: 1e-5, rtol: 1e-5 });
        for (const x of [tq, to, tl]) gpu.free(x);
        pos0 += Tq;
      }
      gpu.free(tkc);
      gpu.free(tvc);
    });

  it("flash_split's threads fit the device's workgroup storage (WebGPU's default 16 KiB at HS 128: 16)", () => {
    expect(splitThreads(16384, 128)).toBe(16);
    expect(splitThreads(16384, 124)).toBe(32); // 32·(16·31 + 4) = 16,000 bytes
    expect(splitThreads(32768, 128)).toBe(32);
    expect(splitThreads(16384, 8)).toBe(32);
  });

  it('flash_split with 16 threads per row (devices with 16 KiB of workgroup storage) matches the reference', async () => {
    const gpu = await testGpu();
    setFlashSplitThreads(gpu, 16);
    try {
      for (const s of [{ B: 1, T: 70, NH: 2, NKV: 1, HS: 128 }, { B: 2, T: 33, NH: 4, NKV: 2, HS: 5 }, { B: 1, T: 1, NH: 1, NKV: 1, HS: 8 }]) {
        const { B, T, NH, NKV, HS } = s;
        const q = randn(B * T * NH * HS, 51), k = randn(B * T * NKV * HS, 52), v = randn(B * T * NKV * HS, 53);
        const tq = up(gpu, 'q', q), tk = up(gpu, 'k', k), tv = up(gpu, 'v', v), tout = up(gpu, 'out', B * T * NH * HS), tl = up(gpu, 'lse', B * NH * T);
        attentionForward(gpu, { out: tout, lse: tl, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant: 'flash_split' });
        const ref = attentionForwardRef(q, k, v, s);
        expectClose(`out HS ${HS}`, await gpu.readF32(tout), ref.out, FWD);
        expectClose(`lse HS ${HS}`, await gpu.readF32(tl), ref.lse, { atol: 1e-6 * Math.sqrt(T), rtol: 1e-5 });
        for (const x of [tq, tk, tv, tout, tl]) gpu.free(x);
      }
    } finally {
      setFlashSplitThreads(gpu, null);
    }
  }, 120_000);

  it('auto: flash without probabilities, materializing with them; flash refuses probs', async () => {
    const gpu = await testGpu();
    expect(pickAttentionVariant(gpu, false)).toMatch(/^flash/);
    expect(pickAttentionVariant(gpu, true)).not.toMatch(/^flash/);
    // with 8-wide subgroups: flash_split for 1 or 2 rows at heads of 16 and more, else flash_sg
    if (hasSubgroup8(gpu)) expect([[1, 64], [2, 64], [3, 64], [1, 8], [32, 64]].map(([Tq, HS]) => pickAttentionVariant(gpu, false, Tq, HS))).toEqual(['flash_split', 'flash_split', 'flash_sg', 'flash_sg', 'flash_sg']);
    // as a GPU picks (QUENCH_PICKS=gpu): flash_split for decoding and chunks up to SPLIT_MAX_TQ rows
    const own = gpu.info.picksAs;
    gpu.info.picksAs = 'gpu';
    try {
      expect([1, SPLIT_MAX_TQ, SPLIT_MAX_TQ + 1, 512].map((Tq) => pickAttentionVariant(gpu, false, Tq))).toEqual(['flash_split', 'flash_split', 'flash_tiled', 'flash_tiled']);
      expect(pickAttentionVariant(gpu, true, 1)).toBe('workgroup');
    } finally {
      gpu.info.picksAs = own;
    }
    const t = gpu.tensor('t', [4096]);
    expect(() => attentionForward(gpu, { out: t, probs: t, q: t, k: t, v: t, B: 1, Tq: 4, NH: 1, NKV: 1, HS: 8, pos0: 0, variant: 'flash' })).toThrow(/probabilities/);
    expect(() => attentionForward(gpu, { out: t, lse: t, q: t, k: t, v: t, B: 1, Tq: 4, NH: 1, NKV: 1, HS: 8, pos0: 0, variant: 'thread' })).toThrow(/lse/);
    gpu.free(t);
  });

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const t = gpu.tensor('t', [4096]);
    expect(() => attentionForward(gpu, { out: t, q: t, k: t, v: t, B: 1, Tq: 1, NH: 3, NKV: 2, HS: 8, pos0: 0 })).toThrow(/multiple/);
    expect(() => attentionForward(gpu, { out: t, q: t, k: t, v: t, B: 1, Tq: 1, NH: 1, NKV: 1, HS: 256, pos0: 0 })).toThrow(/head size/);
    expect(() => attentionForward(gpu, { out: t, q: t, k: t, v: t, B: 1, Tq: 2, Tk: 2, NH: 1, NKV: 1, HS: 8, pos0: 1 })).toThrow(/Tk=2/);
    expect(() => attentionForward(gpu, { out: t, q: t, k: t, v: t, B: 1, Tq: 1, Tk: 9, TkMax: 8, NH: 1, NKV: 1, HS: 8, pos0: 0 })).toThrow(/capacity/);
    expect(() => attentionForward(gpu, { out: t, q: t, k: t, v: t, B: 1, Tq: 1, NH: 1, NKV: 1, HS: 8, pos0: 4095 })).toThrow(/needs/);
    gpu.free(t);
  });
});
