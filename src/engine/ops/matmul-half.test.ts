// The f16-weight forward against the float64 reference on the f16-rounded weights (awkward M and
// N: partial 4x4 tiles; K a multiple of 4), accumulate mode, and the bad shapes it refuses; every
// variant (half_nt4, the workgroup-memory half_wg8, the f16-arithmetic half_wg8h) against its
// reference within a derived per-element bound (halfForwardErrorBound) on shapes with partial
// 128-blocks every way; and a teacher with f16 projections: logits within a stated tolerance of the
// fp32 teacher's.
import { describe, expect, it } from 'vitest';
import { bitDiff, expectClose, randn, rng, testGpu } from '../testing';
import { HALF_VARIANTS, adapterHalfVariant, halfForwardErrorBound, halfVariants, isF16MathVariant, matmulHalfForward, pickHalfVariant, preferHalfVariant, type HalfKernel } from './matmul-half';
import type { Gpu, Tensor } from '../gpu/runtime';
import { matmulForwardRef } from '../ref/matmul';
import { roundF16 } from '../io/gguf';
import { HalfLinear, packHalf } from '../model/half';
import { LlamaModel } from '../model/llama';
import { randomWeights, tinyConfig } from '../model/config';
import { f16ToF32 } from '../io/safetensors';
import { refForward } from '../ref/llama';

/** |got − ref| ≤ bound elementwise (every output written: got starts NaN); returns max |err| / bound. */
function expectWithin(name: string, got: Float32Array, ref: ArrayLike<number>, bound: Float64Array): number {
  const bad: string[] = [];
  let n = 0, worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= bound[i])) {
      n++;
      if (bad.length < 6) bad.push(`  [${i}] got ${got[i]} ref ${ref[i]} (|diff| ${d.toExponential(2)} > bound ${bound[i].toExponential(2)})`);
    } else worst = Math.max(worst, d / bound[i]);
  }
  if (n > 0) throw new Error(`${name}: ${n}/${ref.length} outside the bound\n${bad.join('\n')}`);
  return worst;
}

/** Run `v` into a NaN-filled (or `prior`-filled, accumulating) y and check it against the float64
 *  reference: W rounded to f16, and x too for the f16-arithmetic variant. */
async function checkVariant(gpu: Gpu, v: HalfKernel, x: Float32Array, w: Float32Array, M: number, K: number, N: number, prior?: Float32Array): Promise<number> {
  const f16Math = isF16MathVariant(v);
  const wh = Float64Array.from(w, roundF16);
  const want = matmulForwardRef(f16Math ? Float64Array.from(x, roundF16) : x, wh, M, K, N);
  if (prior) for (let i = 0; i < want.length; i++) want[i] += prior[i];
  const bound = halfForwardErrorBound(x, wh, M, K, N, f16Math, prior);
  const tx = gpu.tensor('x', [M, K], 'f32', x), tw = gpu.tensor('w', [N, K / 2], 'u32', packHalf(w)), ty = gpu.tensor('y', [M, N], 'f32', prior ?? new Float32Array(M * N).fill(Number.NaN));
  try {
    matmulHalfForward(gpu, ty, tx, tw, M, K, N, !!prior, v);
    return expectWithin(`${v} ${M}x${K}x${N}${prior ? ' accumulate' : ''}`, await gpu.readF32(ty), want, bound);
  } finally {
    for (const t of [tx, tw, ty] as Tensor[]) gpu.free(t);
  }
}

