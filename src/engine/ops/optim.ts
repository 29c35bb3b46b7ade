// Whole-tensor reductions (shaders/reduce.wgsl), global-norm clipping and AdamW (shaders/optim.wgsl),
// all on the GPU with no readback between them:
//   sumSquaresMany(gpu, sumsq, 0, grads)  per-tensor Σg² into sumsq[0..n)   (ceil(n/15) partial dispatches + 1)
//   clipScale(gpu, clip, sumsq, n, maxNorm) clip[0] = min(1, maxNorm/(‖g‖+1e-6)), clip[1] = ‖g‖
//   adamwStep(gpu, p, g, m, v, clip, t, h)  one tensor, gradient multiplied by clip[0] on the GPU
//   new MultiAdamW(gpu, label, tensors)     the trainers' optimizer: m and v of every tensor in
//     .step(clip, t, h)                     arenas, up to 6 tensors per dispatch (bit for bit adamwStep)
// Reductions are deterministic (fixed order for a given length) and assign their outputs.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import type { AdamWHyper } from '../ref/optim';

const WG = 64;
const PER = 4;
const CHUNK = WG * PER;
/** partial slots per tensor: the most workgroups one tensor's partial pass uses */
const SEG = 256;
const RC = { WG, PER, SEG };

const scratch = new WeakMap<Gpu, Tensor>();
/** Reused scratch for partial sums (grows; one per device, labelled reduce.scratch). */
function partialsFor(gpu: Gpu, segments: number): Tensor {
  const need = segments * SEG;
  let t = scratch.get(gpu);
  if (!t || t.numel < need) {
    gpu.free(t);
    t = gpu.tensor('reduce.scratch.partials', [Math.max(need, 64 * SEG)]);
    scratch.set(gpu, t);
  }
  return t;
}

function partialPass(gpu: Gpu, parts: Tensor, segment: number, x: Tensor, n: number, mode: 0 | 1): void {
  if (n > x.numel) throw new Error(`reduce: n = ${n} exceeds tensor "${x.label}" (${x.numel} elements)`);
  const G = Math.max(1, Math.min(SEG, Math.ceil(n / CHUNK)));
  gpu.run({ shader: 'reduce', entry: 'partial', constants: RC }, { params: new Params().u32(n, mode, segment * SEG, 0), bindings: { 1: x, 2: parts }, workgroups: [G] });
}

function finishPass(gpu: Gpu, parts: Tensor, out: Tensor, outIndex: number, segments: number): void {
  if (outIndex + segments > out.numel) throw new Error(`reduce: out[${outIndex}..${outIndex + segments}) exceeds tensor "${out.label}" (${out.numel} elements)`);
  gpu.run({ shader: 'reduce', entry: 'finish', constants: RC }, { params: new Params().u32(0, 0, 0, outIndex), bindings: { 2: parts, 3: out }, workgroups: [segments] });
}

/** Tensors per partial_multi dispatch the shader offers, and its uniform table's slots. */
const PARTIAL_K = [15, 7, 3] as const;
const PARTIAL_KMAX = 15;

/** The most tensors one partial_multi dispatch may bind here (1 + K storage buffers). */
function partialsPerDispatch(gpu: Gpu): number {
  return PARTIAL_K.find((k) => 1 + k <= gpu.device.limits.maxStorageBuffersPerShaderStage) ?? 1;
}

const readDummy = new WeakMap<Gpu, Tensor>();

/** Partial passes of xs into segments 0.. of parts: up to K tensors per dispatch (the same
 *  partials as one partial pass per tensor, bit for bit). */
