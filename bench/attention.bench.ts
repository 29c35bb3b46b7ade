// Causal attention forward without probabilities (evaluation, prefill, training without an
// attention-map loss), old materializing kernels vs the flash kernels, side by side:
//   thread / workgroup      the materializing kernels (shaders/attention.wgsl forward, forward_wg)
//   flash / flash_tiled     online softmax, head size compiled in (per thread / K-V tiles in
//                           workgroup memory)
//   flash_sg                online softmax, 8 query rows per 8-lane subgroup, blocks of 8 keys shared
//                           by subgroupBroadcast (lavapipe; every head size)
//   flash_split             one workgroup per query row, keys split across its threads (decoding)
// Then decoding (Tq = 1 against 2048 cached keys, and a chunk of 8 rows), every flash variant.
// Shapes: stories260K-like (8 heads of 8) at T = 128, 512, 2048 and a bigger one (32 heads of 64,
// 8 kv heads) at T = 128, 512, 1024; B = 1. GFLOP/s counts 4·HS FLOPs per (query, visible key).
import type { Gpu } from '../src/engine/gpu/runtime';
import { ATTENTION_VARIANTS, attentionForward, pickAttentionVariant } from '../src/engine/ops/attention';
import { hasSubgroup8 } from '../src/engine/ops/matmul';
import { randn } from '../src/engine/testing';
import { measure, type BenchRow } from './types';

export interface AttentionBenchOpts {
  shapes?: { T: number; NH: number; NKV: number; HS: number }[];
  budgetMs?: number;
  /** skip a variant at a shape where it is expected (from its speed on the previous shape) to take longer per call, ms */
  callCapMs?: number;
  /** no new case starts after this time (performance.now() ms) */
  deadline?: number;
  /** decoding shapes (Tq rows, default 1, against Tk keys) */
  decode?: { Tq?: number; Tk: number; NH: number; NKV: number; HS: number }[];
}

