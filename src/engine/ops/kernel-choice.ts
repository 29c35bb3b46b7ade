// Which matmul and attention kernels 'auto' runs on this device, measured on it: the studio's GPU
// panel times every fp32 (forward, dX, dW), int4 (forward, dX), f16-weight (the frozen teacher's
// forward), int4 GEMV and fp32 GEMV (decoding one token: M = 1, timed at 1×K×N of each shape) matmul variant
// this adapter can run on a few shapes, and every flash attention forward at a prefill and at one
// decoding row (ATTENTION_TIMING_SHAPES), and can make the fastest the device's choice
// (preferMatmulVariant / preferQmatmulVariants / preferHalfVariant / preferAttentionVariants /
// preferFp32GemvVariant). The adapter-based defaults
// (subgroup kernels on lavapipe, workgroup-memory 4x4 tiles on GPUs, half_nt4 everywhere) were set
// on the machines we had; the 8x8-tile GPU kernels (shared8, gemm_wg8, dx_wg8, half_wg8, half_wg8h)
// are only picked where such a measurement says they win. Every variant's results are first
// checked against the float64 references on awkward shapes (checkKernelVariants: partial blocks in
// every direction, ragged slabs and groups), and one that is wrong on this adapter is never
// "fastest" (a driver bug would otherwise make every run silently wrong). Wall-clock timing: each case compiles in an
// untimed call, then `reps` calls per submit, the median of 3 submits; a case slower than `capMs`
// per call is timed once.
import type { Gpu, Tensor } from '../gpu/runtime';
import { adapterFp32GemvVariant, adapterMatmulVariant, fp32GemvVariants, hasSubgroup8, matmulBackwardInput, matmulBackwardWeight, matmulForward, matmulVariants, pickFp32GemvVariant, pickMatmulVariant, preferFp32GemvVariant, preferMatmulVariant, variantGemv, type Fp32GemvKernel, type MatmulKernel } from './matmul';
import { adapterQmatmulDxVariant, adapterQmatmulVariant, pickQmatmulDxVariant, pickQmatmulVariant, preferQmatmulVariants, QMATMUL_DX_VARIANTS, qmatmulBackwardInput, qmatmulForward, qmatmulVariants, type GpuPacked, type QmatmulDxVariant, type QmatmulVariant } from './qmatmul';
import { allocPacked, freePacked, quantizePack } from './fakequant';
import { layoutOf, quantizeHost } from '../format/pack';
import { matmulBackwardInputRef, matmulBackwardWeightRef, matmulForwardRef } from '../ref/matmul';
import { qmatmulDxRef, qmatmulRef } from '../ref/quant';
import { hasShapeChoice, setShapeChoices, shapeChoices, shapeKey, shapeTuning, type KernelOp, type ShapeOp } from './shape-choice';
import { adapterHalfVariant, halfForwardErrorBound, halfVariants, isF16MathVariant, matmulHalfForward, pickHalfVariant, preferHalfVariant, type HalfKernel } from './matmul-half';
import { adapterAttentionVariant, attentionForward, DECODE_HS, FLASH_VARIANTS, flashVariants, pickAttentionVariant, preferAttentionVariants, SPLIT_MAX_TQ, type FlashVariant } from './attention';
import { checkAttentionVariants, type AttentionCheck } from './attention-check';
import { seeded, seededHalf } from './seeded';

export { seeded, seededHalf };

export type GemvVariant = Extract<QmatmulVariant, `gemv${string}`>;
export type GemmVariant = Exclude<QmatmulVariant, 'auto' | GemvVariant>;
export type DxVariant = Exclude<QmatmulDxVariant, 'auto'>;
export type { KernelOp };

/** Timing sizes (the GPU panel's and `quench kernels --size`): [M, K, N] shapes of y = x·Wᵀ. */
export const KERNEL_TIMING_SHAPES: Record<'small' | 'medium' | 'large', [number, number, number][]> = {
  small: [[64, 128, 128]],
  medium: [[512, 512, 512], [512, 512, 1536]],
  large: [[1024, 1024, 1024], [1024, 1024, 4096]],
};

/** Attention shapes the panel and `quench kernels` time (by the same size names): causal prefill
 *  of T query rows against T keys, and decoding one row against T cached keys. */
export interface AttentionShape {
  B: number;
  T: number;
  NH: number;
  NKV: number;
  HS: number;
}
export const ATTENTION_TIMING_SHAPES: Record<keyof typeof KERNEL_TIMING_SHAPES, AttentionShape[]> = {
  small: [{ B: 1, T: 128, NH: 4, NKV: 2, HS: 32 }],
  medium: [{ B: 1, T: 512, NH: 9, NKV: 3, HS: DECODE_HS }], // SmolLM2's heads
  large: [{ B: 1, T: 2048, NH: 32, NKV: 8, HS: 128 }],
};