function partialPasses(gpu: Gpu, parts: Tensor, xs: readonly { t: Tensor; n: number }[], mode: 0 | 1, most?: number): void {
  const K = Math.min(partialsPerDispatch(gpu), most ?? Infinity);
  for (const x of xs) if (x.n > x.t.numel) throw new Error(`reduce: n = ${x.n} exceeds tensor "${x.t.label}" (${x.t.numel} elements)`);
  if (xs.length === 1 || K <= 1) {
    xs.forEach((x, s) => partialPass(gpu, parts, s, x.t, x.n, mode));
    return;
  }
  let dummy = readDummy.get(gpu);
  if (!dummy) readDummy.set(gpu, (dummy = gpu.tensor('reduce.unused', [1])));
  // by size: a dispatch runs the most workgroups any of its tensors needs; each tensor keeps its segment
  const order = xs.map((_, i) => i).sort((a, b) => xs[a].n - xs[b].n || a - b);
  for (let s0 = 0; s0 < order.length; s0 += K) {
    const group = order.slice(s0, s0 + K);
    if (group.length === 1) {
      partialPass(gpu, parts, group[0], xs[group[0]].t, xs[group[0]].n, mode);
      continue;
    }
    const V = PARTIAL_K.filter((k) => k >= group.length).pop()!; // the smallest variant that holds the group
    const params = new Params(64).u32(group.length, mode, 0, 0);
    const bindings: Record<number, Tensor> = { 2: parts };
    let most = 0;
    for (let j = 0; j < PARTIAL_KMAX; j++) {
      if (j < group.length) {
        const x = xs[group[j]];
        const G = Math.max(1, Math.min(SEG, Math.ceil(x.n / CHUNK))); // as partialPass: the same partials
        params.u32(x.n, 0, group[j] * SEG, G);
        if (j < V) bindings[10 + j] = x.t;
        most = Math.max(most, G);
      } else {
        params.u32(0, 0, 0, 0);
        if (j < V) bindings[10 + j] = dummy;
      }
    }
    gpu.run({ shader: 'reduce', entry: `partial_multi${V}`, constants: RC }, { params, bindings, workgroups: [most] });
  }
}

/** How many tensors' partial passes share a dispatch: at most `tensorsPerDispatch` (default: as many
 *  as the device binds, up to 15; 1: one partial dispatch per tensor, the previous way). */
export interface ReduceManyOptions {
  tensorsPerDispatch?: number;
}

function reduceMany(gpu: Gpu, out: Tensor, outIndex: number, xs: readonly (Tensor | { t: Tensor; n: number })[], mode: 0 | 1, opts: ReduceManyOptions = {}): void {
  if (xs.length === 0) return;
  const maxDim = gpu.device.limits.maxComputeWorkgroupsPerDimension;
  for (let s0 = 0; s0 < xs.length; s0 += maxDim) {
    const group = xs.slice(s0, s0 + maxDim).map((x) => ('t' in x ? x : { t: x, n: x.numel }));
    const parts = partialsFor(gpu, group.length);
    partialPasses(gpu, parts, group, mode, opts.tensorsPerDispatch);
    finishPass(gpu, parts, out, outIndex + s0, group.length);
  }
}

/** out[outIndex] = Σ x² over the first n elements (default: all); assigns. */
export function sumSquares(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n = x.numel): void {
  reduceMany(gpu, out, outIndex, [{ t: x, n }], 1);
}

/** out[outIndex] = Σ x over the first n elements (default: all), e.g. per-row losses to a total; assigns. */
export function sum(gpu: Gpu, out: Tensor, outIndex: number, x: Tensor, n = x.numel): void {
  reduceMany(gpu, out, outIndex, [{ t: x, n }], 0);
}

/** out[outIndex + i] = Σ xs[i]² for every tensor (or {t, n}: its first n elements); assigns.
 *  Partial passes of up to 15 tensors per dispatch, each into its own scratch segment, then a
 *  single finish dispatch: the cheap way to get per-tensor gradient norms for ~80 tensors per
 *  step. Each result equals sumSquares of that tensor alone, bit for bit. */
export function sumSquaresMany(gpu: Gpu, out: Tensor, outIndex: number, xs: readonly (Tensor | { t: Tensor; n: number })[], opts?: ReduceManyOptions): void {
  reduceMany(gpu, out, outIndex, xs, 1, opts);
}

