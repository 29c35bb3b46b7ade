// Causal GQA attention forward (training and KV-cached decoding) and backward (training).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 64;
export const MAX_HEAD_SIZE = 128;

export interface AttentionForwardArgs {
  out: Tensor; // (B, Tq, NH*HS)
  probs?: Tensor; // (B, NH, Tq, Tk), optional
  q: Tensor; // (B, Tq, NH*HS), RoPE applied
  k: Tensor; // (B, TkMax, NKV*HS)
  v: Tensor; // (B, TkMax, NKV*HS)
  B: number;
  Tq: number;
  Tk: number; // keys visible to the last query (pos0 + Tq)
  TkMax: number; // row capacity of k/v
  NH: number;
  NKV: number;
  HS: number;
  pos0: number; // absolute position of query 0
}

function check(HS: number, NH: number, NKV: number): void {
  if (HS > MAX_HEAD_SIZE) throw new Error(`attention: head size ${HS} exceeds the kernel's maximum ${MAX_HEAD_SIZE}`);
  if (NH % NKV !== 0) throw new Error(`attention: NH=${NH} is not a multiple of NKV=${NKV}`);
}

export function attentionForward(gpu: Gpu, a: AttentionForwardArgs): void {
  check(a.HS, a.NH, a.NKV);
  const params = new Params().u32(a.B, a.Tq, a.Tk, a.TkMax, a.NH, a.NKV, a.HS, a.pos0).f32(1 / Math.sqrt(a.HS)).u32(a.probs ? 1 : 0, 0, 0);
  const bindings: Record<number, Tensor> = { 1: a.q, 2: a.k, 3: a.v, 4: a.out };
  // The kernel declares probs; bind a placeholder-sized real buffer when not writing them.
  bindings[5] = a.probs ?? a.out;
  if (!a.probs) {
    // out is read_write at binding 4; binding the same buffer twice as writable is invalid.
    bindings[5] = scratch(gpu);
  }
  gpu.run({ shader: 'attention', entry: 'forward', constants: { WG } }, { params, bindings, workgroups: gpu.grid(Math.ceil((a.B * a.NH * a.Tq) / WG)) });
}

const scratches = new WeakMap<Gpu, Tensor>();
function scratch(gpu: Gpu): Tensor {
  let t = scratches.get(gpu);
  if (!t) {
    t = gpu.tensor('attention.unused', [4]);
    scratches.set(gpu, t);
  }
  return t;
}

export interface AttentionBackwardArgs {
  dq: Tensor; // (B, T, NH*HS)  assigns
  dk: Tensor; // (B, T, NKV*HS) assigns
  dv: Tensor; // (B, T, NKV*HS) assigns
  dscores: Tensor; // (B, NH, T, T) scratch
  dout: Tensor; // (B, T, NH*HS)
  q: Tensor;
  k: Tensor;
  v: Tensor;
  probs: Tensor; // (B, NH, T, T) from the forward
  dprobsExtra?: Tensor; // (B, NH, T, T) extra gradient into the probabilities
  B: number;
  T: number;
  NH: number;
  NKV: number;
  HS: number;
}

export function attentionBackward(gpu: Gpu, a: AttentionBackwardArgs): void {
  check(a.HS, a.NH, a.NKV);
  const params = () => new Params().u32(a.B, a.T, a.T, a.T, a.NH, a.NKV, a.HS, 0).f32(1 / Math.sqrt(a.HS)).u32(0, a.dprobsExtra ? 1 : 0, 0);
  gpu.run({ shader: 'attention', entry: 'backward_q', constants: { WG } }, {
    params: params(),
    bindings: { 2: a.k, 3: a.v, 6: a.dout, 7: a.probs, 8: a.dprobsExtra ?? a.probs, 9: a.dscores, 10: a.dq },
    workgroups: gpu.grid(Math.ceil((a.B * a.NH * a.T) / WG)),
  });
  gpu.run({ shader: 'attention', entry: 'backward_kv', constants: { WG } }, {
    params: params(),
    bindings: { 1: a.q, 6: a.dout, 7: a.probs, 9: a.dscores, 11: a.dk, 12: a.dv },
    workgroups: gpu.grid(Math.ceil((a.B * a.NKV * a.T) / WG)),
  });
}