/** One kernel per product family: fp32 matmuls, int4 forward (M > 1), int4 dX, f16-weight forward
 *  (the frozen teacher's projections), int4 GEMV (M = 1: generating with a quantized model), the
 *  attention forward without probabilities (training, eval, a prompt: more than SPLIT_MAX_TQ rows)
 *  attention decoding one row (generating) and the fp32 GEMV (M = 1: generating with an FP model,
 *  the LM head). */
export interface KernelChoice {
  matmul: MatmulKernel;
  gemm: GemmVariant;
  dx: DxVariant;
  half: HalfKernel;
  gemv: GemvVariant;
  attention: FlashVariant;
  decode: FlashVariant;
  fp32gemv: Fp32GemvKernel;
}

/** The products each family's one variant serves. */
export const FAMILY_OPS: Record<keyof KernelChoice, readonly KernelOp[]> = { matmul: ['fp32 y=x·Wᵀ', 'fp32 dX', 'fp32 dW'], gemm: ['int4 y=x·Wᵀ'], dx: ['int4 dX'], half: ['f16-weight y=x·Wᵀ'], gemv: ['int4 GEMV'], attention: ['attention forward'], decode: ['attention decode'], fp32gemv: ['fp32 GEMV'] };

const ATTENTION_FAMILIES = ['attention', 'decode'] as const;
const isAttentionFamily = (f: keyof KernelChoice): f is (typeof ATTENTION_FAMILIES)[number] => (ATTENTION_FAMILIES as readonly string[]).includes(f);

/** Rows a product is timed and checked at: the GEMV decodes one token whatever the shape's M. */
const opRows = (op: KernelOp, M: number): number => (op === 'int4 GEMV' || op === 'fp32 GEMV' ? 1 : M);

/** The families in the order of QUENCH_KERNELS' names ("matmul,gemm,dx[,half[,gemv[,attention[,decode[,fp32gemv]]]]]") and of the panel. */
export const FAMILIES = Object.keys(FAMILY_OPS) as (keyof KernelChoice)[];

/** The variants of each family an adapter can run. */
export interface KernelCandidates {
  matmul: MatmulKernel[];
  gemm: GemmVariant[];
  dx: DxVariant[];
  half: HalfKernel[];
  gemv: GemvVariant[];
  attention: FlashVariant[];
  decode: FlashVariant[];
  fp32gemv: Fp32GemvKernel[];
}

export interface VariantTiming {
  op: KernelOp;
  variant: string;
  /** M×K×N (attention: B×Tq×Tk NH/NKV HS) */
  shape: string;
  ms: number;
  gflops: number;
}

/** One variant's results against the float64 reference on this adapter. */
export interface VariantCheck {
  op: KernelOp;
  variant: string;
  /** M×K×N it was checked at (CHECK_SHAPE; M = 1 for the GEMV; attention: attention-check.ts's) */
  shape: string;
  /** attention: relative to the largest |reference| (attention-check.ts's relError) */
  maxAbsError: number;
  ok: boolean;
}

export interface KernelTimings {
  rows: VariantTiming[];
  /** the correctness check run first; a variant that failed it is never fastest */
  checks: VariantCheck[];
  /** every attention kernel against the float64 reference (forwards, backwards, decoding): the
   *  attention families' checks above are its forwards */
  attentionChecks: AttentionCheck[];
  /** per family, the variant with the least total time over the shapes (and, for fp32, the 3 products) */
  fastest: KernelChoice;
  /** what 'auto' ran before any choice (the adapter's defaults) */
  defaults: KernelChoice;
}

/** What 'auto' runs on a device now, its adapter's own picks, and every variant it can run. */
export interface KernelState {
  current: KernelChoice;
  defaults: KernelChoice;
  candidates: KernelCandidates;
  /** runs tune the kernels to their own shapes first (tuneKernelShapes) */
  tuneShapes: boolean;
  /** the per-shape choices made so far on this device */
  shapeChoices: { shape: ShapeOp; variant: string }[];
}

export function kernelState(gpu: Gpu): KernelState {
  return { current: currentKernels(gpu), defaults: defaultKernels(gpu), candidates: kernelCandidates(gpu), tuneShapes: shapeTuning(gpu), shapeChoices: shapeChoices(gpu) };
}

/** The adapter's own picks, whatever choice is applied on this device (the int4 forward's family is
 *  its GEMM, picked for any M > 1). */
