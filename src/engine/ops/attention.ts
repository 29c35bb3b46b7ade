// Causal GQA attention forward (training and KV-cached decoding) and backward (training).
// Kernels: shaders/attention.wgsl. CPU reference: src/engine/ref/attention.ts.
import { isSoftwareAdapterInfo, Params, type Gpu, type Tensor } from '../gpu/runtime';
import { isSoftwareAdapter } from './qmatmul';
import { hasSubgroup8 } from './matmul';
import { shapeVariant } from './shape-choice';

const WG = 64;
/** Largest head size: the per-thread kernels hold HS accumulators per thread (MAX_HS in the WGSL);
 *  the workgroup kernels need HS <= 2·WG (= 128 with the default WG). */
export const MAX_HEAD_SIZE = 128;

/** Materializing kernels (can write the probabilities; their backward reads them):
 *  'thread': one thread per row, barrier-free (CPU Vulkan: lavapipe, SwiftShader).
 *  'workgroup': one workgroup per row with tree reductions (real GPUs).
 *  Flash kernels (online softmax, no T×T matrix, O(T) memory; forward only without probs):
 *  'flash': one thread per row, head size compiled in, keys in blocks of 4, barrier-free.
 *  'flash_tiled': one workgroup per WG query rows, K/V tiles in workgroup memory (real GPUs).
 *  'flash_sg': one 8-lane subgroup per 8 query rows, blocks of 8 keys shared by subgroupBroadcast
 *  (CPU Vulkan with 8-wide subgroups: lavapipe; shaders/attention_sg.wgsl).
 *  'flash_split': one workgroup per query row, its keys split across the threads, partial states
 *  merged in workgroup memory (flash-decoding: Tq = 1 on real GPUs).
 *  'auto': with probs 'thread' on software adapters, else 'workgroup'; without probs 'flash_sg' on
 *  adapters with 8-wide subgroups, else 'flash_tiled', or 'flash_split' below SPLIT_MAX_TQ query
 *  rows (see pickAttentionVariant). */
export type AttentionVariant = 'auto' | 'thread' | 'workgroup' | 'flash' | 'flash_tiled' | 'flash_sg' | 'flash_split';
export const ATTENTION_VARIANTS = ['thread', 'workgroup', 'flash', 'flash_tiled', 'flash_sg', 'flash_split'] as const;
/** The forwards without the T×T matrix: what the measured attention choice picks from. */
export const FLASH_VARIANTS = ['flash', 'flash_tiled', 'flash_sg', 'flash_split'] as const;
export type FlashVariant = (typeof FLASH_VARIANTS)[number];
const isFlash = (v: string): v is FlashVariant => (FLASH_VARIANTS as readonly string[]).includes(v);

/** The flash forwards this adapter runs (flash_sg needs 8-wide subgroups). */
export function flashVariants(gpu: Gpu): FlashVariant[] {
  return FLASH_VARIANTS.filter((v) => v !== 'flash_sg' || hasSubgroup8(gpu));
}

export interface AttentionForwardArgs {
  out: Tensor; // (B, Tq, NH*HS) assigns
  probs?: Tensor; // (B, NH, Tq, Tk) assigns, zero above the causal diagonal; optional (not with flash variants)
  lse?: Tensor; // (B, NH, Tq) assigns log Σ_j exp(scaled score): the flash backward's saved state; flash variants only
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
  if (isFlash(x)) throw new Error(`attention: variant '${x}' does not materialize the probabilities`);
  return x === 'auto' ? (isSoftwareAdapter(gpu) ? 'thread' : 'workgroup') : x;
}

/** The forward variant 'auto' runs on this adapter, with or without probabilities. Without them
 *  'flash_tiled' everywhere: measured on stories260K's shape (8 heads of 8, T=512) it beat the
 *  barrier-free 'flash' by 2x on lavapipe and 1.3x on SwiftShader (one K/V tile load serves 64
 *  rows, and the tile's reads are uniform across lanes), and workgroup tiles are what real GPUs want. */
