// RMSNorm over rows of C (LLaMA): y = x / sqrt(mean(x²) + eps) * w. See shaders/rmsnorm.wgsl.
// forward writes y (rows, C) and, when given, rstd (rows) for the backward. backward: dx (assigns),
// dw (accumulates; skipped when dw is null, e.g. a frozen norm), the row sum done as per-chunk
// partials plus a fixed-order reduce (deterministic, no atomics).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import { isSoftwareAdapter } from './qmatmul';

/** rows per dw partial (the CHUNK override) */
export const RMSNORM_DW_CHUNK = 64;
const WG1 = 64; // 1-D kernels (dw_partial, dw_reduce)

/** 'thread': one thread per row, barrier-free (CPU Vulkan). 'workgroup': LANES threads per row
 *  with a tree reduction (real GPUs). 'auto': 'thread' on software adapters, else 'workgroup'. */
export type RmsnormVariant = 'auto' | 'thread' | 'workgroup';
export interface RmsnormOpts {
  variant?: RmsnormVariant;
  /** 'workgroup' only: force the threads per row (a power of two, 2..256) */
  lanes?: number;
}

export function rmsnormLayout(gpu: Gpu, C: number, variant: RmsnormVariant = 'auto', lanesWanted?: number): { WG: number; LANES: number } {
  const v = variant === 'auto' ? (isSoftwareAdapter(gpu) ? 'thread' : 'workgroup') : variant;
  if (v === 'thread') return { WG: 64, LANES: 1 };
  let lanes = lanesWanted ?? 32;
  if (lanesWanted === undefined) while (lanes < 256 && lanes * 4 < C) lanes *= 2;
  if (!(lanes >= 2 && lanes <= 256 && (lanes & (lanes - 1)) === 0)) throw new Error(`rmsnorm: lanes ${lanes} must be a power of two in 2..256`);
  return { WG: Math.max(64, lanes), LANES: lanes };
}

const partials = new WeakMap<Gpu, Tensor>();
const dummies = new WeakMap<Gpu, Tensor[]>();

/** Reused scratch for the dw partials (grows; one per device, labelled rmsnorm.scratch). */
function partialsScratch(gpu: Gpu, n: number): Tensor {
  let t = partials.get(gpu);
  if (!t || t.numel < n) {
    gpu.free(t);
    t = gpu.tensor('rmsnorm.scratch.dw_partials', [Math.max(n, 1024)]);
    partials.set(gpu, t);
  }
  return t;
}
/** One-element stand-ins for bindings an entry declares but this call does not use (two, so that
 *  two unused writable bindings never alias). */
function dummy(gpu: Gpu, which: 0 | 1 = 0): Tensor {
  let ts = dummies.get(gpu);
  if (!ts) {
    ts = [gpu.tensor('rmsnorm.scratch.unused', [1]), gpu.tensor('rmsnorm.scratch.unused2', [1])];
    dummies.set(gpu, ts);
  }
  return ts[which];
}