export function defaultKernels(gpu: Gpu): KernelChoice {
  return { matmul: adapterMatmulVariant(gpu), gemm: adapterQmatmulVariant(gpu, 2) as GemmVariant, dx: adapterQmatmulDxVariant(gpu), half: adapterHalfVariant(gpu), gemv: adapterQmatmulVariant(gpu, 1) as GemvVariant, ...adapterAttention(gpu), fp32gemv: adapterFp32GemvVariant(gpu) };
}

/** The adapter's flash forwards for a long chunk and for one row (at heads of DECODE_HS). */
function adapterAttention(gpu: Gpu): Pick<KernelChoice, 'attention' | 'decode'> {
  return { attention: adapterAttentionVariant(gpu, false) as FlashVariant, decode: adapterAttentionVariant(gpu, false, 1, DECODE_HS) as FlashVariant };
}

/** What 'auto' runs on this device now (the adapter's picks, or the applied choice). */
export function currentKernels(gpu: Gpu): KernelChoice {
  return { matmul: pickMatmulVariant(gpu), gemm: pickQmatmulVariant(gpu, 2) as GemmVariant, dx: pickQmatmulDxVariant(gpu), half: pickHalfVariant(gpu), gemv: pickQmatmulVariant(gpu, 1) as GemvVariant, attention: pickAttentionVariant(gpu, false) as FlashVariant, decode: pickAttentionVariant(gpu, false, 1, DECODE_HS) as FlashVariant, fp32gemv: pickFp32GemvVariant(gpu) };
}

/** Make 'auto' run `c` on this device (null: back to the adapter's picks). */
export function applyKernelChoice(gpu: Gpu, c: KernelChoice | null): void {
  preferMatmulVariant(gpu, c?.matmul ?? null);
  preferQmatmulVariants(gpu, c ? { gemm: c.gemm, dx: c.dx, gemv: c.gemv } : null);
  preferHalfVariant(gpu, c?.half ?? null);
  preferAttentionVariants(gpu, c ? { prefill: c.attention, decode: c.decode } : null);
  // where the choice keeps the chosen matmul variant's own GEMV, that stays what 'auto' follows
  preferFp32GemvVariant(gpu, c && c.fp32gemv !== variantGemv(c.matmul) ? c.fp32gemv : null);
}

/** `c` with family `f` set to `v` (a hand pick in the GPU panel). An fp32 GEMV that is the old
 *  matmul variant's own moves with the matmul variant, as it did before the fp32 GEMV family
 *  existed; one picked apart from it stays. */
export function withFamily(c: KernelChoice, f: keyof KernelChoice, v: string): KernelChoice {
  const next = { ...c, [f]: v } as KernelChoice;
  if (f === 'matmul' && c.fp32gemv === variantGemv(c.matmul)) next.fp32gemv = variantGemv(v as MatmulKernel);
  return next;
}

/** The variants of each family this adapter can run. */
export function kernelCandidates(gpu: Gpu): KernelCandidates {
  return {
    matmul: matmulVariants(gpu),
    gemm: qmatmulVariants(gpu).filter((v): v is GemmVariant => !v.startsWith('gemv')),
    dx: QMATMUL_DX_VARIANTS.filter((v) => v !== 'dx_sg' || hasSubgroup8(gpu)),
    half: halfVariants(gpu),
    gemv: qmatmulVariants(gpu).filter((v): v is GemvVariant => v.startsWith('gemv')),
    attention: flashVariants(gpu),
    decode: flashVariants(gpu),
    fp32gemv: fp32GemvVariants(gpu),
  };
}

async function timeCall(gpu: Gpu, call: () => void, reps: number, capMs: number): Promise<number> {
  call(); // compiles the pipeline
  await gpu.sync();
  let t0 = performance.now();
  call();
  await gpu.sync();
  const once = performance.now() - t0;
  if (once > capMs) return once;
  const n = Math.max(1, Math.min(reps, Math.floor(capMs / Math.max(once, 0.01))));
  const rounds: number[] = [];
  for (let r = 0; r < 3; r++) {
    t0 = performance.now();
    for (let i = 0; i < n; i++) call();
    await gpu.sync();
    rounds.push((performance.now() - t0) / n);
  }
  return rounds.sort((a, b) => a - b)[1];
}

/** Seeded operands of every product at one shape [M, K, N]: x (M, K), W (N, K) in fp32, as int4 in
 *  `layout` (bits, group; w4g32 by default) and, where K % 4 == 0, as f16 pairs; y (M, N) (also dY),
 *  dX (M, K), dW (N, K). The timings of the GPU panel and of per-shape tuning run on these. */
interface Operands {
  x: Tensor;
  w: Tensor;
  packed: GpuPacked;
  wh: Tensor | null;
  y: Tensor;
  dx: Tensor;
  dw: Tensor;
}