export function pickAttentionVariant(gpu: Gpu, withProbs: boolean, Tq?: number, HS?: number): Exclude<AttentionVariant, 'auto'> {
  const pref = withProbs ? undefined : attentionPrefs.get(gpu);
  if (pref?.decode && Tq === 1) return pref.decode;
  if (pref?.prefill && (Tq === undefined || Tq > SPLIT_MAX_TQ)) return pref.prefill;
  return adapterAttentionVariant(gpu, withProbs, Tq, HS);
}

/** Head size the decode family is timed and shown at (kernel-choice.ts): SmolLM2's and Llama's 64. */
export const DECODE_HS = 64;

/** Flash forwards chosen for this device by measurement (kernel-choice.ts: the studio's GPU panel,
 *  QUENCH_KERNELS): `prefill` for chunks of more than SPLIT_MAX_TQ query rows (training, eval, a
 *  prompt), `decode` for one row (generating a token). Rows in between, and a family whose choice
 *  is the adapter's own pick, keep the adapter's rule by shape (it also weighs the head size). */
const attentionPrefs = new WeakMap<Gpu, { prefill?: FlashVariant; decode?: FlashVariant }>();

/** Make 'auto' (without probabilities) run these flash forwards on this device; null: back to the
 *  adapter's picks. */
export function preferAttentionVariants(gpu: Gpu, c: { prefill: FlashVariant; decode: FlashVariant } | null): void {
  if (!c) {
    attentionPrefs.delete(gpu);
    return;
  }
  for (const v of [c.prefill, c.decode]) {
    if (!flashVariants(gpu).includes(v)) throw new Error(`attention variant '${v}' is not one this adapter runs (${flashVariants(gpu).join(', ')})`);
  }
  const prefill = c.prefill === adapterAttentionVariant(gpu, false) ? undefined : c.prefill;
  const decode = c.decode === adapterAttentionVariant(gpu, false, 1, DECODE_HS) ? undefined : c.decode;
  if (prefill || decode) attentionPrefs.set(gpu, { prefill, decode });
  else attentionPrefs.delete(gpu);
}

/** The adapter's own pick, whatever choice is applied on this device. */
export function adapterAttentionVariant(gpu: Gpu, withProbs: boolean, Tq?: number, HS?: number): Exclude<AttentionVariant, 'auto'> {
  // flash_sg where lavapipe's 8-wide subgroups are: 4x flash_tiled at stories260K's shape (B=8,
  // T=512, 8 heads of 8; 2-3.5x with heads of 16), the K/V block shared by broadcast instead of
  // per-lane loads. Above UNROLL_HS its head loops run to the uniform head size (its 8x unrolled
  // body compiled for a minute at HS 72), and it stays ~2x flash_tiled at HS 64, 72 and 128.
  // flash_split for decoding and short chunks. Without 8-wide subgroups (GPUs) up to SPLIT_MAX_TQ
  // rows: flash_tiled has one query row per thread, so at Tq = 1 one thread of each 64-thread
  // workgroup walks every key (20-24x flash_split's time at Tk = 2048 on lavapipe; unmeasured on a
  // GPU, none lent; bench/gpu.sh times both). On lavapipe flash_sg's 8-row entry has 1 of 8 lanes
  // live at Tq = 1: flash_split took 0.36-0.45x its time at HS 64 for Tq = 1 and 0.6-0.67x at
  // Tq = 2, and lost from Tq = 4; at HS 8 they tie (README, "flash_split").
  if (!withProbs) {
    if (hasSubgroup8(gpu)) return Tq !== undefined && Tq <= 2 && (HS ?? 0) >= 16 ? 'flash_split' : 'flash_sg';
    return Tq !== undefined && Tq <= SPLIT_MAX_TQ ? 'flash_split' : 'flash_tiled';
  }
  return isSoftwareAdapter(gpu) ? 'thread' : 'workgroup';
}

/** Largest head size whose flash kernels are compiled with fully unrolled head loops (UNROLL_HS
 *  in shaders/attention.wgsl and attention_sg.wgsl): 32 on CPU Vulkan, where LLVM takes minutes
 *  over the unrolled body at large heads; all sizes on real GPUs (the arrays stay in registers). */
