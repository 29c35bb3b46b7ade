// Causal GQA attention forward (training and KV-cached decoding) and backward (training).
// Kernels: shaders/attention.wgsl. CPU reference: src/engine/ref/attention.ts.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import { isSoftwareAdapter } from './qmatmul';

const WG = 64;
/** Largest head size: the per-thread kernels hold HS accumulators per thread (MAX_HS in the WGSL);
 *  the workgroup kernels need HS <= 2·WG (= 128 with the default WG). */
export const MAX_HEAD_SIZE = 128;

/** 'thread': one thread per row, barrier-free (CPU Vulkan: lavapipe, SwiftShader).
 *  'workgroup': one workgroup per row with tree reductions (real GPUs).
 *  'auto': 'thread' on software adapters, else 'workgroup'. */
export type AttentionVariant = 'auto' | 'thread' | 'workgroup';

export interface AttentionForwardArgs {
  out: Tensor; // (B, Tq, NH*HS) assigns
  probs?: Tensor; // (B, NH, Tq, Tk) assigns, zero above the causal diagonal; optional
  q: Tensor; // (B, Tq, NH*HS), RoPE applied
  k: Tensor; // (B, TkMax, NKV*HS), RoPE applied; rows >= Tk are never read
  v: Tensor; // (B, TkMax, NKV*HS)
  B: number;
  Tq: number; // query rows
  /** keys valid in k/v (default pos0 + Tq; must be >= pos0 + Tq): query t sees keys 0..pos0+t */
  Tk?: number;
  /** row capacity (row stride) of k/v, e.g. the KV-cache length (default Tk) */
  TkMax?: number;
  NH: number;
  NKV: number;
  HS: number;
  /** absolute position of query 0 (0 for training; the cache fill level when decoding) */
  pos0: number;
  variant?: AttentionVariant;
}

function check(HS: number, NH: number, NKV: number): void {
  if (!(HS >= 1 && HS <= MAX_HEAD_SIZE)) throw new Error(`attention: head size ${HS} outside the kernels' range 1..${MAX_HEAD_SIZE}`);
  if (HS > 2 * WG) throw new Error(`attention: head size ${HS} exceeds 2·WG = ${2 * WG}`);
  if (NKV < 1 || NH % NKV !== 0) throw new Error(`attention: NH=${NH} is not a multiple of NKV=${NKV}`);
}

function need(name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`attention: ${name} "${t.label}" has ${t.numel} elements, needs ${n}`);
}

function pick(gpu: Gpu, v: AttentionVariant | undefined): 'thread' | 'workgroup' {
  const x = v ?? 'auto';
  return x === 'auto' ? (isSoftwareAdapter(gpu) ? 'thread' : 'workgroup') : x;
}

export function attentionForward(gpu: Gpu, a: AttentionForwardArgs): void {
  check(a.HS, a.NH, a.NKV);
  const Tk = a.Tk ?? a.pos0 + a.Tq;
  const TkMax = a.TkMax ?? Tk;
  if (Tk < a.pos0 + a.Tq) throw new Error(`attention: Tk=${Tk} keys cannot serve queries at positions ${a.pos0}..${a.pos0 + a.Tq - 1}`);
  if (TkMax < Tk) throw new Error(`attention: Tk=${Tk} exceeds the k/v row capacity TkMax=${TkMax}`);
  const { B, Tq, NH, NKV, HS } = a;
  need('q', a.q, B * Tq * NH * HS);
  need('out', a.out, B * Tq * NH * HS);
  need('k', a.k, B * TkMax * NKV * HS);
  need('v', a.v, B * TkMax * NKV * HS);
  if (a.probs) need('probs', a.probs, B * NH * Tq * Tk);
  const params = new Params().u32(B, Tq, Tk, TkMax, NH, NKV, HS, a.pos0).f32(1 / Math.sqrt(HS)).u32(a.probs ? 1 : 0, 0, 0);
  // The kernel declares probs; when not writing them, bind a tiny scratch (binding `out` twice as
  // read_write storage would be invalid).
  const bindings: Record<number, Tensor> = { 1: a.q, 2: a.k, 3: a.v, 4: a.out, 5: a.probs ?? scratch(gpu) };
  const rows = B * NH * Tq;
  if (pick(gpu, a.variant) === 'workgroup') gpu.run({ shader: 'attention', entry: 'forward_wg', constants: { WG } }, { params, bindings, workgroups: gpu.grid(rows) });
  else gpu.run({ shader: 'attention', entry: 'forward', constants: { WG } }, { params, bindings, workgroups: gpu.grid(Math.ceil(rows / WG)) });
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
  dk: Tensor; // (B, T, NKV*HS) assigns (summed over the NH/NKV query heads of each kv head)
  dv: Tensor; // (B, T, NKV*HS) assigns (same)
  dscores: Tensor; // (B, NH, T, T) scratch: dS (pre-scale score gradient; above the diagonal unspecified)
  dout: Tensor; // (B, T, NH*HS)
  q: Tensor; // (B, T, NH*HS) as given to the forward
  k: Tensor; // (B, T, NKV*HS)
  v: Tensor; // (B, T, NKV*HS)
  probs: Tensor; // (B, NH, T, T) from the forward
  dprobsExtra?: Tensor; // (B, NH, T, T) extra gradient into the probabilities, added to dout·vᵀ
  B: number;
  T: number;
  NH: number;
  NKV: number;
  HS: number;
  variant?: AttentionVariant;
}

/** Training backward (Tq = Tk = T, pos0 = 0). */
export function attentionBackward(gpu: Gpu, a: AttentionBackwardArgs): void {
  check(a.HS, a.NH, a.NKV);
  const { B, T, NH, NKV, HS } = a;
  for (const [n, t] of [['dq', a.dq], ['dout', a.dout], ['q', a.q]] as const) need(n, t, B * T * NH * HS);
  for (const [n, t] of [['dk', a.dk], ['dv', a.dv], ['k', a.k], ['v', a.v]] as const) need(n, t, B * T * NKV * HS);
  for (const [n, t] of [['dscores', a.dscores], ['probs', a.probs]] as const) need(n, t, B * NH * T * T);
  if (a.dprobsExtra) need('dprobsExtra', a.dprobsExtra, B * NH * T * T);
  const params = () => new Params().u32(B, T, T, T, NH, NKV, HS, 0).f32(1 / Math.sqrt(HS)).u32(0, a.dprobsExtra ? 1 : 0, 0);
  const wg = pick(gpu, a.variant) === 'workgroup';
  const sfx = wg ? '_wg' : '';
  const grid = (rows: number) => gpu.grid(wg ? rows : Math.ceil(rows / WG));
  gpu.run({ shader: 'attention', entry: `backward_q${sfx}`, constants: { WG } }, {
    params: params(),
    bindings: { 2: a.k, 3: a.v, 6: a.dout, 7: a.probs, 8: a.dprobsExtra ?? a.probs, 9: a.dscores, 10: a.dq },
    workgroups: grid(B * NH * T),
  });
  gpu.run({ shader: 'attention', entry: `backward_kv${sfx}`, constants: { WG } }, {
    params: params(),
    bindings: { 1: a.q, 6: a.dout, 7: a.probs, 9: a.dscores, 11: a.dk, 12: a.dv },
    workgroups: grid(B * NKV * T),
  });
}