function allocOperands(gpu: Gpu, M: number, K: number, N: number, layout: { bits?: number; group?: number } = {}): Operands {
  const x = gpu.tensor('kernels.x', [M, K], 'f32', seeded(M * K, 3)), w = gpu.tensor('kernels.w', [N, K], 'f32', seeded(N * K, K + N));
  const packed = allocPacked(gpu, 'kernels.w4', layoutOf(N, K, (layout.bits ?? 4) as 2 | 3 | 4 | 8, layout.group ?? 32));
  quantizePack(gpu, packed, w, { sym: false });
  const wh = K % 4 === 0 ? gpu.tensor('kernels.wf16', [N, K / 2], 'u32', seededHalf(N * K, K + N).packed) : null; // (N, K) f16 pairs
  return { x, w, packed, wh, y: gpu.tensor('kernels.y', [M, N], 'f32', seeded(M * N, 5)), dx: gpu.tensor('kernels.dx', [M, K]), dw: gpu.tensor('kernels.dw', [N, K]) };
}

function freeOperands(gpu: Gpu, o: Operands): void {
  for (const t of [o.x, o.w, o.wh, o.y, o.dx, o.dw]) gpu.free(t);
  freePacked(gpu, o.packed);
}

/** One call of product `op` with `variant` on the operands (what a timing repeats). */
function productCall(gpu: Gpu, op: KernelOp, variant: string, o: Operands, M: number, K: number, N: number): () => void {
  switch (op) {
    case 'fp32 y=x·Wᵀ': return () => matmulForward(gpu, o.y, o.x, o.w, M, K, N, { variant: variant as MatmulKernel });
    case 'fp32 dX': return () => matmulBackwardInput(gpu, o.dx, o.y, o.w, M, K, N, { variant: variant as MatmulKernel });
    case 'fp32 dW': return () => matmulBackwardWeight(gpu, o.dw, o.y, o.x, M, K, N, { variant: variant as MatmulKernel });
    case 'int4 y=x·Wᵀ': return () => qmatmulForward(gpu, o.y, o.x, o.packed, M, variant as GemmVariant);
    case 'int4 dX': return () => qmatmulBackwardInput(gpu, o.dx, o.y, o.packed, M, false, variant as DxVariant);
    case 'f16-weight y=x·Wᵀ': return () => matmulHalfForward(gpu, o.y, o.x, o.wh!, M, K, N, false, variant as HalfKernel);
    case 'int4 GEMV': return () => qmatmulForward(gpu, o.y, o.x, o.packed, 1, variant as GemvVariant); // the first row of x
    case 'fp32 GEMV': return () => matmulForward(gpu, o.y, o.x, o.w, 1, K, N, { gemvKernel: variant as Fp32GemvKernel }); // the first row of x
    case 'attention forward':
    case 'attention decode': throw new Error(`${op} is timed on attention shapes (attentionCall), not ${M}×${K}×${N}`);
  }
}

/** Causal attention FLOPs of a forward: QKᵀ and PV, 2·HS each per (query, visible key) pair. */
const attentionFlops = (B: number, NH: number, HS: number, pairs: number) => 4 * B * NH * HS * pairs;

/** One call of a flash forward with `variant`: Tq query rows at positions Tk − Tq .. Tk − 1 against
 *  Tk keys (causal), writing the lse (as training does) when asked; its FLOPs and shape label
 *  (B×Tq×Tk NH/NKV HS n). Operands are allocated here; `free` releases them. */
function flashCall(gpu: Gpu, variant: FlashVariant, d: { B: number; Tq: number; Tk: number; NH: number; NKV: number; HS: number }, withLse: boolean): { call: () => void; flops: number; shape: string; free: () => void } {
  const { B, Tq, Tk, NH, NKV, HS } = d;
  const q = gpu.tensor('kernels.att.q', [B * Tq * NH * HS], 'f32', seeded(B * Tq * NH * HS, 41));
  const k = gpu.tensor('kernels.att.k', [B * Tk * NKV * HS], 'f32', seeded(B * Tk * NKV * HS, 42));
  const v = gpu.tensor('kernels.att.v', [B * Tk * NKV * HS], 'f32', seeded(B * Tk * NKV * HS, 43));
  const out = gpu.tensor('kernels.att.out', [B * Tq * NH * HS]);
  const lse = withLse ? gpu.tensor('kernels.att.lse', [B * NH * Tq]) : undefined;
  const pos0 = Tk - Tq;
  const call = () => attentionForward(gpu, { out, lse, q, k, v, B, Tq, Tk, TkMax: Tk, NH, NKV, HS, pos0, variant });
  const pairs = Tq * pos0 + (Tq * (Tq + 1)) / 2; // (query, visible key) pairs
  return { call, flops: attentionFlops(B, NH, HS, pairs), shape: `${B}×${Tq}×${Tk} ${NH}/${NKV} HS ${HS}`, free: () => [q, k, v, out, lse].forEach((t) => t && gpu.free(t)) };
}

