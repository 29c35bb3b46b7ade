import { describe, expect, it } from 'vitest';
import { expectClose, randn, testGpu } from '../testing';
import { MultiAdamW, adamwStep, adamwTensorsPerDispatch, clipScale, sum, sumMany, sumSquares, sumSquaresMany } from './optim';
import { adamwRef, clipScaleRef, sumRef, sumSquaresRef } from '../ref/optim';

// fp32 tree sums of n terms vs float64: relative error ~ log2(n)·ulp for sums of squares; plain sums
// of signed terms can cancel, so their atol scales with sqrt(Σx²)·1e-6.
const SIZES = [1, 255, 1024, 1025, 100003, 300001]; // 300001 > SEG·CHUNK: workgroups stride over chunks

describe('reductions', () => {
  it('sum of squares and sum of whole tensors, sizes 1 .. 300001', async () => {
    const gpu = await testGpu();
    const out = gpu.tensor('sums', [2 * SIZES.length]);
    const xs = SIZES.map((n, i) => randn(n, i + 1));
    const ts = xs.map((x, i) => gpu.tensor(`x${i}`, [x.length], 'f32', x));
    gpu.write(out, randn(out.numel, 99)); // stale contents: reductions assign
    ts.forEach((t, i) => {
      sumSquares(gpu, out, 2 * i, t);
      sum(gpu, out, 2 * i + 1, t);
    });
    const got = await gpu.readF32(out);
    xs.forEach((x, i) => {
      const ss = sumSquaresRef(x);
      expectClose(`sumSquares n=${x.length}`, [got[2 * i]], [ss], { atol: 1e-6, rtol: 2e-6 });
      expectClose(`sum n=${x.length}`, [got[2 * i + 1]], [sumRef(x)], { atol: 1e-6 * Math.sqrt(ss) + 1e-6, rtol: 1e-6 });
    });
    for (const t of [out, ...ts]) gpu.free(t);
  });

  it('a prefix of n elements; batched per-tensor sums (one finish pass) at an offset; deterministic', async () => {
    const gpu = await testGpu();
    const sizes = [7, 64, 4096, 11008, 2049, 1, 70000];
    const xs = sizes.map((n, i) => randn(n, 20 + i, 0.1));
    const ts = xs.map((x, i) => gpu.tensor(`g${i}`, [x.length], 'f32', x));
    const out = gpu.tensor('norms', [3 + 2 * sizes.length], 'f32', randn(3 + 2 * sizes.length, 5));
    sumSquaresMany(gpu, out, 3, ts);
    sumMany(gpu, out, 3 + sizes.length, ts.map((t) => ({ t, n: Math.ceil(t.numel / 2) })));
    const got = await gpu.readF32(out);
    expectClose('sumSquaresMany', got.slice(3, 3 + sizes.length), xs.map(sumSquaresRef), { atol: 1e-8, rtol: 2e-6 });
    expectClose('sumMany over prefixes', got.slice(3 + sizes.length), xs.map((x) => sumRef(x.subarray(0, Math.ceil(x.length / 2)))), { atol: 2e-6, rtol: 1e-5 });
    // the same inputs give bit-identical results
    sumSquaresMany(gpu, out, 3, ts);
    expect(Array.from((await gpu.readF32(out)).slice(3, 3 + sizes.length))).toEqual(Array.from(got.slice(3, 3 + sizes.length)));
    // a prefix through the single-tensor entry
    sumSquares(gpu, out, 0, ts[6], 12345);
    expectClose('sumSquares prefix', [(await gpu.readF32(out))[0]], [sumSquaresRef(xs[6].subarray(0, 12345))], { atol: 1e-8, rtol: 2e-6 });
    for (const t of [out, ...ts]) gpu.free(t);
  });

  it('many tensors per partial dispatch: each result = the single-tensor reduction bit for bit; few dispatches', async () => {
    const gpu = await testGpu();
    // 40 tensors: sizes around a chunk (256), one strided over SEG workgroups (70000 > 256·256),
    // prefixes, and a group of 40 = 15 + 15 + 10 (the last in the 15-slot variant with unused slots)
    const sizes = Array.from({ length: 40 }, (_, i) => [1, 255, 256, 257, 3000, 70000, 17, 1024][i % 8] + (i >> 3));
    const xs = sizes.map((n, i) => randn(n, 300 + i, 0.3));
    const ts = xs.map((x, i) => gpu.tensor(`r${i}`, [x.length], 'f32', x));
    const items = ts.map((t, i) => (i % 5 === 3 ? { t, n: Math.ceil(t.numel / 3) } : t));
    const many = gpu.tensor('many', [2 * sizes.length]), one = gpu.tensor('one', [2 * sizes.length]);
    const d0 = gpu.counts.dispatches;
    sumSquaresMany(gpu, many, 0, items);
    sumMany(gpu, many, sizes.length, items);
    const perCall = (gpu.counts.dispatches - d0) / 2;
    items.forEach((x, i) => {
      const [t, n] = 't' in x ? [x.t, x.n] : [x, x.numel];
      sumSquares(gpu, one, i, t, n);
      sum(gpu, one, sizes.length + i, t, n);
    });
    const a = await gpu.readF32(many), b = await gpu.readF32(one);
    expect(Array.from(a)).toEqual(Array.from(b));
    const lim = gpu.device.limits.maxStorageBuffersPerShaderStage;
    const K = lim >= 16 ? 15 : lim >= 8 ? 7 : lim >= 4 ? 3 : 1;
    // the per-tensor way (one partial dispatch each), and smaller groups, give the same
    for (const k of [1, 2, 5]) {
      const e0 = gpu.counts.dispatches;
      sumSquaresMany(gpu, one, 0, items, { tensorsPerDispatch: k });
      sumMany(gpu, one, sizes.length, items, { tensorsPerDispatch: k });
      expect((gpu.counts.dispatches - e0) / 2).toBe(Math.ceil(sizes.length / Math.min(k, K)) + 1);
      expect(Array.from(await gpu.readF32(one)), `${k} per dispatch`).toEqual(Array.from(a));
    }
    expect(perCall).toBe(Math.ceil(sizes.length / K) + 1);
    expectClose('sumSquaresMany vs float64', a.slice(0, sizes.length), items.map((x, i) => sumSquaresRef(xs[i].subarray(0, 't' in x ? x.n : xs[i].length))), { atol: 1e-8, rtol: 2e-6 });
    for (const t of [many, one, ...ts]) gpu.free(t);
  });
});

