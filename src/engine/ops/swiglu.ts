// SwiGLU activation over n = rows*H elements: out = silu(gate) * up. See shaders/swiglu.wgsl.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import { vec4Entry } from './elementwise';

const WG = 256;


function need(op: string, name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${op}: ${name} "${t.label}" has ${t.numel} elements, needs ${n}`);
}

/** out (rows, H) = silu(gate) * up (assigns); gate, up (rows, H) f32; n = rows*H. */
export function swigluForward(gpu: Gpu, out: Tensor, gate: Tensor, up: Tensor, n: number): void {
  for (const [name, t] of [['out', out], ['gate', gate], ['up', up]] as const) need('swigluForward', name, t, n);
  const e = vec4Entry(gpu, 'forward', n, WG);
  gpu.run({ shader: 'swiglu', entry: e.entry, constants: { WG } }, { params: new Params().u32(n), bindings: { 1: gate, 2: up, 3: out }, workgroups: e.workgroups });
}

/** dgate, dup (rows, H) from dout (rows, H) (both assign). */
export function swigluBackward(gpu: Gpu, dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor, n: number): void {
  for (const [name, t] of [['dgate', dgate], ['dup', dup], ['dout', dout], ['gate', gate], ['up', up]] as const) need('swigluBackward', name, t, n);
  const e = vec4Entry(gpu, 'backward', n, WG);
  gpu.run({ shader: 'swiglu', entry: e.entry, constants: { WG } }, { params: new Params().u32(n), bindings: { 1: gate, 2: up, 4: dout, 5: dgate, 6: dup }, workgroups: e.workgroups });
}
