// The QAT student's projection: fp32 latent weights; its forward is the packed low-bit matmul on
// the weights quantized from the latents (requantize() each step, so the forward we train is the
// inference we ship); its backward passes dX through the quantized weights and the weight gradient
// through the straight-through estimator into the latents. A frozen projection is quantized once,
// keeps those codes for the whole run, and never computes a weight gradient: it keeps only its
// packed codes, scales and zeros (its fp32 latent is freed once quantized).
import type { Gpu, Tensor } from '../gpu/runtime';
import { matmulBackwardWeight } from '../ops/matmul';
import { qmatmulBackwardInput, qmatmulForward, type GpuPacked } from '../ops/qmatmul';
import { allocPacked, freePacked, quantizePack, steBackward, steLsqBackward } from '../ops/fakequant';
import { layoutOf, type Bits } from '../format/pack';
import type { Linear } from './linear';

export interface QatOptions {
  bits: Bits;
  group: number;
  sym: boolean;
  /** clip ratio for the min/max scales (1 = plain min/max) */
  clip?: number;
  frozen: boolean;
  /** learned scales (LSQ): start from the min/max scales, then keep them (zeros stay fixed) and
   *  give them a gradient (scaleGrad) for the optimizer; otherwise min/max every step */
  learnScales?: boolean;
  /** starting scales and zeros (N, nBlocks), e.g. from the PTQ clip search; used by frozen
   *  projections (quantized once, with these) and by learned scales (their starting point) */
  init?: { scales: Float32Array; zeros: Float32Array };
  /** scratch for d(quantized weight), at least N·K f32, shared by the projections of one model
   *  (used one at a time in the backward); without it the projection allocates its own */
  dwq?: Tensor;
}

export class QatLinear implements Linear {
  /** (N, K) f32; null for a frozen projection (freed after its one quantization) */
  latent: Tensor | null;
  readonly grad: Tensor | null; // (N, K) latent gradient (accumulates)
  readonly packed: GpuPacked;
  private readonly dwq: Tensor | null; // (N, K) scratch: gradient wrt the quantized weight (shared or owned)
  private readonly ownsDwq: boolean;
  /** (N, nBlocks) LSQ step-size gradient (accumulates; zeroed by the owner), learned scales only */
  readonly scaleGrad: Tensor | null;
  private quantizedOnce = false;
  constructor(private readonly gpu: Gpu, label: string, w: Float32Array, readonly N: number, readonly K: number, readonly opts: QatOptions) {
    this.latent = gpu.tensor(`${label}.latent`, [N, K], 'f32', w);
    this.packed = allocPacked(gpu, label, layoutOf(N, K, opts.bits, opts.group));
    this.grad = opts.frozen ? null : gpu.tensor(`${label}.grad`, [N, K]);
    if (!opts.frozen && opts.dwq && opts.dwq.numel < N * K) throw new Error(`QatLinear ${label}: the shared dwq scratch "${opts.dwq.label}" has ${opts.dwq.numel} elements, needs ${N * K}`);
    this.ownsDwq = !opts.frozen && !opts.dwq;
    this.dwq = opts.frozen ? null : (opts.dwq ?? gpu.tensor(`${label}.dwq`, [N, K]));
    this.scaleGrad = opts.frozen || !opts.learnScales ? null : gpu.tensor(`${label}.scale_grad`, [...this.packed.scales.shape]);
    if (opts.init && (opts.frozen || opts.learnScales)) {
      gpu.write(this.packed.scales, opts.init.scales);
      gpu.write(this.packed.zeros, opts.init.zeros);
      this.quantizedOnce = true;
    }
    this.quantize();
    if (opts.frozen) {
      gpu.free(this.latent);
      this.latent = null;
    }
  }
  get frozen(): boolean {
    return this.opts.frozen;
  }
  get bytes(): number {
    return (this.latent?.bytes ?? 0) + this.packed.codes.bytes + this.packed.scales.bytes + this.packed.zeros.bytes;
  }
  /** Recompute scales and codes from the latents (skipped for frozen projections). */
  requantize(): void {
    if (!this.opts.frozen) this.quantize();
  }
  /** What requantize() would pack, for quantizePackMany (many projections per dispatch); null
   *  when frozen. Taking it counts as quantized. */
  requantizeJob(): { out: GpuPacked; w: Tensor; sym: boolean; clip: number; keepScales: boolean } | null {
    return this.opts.frozen ? null : this.packJob();
  }
  /** The pack of the latents: scales kept once set when they are learned (LSQ) or frozen. */
  private packJob(): { out: GpuPacked; w: Tensor; sym: boolean; clip: number; keepScales: boolean } {
    const job = { out: this.packed, w: this.latent!, sym: this.opts.sym, clip: this.opts.clip ?? 1, keepScales: this.quantizedOnce && (this.scaleGrad !== null || this.opts.frozen) };
    this.quantizedOnce = true;
    return job;
  }
  private quantize(): void {
    const j = this.packJob();
    quantizePack(this.gpu, j.out, j.w, j);
  }
  forward(out: Tensor, x: Tensor, M: number): void {
    qmatmulForward(this.gpu, out, x, this.packed, M);
  }
  backwardInput(dx: Tensor, dout: Tensor, M: number, accumulate: boolean): void {
    qmatmulBackwardInput(this.gpu, dx, dout, this.packed, M, accumulate);
  }
  backwardWeight(dout: Tensor, x: Tensor, M: number): void {
    if (!this.grad || !this.dwq || !this.latent) return;
    // dwq (N, K) = doutᵀ·x (assigned: the scratch needs no clearing), then into the latents
    // through the STE (and, with learned scales, the LSQ step-size gradient in the same pass)
    matmulBackwardWeight(this.gpu, this.dwq, dout, x, M, this.K, this.N, { assign: true });
    if (this.scaleGrad) steLsqBackward(this.gpu, this.grad, this.scaleGrad, this.dwq, this.latent, this.packed);
    else steBackward(this.gpu, this.grad, this.dwq, this.latent, this.packed);
  }
  free(gpu: Gpu): void {
    gpu.free(this.latent);
    gpu.free(this.grad);
    if (this.ownsDwq) gpu.free(this.dwq);
    gpu.free(this.scaleGrad);
    freePacked(gpu, this.packed);
  }
}