/** out[outIndex + i] = Σ xs[i] for every tensor; assigns. */
export function sumMany(gpu: Gpu, out: Tensor, outIndex: number, xs: readonly (Tensor | { t: Tensor; n: number })[], opts?: ReduceManyOptions): void {
  reduceMany(gpu, out, outIndex, xs, 0, opts);
}

/** scaleOut (2): [0] = min(1, maxNorm / (‖g‖ + 1e-6)), [1] = ‖g‖ = sqrt(Σ sumSq[0..nTensors));
 *  maxNorm <= 0 (or Infinity) turns clipping off (scale 1). Assigns. */
export function clipScale(gpu: Gpu, scaleOut: Tensor, sumSq: Tensor, nTensors: number, maxNorm: number): void {
  if (scaleOut.numel < 2) throw new Error(`clipScale: "${scaleOut.label}" needs 2 elements (scale, norm)`);
  if (nTensors > sumSq.numel) throw new Error(`clipScale: ${nTensors} tensors but "${sumSq.label}" has ${sumSq.numel} elements`);
  const mn = Number.isFinite(maxNorm) ? maxNorm : 0;
  gpu.run({ shader: 'optim', entry: 'clip' }, { params: new Params().u32(nTensors, 0, 0, 0).f32(0, 0, 0, 0, 0, 0, 0, mn), bindings: { 1: sumSq, 2: scaleOut }, workgroups: [1] });
}

/** One AdamW step (t is 1-based) on param (n) with gradient grad·gradScale[0]; param, m, v updated in
 *  place (m, v start at zero). gradScale is a GPU tensor (clipScale's output, or [1]) so clipping
 *  needs no readback. Decoupled weight decay: param -= lr·(m̂/(sqrt(v̂)+eps) + weightDecay·param). */
export function adamwStep(gpu: Gpu, param: Tensor, grad: Tensor, m: Tensor, v: Tensor, gradScale: Tensor, t: number, h: AdamWHyper): void {
  const n = param.numel;
  if (grad.numel < n || m.numel < n || v.numel < n) throw new Error(`adamwStep: "${param.label}" (${n}) needs grad, m, v of at least as many elements`);
  if (!(t >= 1)) throw new Error(`adamwStep: step t = ${t} must be >= 1`);
  const params = new Params().u32(n, 0, 0, 0).f32(h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, 1 - h.beta1 ** t, 1 - h.beta2 ** t, 0);
  gpu.run({ shader: 'optim', entry: 'adamw', constants: { WG } }, { params, bindings: { 1: grad, 2: param, 3: m, 4: v, 5: gradScale }, workgroups: gpu.grid(Math.ceil(n / WG)) });
}

/** Tensors per multi-tensor AdamW dispatch the shader offers (entry adamw_multi<K>). */
const MULTI_K = [6, 4, 3, 2] as const;
/** the shader's KMAX: slots in its uniform table */
const KMAX = 6;

/** The most tensors one adamw_multi dispatch may bind on this device (3 + 2K storage buffers:
 *  scale, m arena, v arena, and a param and a grad per tensor); 0 when not even 2 fit. */
export function adamwTensorsPerDispatch(gpu: Gpu): number {
  const lim = gpu.device.limits.maxStorageBuffersPerShaderStage;
  return MULTI_K.find((k) => 3 + 2 * k <= lim) ?? 0;
}

const dummies = new WeakMap<Gpu, Tensor[]>();
/** Small buffers bound to a dispatch's unused slots (never read or written): KMAX distinct ones
 *  for the read_write param slots (writable bindings must not alias), one more for the grads. */
function dummiesFor(gpu: Gpu): Tensor[] {
  let d = dummies.get(gpu);
  if (!d) dummies.set(gpu, (d = Array.from({ length: KMAX + 1 }, (_, i) => gpu.tensor(`adamw.unused.${i}`, [1]))));
  return d;
}

interface MultiSlot {
  param: Tensor;
  grad: Tensor;
  /** numel of param */
  n: number;
  /** which arena pair, and the offset in it */
  arena: number;
  offset: number;
}