describe('f16-weight forward variants against the float64 reference, per-element error bounds', () => {
  // halfForwardErrorBound (its comment derives it): fp32 math: γ_K(2^-24) Σ|x ŵ|; f16 math (x̂, Ŵ in
  // f16, 8-deep f16 partial sums, f32 across slabs): x's conversion (one f16 ulp, 2^-10|x| + 2^-14) +
  // (γ_8(2^-11) + γ_S(2^-24)(1 + γ_8)) Σ|x̂ ŵ| + 16·S·2^-14 for f16 results flushed below 2^-14,
  // S = ceil(K/8); accumulating adds one f32 rounding. With N(0,1) operands at K = 136 that is
  // ≈ 0.5% of Σ|x̂ ŵ| (≈ 0.4 here); a lost slab, row or column is several times that.
  // M x K x N: partial 128-blocks both ways and a ragged 8-slab (K = 132: the last slab half full),
  // M = 1, N = 1, K = 4, and 3 x 3 blocks of 128 (M = 300, N = 260).
  const shapes: [number, number, number][] = [[67, 136, 130], [1, 136, 130], [67, 136, 1], [5, 4, 3], [1, 4, 1], [300, 132, 260]];
  for (const v of HALF_VARIANTS) {
    for (const [M, K, N] of shapes) {
      it(`${v} at ${M}x${K}x${N}: assigns every output, and accumulates onto y`, async (ctx) => {
        const gpu = await testGpu();
        if (!halfVariants(gpu).includes(v)) ctx.skip(); // half_wg8h without shader-f16
        const x = randn(M * K, 31 + M), w = randn(N * K, 41 + N);
        const r1 = await checkVariant(gpu, v, x, w, M, K, N);
        const r2 = await checkVariant(gpu, v, x, w, M, K, N, randn(M * N, 51));
        if (M * N > 1000) console.log(`${v} ${M}x${K}x${N}: max |err| / bound ${r1.toExponential(2)} (assign), ${r2.toExponential(2)} (accumulate)`);
      });
    }
  }

  it('the prefetching forms (half_wg8p, half_wg8hp) give their plain forms\' bits: the same sums in the same order', async () => {
    const gpu = await testGpu();
    for (const [M, K, N] of [[300, 132, 260], [67, 136, 130], [5, 4, 3]] as const) {
      const tx = gpu.tensor('x', [M, K], 'f32', randn(M * K, 7)), tw = gpu.tensor('w', [N, K / 2], 'u32', packHalf(randn(N * K, 8))), ty = gpu.tensor('y', [M, N]);
      const run = async (v: HalfKernel) => {
        gpu.write(ty, new Float32Array(M * N).fill(Number.NaN));
        matmulHalfForward(gpu, ty, tx, tw, M, K, N, false, v);
        return gpu.readF32(ty);
      };
      for (const [plain, pre] of [['half_wg8', 'half_wg8p'], ['half_wg8h', 'half_wg8hp']] as const) {
        if (!halfVariants(gpu).includes(pre)) continue; // the f16 pair without shader-f16
        expect(bitDiff(await run(pre), await run(plain)), `${pre} = ${plain} at ${M}x${K}x${N}`).toBe('');
      }
      for (const t of [tx, tw, ty]) gpu.free(t);
    }
  });

  it('half_wg8h widens its f16 partials every slab: K = 1536 (SmolLM2\'s MLP width) with one large product then many small ones', async (ctx) => {
    // Row sums start at x_0 w_0 = 2048, where the f16 ulp is 2: every later product (~0.25..0.56)
    // rounds away in an f16 running sum (an error of ~600 over K), but within one 8-deep slab at
    // most 7 of them are lost (< 4, inside the bound's γ_8(2^-11)·Σ ≈ 11), and across slabs f32 keeps them.
    const gpu = await testGpu();
    if (!gpu.hasF16) ctx.skip();
    const M = 3, K = 1536, N = 5;
    const x = Float32Array.from({ length: M * K }, (_, i) => (i % K === 0 ? 64 : 0.5 + 0.25 * Math.sin(i)));
    const w = Float32Array.from({ length: N * K }, (_, i) => (i % K === 0 ? 32 : 1 + 0.1 * Math.cos(i)));
    await checkVariant(gpu, 'half_wg8h', x, w, M, K, N);
  });

  it("'auto' runs the adapter's pick (half_nt4) until another is preferred; half_wg8h only with shader-f16", async () => {
    const gpu = await testGpu();
    expect(adapterHalfVariant(gpu)).toBe('half_nt4');
    expect(pickHalfVariant(gpu)).toBe('half_nt4');
    const M = 9, K = 8, N = 6;
    const x = gpu.tensor('x', [M, K], 'f32', randn(M * K, 1)), w = gpu.tensor('w', [N, K / 2], 'u32', packHalf(randn(N * K, 2))), y = gpu.tensor('y', [M, N]);
    const entries = () => {
      const seen: string[] = [];
      const run = gpu.run;
      gpu.run = (spec, args) => {
        seen.push(`${spec.shader}:${spec.entry}`);
        run.call(gpu, spec, args);
      };
      try {
        matmulHalfForward(gpu, y, x, w, M, K, N);
      } finally {
        gpu.run = run;
      }
      return seen;
    };
    try {
      expect(entries()).toEqual(['matmul_half:half_nt4']);
      preferHalfVariant(gpu, 'half_wg8');
      expect(entries()).toEqual(['matmul_half:half_wg8']);
      preferHalfVariant(gpu, 'half_wg8p'); // the same entry, compiled with PREFETCH
      expect(entries()).toEqual(['matmul_half:half_wg8']);
      if (gpu.hasF16) {
        preferHalfVariant(gpu, 'half_wg8h');
        expect(entries()).toEqual(['matmul_half_f16:half_wg8h']);
      }
      preferHalfVariant(gpu, null);
      expect(entries()).toEqual(['matmul_half:half_nt4']);
      // a device without shader-f16 is not offered half_wg8h and refuses it by name
      const noF16 = Object.create(gpu, { hasF16: { value: false } }) as Gpu;
      expect(halfVariants(noF16)).toEqual(['half_nt4', 'half_wg8', 'half_wg8p']);
      expect(() => preferHalfVariant(noF16, 'half_wg8h')).toThrow(/needs the shader-f16 feature/);
      expect(() => preferHalfVariant(noF16, 'half_wg8hp')).toThrow(/'half_wg8hp' needs the shader-f16 feature/);
      expect(() => matmulHalfForward(noF16, y, x, w, M, K, N, false, 'half_wg8h')).toThrow(/needs the shader-f16 feature/);
    } finally {
      preferHalfVariant(gpu, null);
      for (const t of [x, w, y]) gpu.free(t);
    }
  });
});

