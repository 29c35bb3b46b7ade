import { existsSync } from 'node:fs';
import type { Gpu } from '../src/engine/gpu/runtime';
import { join, resolve } from 'node:path';
// One measured row of `npm run bench`. Figures are printed, never asserted.
export interface BenchRow {
  name: string; // e.g. "fp32 gemv"
  shape: string; // e.g. "M=1 K=2048 N=2048"
  ms: number; // median wall time per call, GPU-synchronised
  gflops?: number;
  gbps?: number;
  /** GB/s by the kernel's own GPU time (timestamp queries), without the gaps between dispatches
   *  that the wall time per call includes: what a memory-bound kernel's fraction of the GPU's
   *  bandwidth is judged by (int4 GEMV rows, where the adapter has timestamps) */
  kernelGbps?: number;
  note?: string;
}

/** Median time of fn() in ms over `iters` runs after `warmup` runs; fn must await GPU completion. */
export async function timeIt(fn: () => Promise<void>, iters = 10, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

/** Median ms per call of `call` (dispatches only; this awaits the GPU): one untimed call compiles
 *  the pipeline, one timed call sizes the repetitions, then up to maxIters rounds of up to maxReps
 *  calls per sync (several calls per sync amortise the submit/readback round trip of short calls),
 *  about `budget` ms in all. note: "iters x reps". */
export async function measure(gpu: Gpu, call: () => void, budget: number, caps: { maxReps?: number; maxIters?: number } = {}): Promise<{ ms: number; note: string }> {
  call();
  await gpu.sync();
  const t0 = performance.now();
  call();
  await gpu.sync();
  const once = Math.max(performance.now() - t0, 1e-3);
  const reps = Math.max(1, Math.min(caps.maxReps ?? 50, Math.floor(budget / 10 / once)));
  const iters = Math.max(1, Math.min(caps.maxIters ?? 5, Math.floor(budget / (once * reps))));
  const ms = (await timeIt(async () => {
    for (let r = 0; r < reps; r++) call();
    await gpu.sync();
  }, iters, 0)) / reps;
  return { ms, note: `${iters}x${reps}` };
}

/** The pythons a bench may run, in order: `first` (an override such as $QUENCH_NUMPY_PYTHON),
 *  python3 on PATH, Debian's /usr/bin/python3; those that exist, each path once. Paths are kept
 *  as found, not resolved: a venv's bin/python3 is a symlink to the base interpreter, and run
 *  through its resolved path it loses the venv's packages (torch, numpy). */
export function hostPythons(first?: string): string[] {
  const onPath = (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, 'python3')).find((f) => existsSync(f));
  return [...new Set([first, onPath, '/usr/bin/python3'].filter((p): p is string => !!p && existsSync(p)).map((p) => resolve(p)))];
}

/** Bytes a GEMV bench's round of weight copies spans: ~4x the largest last-level GPU cache it is
 *  run on (H200 / H100: 50 MB of L2), so that each call reads its weights from memory, not from
 *  the cache the previous call filled. One 4096² int4 matrix (12.6 MB with its scales and zeros)
 *  stays in an H200's L2 between calls, and the "fraction of memory bandwidth" would then be a
 *  cache's. */
export const COLD_ROUND_BYTES = 200 * 2 ** 20;
/** Weight copies a GEMV bench rotates through: enough for COLD_ROUND_BYTES, at most 64 (small
 *  matrices stay cache-resident anyway; the note says how many). */
export function coldCopies(bytesPerCopy: number): number {
  return Math.max(1, Math.min(64, Math.ceil(COLD_ROUND_BYTES / bytesPerCopy)));
}