/**
 * AdamW over many tensors with few dispatches (the trainers' optimizer). Each tensor's m and v live
 * in two arenas (one pair per maxStorageBufferBindingSize of state) instead of a buffer each, so one
 * adamw_multi dispatch binds the two arenas, the gradient scale, and a param and a grad for each of
 * up to `perDispatch` tensors (6 where the adapter allows 15 storage buffers, 2 at WebGPU's default
 * 8), grouped by size (a dispatch covers the largest of its tensors). The update is adamwStep's, the same fp32 operations in the same order: bit-identical results.
 * m and v start at zero; state()/setState() read and write one tensor's moments (checkpoints).
 */
export class MultiAdamW {
  readonly perDispatch: number;
  private readonly slots: MultiSlot[] = [];
  /** (elements) per arena pair; m arenas[a], v arenas[a] */
  private readonly mArenas: Tensor[] = [];
  private readonly vArenas: Tensor[] = [];
  /** slot indices per dispatch: at most perDispatch, one arena, similar sizes (a dispatch covers its largest) */
  private readonly groups: number[][] = [];

  /** perDispatch: at most this many tensors per dispatch (default: what the device allows);
   *  arenaElems: elements per arena (default: the largest one binding holds) — tests force more arenas */
  constructor(readonly gpu: Gpu, readonly label: string, tensors: readonly { param: Tensor; grad: Tensor }[], opts: { perDispatch?: number; arenaElems?: number } = {}) {
    const most = adamwTensorsPerDispatch(gpu);
    if (most === 0) throw new Error(`MultiAdamW: this adapter allows ${gpu.device.limits.maxStorageBuffersPerShaderStage} storage buffers per shader stage; the multi-tensor AdamW needs at least 7`);
    const want = opts.perDispatch ?? most;
    if (!(want >= 1)) throw new Error(`MultiAdamW: perDispatch = ${want} must be >= 1`);
    this.perDispatch = Math.min(want, most);
    const cap = opts.arenaElems ?? Math.floor(gpu.device.limits.maxStorageBufferBindingSize / 4);
    const seen = new Set<GPUBuffer>();
    const sizes: number[] = [];
    for (const { param, grad } of tensors) {
      const n = param.numel;
      if (grad.numel < n) throw new Error(`MultiAdamW: "${param.label}" (${n} elements) has a gradient "${grad.label}" of only ${grad.numel}`);
      if (param.dtype !== 'f32' || grad.dtype !== 'f32') throw new Error(`MultiAdamW: "${param.label}" and its gradient must be f32`);
      if (n > cap) throw new Error(`MultiAdamW: "${param.label}" (${n} elements) does not fit one optimizer-state arena of ${cap} elements`);
      if (seen.has(param.buffer)) throw new Error(`MultiAdamW: "${param.label}" is listed twice`);
      seen.add(param.buffer);
      if (sizes.length === 0 || sizes[sizes.length - 1] + n > cap) sizes.push(0);
      const arena = sizes.length - 1;
      this.slots.push({ param, grad, n, arena, offset: sizes[arena] });
      sizes[arena] += n;
    }
    sizes.forEach((e, a) => {
      this.mArenas.push(gpu.tensor(`${label}.adam_m.${a}`, [e]));
      this.vArenas.push(gpu.tensor(`${label}.adam_v.${a}`, [e]));
    });
    // by arena, then by size: each dispatch runs ceil(largest / WG) workgroups, so tensors of
    // similar sizes share one (the order of updates does not matter: each element is independent)
    const order = this.slots.map((_, i) => i).sort((a, b) => this.slots[a].arena - this.slots[b].arena || this.slots[a].n - this.slots[b].n || a - b);
    for (const i of order) {
      const g = this.groups[this.groups.length - 1];
      if (g && g.length < this.perDispatch && this.slots[g[0]].arena === this.slots[i].arena) g.push(i);
      else this.groups.push([i]);
    }
  }

