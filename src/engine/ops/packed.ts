// A packed low-bit weight on the GPU (layout: src/engine/format/pack.ts). Its own module so that
// the kernels that read it (qmatmul) and the ones that write it (fakequant) can use each other.
import type { Tensor } from '../gpu/runtime';
import type { QuantLayout } from '../format/pack';

export interface GpuPacked {
  layout: QuantLayout;
  codes: Tensor; // (N, wordsPerRow) u32
  scales: Tensor; // (N, nBlocks) f32
  zeros: Tensor; // (N, nBlocks) f32, integer-valued
}
