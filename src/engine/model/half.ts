// A frozen fp32 projection stored as f16 (a KD teacher's weights at half the bytes): forward only,
// through ops/matmul-half (fp32 arithmetic on f16-rounded weights). The teacher never back-propagates.
import type { Gpu, Tensor } from '../gpu/runtime';
import { matmulHalfForward } from '../ops/matmul-half';
import { f32ToF16 } from '../io/gguf';
import type { Linear } from './linear';

/** W (N*K) f32 -> IEEE binary16 bits, two per u32 (element 2i in the low half), round to nearest even. */
export function packHalf(w: Float32Array): Uint32Array {
  if (w.length % 2 !== 0) throw new Error(`packHalf: ${w.length} values, need an even count`);
  const out = new Uint32Array(w.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = (f32ToF16(w[2 * i]) | (f32ToF16(w[2 * i + 1]) << 16)) >>> 0;
  return out;
}

export class HalfLinear implements Linear {
  readonly grad = null;
  readonly w: Tensor; // (N, K/2) u32: f16 pairs
  constructor(private readonly gpu: Gpu, label: string, w: Float32Array, readonly N: number, readonly K: number) {
    if (K % 4 !== 0) throw new Error(`HalfLinear ${label}: K = ${K} must be a multiple of 4`);
    this.w = gpu.tensor(`${label}.f16`, [N, K / 2], 'u32', packHalf(w));
  }
  /** K % 4 == 0: the shapes the f16 kernel takes */
  static fits(K: number): boolean {
    return K % 4 === 0;
  }
  get bytes(): number {
    return this.w.bytes;
  }
  forward(out: Tensor, x: Tensor, M: number): void {
    matmulHalfForward(this.gpu, out, x, this.w, M, this.K, this.N);
  }
  backwardInput(): void {
    throw new Error('HalfLinear: an f16 projection is forward only (a frozen teacher)');
  }
  backwardWeight(): void {
    // frozen
  }
  free(gpu: Gpu): void {
    gpu.free(this.w);
  }
}
