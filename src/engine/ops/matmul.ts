// Linear-layer matmuls in the PyTorch layout: W (N, K) = (out, in), y = x·Wᵀ. See shaders/matmul.wgsl.
//   matmulForward:        y (M,N)  = x (M,K) · Wᵀ          (assigns, or += with accumulate)
//   matmulBackwardInput:  dx (M,K) = dy (M,N) · W (N,K)     (assigns, or += with accumulate)
//   matmulBackwardWeight: dW (N,K) += dyᵀ (N,M) · x (M,K)   (always accumulates)
// Kernel variants (opts.variant):
//   'subgroup' (shaders/matmul_sg.wgsl) one 8-lane subgroup per 32x16 block of C (32x32 for dX/dW when
//              K and N are multiples of 4: both operands as vec4, 32 columns of B per load), each operand
//              value loaded once and shared by subgroupBroadcast; vec4 loads where aligned (forward: K % 4,
//              dX and dW: N % 4), scalar strided loads otherwise (any shape). No workgroup memory. CPU Vulkan with
//              8-wide subgroups (lavapipe): measured 2.5-4x 'regtile' there.
//   'regtile'  4x4 register tile per thread, vec4 loads where the shape allows (K, N multiples of 4),
//              no workgroup memory: CPU Vulkan without subgroups (SwiftShader).
//   'shared'   workgroup-memory tiled (64x64 block per workgroup, BK-deep slabs): what real GPUs want.
//   'shared8'  workgroup-memory tiled with an 8x8 register tile per thread (128x128 block, 8-deep
//              slabs, vec4 workgroup reads): 4x the FMAs per workgroup load of 'shared', for large
//              products on real GPUs. Selectable, not picked by 'auto': no GPU has measured it yet
//              (bench/gpu.sh prints it beside 'shared').
//   'shared8p' 'shared8' with the next slab prefetched into registers during the current slab's FMAs
//              (global-load latency hidden behind arithmetic, the usual GPU GEMM pipelining; the same
//              sums in the same order). Selectable, unmeasured on a GPU like 'shared8'.
//   'auto'     (default) pickMatmulVariant(gpu).
// At M = 1 the forward takes a GEMV path unless opts.gemv === false (Fp32GemvKernel): each variant
// has its own, 'regtile' / 'subgroup' -> one thread per 4 outputs, barrier-free ('gemv_rows');
// 'shared' / 'shared8' / 'shared8p' -> one workgroup per output with a tree reduction ('gemv_wg').
// opts.gemvKernel names one, 'gemv_red' included (subgroup sums, shaders/matmul_gemv.wgsl); under
// 'auto' the fp32 GEMV family's choice (preferFp32GemvVariant) comes first, else the picked
// variant's own. Each takes vec4 loads where K % 4 == 0 ('gemv_rows4', 'gemv_wg4', 'gemv_red4').
// 'gemv' is kept as an alias: 'shared' GEMV at M = 1, 'auto' otherwise.
import { shapeVariant, type ShapeOp } from './shape-choice';
import { isSoftwareAdapterInfo, Params, type Gpu, type Tensor } from '../gpu/runtime';

export type MatmulKernel = 'subgroup' | 'regtile' | 'shared' | 'shared8' | 'shared8p';
export type MatmulVariant = 'auto' | MatmulKernel | 'gemv';
export const MATMUL_VARIANTS: readonly MatmulKernel[] = ['subgroup', 'regtile', 'shared', 'shared8', 'shared8p'];
/** The fp32 GEMV kernels (M = 1 forward: generating with an FP model, the LM head): gemv_rows (one
 *  thread per 4 outputs, barrier-free: what regtile / subgroup run), gemv_wg (a workgroup per output,
 *  tree sum in workgroup memory: what the shared variants run), gemv_red (subgroup sums, several
 *  rows per workgroup: shaders/matmul_gemv.wgsl). Each takes vec4 loads where K % 4 == 0. */
export type Fp32GemvKernel = 'gemv_rows' | 'gemv_wg' | 'gemv_red';
export const FP32_GEMV_VARIANTS: readonly Fp32GemvKernel[] = ['gemv_rows', 'gemv_wg', 'gemv_red'];

