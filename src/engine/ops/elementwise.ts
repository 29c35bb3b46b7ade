// Residual add and friends. out and inputs are flat f32 tensors of n elements.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 256;

/** out = a + b (assigns). The residual add's backward is the identity: dA = dB = dOut. */
export function addForward(gpu: Gpu, out: Tensor, a: Tensor, b: Tensor): void {
  const n = out.numel;
  gpu.run({ shader: 'elementwise', entry: 'add', constants: { WG } }, { params: new Params().u32(n).f32(0), bindings: [a, b, out], workgroups: gpu.grid(Math.ceil(n / WG)) });
}

/** out += alpha * a (accumulates). */
export function axpy(gpu: Gpu, out: Tensor, alpha: number, a: Tensor): void {
  const n = out.numel;
  gpu.run({ shader: 'elementwise', entry: 'axpy', constants: { WG } }, { params: new Params().u32(n).f32(alpha), bindings: { 1: a, 3: out }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}

/** out *= alpha (in place). */
export function scaleInPlace(gpu: Gpu, out: Tensor, alpha: number): void {
  const n = out.numel;
  gpu.run({ shader: 'elementwise', entry: 'scale', constants: { WG } }, { params: new Params().u32(n).f32(alpha), bindings: { 3: out }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}
