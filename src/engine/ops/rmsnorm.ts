// RMSNorm over rows of C. forward writes y (rows, C) and rstd (rows); backward: dx (assigns),
// dw (accumulates; skipped when dw is null, e.g. a frozen norm).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 64;

export function rmsnormForward(gpu: Gpu, y: Tensor, rstd: Tensor, x: Tensor, w: Tensor, rows: number, C: number, eps: number): void {
  gpu.run({ shader: 'rmsnorm', entry: 'forward', constants: { WG } }, { params: new Params().u32(rows, C).f32(eps).u32(0), bindings: { 1: x, 2: w, 3: y, 4: rstd }, workgroups: gpu.grid(Math.ceil(rows / WG)) });
}

export function rmsnormBackward(gpu: Gpu, dx: Tensor, dw: Tensor | null, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, C: number): void {
  const params = () => new Params().u32(rows, C).f32(0).u32(0);
  gpu.run({ shader: 'rmsnorm', entry: 'backward_dx', constants: { WG } }, { params: params(), bindings: { 1: x, 2: w, 5: dy, 6: rstd, 7: dx }, workgroups: gpu.grid(Math.ceil(rows / WG)) });
  if (dw) gpu.run({ shader: 'rmsnorm', entry: 'backward_dw', constants: { WG } }, { params: params(), bindings: { 1: x, 5: dy, 6: rstd, 8: dw }, workgroups: [Math.ceil(C / WG)] });
}
