// In-browser kernel benchmark: our int4 GEMV/GEMM against onnxruntime-web's MatMulNBits on the
// webgpu provider, and against our fp32 GEMV, same adapter, same shapes, one run. Both sides are
// timed the same way: upload the activations, run, read the result back (ORT's session.run does
// exactly that with CPU tensors), median over repetitions. Figures are printed, never asserted.
import type * as OrtNs from 'onnxruntime-web';
import type { Gpu } from '../gpu/runtime';
import { matmulForward } from '../ops/matmul';
import { qmatmulForward } from '../ops/qmatmul';
import { uploadPacked } from '../model/packed';
import { quantizeHost } from './pack';
import { exportMatMulNBitsOnly } from './onnx';
import { seeded } from '../ops/kernel-choice';

export interface KernelBenchRow {
  shape: string;
  oursInt4Ms: number;
  ortInt4Ms: number;
  oursFp32Ms: number; // the faster of our fp32 kernels (register-tiled, workgroup GEMV)
  ortOverOurs: number; // > 1: ours is faster
  int4OverFp32: number; // our int4 time / our fp32 time
}

async function median(fn: () => Promise<void>, reps: number): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}

export async function benchKernels(gpu: Gpu, ort: typeof OrtNs, shapes: [number, number, number][] = [[1, 512, 512], [1, 1024, 1024], [1, 2048, 2048], [64, 1024, 1024]], reps = 7): Promise<KernelBenchRow[]> {
  const rows: KernelBenchRow[] = [];
  for (const [M, K, N] of shapes) {
    const wf = seeded(N * K, K + N);
    const p = quantizeHost(wf, N, K, { bits: 4, group: 32, sym: false });
    const x = seeded(M * K, 7);
    const packed = uploadPacked(gpu, 'bench', p);
    const tw = gpu.tensor('bench.w', [N, K], 'f32', wf), tx = gpu.tensor('bench.x', [M, K]), ty = gpu.tensor('bench.y', [M, N]);
    const ours = await median(async () => {
      gpu.write(tx, x);
      qmatmulForward(gpu, ty, tx, packed, M);
      await gpu.readF32(ty);
    }, reps);
    // the faster of our two fp32 kernels at this shape
    const fp32Of = (variant?: 'gemv') => median(async () => {
      gpu.write(tx, x);
      matmulForward(gpu, ty, tx, tw, M, K, N, { variant });
      await gpu.readF32(ty);
    }, reps);
    const fp32 = M === 1 ? Math.min(await fp32Of(), await fp32Of('gemv')) : await fp32Of();
    const session = await ort.InferenceSession.create(exportMatMulNBitsOnly(p, M), { executionProviders: ['webgpu'] });
    const feeds = { A: new ort.Tensor('float32', x, [M, K]) };
    const theirs = await median(async () => {
      await session.run(feeds);
    }, reps);
    await session.release();
    for (const t of [packed.codes, packed.scales, packed.zeros, tw, tx, ty]) gpu.free(t);
    rows.push({ shape: `M=${M} K=${K} N=${N}`, oursInt4Ms: ours, ortInt4Ms: theirs, oursFp32Ms: fp32, ortOverOurs: theirs / ours, int4OverFp32: ours / fp32 });
  }
  return rows;
}