describe('matmul with f16 weights (forward only)', () => {
  it('packHalf: two binary16 per u32, element 2i in the low half, round to nearest even', () => {
    const w = Float32Array.of(1, -2, 1 + 2 ** -11, 65504, 1e-8, 3.14159);
    const p = packHalf(w);
    expect(p.length).toBe(3);
    expect(f16ToF32(p[0] & 0xffff)).toBe(1);
    expect(f16ToF32(p[0] >>> 16)).toBe(-2);
    expect(f16ToF32(p[1] & 0xffff)).toBe(1); // tie to even
    expect(f16ToF32(p[1] >>> 16)).toBe(65504);
    for (let i = 0; i < w.length; i++) expect(f16ToF32((p[i >> 1] >>> (16 * (i & 1))) & 0xffff)).toBe(roundF16(w[i]));
    expect(() => packHalf(new Float32Array(3))).toThrow(/even/);
  });

  for (const [M, K, N] of [[1, 4, 1], [5, 8, 3], [33, 64, 17], [70, 132, 69], [16, 576, 192]] as [number, number, number][]) {
    it(`y = x·Wᵀ at ${M}x${K}x${N} = float64 reference on the f16-rounded W`, async () => {
      const gpu = await testGpu();
      const x = randn(M * K, M + K), w = randn(N * K, N + 7);
      const tx = gpu.tensor('x', [M, K], 'f32', x), tw = gpu.tensor('w', [N, K / 2], 'u32', packHalf(w)), ty = gpu.tensor('y', [M, N]);
      matmulHalfForward(gpu, ty, tx, tw, M, K, N);
      const want = matmulForwardRef(x, Float64Array.from(w, roundF16), M, K, N);
      expectClose('y', await gpu.readF32(ty), want, { atol: 2e-5, rtol: 1e-5 });
      matmulHalfForward(gpu, ty, tx, tw, M, K, N, true);
      expectClose('y accumulated', await gpu.readF32(ty), want.map((v) => 2 * v), { atol: 4e-5, rtol: 1e-5 });
      for (const t of [tx, tw, ty]) gpu.free(t);
    });
  }

  it('refuses K not a multiple of 4 and f32 weights by name', async () => {
    const gpu = await testGpu();
    const x = gpu.tensor('x', [2, 6]), w = gpu.tensor('w', [3, 3], 'u32'), y = gpu.tensor('y', [2, 3]);
    expect(() => matmulHalfForward(gpu, y, x, w, 2, 6, 3)).toThrow(/K = 6 must be a multiple of 4/);
    const wf = gpu.tensor('wf32', [3, 2]);
    expect(() => matmulHalfForward(gpu, y, gpu.tensor('x4', [2, 4]), wf, 2, 4, 3)).toThrow(/"wf32" must be u32/);
    expect(HalfLinear.fits(6)).toBe(false);
    for (const t of [x, w, y, wf]) gpu.free(t);
  });

  it('a teacher with f16 projections = the float64 reference at f16-rounded projections; next to the fp32 teacher: KL < 1e-4 nats per row', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 64, hiddenDim: 172, nHeads: 4, nKvHeads: 2, vocabSize: 61 });
    const w = randomWeights(cfg, 5, 0.5);
    const f32 = LlamaModel.fromWeights(gpu, cfg, w, { label: 't32' });
    const f16 = LlamaModel.fromWeights(gpu, cfg, w, { label: 't16', halfProjections: true });
    expect(f16.layers[0].proj.q).toBeInstanceOf(HalfLinear);
    expect(f16.layers[0].proj.down).toBeInstanceOf(HalfLinear); // K = 172
    expect(f16.layers[0].proj.q.bytes * 2).toBe(f32.layers[0].proj.q.bytes);
    const B = 2, T = 9, V = cfg.vocabSize;
    const r = rng(3);
    const tokens = Array.from({ length: B * T }, () => Math.floor(r() * V));
    const a32 = f32.activations(B, T, false), a16 = f16.activations(B, T, false);
    gpu.write(a32.tokens, Uint32Array.from(tokens));
    gpu.write(a16.tokens, Uint32Array.from(tokens));
    f32.forward(a32);
    f16.forward(a16);
    const z32 = await gpu.readF32(a32.logits), z16 = await gpu.readF32(a16.logits);
    // exact: the float64 model whose projections are the f16-rounded weights
    const wh = { ...w, layers: w.layers.map((l) => ({ ...l, ...Object.fromEntries((['wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'] as const).map((k) => [k, Float32Array.from(l[k], roundF16)])) })) };
    expectClose('f16 teacher logits vs float64 reference at f16 weights', z16, refForward(cfg, wh, tokens, B, T).logits, { atol: 1e-4, rtol: 1e-4 });
    // against the fp32 teacher (this random model at weight scale 0.5 is far more sensitive than a trained one)
    let maxd = 0, maxKl = 0;
    for (let row = 0; row < B * T; row++) {
      const a = z32.subarray(row * V, (row + 1) * V), b = z16.subarray(row * V, (row + 1) * V);
      const lse = (z: Float32Array) => { const m = Math.max(...z); return m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)); };
      const la = lse(a), lb = lse(b);
      let kl = 0;
      for (let v = 0; v < V; v++) {
        kl += Math.exp(a[v] - la) * (a[v] - la - (b[v] - lb));
        maxd = Math.max(maxd, Math.abs(a[v] - b[v]));
      }
      maxKl = Math.max(maxKl, kl);
    }
    expect(maxd).toBeGreaterThan(0); // the weights really are rounded
    expect(maxd).toBeLessThan(0.05);
    expect(maxKl).toBeLessThan(1e-4);
    console.log(`f16 teacher vs fp32: max |logit difference| ${maxd.toExponential(2)}, max KL(fp32 || f16) per row ${maxKl.toExponential(2)} nats (max |z| ${Math.max(...z32.map(Math.abs)).toFixed(2)})`);
    f32.free();
    f16.free();
  });
});
