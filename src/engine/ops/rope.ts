// RoPE in place on x (B, T, nHeads, HS) at positions pos0 + t. Backward: the inverse rotation.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 64;

function rope(gpu: Gpu, x: Tensor, B: number, T: number, nHeads: number, HS: number, theta: number, pos0: number, sign: number): void {
  const n = B * T * nHeads * (HS / 2);
  gpu.run({ shader: 'rope', constants: { WG } }, { params: new Params().u32(B * T, T, nHeads, HS).f32(theta).u32(pos0).f32(sign).u32(0), bindings: [x], workgroups: gpu.grid(Math.ceil(n / WG)) });
}

export function ropeForward(gpu: Gpu, x: Tensor, B: number, T: number, nHeads: number, HS: number, theta: number, pos0: number): void {
  rope(gpu, x, B, T, nHeads, HS, theta, pos0, 1);
}

/** dx = Rᵀ dy, in place on the gradient. */
export function ropeBackward(gpu: Gpu, dx: Tensor, B: number, T: number, nHeads: number, HS: number, theta: number, pos0: number): void {
  rope(gpu, dx, B, T, nHeads, HS, theta, pos0, -1);
}