describe('global-norm clipping and AdamW', () => {
  it('clip scale from per-tensor sums of squares (clipping, not clipping, off)', async () => {
    const gpu = await testGpu();
    const ss = [3.5, 0.25, 12];
    const t = gpu.tensor('ss', [3], 'f32', ss), out = gpu.tensor('scale', [2]);
    for (const maxNorm of [0.5, 100, 0, Infinity]) {
      clipScale(gpu, out, t, 3, maxNorm);
      const r = clipScaleRef(ss, maxNorm);
      const got = await gpu.readF32(out);
      expectClose(`clip maxNorm=${maxNorm}`, got, [r.scale, r.norm], { atol: 1e-7, rtol: 1e-6 });
      if (maxNorm !== 0.5) expect(got[0]).toBe(1);
    }
    expect(clipScaleRef(ss, 0.5).scale).toBeCloseTo(0.5 / (Math.sqrt(15.75) + 1e-6), 12);
    gpu.free(t);
    gpu.free(out);
  });

  it('the AdamW reference: first step from zero state is lr·sign(g) plus decay', () => {
    const h = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-12, weightDecay: 0.5 };
    const r = adamwRef([1, -2, 3], [0.3, -4, 0], [0, 0, 0], [0, 0, 0], 1, h);
    expectClose('param', r.param, [1 - 0.1 * (1 + 0.5), -2 - 0.1 * (-1 - 1), 3 - 0.1 * 0.5 * 3], { atol: 1e-10, rtol: 0 });
    expectClose('m', r.m, [0.03, -0.4, 0], { atol: 1e-15, rtol: 1e-12 });
    expectClose('v', r.v, [0.01 * 0.09, 0.01 * 16, 0], { atol: 1e-15, rtol: 1e-12 });
  });

  it('sums of squares -> clip scale -> AdamW over 5 steps, all on the GPU, matches the reference', async () => {
    const gpu = await testGpu();
    const sizes = [1001, 3, 4096];
    const h = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const maxNorm = 20;
    let P: Float64Array[] = sizes.map((n, i) => Float64Array.from(randn(n, 1 + i)));
    let M: Float64Array[] = sizes.map((n) => new Float64Array(n));
    let V: Float64Array[] = sizes.map((n) => new Float64Array(n));
    const tp = sizes.map((n, i) => gpu.tensor(`p${i}`, [n], 'f32', Float32Array.from(P[i])));
    const tm = sizes.map((n, i) => gpu.tensor(`m${i}`, [n]));
    const tv = sizes.map((n, i) => gpu.tensor(`v${i}`, [n]));
    const tg = sizes.map((n, i) => gpu.tensor(`g${i}`, [n]));
    const sumsq = gpu.tensor('sumsq', [sizes.length]), clip = gpu.tensor('clip', [2]);
    const scales: number[] = [];
    for (let t = 1; t <= 5; t++) {
      const gs = sizes.map((n, i) => randn(n, 100 * t + i, t % 2 ? 1 : 0.05)); // odd steps clip, even ones do not
      gs.forEach((g, i) => gpu.write(tg[i], g));
      sumSquaresMany(gpu, sumsq, 0, tg);
      clipScale(gpu, clip, sumsq, sizes.length, maxNorm);
      sizes.forEach((_, i) => adamwStep(gpu, tp[i], tg[i], tm[i], tv[i], clip, t, h));
      const { scale } = clipScaleRef(gs.map(sumSquaresRef), maxNorm);
      scales.push(scale);
      const next = sizes.map((_, i) => adamwRef(P[i], gs[i], M[i], V[i], t, h, scale));
      P = next.map((r) => r.param);
      M = next.map((r) => r.m);
      V = next.map((r) => r.v);
    }
    expect(scales.some((s) => s < 0.5) && scales.some((s) => s === 1)).toBe(true);
    for (let i = 0; i < sizes.length; i++) {
      expectClose(`param ${i}`, await gpu.readF32(tp[i]), P[i], { atol: 2e-6, rtol: 1e-5 });
      expectClose(`m ${i}`, await gpu.readF32(tm[i]), M[i], { atol: 1e-7, rtol: 1e-4 });
      expectClose(`v ${i}`, await gpu.readF32(tv[i]), V[i], { atol: 1e-9, rtol: 1e-4 });
    }
    for (const t of [...tp, ...tm, ...tv, ...tg, sumsq, clip]) gpu.free(t);
  });

  /** Per-tensor adamwStep on one copy and MultiAdamW on another, same gradients, `steps` steps;
   *  returns the bitwise mismatches of param, m, v (0 = identical) and the dispatches per step. */
  async function perTensorVsMulti(sizes: number[], steps: number, opts: ConstructorParameters<typeof MultiAdamW>[3] = {}) {
    const gpu = await testGpu();
    const hOf = (i: number) => ({ lr: 1e-2 * (1 + (i % 3)), beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: i % 2 ? 0 : 0.1 }); // per-tensor lr and decay, as learned scales have
    const p0 = sizes.map((n, i) => randn(n, 7 + i));
    const mk = (tag: string) => ({
      p: sizes.map((n, i) => gpu.tensor(`${tag}p${i}`, [n], 'f32', p0[i])),
      g: sizes.map((n, i) => gpu.tensor(`${tag}g${i}`, [n])),
      m: sizes.map((n, i) => gpu.tensor(`${tag}m${i}`, [n])),
      v: sizes.map((n, i) => gpu.tensor(`${tag}v${i}`, [n])),
    });
    const a = mk('a'), b = mk('b');
    const opt = new MultiAdamW(gpu, 'test', sizes.map((_, i) => ({ param: b.p[i], grad: b.g[i] })), opts);
    const sumsq = gpu.tensor('sumsq', [sizes.length]), clip = gpu.tensor('clip', [2]);
    let perStep = 0;
    for (let t = 1; t <= steps; t++) {
      sizes.forEach((n, i) => {
        const g = randn(n, 1000 * t + i, t % 2 ? 1 : 0.05);
        gpu.write(a.g[i], g);
        gpu.write(b.g[i], g);
      });
      sumSquaresMany(gpu, sumsq, 0, a.g);
      clipScale(gpu, clip, sumsq, sizes.length, 30); // the odd steps clip
      sizes.forEach((_, i) => adamwStep(gpu, a.p[i], a.g[i], a.m[i], a.v[i], clip, t, hOf(i)));
      const d0 = gpu.counts.dispatches;
      opt.step(clip, t, hOf);
      perStep = gpu.counts.dispatches - d0;
    }
    const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
    const diff = (x: Float32Array, y: Float32Array) => {
      let c = x.length === y.length ? 0 : Infinity;
      const X = bits(x), Y = bits(y);
      for (let k = 0; k < X.length; k++) if (X[k] !== Y[k]) c++;
      return c;
    };
    const mismatches: string[] = [];
    let moved = 0;
    for (let i = 0; i < sizes.length; i++) {
      const pa = await gpu.readF32(a.p[i]), pb = await gpu.readF32(b.p[i]);
      const st = await opt.state(i);
      const dp = diff(pa, pb), dm = diff(await gpu.readF32(a.m[i]), st.m), dv = diff(await gpu.readF32(a.v[i]), st.v);
      if (dp + dm + dv) mismatches.push(`tensor ${i} (${sizes[i]}): param ${dp}, m ${dm}, v ${dv} differ`);
      moved += diff(pb, p0[i]);
    }
    opt.free();
    for (const t of [...a.p, ...a.g, ...a.m, ...a.v, ...b.p, ...b.g, ...b.m, ...b.v, sumsq, clip]) gpu.free(t);
    return { mismatches, moved, perStep, opt };
  }

  it('multi-tensor AdamW = per-tensor adamwStep bit for bit (param, m, v), several tensors per dispatch', async () => {
    const gpu = await testGpu();
    const most = adamwTensorsPerDispatch(gpu);
    expect(most).toBeGreaterThanOrEqual(2);
    // awkward sizes: 1, around the workgroup (64), a partial group at the end, per-dispatch-size groups
    const sizes = [1, 63, 64, 65, 3, 1001, 4099, 7, 130, 2];
    const r = await perTensorVsMulti(sizes, 3);
    expect(r.mismatches).toEqual([]);
    expect(r.moved).toBeGreaterThan(sizes.reduce((x, y) => x + y) / 2); // the parameters did move
    expect(r.perStep).toBe(Math.ceil(sizes.length / most)); // not one dispatch per tensor
    expect(r.opt.dispatches).toBe(r.perStep);
    // every variant the shader has (2, 3, 4, 6 tensors, and groups shorter than their variant),
    // and state split over several arenas (a group never spans two)
    for (const perDispatch of [2, 3, 4, 5, 6].filter((k) => k <= most)) {
      const q = await perTensorVsMulti([5, 70, 1, 300, 9, 66, 129], 2, { perDispatch });
      expect(q.mismatches, `perDispatch ${perDispatch}`).toEqual([]);
      expect(q.perStep).toBe(Math.ceil(7 / perDispatch));
    }
    const c = await perTensorVsMulti([5, 70, 1, 300, 9, 66, 129], 2, { arenaElems: 310 }); // arenas [5 70 1], [300 9], [66 129]
    expect(c.mismatches).toEqual([]);
    expect(c.perStep).toBe(3);
  });

  it('multi-tensor AdamW past 65535 workgroups (2-D grid) = per-tensor adamwStep', async () => {
    const gpu = await testGpu();
    const big = gpu.device.limits.maxComputeWorkgroupsPerDimension * 64 + 77; // elements in 64-lane workgroups
    const r = await perTensorVsMulti([3000, big, 5], 1);
    expect(r.mismatches).toEqual([]);
    expect(r.perStep).toBe(1);
  });

  it('multi-tensor AdamW: state round trip, clear errors', async () => {
    const gpu = await testGpu();
    const p = gpu.tensor('p', [10]), g = gpu.tensor('g', [10]), q = gpu.tensor('q', [3]), gq = gpu.tensor('gq', [3]);
    const opt = new MultiAdamW(gpu, 'st', [{ param: p, grad: g }, { param: q, grad: gq }]);
    opt.setState(1, Float32Array.of(1, 2, 3), Float32Array.of(4, 5, 6));
    expect([...(await opt.state(1)).m]).toEqual([1, 2, 3]);
    expect([...(await opt.state(1)).v]).toEqual([4, 5, 6]);
    expect([...(await opt.state(0)).m]).toEqual(new Array(10).fill(0));
    expect(() => opt.setState(1, new Float32Array(2), new Float32Array(3))).toThrow(/"q" has 3 elements/);
    expect(() => new MultiAdamW(gpu, 'x', [{ param: p, grad: q }])).toThrow(/"p" \(10 elements\) has a gradient "q" of only 3/);
    expect(() => new MultiAdamW(gpu, 'x', [{ param: p, grad: g }, { param: p, grad: g }])).toThrow(/"p" is listed twice/);
    expect(() => new MultiAdamW(gpu, 'x', [{ param: p, grad: g }], { arenaElems: 4 })).toThrow(/does not fit one optimizer-state arena of 4/);
    expect(() => opt.step(gpu.tensor('s', [2]), 0, { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0 })).toThrow(/t = 0/);
    expect(() => opt.step(gpu.tensor('s2', [2]), 1, (i) => ({ lr: 1, beta1: i ? 0.8 : 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0 }))).toThrow(/other betas/);
    opt.free();
    for (const t of [p, g, q, gq]) gpu.free(t);
  });
});