const unrollOverride = new WeakMap<Gpu, number>();
function unrollHs(gpu: Gpu): number {
  // the compiler's kind, not the picks' (QUENCH_PICKS=gpu on lavapipe still compiles with LLVM)
  return unrollOverride.get(gpu) ?? (isSoftwareAdapterInfo({ ...gpu.info, picksAs: undefined }) ? 32 : MAX_HEAD_SIZE);
}

/** Compile the flash kernels as another adapter kind would (tests: the unrolled GPU
 *  form on a CPU adapter); null: back to this adapter's. */
export function setFlashUnroll(gpu: Gpu, hs: number | null): void {
  if (hs === null) unrollOverride.delete(gpu);
  else unrollOverride.set(gpu, hs);
}

const sgRowsOverride = new WeakMap<Gpu, 8 | 32>();
/** Query rows per subgroup of flash_sg's forward and the sg backward's dQ: 32 (the multi-row forms
 *  in shaders/attention_sg.wgsl, whose dK/dV takes 16 keys) from Tq = 32, else 8. */
function flashSgRows(gpu: Gpu, Tq: number): 8 | 32 {
  return sgRowsOverride.get(gpu) ?? (Tq >= 32 ? 32 : 8);
}

/** Run flash_sg's forward and the sg backward in their 8-row or multi-row (32) forms at every Tq (tests:
 *  the two forms are compared); null: back to the choice by Tq. */
export function setFlashSgRows(gpu: Gpu, rows: 8 | 32 | null): void {
  if (rows === null) sgRowsOverride.delete(gpu);
  else sgRowsOverride.set(gpu, rows);
}

/** flash_split's threads per query row: 32, or 16 where the device's workgroup storage cannot hold
 *  32 partial accumulators (32·ceil(HS/4) vec4 and 32 floats of reduction scratch: 16,512 bytes at
 *  HS 128, over WebGPU's default 16 KiB). */
export function splitThreads(workgroupStorageBytes: number, HS: number): 16 | 32 {
  return 32 * (16 * Math.ceil(HS / 4) + 4) <= workgroupStorageBytes ? 32 : 16;
}
const splitOverride = new WeakMap<Gpu, 16 | 32>();
/** Run flash_split with this many threads per row whatever the device's storage (tests: the
 *  16-thread form on a device that fits 32); null: back to splitThreads. */
export function setFlashSplitThreads(gpu: Gpu, n: 16 | 32 | null): void {
  if (n === null) splitOverride.delete(gpu);
  else splitOverride.set(gpu, n);
}
/** The largest Tq 'auto' gives flash_split (flash_tiled keeps at most 8 of its 64 threads busy
 *  per workgroup below that). */
export const SPLIT_MAX_TQ = 8;

/** Keys per workgroup-memory tile of flash_forward_tiled: K and V tiles (KT·ceil(HS/4) vec4 each)
 *  within the device's workgroup-storage limit (16 KiB by default). */
