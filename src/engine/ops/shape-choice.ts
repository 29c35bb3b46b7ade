// Matmul kernels chosen per shape: a table (op, M, K, N) -> variant that the matmul wrappers consult
// (and the attention forward, at prefill shapes: B, Tq, Tk, heads and head size)
// before their family's choice, and a capture of the shapes a run dispatches. One variant per family
// is a compromise on a real GPU: 128×128 tiles leave most of an H200's 132 SMs idle on SmolLM2's
// 1024×576×576 projections (40 blocks) but suit its 49,152-wide classifier. kernel-choice.ts
// (tuneKernelShapes) fills the table by timing every variant at the shapes a run's first step
// captured, after checking each against the float64 reference. Off unless a run asks for it.
import type { Gpu } from '../gpu/runtime';

/** The products whose kernels are chosen (kernel-choice's families split by product); the matmuls
 *  with more than one row and the attention forward over more than SPLIT_MAX_TQ query rows are also
 *  chosen per shape (decoding and the GEMVs per device only). */
export type KernelOp = 'fp32 y=x·Wᵀ' | 'fp32 dX' | 'fp32 dW' | 'int4 y=x·Wᵀ' | 'int4 dX' | 'f16-weight y=x·Wᵀ' | 'int4 GEMV' | 'attention forward' | 'attention decode' | 'fp32 GEMV';

/** One product at one shape, M×K×N as in y (M, N) = x (M, K) · W (N, K)ᵀ (dX and dW: the forward's
 *  shape), with the int4 layout's bits and group where it has one. The attention forward: M = Tq
 *  query rows, K = the head size, N = Tk keys, with the batch B and the NH query / NKV key heads. */
export interface ShapeOp {
  op: KernelOp;
  M: number;
  K: number;
  N: number;
  bits?: number;
  group?: number;
  B?: number;
  NH?: number;
  NKV?: number;
}

/** How a shape reads: "M×K×N" (with "w4g32" for an int4 layout); the attention forward
 *  "B×Tq×Tk NH/NKV HS n", as the GPU panel's timings write it. */
export function shapeLabel(s: ShapeOp): string {
  if (s.NH !== undefined) return `${s.B ?? 1}×${s.M}×${s.N} ${s.NH}/${s.NKV} HS ${s.K}`;
  return `${s.M}×${s.K}×${s.N}${s.bits ? ` w${s.bits}g${s.group}` : ''}`;
}

interface State {
  table: Map<string, string>;
  capture: Map<string, ShapeOp> | null;
  /** runs tune the shapes of their first step (workflow/run.ts): the studio's GPU panel, QUENCH_KERNELS=…,tune */
  tuning: boolean;
}

const states = new WeakMap<Gpu, State>();

/** A shape's identity in the table (and wherever shapes are grouped). */
export function shapeKey(s: ShapeOp): string {
  return `${s.op}|${s.M}|${s.K}|${s.N}|${s.bits ?? ''}|${s.group ?? ''}|${s.B ?? ''}|${s.NH ?? ''}|${s.NKV ?? ''}`;
}

/** The variant chosen for this product at this shape on this device, if any (and, while capturing,
 *  note the shape). Called by the wrappers on every 'auto' dispatch: a WeakMap miss when unused. */
export function shapeVariant(gpu: Gpu, s: ShapeOp): string | undefined {
  const st = states.get(gpu);
  if (!st) return undefined;
  const k = shapeKey(s);
  if (st.capture && !st.capture.has(k)) st.capture.set(k, { ...s });
  return st.table.get(k);
}

function state(gpu: Gpu): State {
  let st = states.get(gpu);
  if (!st) states.set(gpu, (st = { table: new Map(), capture: null, tuning: false }));
  return st;
}

/** Use these variants at these shapes (merged into the table); null clears the table. */
export function setShapeChoices(gpu: Gpu, choices: { shape: ShapeOp; variant: string }[] | null): void {
  const st = state(gpu);
  if (!choices) st.table.clear();
  else for (const c of choices) st.table.set(shapeKey(c.shape), c.variant);
}

/** Whether runs on this device tune the matmul kernels to their shapes first. */
export function shapeTuning(gpu: Gpu): boolean {
  return states.get(gpu)?.tuning ?? false;
}

/** Make runs tune their shapes first (tuneKernelShapes after a run's first step), or stop. Turning it
 *  off also clears the table: every product back to its family's choice. */
export function setShapeTuning(gpu: Gpu, on: boolean): void {
  const st = state(gpu);
  st.tuning = on;
  if (!on) st.table.clear();
}

/** Whether this shape has a choice already (a second run of the same shapes tunes nothing). */
export function hasShapeChoice(gpu: Gpu, s: ShapeOp): boolean {
  return states.get(gpu)?.table.has(shapeKey(s)) ?? false;
}

/** The table now, as (shape, variant) pairs. */
export function shapeChoices(gpu: Gpu): { shape: ShapeOp; variant: string }[] {
  const st = states.get(gpu);
  if (!st) return [];
  return [...st.table.entries()].map(([k, variant]) => {
    const [op, M, K, N, bits, group, B, NH, NKV] = k.split('|');
    return { shape: { op: op as KernelOp, M: +M, K: +K, N: +N, ...(bits ? { bits: +bits } : {}), ...(group ? { group: +group } : {}), ...(NH ? { B: +B, NH: +NH, NKV: +NKV } : {}) }, variant };
  });
}

/** Start noting every (product, shape) the wrappers dispatch with 'auto'. */
export function startShapeCapture(gpu: Gpu): void {
  state(gpu).capture = new Map();
}

/** Stop noting; the distinct shapes seen since startShapeCapture, in first-seen order. */
export function stopShapeCapture(gpu: Gpu): ShapeOp[] {
  const st = state(gpu);
  const out = [...(st.capture?.values() ?? [])];
  st.capture = null;
  return out;
}
