// fp32 matmul figures (shaders/matmul.wgsl), forward y = x·Wᵀ at square LLaMA-like shapes K = N:
// GEMV (M = 1, decode; each variant's GEMV path) and GEMM (M = 256), for each kernel variant:
//   regtile  register tiles, no workgroup memory (CPU Vulkan's choice)
//   shared   workgroup-memory tiles / workgroup-reduction GEMV (real GPUs' choice)
// Iterations scale down with the work so the whole run stays under about a minute on CPU Vulkan.
// GB/s counts the bytes of W, x and y once per call (the GEMV roofline figure).
import type { Gpu } from '../src/engine/gpu/runtime';
import { MATMUL_VARIANTS, matmulForward, pickMatmulVariant } from '../src/engine/ops/matmul';
import { randn } from '../src/engine/testing';
import { timeIt, type BenchRow } from './types';

export interface MatmulBenchOpts {
  sizes?: number[];
  rows?: number[];
  /** stop adding iterations once this much (estimated) time per case is spent, ms */
  budgetMs?: number;
}

export async function benchMatmul(gpu: Gpu, opts: MatmulBenchOpts = {}): Promise<BenchRow[]> {
  const sizes = opts.sizes ?? [64, 256, 512, 1024, 2048];
  const Ms = opts.rows ?? [1, 256];
  const budget = opts.budgetMs ?? 1500;
  const auto = pickMatmulVariant(gpu);
  const rows: BenchRow[] = [];
  for (const K of sizes) {
    const N = K;
    const w = gpu.tensor('bench.w', [N, K], 'f32', randn(N * K, 1, 0.05));
    for (const M of Ms) {
      const x = gpu.tensor('bench.x', [M, K], 'f32', randn(M * K, 2));
      const y = gpu.tensor('bench.y', [M, N]);
      for (const variant of MATMUL_VARIANTS) {
        const call = () => matmulForward(gpu, y, x, w, M, K, N, { variant });
        // one untimed call compiles the pipeline; one timed call sizes the repetitions
        call();
        await gpu.sync();
        const t0 = performance.now();
        call();
        await gpu.sync();
        const once = Math.max(performance.now() - t0, 1e-3);
        // several calls per sync amortise the submit/readback round trip for tiny shapes
        const reps = Math.max(1, Math.min(50, Math.floor(budget / 10 / once)));
        const iters = Math.max(1, Math.min(7, Math.floor(budget / (once * reps))));
        const ms =
          (await timeIt(async () => {
            for (let r = 0; r < reps; r++) call();
            await gpu.sync();
          }, iters, 0)) / reps;
        const flops = 2 * M * N * K;
        const bytes = 4 * (N * K + M * K + M * N);
        rows.push({
          name: `fp32 ${M === 1 ? 'gemv' : 'gemm'} (${variant})`,
          shape: `M=${M} K=${K} N=${N}`,
          ms,
          gflops: flops / ms / 1e6,
          gbps: bytes / ms / 1e6,
          note: `${variant === auto ? 'auto; ' : ''}${iters}x${reps}`,
        });
      }
      gpu.free(x);
      gpu.free(y);
    }
    gpu.free(w);
  }
  return rows;
}
