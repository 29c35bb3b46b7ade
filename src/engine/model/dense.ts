// fp32 projection: W (N, K) on the GPU, optionally trainable (its gradient lives beside it).
import type { Gpu, Tensor } from '../gpu/runtime';
import { matmulBackwardInput, matmulBackwardWeight, matmulForward } from '../ops/matmul';
import type { Linear } from './linear';

export class DenseLinear implements Linear {
  readonly grad: Tensor | null;
  constructor(
    private readonly gpu: Gpu,
    readonly w: Tensor, // (N, K) f32
    readonly N: number,
    readonly K: number,
    /** true: own a new gradient tensor; a Tensor: accumulate into that one (tied embeddings) */
    grad: boolean | Tensor,
    private readonly ownsWeight = true,
  ) {
    this.grad = grad === true ? gpu.tensor(`${w.label}.grad`, [N, K]) : grad === false ? null : grad;
    this.ownsGrad = grad === true;
  }
  private readonly ownsGrad: boolean;
  get bytes(): number {
    return this.w.bytes;
  }
  forward(out: Tensor, x: Tensor, M: number): void {
    matmulForward(this.gpu, out, x, this.w, M, this.K, this.N);
  }
  backwardInput(dx: Tensor, dout: Tensor, M: number, accumulate: boolean): void {
    matmulBackwardInput(this.gpu, dx, dout, this.w, M, this.K, this.N, { accumulate });
  }
  backwardWeight(dout: Tensor, x: Tensor, M: number): void {
    if (this.grad) matmulBackwardWeight(this.gpu, this.grad, dout, x, M, this.K, this.N);
  }
  free(gpu: Gpu): void {
    if (this.ownsWeight) gpu.free(this.w);
    if (this.ownsGrad) gpu.free(this.grad);
  }
}