export async function benchAttention(gpu: Gpu, opts: AttentionBenchOpts = {}): Promise<{ rows: BenchRow[]; ratios: string[] }> {
  const shapes = opts.shapes ?? [
    ...[128, 512, 2048].map((T) => ({ T, NH: 8, NKV: 8, HS: 8 })),
    ...[128, 512, 1024].map((T) => ({ T, NH: 32, NKV: 8, HS: 64 })),
  ];
  const budget = opts.budgetMs ?? 1500;
  const cap = opts.callCapMs ?? 10_000;
  const deadline = opts.deadline ?? Infinity;
  const speed = new Map<string, number>(); // variant -> GFLOP/s so far (the old kernels at the largest shapes took minutes here)
  const rows: BenchRow[] = [];
  const ratios: string[] = [];
  const old = pickAttentionVariant(gpu, true);
  for (const { T, NH, NKV, HS } of shapes) {
    const auto = pickAttentionVariant(gpu, false);
    const B = 1;
    const q = gpu.tensor('bench.q', [B * T, NH * HS], 'f32', randn(B * T * NH * HS, 1));
    const k = gpu.tensor('bench.k', [B * T, NKV * HS], 'f32', randn(B * T * NKV * HS, 2));
    const v = gpu.tensor('bench.v', [B * T, NKV * HS], 'f32', randn(B * T * NKV * HS, 3));
    const out = gpu.tensor('bench.out', [B * T, NH * HS]);
    const shape = `T=${T} NH=${NH} NKV=${NKV} HS=${HS}`;
    const ms: Record<string, number> = {};
    const flops = 4 * HS * B * NH * ((T * (T + 1)) / 2);
    // flash_split (one workgroup per query row) is a decoding kernel: timed below, at Tq = 1
    for (const variant of ATTENTION_VARIANTS.filter((x) => x !== 'flash_split')) {
      if (variant === 'flash_sg' && !hasSubgroup8(gpu)) {
        rows.push({ name: `attention fwd (${variant})`, shape, ms: NaN, note: 'skipped: needs 8-wide subgroups' });
        continue;
      }
      const est = flops / ((speed.get(variant) ?? Infinity) * 1e6);
      if (performance.now() > deadline || est > cap) {
        rows.push({ name: `attention fwd (${variant})`, shape, ms: NaN, note: `skipped: ${est > cap ? `estimated ${(est / 1000).toFixed(0)} s per call > ${cap / 1000} s cap` : 'section time cap'}` });
        continue;
      }
      const call = () => attentionForward(gpu, { out, q, k, v, B, Tq: T, NH, NKV, HS, pos0: 0, variant });
      const { ms: t, note } = await measure(gpu, call, budget, { maxReps: 20, maxIters: 7 });
      ms[variant] = t;
      speed.set(variant, flops / t / 1e6);
      if (process.env.BENCH_VERBOSE) console.error(`${shape} ${variant} ${t.toFixed(2)} ms`);
      const tag = variant === old ? 'old auto; ' : variant === auto ? 'new auto; ' : '';
      rows.push({ name: `attention fwd (${variant})`, shape, ms: t, gflops: flops / t / 1e6, note: `${tag}${note}` });
    }
    const f = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(1)}x` : 'n/a (skipped)');
    if (ms[old] && ms[auto]) ratios.push(`${shape}: old ${old} ${ms[old].toFixed(2)} ms -> new ${auto} ${ms[auto].toFixed(2)} ms = ${f(ms[old], ms[auto])} faster (thread/flash ${f(ms.thread, ms.flash)}, workgroup/flash_tiled ${f(ms.workgroup, ms.flash_tiled)}, flash_tiled/flash_sg ${f(ms.flash_tiled, ms.flash_sg)})`);
    else ratios.push(`${shape}: old ${old} ${ms[old] ? `${ms[old].toFixed(2)} ms` : 'skipped'}, new ${auto} ${ms[auto] ? `${ms[auto].toFixed(2)} ms` : 'skipped'}`);
    for (const x of [q, k, v, out]) gpu.free(x);
  }
  // decoding: one new query row against Tk cached keys (generation; flash_split's case), B = 1;
  // 20 s of its own past the prefill's deadline (a call takes milliseconds)
  const decodeDeadline = Number.isFinite(deadline) ? Math.max(deadline, performance.now()) + 20_000 : Infinity;
  // (and one chunk of 8 rows: where 'auto' hands GPUs from flash_split back to flash_tiled, SPLIT_MAX_TQ)
  for (const { Tq = 1, Tk, NH, NKV, HS } of opts.decode ?? [{ Tk: 2048, NH: 8, NKV: 8, HS: 8 }, { Tk: 2048, NH: 32, NKV: 8, HS: 64 }, { Tk: 2048, NH: 32, NKV: 32, HS: 128 }, { Tq: 8, Tk: 2048, NH: 32, NKV: 8, HS: 64 }]) {
    const auto = pickAttentionVariant(gpu, false, Tq, HS);
    const q = gpu.tensor('bench.q', [Tq, NH * HS], 'f32', randn(Tq * NH * HS, 1));
    const k = gpu.tensor('bench.k', [Tk, NKV * HS], 'f32', randn(Tk * NKV * HS, 2));
    const v = gpu.tensor('bench.v', [Tk, NKV * HS], 'f32', randn(Tk * NKV * HS, 3));
    const out = gpu.tensor('bench.out', [Tq, NH * HS]);
    const shape = `Tq=${Tq} Tk=${Tk} NH=${NH} NKV=${NKV} HS=${HS}`;
    const flops = 4 * HS * NH * (Tq * Tk - (Tq * (Tq - 1)) / 2);
    const ms: Record<string, number> = {};
    for (const variant of ATTENTION_VARIANTS.filter((x) => x.startsWith('flash'))) {
      const name = `attention decode (${variant})`;
      if (variant === 'flash_sg' && !hasSubgroup8(gpu)) { rows.push({ name, shape, ms: NaN, note: 'skipped: needs 8-wide subgroups' }); continue; }
      if (performance.now() > decodeDeadline) { rows.push({ name, shape, ms: NaN, note: 'skipped: section time cap' }); continue; }
      const call = () => attentionForward(gpu, { out, q, k, v, B: 1, Tq, Tk, TkMax: Tk, NH, NKV, HS, pos0: Tk - Tq, variant });
      const { ms: t, note } = await measure(gpu, call, budget, { maxReps: 20, maxIters: 7 });
      ms[variant] = t;
      rows.push({ name, shape, ms: t, gflops: flops / t / 1e6, note: `${variant === auto ? 'auto; ' : ''}${note}` });
    }
    if (ms.flash_tiled && ms.flash_split) ratios.push(`decode ${shape}: flash_tiled ${ms.flash_tiled.toFixed(3)} ms, flash_split ${ms.flash_split.toFixed(3)} ms = ${(ms.flash_tiled / ms.flash_split).toFixed(1)}x (auto here: ${auto})`);
    for (const x of [q, k, v, out]) gpu.free(x);
  }
  return { rows, ratios };
}