export interface MatmulOpts {
  /** out += result instead of out = result (forward and backward-input only; dW always accumulates) */
  accumulate?: boolean;
  variant?: MatmulVariant;
  /** M = 1 forward: use a GEMV kernel (default true); false runs the GEMM kernel of the variant */
  gemv?: boolean;
  /** M = 1 forward: this GEMV kernel (default: an explicit variant's own, else pickFp32GemvVariant) */
  gemvKernel?: Fp32GemvKernel;
  /** 'subgroup' dX / dW: the strided-B kernels (sg_nn4 / sg_tn4) even where B's vec4 loads apply
   *  (sg_nnv / sg_tnv); for the bench's old-vs-new rows and for tests */
  stridedB?: boolean;
}

/** Software (CPU) WebGPU adapters: Mesa lavapipe/llvmpipe, SwiftShader. */
export function isSoftwareMatmulAdapter(gpu: Gpu): boolean {
  return isSoftwareAdapterInfo(gpu.info);
}

/** The 'subgroup' kernels need WGSL subgroups with exactly 8 lanes (their blocks are 8 lanes wide). */
export function hasSubgroup8(gpu: Gpu): boolean {
  if (gpu.info.picksAs === 'gpu') return false; // the 8-lane kernels are for CPU adapters' SIMD width
  return !!gpu.hasSubgroups && gpu.info.subgroupMinSize === 8 && gpu.info.subgroupMaxSize === 8;
}

/** gemv_red (int4 and fp32) needs WGSL subgroups and the `subgroup_id` language feature (Chrome 144+; Dawn in
 *  Node). The feature list is read from navigator.gpu where there is one (browsers, workers); Node's
 *  Dawn has it, and an older one would report the shader's compile error. */
export function canGemvRed(gpu: Gpu): boolean {
  if (!gpu.hasSubgroups) return false;
  const feats = (globalThis as { navigator?: { gpu?: { wgslLanguageFeatures?: ReadonlySet<string> } } }).navigator?.gpu?.wgslLanguageFeatures;
  return !feats || feats.has('subgroup_id');
}

const RED_WG = 128; // gemv_red (int4 and fp32): invocations per workgroup (4 subgroups of 32, 2 of 64, 16 of 8)
const RED_RB = 2; // gemv_red: rows a subgroup works on at once (sharing its x loads)

/** gemv_red's (int4 and fp32) rows per workgroup: one RB-row block per subgroup at the adapter's smallest subgroup
 *  size, so no subgroup idles (32 lanes: 8 rows; 8 lanes: 32). Only speed depends on it: the kernel
 *  is right for any value. Unknown sizes count as 32. */
function gemvRedRows(gpu: Gpu, wg: number, rb: number): number {
  const min = gpu.info.subgroupMinSize || 32;
  return rb * Math.max(1, Math.floor(wg / Math.min(min, wg)));
}

/** gemv_red's (int4 and fp32) override constants for `opts` (wg invocations per workgroup, rows per
 *  workgroup, rb rows per subgroup block 1..4; defaults RED_WG, gemvRedRows, RED_RB), after checking
 *  that this adapter runs it; `name` starts the errors ("qmatmul gemv_red", "fp32 gemv_red"). */
export function gemvRedShape(gpu: Gpu, name: string, opts: { wg?: number; rows?: number; rb?: number }): { WG: number; RPW: number; RB: number } {
  if (!gpu.hasSubgroups) throw new Error(`${name} needs WGSL subgroups; this adapter (${gpu.info.description || gpu.info.vendor}) has none`);
  if (!canGemvRed(gpu)) throw new Error(`${name} needs the WGSL language feature 'subgroup_id' (Chrome 144+); this browser's navigator.gpu.wgslLanguageFeatures lacks it`);
  const WG = opts.wg ?? RED_WG;
  const RB = opts.rb ?? RED_RB;
  if (!(RB >= 1 && RB <= 4)) throw new Error(`${name}: rb = ${RB}, needs 1..4`);
  return { WG, RPW: opts.rows ?? gemvRedRows(gpu, WG, RB), RB };
}

/** The variants this device can run (the bench and tests iterate over these). */
export function matmulVariants(gpu: Gpu): MatmulKernel[] {
  return MATMUL_VARIANTS.filter((v) => v !== 'subgroup' || hasSubgroup8(gpu));
}

/** The fp32 GEMV kernels this device can run (gemv_red: subgroups and subgroup_id). */
export function fp32GemvVariants(gpu: Gpu): Fp32GemvKernel[] {
  return FP32_GEMV_VARIANTS.filter((v) => v !== 'gemv_red' || canGemvRed(gpu));
}

