// A projection y = x·Wᵀ as the model sees it: dense fp32, or packed low-bit (the quantized
// student and quantized inference). The model code calls these and never branches on the kind.
import type { Gpu, Tensor } from '../gpu/runtime';

export interface Linear {
  readonly N: number; // out features
  readonly K: number; // in features
  /** out (M, N) = x (M, K) · Wᵀ (assigns) */
  forward(out: Tensor, x: Tensor, M: number): void;
  /** dx (M, K) (=, or += when accumulate) dout (M, N) · W */
  backwardInput(dx: Tensor, dout: Tensor, M: number, accumulate: boolean): void;
  /** dW (N, K) += doutᵀ · x, into the gradient this linear owns; no-op when frozen */
  backwardWeight(dout: Tensor, x: Tensor, M: number): void;
  /** the fp32 gradient of the trainable weight, if any */
  readonly grad: Tensor | null;
  /** bytes of GPU memory the weight takes */
  readonly bytes: number;
  free(gpu: Gpu): void;
}
