// SwiGLU activation over n = rows*H elements: out = silu(gate) * up. See shaders/swiglu.wgsl.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 256;

/** The vec4 entry where n % 4 == 0 (4 elements per invocation), else the scalar one. */
function entryOf(gpu: Gpu, entry: string, n: number): { entry: string; workgroups: [number, number] } {
  const v4 = n > 0 && n % 4 === 0; // (an empty tensor binds 4 bytes, under a vec4 binding's 16)
  return { entry: v4 ? `${entry}4` : entry, workgroups: gpu.grid(Math.ceil((v4 ? n / 4 : n) / WG)) };
}

function need(op: string, name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${op}: ${name} "${t.label}" has ${t.numel} elements, needs ${n}`);
}

/** out (rows, H) = silu(gate) * up (assigns); gate, up (rows, H) f32; n = rows*H. */
export function swigluForward(gpu: Gpu, out: Tensor, gate: Tensor, up: Tensor, n: number): void {
  for (const [name, t] of [['out', out], ['gate', gate], ['up', up]] as const) need('swigluForward', name, t, n);
  const e = entryOf(gpu, 'forward', n);
  gpu.run({ shader: 'swiglu', entry: e.entry, constants: { WG } }, { params: new Params().u32(n), bindings: { 1: gate, 2: up, 3: out }, workgroups: e.workgroups });
}

/** dgate, dup (rows, H) from dout (rows, H) (both assign). */
export function swigluBackward(gpu: Gpu, dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor, n: number): void {
  for (const [name, t] of [['dgate', dgate], ['dup', dup], ['dout', dout], ['gate', gate], ['up', up]] as const) need('swigluBackward', name, t, n);
  const e = entryOf(gpu, 'backward', n);
  gpu.run({ shader: 'swiglu', entry: e.entry, constants: { WG } }, { params: new Params().u32(n), bindings: { 1: gate, 2: up, 4: dout, 5: dgate, 6: dup }, workgroups: e.workgroups });
}