  /** Tensors updated (in the order given). */
  get size(): number {
    return this.slots.length;
  }

  /** Dispatches per step. */
  get dispatches(): number {
    return this.groups.length;
  }

  /**
   * One AdamW step (t is 1-based) on every tensor, gradients multiplied by gradScale[0] on the GPU
   * (clipScale's output, or [1]). h: one set of hyper-parameters, or one per tensor (index in the
   * order given): lr and weight decay may differ per tensor; beta1, beta2 and eps must agree.
   */
  step(gradScale: Tensor, t: number, h: AdamWHyper | ((i: number) => AdamWHyper)): void {
    if (!(t >= 1)) throw new Error(`MultiAdamW: step t = ${t} must be >= 1`);
    const hyper = typeof h === 'function' ? h : () => h;
    const dummy = dummiesFor(this.gpu);
    for (const group of this.groups) {
      const h0 = hyper(group[0]);
      const params = new Params(64).u32(group.length, 0, 0, 0).f32(h0.beta1, h0.beta2, h0.eps, 1 - h0.beta1 ** t, 1 - h0.beta2 ** t, 0, 0, 0);
      const K = MULTI_K.filter((k) => k >= group.length).pop()!;
      const bindings: Record<number, Tensor> = { 6: gradScale, 7: this.mArenas[this.slots[group[0]].arena], 8: this.vArenas[this.slots[group[0]].arena] };
      const hs: AdamWHyper[] = [];
      let most = 0;
      for (let j = 0; j < KMAX; j++) {
        if (j < group.length) {
          const s = this.slots[group[j]];
          const hj = hyper(group[j]);
          if (hj.beta1 !== h0.beta1 || hj.beta2 !== h0.beta2 || hj.eps !== h0.eps) throw new Error(`MultiAdamW: "${s.param.label}" has other betas or eps than "${this.slots[group[0]].param.label}" in the same dispatch`);
          params.u32(s.n, 0, s.offset, 0);
          hs.push(hj);
          most = Math.max(most, s.n);
          if (j < K) (bindings[10 + j] = s.param), (bindings[20 + j] = s.grad);
        } else {
          params.u32(0, 0, 0, 0);
          if (j < K) (bindings[10 + j] = dummy[j]), (bindings[20 + j] = dummy[KMAX]);
        }
      }
      for (let j = 0; j < KMAX; j++) params.f32(j < hs.length ? hs[j].lr : 0, j < hs.length ? hs[j].weightDecay : 0, 0, 0);
      this.gpu.run({ shader: 'optim', entry: `adamw_multi${K}`, constants: { WG } }, { params, bindings, workgroups: this.gpu.grid(Math.ceil(most / WG)) });
    }
  }

  /** Tensor i's m and v (a blocking readback). */
  async state(i: number): Promise<{ m: Float32Array; v: Float32Array }> {
    const s = this.slot(i);
    const read = async (a: Tensor) => new Float32Array(await this.gpu.readBytes(a.buffer, s.n * 4, s.offset * 4));
    return { m: await read(this.mArenas[s.arena]), v: await read(this.vArenas[s.arena]) };
  }

  /** Set tensor i's m and v (restoring a checkpoint). */
  setState(i: number, m: Float32Array, v: Float32Array): void {
    const s = this.slot(i);
    if (m.length !== s.n || v.length !== s.n) throw new Error(`MultiAdamW: "${s.param.label}" has ${s.n} elements, its state ${m.length} (m) and ${v.length} (v)`);
    this.gpu.write(this.mArenas[s.arena], m, s.offset);
    this.gpu.write(this.vArenas[s.arena], v, s.offset);
  }

  private slot(i: number): MultiSlot {
    const s = this.slots[i];
    if (!s) throw new Error(`MultiAdamW: no tensor ${i} (${this.slots.length} tensors)`);
    return s;
  }

  free(): void {
    for (const t of [...this.mArenas, ...this.vArenas]) this.gpu.free(t);
    this.mArenas.length = 0;
    this.vArenas.length = 0;
  }
}
