// fp32 matmul figures: GEMV (M = 1; strided register-tiled kernel and the workgroup-reduction GEMV)
// and GEMM (M = 256) at square LLaMA-like shapes.
import type { Gpu } from '../src/engine/gpu/runtime';
import { matmulForward } from '../src/engine/ops/matmul';
import { randn } from '../src/engine/testing';
import { timeIt, type BenchRow } from './types';

export async function benchMatmul(gpu: Gpu, sizes = [256, 512, 1024, 2048]): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const K of sizes) {
    const N = K;
    const w = gpu.tensor('bench.w', [N, K], 'f32', randn(N * K, 1, 0.05));
    for (const M of [1, 256]) {
      const x = gpu.tensor('bench.x', [M, K], 'f32', randn(M * K, 2));
      const y = gpu.tensor('bench.y', [M, N]);
      const variants = M === 1 ? (['regtile', 'gemv'] as const) : (['regtile'] as const);
      for (const v of variants) {
        const reps = M === 1 ? 20 : 2;
        const ms =
          (await timeIt(async () => {
            for (let r = 0; r < reps; r++) matmulForward(gpu, y, x, w, M, K, N, { variant: v === 'gemv' ? 'gemv' : undefined });
            await gpu.sync();
          }, M === 1 ? 5 : 3, 1)) / reps;
        const flops = 2 * M * N * K;
        const bytes = 4 * (N * K + M * K + M * N);
        rows.push({ name: `fp32 ${M === 1 ? 'gemv' : 'gemm'} (${v})`, shape: `M=${M} K=${K} N=${N}`, ms, gflops: flops / ms / 1e6, gbps: bytes / ms / 1e6 });
      }
      gpu.free(x);
      gpu.free(y);
    }
    gpu.free(w);
  }
  return rows;
}
