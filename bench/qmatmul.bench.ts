// int4 (group 32, asymmetric) packed matmul figures at the same shapes as the fp32 bench.
import type { Gpu } from '../src/engine/gpu/runtime';
import { qmatmulForward, type GpuPacked } from '../src/engine/ops/qmatmul';
import { quantizeHost } from '../src/engine/quant/pack';
import { randn } from '../src/engine/testing';
import { timeIt, type BenchRow } from './types';

export async function benchQmatmul(gpu: Gpu, sizes = [256, 512, 1024, 2048]): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const K of sizes) {
    const N = K;
    const p = quantizeHost(randn(N * K, 1, 0.05), N, K, { bits: 4, group: 32, sym: false });
    const w: GpuPacked = {
      layout: p,
      codes: gpu.tensor('bench.codes', [N, p.wordsPerRow], 'u32', p.codes),
      scales: gpu.tensor('bench.scales', [N, p.nBlocks], 'f32', p.scales),
      zeros: gpu.tensor('bench.zeros', [N, p.nBlocks], 'f32', p.zeros),
    };
    const packed = w.codes.bytes + w.scales.bytes + w.zeros.bytes;
    for (const M of [1, 256]) {
      const x = gpu.tensor('bench.x', [M, K], 'f32', randn(M * K, 2));
      const y = gpu.tensor('bench.y', [M, N]);
      const variants = M === 1 ? (['gemm', 'gemv', 'gemv_rows'] as const) : (['gemm'] as const);
      for (const v of variants) {
        const reps = M === 1 ? 20 : 2;
        const ms =
          (await timeIt(async () => {
            for (let r = 0; r < reps; r++) qmatmulForward(gpu, y, x, w, M, v);
            await gpu.sync();
          }, M === 1 ? 5 : 3, 1)) / reps;
        rows.push({ name: `int4 ${M === 1 ? 'gemv' : 'gemm'} (${v})`, shape: `M=${M} K=${K} N=${N}`, ms, gflops: (2 * M * N * K) / ms / 1e6, gbps: (packed + 4 * (M * K + M * N)) / ms / 1e6 });
      }
      gpu.free(x);
      gpu.free(y);
    }
    for (const t of [w.codes, w.scales, w.zeros]) gpu.free(t);
  }
  return rows;
}