/** Time one flashCall (timeCall), then free its operands: ms per call and GFLOP/s. */
async function timeFlash(gpu: Gpu, c: ReturnType<typeof flashCall>, reps: number, capMs: number): Promise<{ ms: number; gflops: number }> {
  try {
    const ms = await timeCall(gpu, c.call, reps, capMs);
    return { ms, gflops: c.flops / ms / 1e6 };
  } finally {
    c.free();
  }
}

/** An attention family's forward at timing shape `a`: the prefill of T rows (with the lse), or one
 *  row at position T − 1 against T cached keys. */
function attentionCall(gpu: Gpu, f: 'attention' | 'decode', variant: FlashVariant, a: AttentionShape): { call: () => void; flops: number; shape: string; free: () => void } {
  return flashCall(gpu, variant, { B: a.B, Tq: f === 'decode' ? 1 : a.T, Tk: a.T, NH: a.NH, NKV: a.NKV, HS: a.HS }, f === 'attention');
}

/** The attention families' checks: a flash forward is correct here when its prefill (`attention`)
 *  or decoding (`decode`) check against the float64 reference passed (attention-check.ts). */
function attentionFamilyChecks(att: AttentionCheck[]): VariantCheck[] {
  const flash = (FLASH_VARIANTS as readonly string[]);
  return att
    .filter((c) => c.stage !== 'backward' && flash.includes(c.variant))
    .map((c) => ({ op: c.stage === 'forward' ? 'attention forward' : 'attention decode', variant: c.variant, shape: c.shape, maxAbsError: c.relError, ok: c.ok }));
}

/** Time every variant this adapter runs on shapes [M, K, N] (y = x·Wᵀ, x (M, K), W (N, K)) and
 *  every flash forward on the attention shapes. onProgress gets each row as it is timed (so a
 *  caller stopped part-way, as by a time limit, has printed what was measured). */
export async function timeKernelVariants(gpu: Gpu, opts: { shapes?: [number, number, number][]; attentionShapes?: AttentionShape[]; reps?: number; capMs?: number; onProgress?: (done: number, total: number, row: VariantTiming) => void } = {}): Promise<KernelTimings> {
  const shapes = opts.shapes ?? KERNEL_TIMING_SHAPES.medium;
  const attShapes = opts.attentionShapes ?? ATTENTION_TIMING_SHAPES.medium;
  const reps = opts.reps ?? 5, capMs = opts.capMs ?? 2000;
  const cand = kernelCandidates(gpu);
  const rows: VariantTiming[] = [];
  const matmulFamilies = FAMILIES.filter((f) => !isAttentionFamily(f));
  const total = shapes.length * matmulFamilies.reduce((n, f) => n + FAMILY_OPS[f].length * cand[f].length, 0) + attShapes.length * ATTENTION_FAMILIES.reduce((n, f) => n + cand[f].length, 0);
  let done = 0;
  const defaults = defaultKernels(gpu);
  const attentionChecks = await checkAttentionVariants(gpu);
  const checks = [...(await checkKernelVariants(gpu)), ...attentionFamilyChecks(attentionChecks)];
  for (const [M, K, N] of shapes) {
    const o = allocOperands(gpu, M, K, N);
    for (const f of matmulFamilies)
      for (const v of cand[f] as string[])
        for (const op of FAMILY_OPS[f]) {
          const m = opRows(op, M);
          const ms = await timeCall(gpu, productCall(gpu, op, v, o, m, K, N), reps, capMs);
          rows.push({ op, variant: v, shape: `${m}×${K}×${N}`, ms, gflops: (2 * m * N * K) / ms / 1e6 });
          opts.onProgress?.(++done, total, rows[rows.length - 1]);
        }
    freeOperands(gpu, o);
  }
  for (const a of attShapes)
    for (const f of ATTENTION_FAMILIES)
      for (const v of cand[f]) {
        const c = attentionCall(gpu, f, v, a);
        rows.push({ op: FAMILY_OPS[f][0], variant: v, shape: c.shape, ...(await timeFlash(gpu, c, reps, capMs)) });
        opts.onProgress?.(++done, total, rows[rows.length - 1]);
      }
  return { rows, checks, attentionChecks, fastest: fastestKernels(rows, checks, cand, defaults), defaults };
}