function need(op: string, name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${op}: ${name} "${t.label}" has ${t.numel} elements, needs ${n}`);
}

/** y (rows, C) = x (rows, C) * rstd * w (C) (assigns); rstd (rows) assigns when not null. With
 *  opts.residual = { add, sum }: the residual add before the norm in the same pass, sum = x + add
 *  (assigns; what is normalized, and what the backward takes as the norm's input). */
export function rmsnormForward(gpu: Gpu, y: Tensor, rstd: Tensor | null, x: Tensor, w: Tensor, rows: number, C: number, eps: number, opts: RmsnormOpts & { residual?: { add: Tensor; sum: Tensor } } = {}): void {
  need('rmsnormForward', 'y', y, rows * C);
  need('rmsnormForward', 'x', x, rows * C);
  need('rmsnormForward', 'w', w, C);
  if (rstd) need('rmsnormForward', 'rstd', rstd, rows);
  const r = opts.residual;
  if (r) {
    need('rmsnormForward', 'residual add', r.add, rows * C);
    need('rmsnormForward', 'residual sum', r.sum, rows * C);
    for (const t of [x, r.add, y]) if (t.buffer === r.sum.buffer) throw new Error(`rmsnormForward: the residual sum "${r.sum.label}" must be a tensor of its own (it is also "${t.label}")`);
  }
  const { WG, LANES } = rmsnormLayout(gpu, C, opts.variant, opts.lanes);
  const v4 = LANES === 1 && C % 4 === 0; // one thread per row, vec4 loads (forward4)
  gpu.run(
    { shader: 'rmsnorm', entry: v4 ? 'forward4' : 'forward', constants: v4 ? { WG } : { WG, LANES } },
    { params: new Params().u32(rows, C).f32(eps).u32((rstd ? 1 : 0) | (r ? 2 : 0)), bindings: { 1: x, 2: w, 3: y, 4: rstd ?? dummy(gpu), 10: r?.add ?? x, 11: r?.sum ?? dummy(gpu, 1) }, workgroups: gpu.grid(Math.ceil(rows / (WG / LANES))) },
  );
}

/** dx (rows, C) = ∂(Σ y·dy)/∂x (assigns; + opts.addTo (rows, C) when given: the residual
 *  branch's gradient summed in the same pass); dw (C) += Σ_rows dy·x·rstd (accumulates; skipped
 *  when null). dy (rows, C), x (rows, C) the forward's input, w (C), rstd (rows) from the forward. */
export function rmsnormBackward(gpu: Gpu, dx: Tensor, dw: Tensor | null, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, C: number, opts: RmsnormOpts & { addTo?: Tensor } = {}): void {
  need('rmsnormBackward', 'dx', dx, rows * C);
  need('rmsnormBackward', 'dy', dy, rows * C);
  need('rmsnormBackward', 'x', x, rows * C);
  need('rmsnormBackward', 'w', w, C);
  need('rmsnormBackward', 'rstd', rstd, rows);
  if (opts.addTo) {
    need('rmsnormBackward', 'addTo', opts.addTo, rows * C);
    if (opts.addTo.buffer === dx.buffer) throw new Error(`rmsnormBackward: addTo "${opts.addTo.label}" cannot be dx itself`);
  }
  const params = (flags = 0) => new Params().u32(rows, C).f32(0).u32(flags);
  const { WG, LANES } = rmsnormLayout(gpu, C, opts.variant, opts.lanes);
  const v4 = LANES === 1 && C % 4 === 0; // one thread per row, vec4 loads (backward_dx4)
  gpu.run({ shader: 'rmsnorm', entry: v4 ? 'backward_dx4' : 'backward_dx', constants: v4 ? { WG } : { WG, LANES } }, { params: params(opts.addTo ? 2 : 0), bindings: { 1: x, 2: w, 5: dy, 6: rstd, 7: dx, 10: opts.addTo ?? dy }, workgroups: gpu.grid(Math.ceil(rows / (WG / LANES))) });
  if (!dw) return;
  need('rmsnormBackward', 'dw', dw, C);
  const nChunks = Math.ceil(rows / RMSNORM_DW_CHUNK);
  const part = partialsScratch(gpu, nChunks * C);
  const consts = { WG: WG1, CHUNK: RMSNORM_DW_CHUNK };
  gpu.run({ shader: 'rmsnorm', entry: 'dw_partial', constants: consts }, { params: params(), bindings: { 1: x, 5: dy, 6: rstd, 9: part }, workgroups: gpu.grid(Math.ceil((nChunks * C) / WG1)) });
  gpu.run({ shader: 'rmsnorm', entry: 'dw_reduce', constants: consts }, { params: params(), bindings: { 8: dw, 9: part }, workgroups: gpu.grid(Math.ceil(C / WG1)) });
}
