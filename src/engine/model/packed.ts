// A frozen low-bit projection for inference: forward and dX through the packed kernels (GEMV for
// one row, GEMM otherwise), never expanding the weight to fp32.
import type { Gpu, Tensor } from '../gpu/runtime';
import { qmatmulBackwardInput, qmatmulForward, type GpuPacked } from '../ops/qmatmul';
import type { PackedWeight } from '../format/pack';
import type { Linear } from './linear';

export function uploadPacked(gpu: Gpu, label: string, p: PackedWeight): GpuPacked {
  return {
    layout: { N: p.N, K: p.K, bits: p.bits, group: p.group, nBlocks: p.nBlocks, cpw: p.cpw, wordsPerRow: p.wordsPerRow, qmax: p.qmax },
    codes: gpu.tensor(`${label}.codes`, [p.N, p.wordsPerRow], 'u32', p.codes),
    scales: gpu.tensor(`${label}.scales`, [p.N, p.nBlocks], 'f32', p.scales),
    zeros: gpu.tensor(`${label}.zeros`, [p.N, p.nBlocks], 'f32', p.zeros),
  };
}

export class PackedLinear implements Linear {
  readonly grad = null;
  constructor(private readonly gpu: Gpu, readonly w: GpuPacked) {}
  get N(): number {
    return this.w.layout.N;
  }
  get K(): number {
    return this.w.layout.K;
  }
  get bytes(): number {
    return this.w.codes.bytes + this.w.scales.bytes + this.w.zeros.bytes;
  }
  forward(out: Tensor, x: Tensor, M: number): void {
    qmatmulForward(this.gpu, out, x, this.w, M);
  }
  backwardInput(dx: Tensor, dout: Tensor, M: number, accumulate: boolean): void {
    qmatmulBackwardInput(this.gpu, dx, dout, this.w, M, accumulate);
  }
  backwardWeight(): void {
    // frozen
  }
  free(gpu: Gpu): void {
    gpu.free(this.w.codes);
    gpu.free(this.w.scales);
    gpu.free(this.w.zeros);
  }
}