/** A variant's timings within its family (all shapes and, for fp32, the 3 products). */
export function familyRows(rows: VariantTiming[], f: keyof KernelChoice, variant: string): VariantTiming[] {
  return rows.filter((r) => FAMILY_OPS[f].includes(r.op) && r.variant === variant);
}

/** Total ms of a variant over its family's rows: what "fastest" is judged by. */
export function familyMs(rows: VariantTiming[], f: keyof KernelChoice, variant: string): number {
  return familyRows(rows, f, variant).reduce((s, r) => s + r.ms, 0);
}

/** The checks a variant failed within its family (none: correct on this adapter). */
export function failedChecks(checks: VariantCheck[], f: keyof KernelChoice, variant: string): VariantCheck[] {
  return checks.filter((c) => FAMILY_OPS[f].includes(c.op) && c.variant === variant && !c.ok);
}

/** Per family, the variant with the least total time over its rows among those whose every
 *  product passed the check; the default where none did. */
export function fastestKernels(rows: VariantTiming[], checks: VariantCheck[], cand: KernelCandidates, defaults: KernelChoice): KernelChoice {
  const best = <T extends string>(f: keyof KernelChoice, vs: T[], dflt: T): T => {
    const good = vs.filter((v) => failedChecks(checks, f, v).length === 0 && familyRows(rows, f, v).length > 0);
    return good.length ? good.reduce((a, b) => (familyMs(rows, f, b) < familyMs(rows, f, a) ? b : a)) : dflt;
  };
  return Object.fromEntries(FAMILIES.map((f) => [f, best(f, cand[f] as string[], defaults[f])])) as unknown as KernelChoice;
}

/** [M, K, N] of the checks: partial 64- and 128-blocks every way, a ragged 8-slab and int4 group. */
export const CHECK_SHAPE = [67, 136, 130] as const;

/** Every variant this adapter runs against the float64 references, on shapes that leave partial
 *  blocks in every direction (also of the 128×128 tiles), ragged slabs and a ragged int4 group. */
