// SwiGLU activation over n elements: out = silu(gate) * up. Backward assigns dgate and dup.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 256;

export function swigluForward(gpu: Gpu, out: Tensor, gate: Tensor, up: Tensor, n: number): void {
  gpu.run({ shader: 'swiglu', entry: 'forward', constants: { WG } }, { params: new Params().u32(n), bindings: { 1: gate, 2: up, 3: out }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}

export function swigluBackward(gpu: Gpu, dgate: Tensor, dup: Tensor, dout: Tensor, gate: Tensor, up: Tensor, n: number): void {
  gpu.run({ shader: 'swiglu', entry: 'backward', constants: { WG } }, { params: new Params().u32(n), bindings: { 1: gate, 2: up, 4: dout, 5: dgate, 6: dup }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}