/** The GEMV kernel a matmul variant runs at M = 1 (its own, before the fp32 GEMV family existed). */
export function variantGemv(v: MatmulKernel): Fp32GemvKernel {
  return v === 'shared' || v === 'shared8' || v === 'shared8p' ? 'gemv_wg' : 'gemv_rows';
}

const preferredGemv = new WeakMap<Gpu, Fp32GemvKernel>();

/** Make 'auto' run fp32 GEMVs with `v` on this device (null: back to the matmul family's own). */
export function preferFp32GemvVariant(gpu: Gpu, v: Fp32GemvKernel | null): void {
  if (v) preferredGemv.set(gpu, v);
  else preferredGemv.delete(gpu);
}

/** The fp32 GEMV the adapter's own matmul variant runs (gemv_red is picked by no 'auto' until a
 *  GPU has timed it: the studio's GPU panel and `quench kernels` time it). */
export function adapterFp32GemvVariant(gpu: Gpu): Fp32GemvKernel {
  return variantGemv(adapterMatmulVariant(gpu));
}

/** The fp32 GEMV 'auto' runs: the one chosen with preferFp32GemvVariant, else the matmul variant's. */
export function pickFp32GemvVariant(gpu: Gpu): Fp32GemvKernel {
  return preferredGemv.get(gpu) ?? variantGemv(pickMatmulVariant(gpu));
}

const preferred = new WeakMap<Gpu, MatmulKernel>();

/** Make 'auto' run `v` on this device (null: back to the adapter's pick), so that a benchmark can
 *  time whole training steps with each variant (bench/smollm-kdqat.mts --matmul). */
export function preferMatmulVariant(gpu: Gpu, v: MatmulKernel | null): void {
  if (v) preferred.set(gpu, resolve(gpu, v)); // resolve refuses a variant the adapter cannot run
  else preferred.delete(gpu);
}

/** The kernel family this adapter's kind calls for: register tiles on CPU adapters (with subgroup
 *  broadcasts where the subgroups are 8 wide), workgroup memory on GPUs. */
export function adapterMatmulVariant(gpu: Gpu): MatmulKernel {
  if (!isSoftwareMatmulAdapter(gpu)) return 'shared';
  return hasSubgroup8(gpu) ? 'subgroup' : 'regtile';
}

/** The kernel family 'auto' runs: the one chosen with preferMatmulVariant, else the adapter's. */
export function pickMatmulVariant(gpu: Gpu): MatmulKernel {
  return preferred.get(gpu) ?? adapterMatmulVariant(gpu);
}

// Workgroup shapes (override constants). regtile: 4x4 threads, each 4x4 outputs -> 16x16 block
// (measured best on lavapipe among 4x4, 8x8, 16x4, 32x2, 64x1).
// tiled: 16x16 threads -> 64x64 block, 16-deep slabs. gemv: 64 threads.
const RT = { WGX: 4, WGY: 4 };
const SH = { WGX: 16, WGY: 16, BK: 16 };
// matmul_sg.wgsl blocks of C per workgroup (rows, columns); must match shaders/matmul_sg.gen.mjs:
// sg_nt4 / sg_nn4 / sg_tn4 / sg_gen: TM = 4 rows x 8 lanes, NB = 2 x 8 columns; sg_nnv / sg_tnv: 32 x 32 (V).
const SG = { BM: 32, BN: 16, V: [32, 32] as const };
const GEMV_WG = 64;
const ROWS_WG = 16; // gemv_rows: 4 outputs per thread, small workgroups spread rows over CPU cores

type Layout = 'nt' | 'nn' | 'tn';