export async function checkKernelVariants(gpu: Gpu): Promise<VariantCheck[]> {
  const [M, K, N] = CHECK_SHAPE;
  const cand = kernelCandidates(gpu);
  const x = seeded(M * K, 11), w = seeded(N * K, 12), dy = seeded(M * N, 13);
  const tx = gpu.tensor('check.x', [M, K], 'f32', x), tw = gpu.tensor('check.w', [N, K], 'f32', w), tdy = gpu.tensor('check.dy', [M, N], 'f32', dy);
  const ty = gpu.tensor('check.y', [M, N]), tdx = gpu.tensor('check.dx', [M, K]), tdw = gpu.tensor('check.dw', [N, K]);
  const host = quantizeHost(w, N, K, { bits: 4, group: 32, sym: false });
  const packed = allocPacked(gpu, 'check.w4', host);
  gpu.write(packed.codes, host.codes);
  gpu.write(packed.scales, host.scales);
  gpu.write(packed.zeros, host.zeros);
  const out: VariantCheck[] = [];
  // bound: per element (the f16-weight kernels: halfForwardErrorBound), else 1e-5 everywhere
  const check = async (op: KernelOp, variant: string, t: Tensor, n: number, run: () => void, ref: Float64Array, bound?: Float64Array, shape = `${opRows(op, M)}×${K}×${N}`) => {
    gpu.write(t, new Float32Array(n).fill(Number.NaN)); // every output must be written
    run();
    const got = await gpu.readF32(t);
    let err = 0, ok = true;
    for (let i = 0; i < n; i++) {
      const e = Number.isFinite(got[i]) ? Math.abs(got[i] - ref[i]) : Infinity;
      err = Math.max(err, e);
      // fp32 sums of 130 products of size ~0.01: errors ~1e-7; a wrong tile or code is ~1e-3 or more
      if (!(e <= (bound ? bound[i] : 1e-5))) ok = false;
    }
    out.push({ op, variant, shape, maxAbsError: err, ok });
  };
  const yRef = matmulForwardRef(x, w, M, K, N), dxRef = matmulBackwardInputRef(dy, w, M, K, N), dwRef = matmulBackwardWeightRef(dy, x, M, K, N);
  for (const v of cand.matmul) {
    await check('fp32 y=x·Wᵀ', v, ty, M * N, () => matmulForward(gpu, ty, tx, tw, M, K, N, { variant: v }), yRef);
    await check('fp32 dX', v, tdx, M * K, () => matmulBackwardInput(gpu, tdx, tdy, tw, M, K, N, { variant: v }), dxRef);
    await check('fp32 dW', v, tdw, N * K, () => {
      gpu.zero(tdw);
      matmulBackwardWeight(gpu, tdw, tdy, tx, M, K, N, { variant: v });
    }, dwRef);
  }
  const qRef = qmatmulRef(x, host, M), qdxRef = qmatmulDxRef(dy, host, M);
  for (const v of cand.gemm) await check('int4 y=x·Wᵀ', v, ty, M * N, () => qmatmulForward(gpu, ty, tx, packed, M, v), qRef);
  for (const v of cand.dx) await check('int4 dX', v, tdx, M * K, () => qmatmulBackwardInput(gpu, tdx, tdy, packed, M, false, v), qdxRef);
  // GEMV: the first row of x (K = 136: ragged last group; rows start on 16 bytes, so gemv_wide
  // runs its own kernel, not its fallback)
  const gRef = qmatmulRef(x.subarray(0, K), host, 1);
  for (const v of cand.gemv) await check('int4 GEMV', v, ty, N, () => qmatmulForward(gpu, ty, tx, packed, 1, v), gRef);
  // fp32 GEMV at K = 136 (each kernel's vec4 form) and K − 1 = 135 (its scalar form: the vec4 one
  // needs K % 4 == 0), the latter on W's first 135 columns as a (130, 135) matrix of its own
  const Kr = K - 1, wr = new Float32Array(N * Kr);
  for (let n = 0; n < N; n++) wr.set(w.subarray(n * K, n * K + Kr), n * Kr);
  const twr = gpu.tensor('check.wr', [N, Kr], 'f32', wr);
  for (const [k, wk, twk] of [[K, w, tw], [Kr, wr, twr]] as const) {
    const ref = matmulForwardRef(x.subarray(0, k), wk, 1, k, N);
    for (const v of cand.fp32gemv) await check('fp32 GEMV', v, ty, N, () => matmulForward(gpu, ty, tx, twk, 1, k, N, { gemvKernel: v }), ref, undefined, `1×${k}×${N}`);
  }
  gpu.free(twr);
  // f16 weights: x and W exact f16 values of magnitude 1/16..1 (x̂ = x, so one reference serves the
  // fp32- and the f16-arithmetic variants; each within its own derived bound)
  const hx = seededHalf(M * K, 14).values, hw = seededHalf(N * K, 15);
  const thx = gpu.tensor('check.xh', [M, K], 'f32', hx), thw = gpu.tensor('check.wh', [N, K / 2], 'u32', hw.packed);
  const hRef = matmulForwardRef(hx, hw.values, M, K, N);
  const hBound = { fp32: halfForwardErrorBound(hx, hw.values, M, K, N, false), f16: halfForwardErrorBound(hx, hw.values, M, K, N, true) };
  for (const v of cand.half) await check('f16-weight y=x·Wᵀ', v, ty, M * N, () => matmulHalfForward(gpu, ty, thx, thw, M, K, N, false, v), hRef, isF16MathVariant(v) ? hBound.f16 : hBound.fp32);
  for (const t of [tx, tw, tdy, ty, tdx, tdw, thx, thw]) gpu.free(t);
  freePacked(gpu, packed);
  return out;
}

/** A stored choice, checked against what this adapter can run (null if any part is not available).
 *  A choice stored before the f16-weight, GEMV, attention or fp32 GEMV families existed (no `half`,
 *  `gemv`, `attention`, `decode`, `fp32gemv`) keeps the adapter's kernel for them (for attention,
 *  its rule by shape; for the fp32 GEMV, the chosen matmul variant's own). */
export function validKernelChoice(gpu: Gpu, c: unknown): KernelChoice | null {
  if (!c || typeof c !== 'object') return null;
  const m = (c as { matmul?: unknown }).matmul;
  // (an unknown matmul name fails the check below whatever this is)
  const ownGemv = typeof m === 'string' ? variantGemv(m as MatmulKernel) : adapterFp32GemvVariant(gpu);
  const k: Record<string, unknown> = { half: adapterHalfVariant(gpu), gemv: adapterQmatmulVariant(gpu, 1), ...adapterAttention(gpu), fp32gemv: ownGemv, ...c };
  const cand = kernelCandidates(gpu);
  const ok = FAMILIES.every((f) => (cand[f] as string[]).includes(k[f] as string));
  return ok ? (Object.fromEntries(FAMILIES.map((f) => [f, k[f]])) as unknown as KernelChoice) : null;
}

/** The family whose variants serve a product. */
export function familyOf(op: KernelOp): keyof KernelChoice {
  return (FAMILIES.find((f) => FAMILY_OPS[f].includes(op)) ?? 'matmul') as keyof KernelChoice;
}