function keyTile(gpu: Gpu, HS: number): number {
  const limit = gpu.device.limits.maxComputeWorkgroupStorageSize;
  const perKey = 2 * 16 * Math.ceil(HS / 4);
  return Math.max(1, Math.min(64, 2 ** Math.floor(Math.log2(limit / perKey))));
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
  if (a.lse) need('lse', a.lse, B * NH * Tq);
  // 'auto' over a prefill chunk: the per-shape choice first (shape-choice.ts, tuned to a run's shapes)
  const perShape = (!a.variant || a.variant === 'auto') && !a.probs && Tq > SPLIT_MAX_TQ ? (shapeVariant(gpu, { op: 'attention forward', M: Tq, K: HS, N: Tk, B, NH, NKV }) as FlashVariant | undefined) : undefined;
  const variant = a.variant && a.variant !== 'auto' ? a.variant : perShape ?? pickAttentionVariant(gpu, !!a.probs, Tq, HS);
  if (isFlash(variant)) {
    if (a.probs) throw new Error(`attention: variant '${variant}' cannot write the probabilities`);
    const params = new Params().u32(B, Tq, Tk, TkMax, NH, NKV, HS, a.pos0).f32(1 / Math.sqrt(HS)).u32(0, 0, a.lse ? 1 : 0);
    const bindings: Record<number, Tensor> = { 1: a.q, 2: a.k, 3: a.v, 4: a.out };
    if (a.lse) bindings[13] = a.lse;
    else bindings[13] = scratch(gpu);
    if (variant === 'flash_sg') {
      if (!hasSubgroup8(gpu)) throw new Error(`attention variant 'flash_sg' needs WGSL subgroups of exactly 8 lanes; this adapter has ${gpu.hasSubgroups ? `${gpu.info.subgroupMinSize}-${gpu.info.subgroupMaxSize}` : 'none'}`);
      // 32 query rows per subgroup from Tq = 32 (K/V loads and broadcasts shared by 4 rows per
      // lane: 1.2-2x at the eval's and SmolLM2's shapes, README); 8 below (decoding, short chunks)
      const rows = flashSgRows(gpu, Tq);
      const entry = rows === 32 ? 'flash_forward_sg4' : 'flash_forward_sg';
      gpu.run({ shader: 'attention_sg', entry, constants: { HSC: HS, UNROLL_HS: unrollHs(gpu) } }, { params, bindings, workgroups: gpu.grid(B * NH * Math.ceil(Tq / rows)) });
    } else if (variant === 'flash_split') {
      gpu.run({ shader: 'attention', entry: 'flash_split', constants: { WG: splitOverride.get(gpu) ?? splitThreads(gpu.device.limits.maxComputeWorkgroupStorageSize, HS), HSC: HS, UNROLL_HS: unrollHs(gpu) } }, { params, bindings, workgroups: gpu.grid(B * NH * Tq) });
    } else if (variant === 'flash') {
      gpu.run({ shader: 'attention', entry: 'flash_forward', constants: { WG, HSC: HS, UNROLL_HS: unrollHs(gpu) } }, { params, bindings, workgroups: gpu.grid(Math.ceil((B * NH * Tq) / WG)) });
    } else {
      const KT = keyTile(gpu, HS);
      gpu.run({ shader: 'attention', entry: 'flash_forward_tiled', constants: { WG, HSC: HS, KT } }, { params, bindings, workgroups: gpu.grid(B * NH * Math.ceil(Tq / WG)) });
    }
    return;
  }
  if (a.lse) throw new Error(`attention: lse is written by the flash variants only (not '${variant}')`);
  const params = new Params().u32(B, Tq, Tk, TkMax, NH, NKV, HS, a.pos0).f32(1 / Math.sqrt(HS)).u32(a.probs ? 1 : 0, 0, 0);
  // The kernel declares probs; when not writing them, bind a tiny scratch (binding `out` twice as
  // read_write storage would be invalid).
  const bindings: Record<number, Tensor> = { 1: a.q, 2: a.k, 3: a.v, 4: a.out, 5: a.probs ?? scratch(gpu) };
  const rows = B * NH * Tq;
  if (variant === 'workgroup') gpu.run({ shader: 'attention', entry: 'forward_wg', constants: { WG } }, { params, bindings, workgroups: gpu.grid(rows) });
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

export interface AttentionFlashBackwardArgs {
  dq: Tensor; // (B, T, NH*HS)  assigns
  dk: Tensor; // (B, T, NKV*HS) assigns (summed over the NH/NKV query heads of each kv head)
  dv: Tensor; // (B, T, NKV*HS) assigns (same)
  drow: Tensor; // (B, NH, T) scratch: D_t = dout_t·out_t
  dout: Tensor; // (B, T, NH*HS)
  q: Tensor; // (B, T, NH*HS) as given to the forward
  k: Tensor; // (B, T, NKV*HS)
  v: Tensor; // (B, T, NKV*HS)
  out: Tensor; // (B, T, NH*HS) the forward's output
  lse: Tensor; // (B, NH, T) the flash forward's saved log-sum-exp
  B: number;
  T: number;
  NH: number;
  NKV: number;
  HS: number;
  /** 'thread': one thread per query row / key row (attention.wgsl); 'sg': 8-lane subgroups sharing
   *  blocks of 8 keys / queries by broadcast (attention_sg.wgsl; 8-wide subgroups); 'auto' (default):
   *  'sg' where the adapter has them, else 'thread' */
  variant?: 'auto' | 'thread' | 'sg';
}

/** Training backward without the probabilities (Tq = Tk = T, pos0 = 0): recomputes them per row
 *  from the saved log-sum-exp. No extra probability gradient (that needs the materialized path).
 *  Barrier-free per-thread kernels on every adapter. */
export function attentionBackwardFlash(gpu: Gpu, a: AttentionFlashBackwardArgs): void {
  check(a.HS, a.NH, a.NKV);
  const { B, T, NH, NKV, HS } = a;
  for (const [n, t] of [['dq', a.dq], ['dout', a.dout], ['q', a.q], ['out', a.out]] as const) need(n, t, B * T * NH * HS);
  for (const [n, t] of [['dk', a.dk], ['dv', a.dv], ['k', a.k], ['v', a.v]] as const) need(n, t, B * T * NKV * HS);
  for (const [n, t] of [['drow', a.drow], ['lse', a.lse]] as const) need(n, t, B * NH * T);
  const params = () => new Params().u32(B, T, T, T, NH, NKV, HS, 0).f32(1 / Math.sqrt(HS)).u32(0, 0, 0);
  const sg = a.variant === 'sg' || (a.variant !== 'thread' && hasSubgroup8(gpu));
  if (sg) {
    if (!hasSubgroup8(gpu)) throw new Error(`attention backward variant 'sg' needs WGSL subgroups of exactly 8 lanes; this adapter has ${gpu.hasSubgroups ? `${gpu.info.subgroupMinSize}-${gpu.info.subgroupMaxSize}` : 'none'}`);
    // from T = 32, as the forward: dQ with 32 query rows per subgroup, dK/dV with 16 keys (faster
    // than 32 at small heads: shaders/attention_sg.gen.mjs)
    const multi = flashSgRows(gpu, T) === 32;
    const [qEntry, kvEntry, qRows, kvRows] = multi ? ['flash_backward_q_sg4', 'flash_backward_kv_sg2', 32, 16] : ['flash_backward_q_sg', 'flash_backward_kv_sg', 8, 8];
    gpu.run({ shader: 'attention_sg', entry: qEntry, constants: { HSC: HS, UNROLL_HS: unrollHs(gpu) } }, {
      params: params(),
      bindings: { 1: a.q, 2: a.k, 3: a.v, 4: a.out, 6: a.dout, 10: a.dq, 13: a.lse, 14: a.drow },
      workgroups: gpu.grid(B * NH * Math.ceil(T / qRows)),
    });
    gpu.run({ shader: 'attention_sg', entry: kvEntry, constants: { HSC: HS, UNROLL_HS: unrollHs(gpu) } }, {
      params: params(),
      bindings: { 1: a.q, 2: a.k, 3: a.v, 6: a.dout, 11: a.dk, 12: a.dv, 13: a.lse, 14: a.drow },
      workgroups: gpu.grid(B * NKV * Math.ceil(T / kvRows)),
    });
    return;
  }
  const constants = { WG, HSC: HS, UNROLL_HS: unrollHs(gpu) };
  gpu.run({ shader: 'attention', entry: 'flash_backward_q', constants }, {
    params: params(),
    bindings: { 1: a.q, 2: a.k, 3: a.v, 4: a.out, 6: a.dout, 10: a.dq, 13: a.lse, 14: a.drow },
    workgroups: gpu.grid(Math.ceil((B * NH * T) / WG)),
  });
  gpu.run({ shader: 'attention', entry: 'flash_backward_kv', constants }, {
    params: params(),
    bindings: { 1: a.q, 2: a.k, 3: a.v, 6: a.dout, 11: a.dk, 12: a.dv, 13: a.lse, 14: a.drow },
    workgroups: gpu.grid(Math.ceil((B * NKV * T) / WG)),
  });
}