function checkSize(name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${name}: tensor "${t.label}" has ${t.numel} elements, needs ${n}`);
}

function resolve(gpu: Gpu, v: MatmulVariant | undefined): MatmulKernel {
  if (v === 'subgroup' && !hasSubgroup8(gpu)) throw new Error(`matmul variant 'subgroup' needs WGSL subgroups of exactly 8 lanes; this adapter (${gpu.info.description || gpu.info.vendor}) has ${gpu.hasSubgroups ? `${gpu.info.subgroupMinSize}-${gpu.info.subgroupMaxSize}` : 'none'}`);
  if (v === 'regtile' || v === 'shared' || v === 'shared8' || v === 'shared8p' || v === 'subgroup') return v;
  if (v === 'gemv') return 'shared';
  return pickMatmulVariant(gpu);
}

/** The family for an 'auto' product at this shape: the per-shape choice (shape-choice.ts), else
 *  resolve's. An explicit variant, or stridedB (a bench/test layout), is never overridden. */
function pick(gpu: Gpu, v: MatmulVariant | undefined, s: ShapeOp, stridedB?: boolean): MatmulKernel {
  if ((v === undefined || v === 'auto') && !stridedB) {
    const t = shapeVariant(gpu, s) as MatmulKernel | undefined;
    if (t) return t;
  }
  return resolve(gpu, v);
}

/** C (I,J) (+)= Σ_r A(i,r) B(j,r), A(i,r) = a[i*sAi + r*sAr], B(j,r) = b[j*sBj + r*sBr]. */
function gemm(gpu: Gpu, variant: MatmulKernel, layout: Layout, c: Tensor, a: Tensor, b: Tensor, I: number, J: number, R: number, s: [number, number, number, number], accumulate: boolean, stridedB = false): void {
  if (I === 0 || J === 0) return;
  const params = new Params().u32(I, J, R, s[0], s[1], s[2], s[3], accumulate ? 1 : 0);
  const bindings = [a, b, c];
  if (variant === 'subgroup') {
    // vec4 loads of A along r (forward, dX) or along i (dW), of B along r (forward) where aligned
    // dX and dW: B is contiguous along j; where J and its r stride are multiples of 4 one vec4 load
    // brings 32 columns of B (sg_nnv / sg_tnv, 32x32 blocks), else strided scalar loads (sg_nn4 / sg_tn4)
    const bVec4 = !stridedB && s[2] === 1 && J % 4 === 0 && s[3] % 4 === 0;
    let entry = 'sg_gen';
    let block: readonly [number, number] = [SG.BM, SG.BN];
    if (layout === 'nt' && R % 4 === 0 && s[0] % 4 === 0 && s[2] % 4 === 0) entry = 'sg_nt4';
    else if (layout === 'nn' && R % 4 === 0 && s[0] % 4 === 0) [entry, block] = bVec4 ? ['sg_nnv', SG.V] : ['sg_nn4', block];
    else if (layout === 'tn' && I % 4 === 0 && s[1] % 4 === 0) [entry, block] = bVec4 ? ['sg_tnv', SG.V] : ['sg_tn4', block];
    gpu.run({ shader: 'matmul_sg', entry }, { params, bindings, workgroups: [Math.ceil(J / block[1]), Math.ceil(I / block[0])] });
    return;
  }
  if (variant === 'shared') {
    gpu.run({ shader: 'matmul', entry: 'tiled', constants: SH }, { params, bindings, workgroups: [Math.ceil(J / (4 * SH.WGX)), Math.ceil(I / (4 * SH.WGY))] });
    return;
  }
  if (variant === 'shared8' || variant === 'shared8p') {
    gpu.run({ shader: 'matmul', entry: 'tiled8', constants: { PREFETCH: variant === 'shared8p' ? 1 : 0 } }, { params, bindings, workgroups: [Math.ceil(J / 128), Math.ceil(I / 128)] });
    return;
  }
  const aligned = layout === 'nt' ? R % 4 === 0 : layout === 'nn' ? R % 4 === 0 && J % 4 === 0 : I % 4 === 0 && J % 4 === 0;
  const entry = aligned ? `regtile_${layout}4` : 'regtile';
  gpu.run({ shader: 'matmul', entry, constants: RT }, { params, bindings, workgroups: [Math.ceil(J / (4 * RT.WGX)), Math.ceil(I / (4 * RT.WGY))] });
}

/** out (M,N) = x (M,K) · wᵀ, w (N,K); assigns (or += with opts.accumulate). */
export function matmulForward(gpu: Gpu, out: Tensor, x: Tensor, w: Tensor, M: number, K: number, N: number, opts: MatmulOpts = {}): void {
  checkSize('matmulForward x', x, M * K);
  checkSize('matmulForward w', w, N * K);
  checkSize('matmulForward out', out, M * N);
  const variant = pick(gpu, opts.variant, { op: 'fp32 y=x·Wᵀ', M, K, N });
  const acc = !!opts.accumulate;
  if (M === 1 && opts.gemv !== false && N > 0) {
    // the GEMV kernel: asked for, else (under 'auto') the fp32 GEMV family's choice, else the variant's own
    const auto = opts.variant === undefined || opts.variant === 'auto';
    const kernel = opts.gemvKernel ?? (auto ? preferredGemv.get(gpu) : undefined) ?? variantGemv(variant);
    if (kernel === 'gemv_red') {
      matmulGemvRed(gpu, out, x, w, K, N, { accumulate: acc });
      return;
    }
    const params = new Params().u32(1, N, K, K, 1, K, 1, acc ? 1 : 0);
    if (kernel === 'gemv_wg') {
      // vec4 loads where K allows (gemv_wg4): the same coalesced pattern with a quarter of the loads
      gpu.run({ shader: 'matmul', entry: K % 4 === 0 ? 'gemv_wg4' : 'gemv_wg', constants: { WG1: GEMV_WG } }, { params, bindings: [x, w, out], workgroups: gpu.grid(N) });
    } else {
      const entry = K % 4 === 0 ? 'gemv_rows4' : 'gemv_rows';
      gpu.run({ shader: 'matmul', entry, constants: { WG1: ROWS_WG } }, { params, bindings: [x, w, out], workgroups: gpu.grid(Math.ceil(N / 4 / ROWS_WG)) });
    }
    return;
  }
  gemm(gpu, variant, 'nt', out, x, w, M, N, K, [K, 1, K, 1], acc);
}

/** dx (M,K) = dout (M,N) · w (N,K); assigns (or += with opts.accumulate, e.g. summing q/k/v input grads). */
export function matmulBackwardInput(gpu: Gpu, dx: Tensor, dout: Tensor, w: Tensor, M: number, K: number, N: number, opts: MatmulOpts = {}): void {
  checkSize('matmulBackwardInput dout', dout, M * N);
  checkSize('matmulBackwardInput w', w, N * K);
  checkSize('matmulBackwardInput dx', dx, M * K);
  gemm(gpu, pick(gpu, opts.variant, { op: 'fp32 dX', M, K, N }, opts.stridedB), 'nn', dx, dout, w, M, K, N, [N, 1, 1, K], !!opts.accumulate, opts.stridedB);
}

/** dw (N,K) += doutᵀ (N,M) · x (M,K); accumulates (parameter gradient), or assigns with
 *  opts.assign (a scratch gradient: saves clearing it first, a pass break on the GPU). */
export function matmulBackwardWeight(gpu: Gpu, dw: Tensor, dout: Tensor, x: Tensor, M: number, K: number, N: number, opts: Pick<MatmulOpts, 'variant' | 'stridedB'> & { assign?: boolean } = {}): void {
  checkSize('matmulBackwardWeight dout', dout, M * N);
  checkSize('matmulBackwardWeight x', x, M * K);
  checkSize('matmulBackwardWeight dw', dw, N * K);
  if (M === 0) {
    if (opts.assign) gpu.zero(dw);
    return;
  }
  gemm(gpu, pick(gpu, opts.variant, { op: 'fp32 dW', M, K, N }, opts.stridedB), 'tn', dw, dout, x, N, K, M, [1, N, 1, K], !opts.assign, opts.stridedB);
}

/** y (1, N) = x (1, K) · wᵀ, w (N, K), with the subgroup-reduction GEMV (shaders/matmul_gemv.wgsl:
 *  gemv_red, gemv_red4 where K % 4 == 0); assigns, or += with opts.accumulate. opts: the workgroup
 *  shape (gemvRedShape). Tests set odd values (a workgroup smaller than a subgroup, rows not a
 *  multiple of the block count); the bench times rb 1, 2, 4 beside gemv_wg4. */
export function matmulGemvRed(gpu: Gpu, y: Tensor, x: Tensor, w: Tensor, K: number, N: number, opts: { wg?: number; rows?: number; rb?: number; accumulate?: boolean } = {}): void {
  checkSize('matmulGemvRed x', x, K);
  checkSize('matmulGemvRed w', w, N * K);
  checkSize('matmulGemvRed y', y, N);
  const { WG, RPW, RB } = gemvRedShape(gpu, 'fp32 gemv_red', opts);
  if (N === 0) return;
  const params = new Params().u32(1, N, K, K, 1, K, 1, opts.accumulate ? 1 : 0);
  gpu.run({ shader: 'matmul_gemv', entry: K % 4 === 0 ? 'gemv_red4' : 'gemv_red', constants: { WG, RPW, RB } }, { params, bindings: [x, w, y], workgroups: gpu.grid(Math.ceil(N / RPW)) });
}