export interface ShapeTiming {
  shape: ShapeOp;
  variant: string;
  ms: number;
  gflops: number;
}

export interface ShapeTuning {
  rows: ShapeTiming[];
  checks: VariantCheck[];
  /** per shape, the fastest variant that passed its product's check (none: the family's choice stays) */
  chosen: { shape: ShapeOp; variant: string }[];
}

/** Whether `variant` failed the check of product `op` (per-shape choices judge one product). */
const failedProduct = (checks: VariantCheck[], op: KernelOp, variant: string) => checks.some((c) => c.op === op && c.variant === variant && !c.ok);

/** Per shape, the variant with the least time among those that passed their product's check. */
export function fastestPerShape(rows: ShapeTiming[], checks: VariantCheck[]): { shape: ShapeOp; variant: string }[] {
  const best = new Map<string, ShapeTiming>();
  for (const r of rows) {
    if (!Number.isFinite(r.ms) || failedProduct(checks, r.shape.op, r.variant)) continue;
    const k = shapeKey(r.shape), b = best.get(k);
    if (!b || r.ms < b.ms) best.set(k, r);
  }
  return [...best.values()].map((r) => ({ shape: r.shape, variant: r.variant }));
}

/**
 * Tune the matmul kernels to a run's own shapes (those its first step captured, shape-choice.ts):
 * every variant this adapter runs is checked against the float64 references (checkKernelVariants),
 * then each shape's product is timed with every variant of its family that passed, and the fastest
 * becomes that shape's choice on this device (setShapeChoices). Shapes that already have a choice
 * are skipped. On a real GPU each timing takes milliseconds; on lavapipe a large shape takes
 * seconds per variant, so tuning is asked for, never implied.
 */
export async function tuneKernelShapes(gpu: Gpu, shapes: ShapeOp[], opts: { reps?: number; capMs?: number; onProgress?: (done: number, total: number) => void; candidates?: Partial<KernelCandidates> } = {}): Promise<ShapeTuning> {
  const todo = shapes.filter((s) => !hasShapeChoice(gpu, s) && s.M > 0 && s.K > 0 && s.N > 0);
  const cand = { ...kernelCandidates(gpu), ...opts.candidates };
  const isAttention = (s: ShapeOp) => s.op === 'attention forward';
  // the matmuls' float64 checks, and the attention forwards' where an attention shape is to be tuned
  const checks = [...(todo.some((s) => !isAttention(s)) ? await checkKernelVariants(gpu) : []), ...(todo.some(isAttention) ? attentionFamilyChecks(await checkAttentionVariants(gpu)) : [])];
  // one-row forwards run the GEMV families' own choice (int4 GEMV, fp32 GEMV), not a GEMM's: not tuned here
  // attention: prefill chunks only (decoding keeps the device's choice)
  const variantsOf = (s: ShapeOp) => (cand[familyOf(s.op)] as string[]).filter((v) => !failedProduct(checks, s.op, v) && ((s.op !== 'int4 y=x·Wᵀ' && s.op !== 'fp32 y=x·Wᵀ') || s.M > 1) && (!isAttention(s) || (s.M > SPLIT_MAX_TQ && s.NH !== undefined)));
  const total = todo.reduce((n, s) => n + variantsOf(s).length, 0);
  const reps = opts.reps ?? 5, capMs = opts.capMs ?? 1000;
  const rows: ShapeTiming[] = [];
  let done = 0;
  for (const s of todo) {
    const { op, M, K, N } = s;
    const vs = variantsOf(s);
    if (vs.length < 2) {
      done += vs.length;
      continue; // nothing to choose between
    }
    if (isAttention(s)) {
      // B×Tq×Tk, NH/NKV heads of K: a prefill chunk at the run's own shape
      for (const v of vs as FlashVariant[]) {
        rows.push({ shape: s, variant: v, ...(await timeFlash(gpu, flashCall(gpu, v, { B: s.B ?? 1, Tq: M, Tk: N, NH: s.NH ?? 1, NKV: s.NKV ?? 1, HS: K }, true), reps, capMs)) });
        opts.onProgress?.(++done, total);
      }
      continue;
    }
    const o = allocOperands(gpu, M, K, N, s);
    for (const v of vs) {
      const ms = await timeCall(gpu, productCall(gpu, op, v, o, M, K, N), reps, capMs);
      rows.push({ shape: s, variant: v, ms, gflops: (2 * M * N * K) / ms / 1e6 });
      opts.onProgress?.(++done, total);
    }
    freeOperands(gpu, o);
  }
  const chosen = fastestPerShape(rows, checks);
  setShapeChoices(gpu, chosen);
  return { rows, checks, chosen };
}
