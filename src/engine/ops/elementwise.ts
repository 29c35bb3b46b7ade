// Residual add and friends. out and inputs are flat f32 tensors of n elements.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 256;

/** An element-wise entry over n elements in workgroups of wg: its vec4 twin (`${entry}4`, 4 elements
 *  per invocation) where n % 4 == 0, else the scalar one, and the workgroup count (also SwiGLU's). */
export function vec4Entry(gpu: Gpu, entry: string, n: number, wg: number): { entry: string; workgroups: [number, number] } {
  const v4 = n > 0 && n % 4 === 0; // (an empty tensor binds 4 bytes, under a vec4 binding's 16)
  return { entry: v4 ? `${entry}4` : entry, workgroups: gpu.grid(Math.ceil((v4 ? n / 4 : n) / wg)) };
}

function launch(gpu: Gpu, entry: string, n: number): { shader: { shader: string; entry: string; constants: { WG: number } }; workgroups: [number, number] } {
  const e = vec4Entry(gpu, entry, n, WG);
  return { shader: { shader: 'elementwise', entry: e.entry, constants: { WG } }, workgroups: e.workgroups };
}

/** out = a + b (assigns). The residual add's backward is the identity: dA = dB = dOut. */
export function addForward(gpu: Gpu, out: Tensor, a: Tensor, b: Tensor): void {
  const n = out.numel;
  const l = launch(gpu, 'add', n);
  gpu.run(l.shader, { params: new Params().u32(n).f32(0), bindings: [a, b, out], workgroups: l.workgroups });
}

/** out += alpha * a (accumulates). */
export function axpy(gpu: Gpu, out: Tensor, alpha: number, a: Tensor): void {
  const n = out.numel;
  const l = launch(gpu, 'axpy', n);
  gpu.run(l.shader, { params: new Params().u32(n).f32(alpha), bindings: { 1: a, 3: out }, workgroups: l.workgroups });
}

/** out *= alpha (in place). */
export function scaleInPlace(gpu: Gpu, out: Tensor, alpha: number): void {
  const n = out.numel;
  const l = launch(gpu, 'scale', n);
  gpu.run(l.shader, { params: new Params().u32(n).f32(alpha), bindings: { 3: out }, workgroups: l.workgroups });
}
