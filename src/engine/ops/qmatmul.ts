// Packed low-bit matmul, reading the codes directly (shaders/qmatmul.wgsl; layout in
// src/engine/quant/pack.ts). W (N, K) is a linear weight in the PyTorch layout (out, in).
//   qmatmulForward:        y (M, N) = x (M, K) · dequant(W)ᵀ          (assigns)
//   qmatmulBackwardInput:  dx (M, K) = dy (M, N) · dequant(W) (N, K)  (assigns, or += with accumulate)
// Variants (all tested; 'auto' picks per adapter and M):
//   'gemm'      register-tiled 4×8 per thread, no workgroup memory   — CPU Vulkan without subgroups, any M
//   'gemm_sg'   16×32 block per 8-lane subgroup, x shared by subgroupBroadcast, codes dequantized in
//               registers (shaders/qmatmul_sg.wgsl)                   — CPU Vulkan with 8-wide subgroups, any M
//   'gemm_wg'   64×64 tile through workgroup memory, barriers         — real GPUs, any M
//   'gemv'      M = 1, one workgroup per row + workgroup reduction    — real GPUs
//   'gemv_rows' M = 1, one thread per 8 rows, no barriers             — CPU Vulkan without subgroups
//   'gemv_sg'   M = 1, one thread per 4 rows, x shared by subgroupBroadcast (shaders/qmatmul_sg.wgsl)
//                                                                      — CPU Vulkan with 8-wide subgroups (lavapipe)
//   'gemv_red'  M = 1, RPW rows per workgroup in blocks of 2 taken in turn by its subgroups, lanes
//               striding over the rows' 8-code chunks, one subgroupAdd per row, no workgroup memory;
//               any subgroup size (shaders/qmatmul_gemv.wgsl; needs WGSL `subgroup_id`)
//                                                                      — real GPUs with subgroups; not
//               picked by 'auto' until a GPU has measured it (bench/gpu.sh times it)
//   'gemv_wide' M = 1, 16-byte code loads of RB rows per thread, TPR threads per row block summed
//               through workgroup memory, no subgroups (shaders/qmatmul_gemv_wide.wgsl; rows must
//               start on 16 bytes, else 'gemv')                        — real GPUs (HBM wants more
//               bytes in flight than one u32 per thread); not auto until a GPU has measured it
// and for dX: 'dx' (8×8 register tile, no barriers — CPU Vulkan without subgroups), 'dx_sg' (the
// same with dY shared by subgroupBroadcast, 16 rows per subgroup from M = 16 — CPU Vulkan with
// 8-wide subgroups), 'dx_deq' (W dequantized into a scratch, then the fp32 dX matmul) or 'dx_wg'
// (64×64 tile through workgroup memory — real GPUs; 1.5x faster than 'dx' on an H100).
import { shapeVariant } from './shape-choice';
import { isSoftwareAdapterInfo, Params, type Gpu, type Tensor } from '../gpu/runtime';
import type { QuantLayout } from '../format/pack';
import { canGemvRed, gemvRedShape, hasSubgroup8, matmulBackwardInput, pickMatmulVariant } from './matmul';
import { dequantize } from './fakequant';

import type { GpuPacked } from './packed';
export type { GpuPacked } from './packed';

export type QmatmulVariant = 'auto' | 'gemm' | 'gemm_sg' | 'gemm_wg' | 'gemm_wg8' | 'gemm_wg8p' | 'gemv' | 'gemv_rows' | 'gemv_sg' | 'gemv_red' | 'gemv_wide';
export const QMATMUL_VARIANTS: readonly Exclude<QmatmulVariant, 'auto'>[] = ['gemm', 'gemm_sg', 'gemm_wg', 'gemm_wg8', 'gemm_wg8p', 'gemv', 'gemv_rows', 'gemv_sg', 'gemv_red', 'gemv_wide'];

/** The forward variants this device can run (the _sg ones need 8-wide subgroups, gemv_red
 *  subgroups of any size). */
export function qmatmulVariants(gpu: Gpu): Exclude<QmatmulVariant, 'auto'>[] {
  return QMATMUL_VARIANTS.filter((v) => (v.endsWith('_sg') ? hasSubgroup8(gpu) : v !== 'gemv_red' || canGemvRed(gpu)));
}

/** Software (CPU) Vulkan/WebGPU adapters: lavapipe/llvmpipe, SwiftShader. */
export function isSoftwareAdapter(gpu: Gpu): boolean {
  return isSoftwareAdapterInfo(gpu.info);
}

type Preferred = { gemm?: Exclude<QmatmulVariant, 'auto'>; dx?: Exclude<QmatmulDxVariant, 'auto'>; gemv?: Exclude<QmatmulVariant, 'auto'> };
const preferred = new WeakMap<Gpu, Preferred>();

/** Make 'auto' run these M > 1 forward / dX / M = 1 (GEMV) variants on this device (null: back to
 *  the adapter's picks), so that a benchmark can time whole training steps with each
 *  (bench/smollm-kdqat.mts) and the kernel choice can apply what it measured. */
export function preferQmatmulVariants(gpu: Gpu, v: Preferred | null): void {
  if (v) preferred.set(gpu, v);
  else preferred.delete(gpu);
}

/** The variant 'auto' runs for M rows: the GEMM (M > 1) or GEMV (M = 1) chosen with
 *  preferQmatmulVariants, else the adapter's. */
export function pickQmatmulVariant(gpu: Gpu, M: number): Exclude<QmatmulVariant, 'auto'> {
  const pref = preferred.get(gpu);
  return (M > 1 ? pref?.gemm : pref?.gemv) ?? adapterQmatmulVariant(gpu, M);
}

/** The variant this adapter's kind calls for at M rows: barrier-free kernels on CPU adapters,
 *  workgroup-memory kernels on real GPUs. */
export function adapterQmatmulVariant(gpu: Gpu, M: number): Exclude<QmatmulVariant, 'auto'> {
  const soft = isSoftwareAdapter(gpu);
  if (M === 1) return soft ? (hasSubgroup8(gpu) ? 'gemv_sg' : 'gemv_rows') : 'gemv';
  return soft ? (hasSubgroup8(gpu) ? 'gemm_sg' : 'gemm') : 'gemm_wg';
}

const GEMV_WG = 64;
const ROWS_WG = 16; // gemv_rows: 8 rows per thread, small workgroups so CPU Vulkan spreads rows over cores
const SG_WG = 8; // gemv_sg: one subgroup per workgroup, 4 rows per thread
/** An aligned 8-code chunk lies inside one u32 word (1, 2 and 4 bits): the sg kernels' WORD_CHUNK. */
const wordChunk = (bits: number): boolean => 32 % bits === 0 && 8 * bits <= 32;

function params(L: QuantLayout, M: number, accumulate = false): Params {
  return new Params().u32(M, L.N, L.K, L.group, L.nBlocks, L.wordsPerRow, accumulate ? 1 : 0, L.bits, L.cpw, L.cpw * L.bits, (1 << L.bits) - 1, 0);
}

/** Every 8-code chunk (aligned to 8) lies inside one group: what dx, gemm_wg8 and dx_wg8 need. */
function chunkable(L: QuantLayout): boolean {
  return L.group % 8 === 0 || L.nBlocks === 1;
}

function check(name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${name}: tensor "${t.label}" has ${t.numel} elements, needs ${n}`);
}

/** y (M, N) = x (M, K) · dequant(W)ᵀ (assigns). */
export function qmatmulForward(gpu: Gpu, y: Tensor, x: Tensor, w: GpuPacked, M: number, variant: QmatmulVariant = 'auto'): void {
  const L = w.layout;
  check('qmatmulForward x', x, M * L.K);
  check('qmatmulForward y', y, M * L.N);
  // 'auto': the per-shape choice (shape-choice.ts; GEMMs only), else the device's
  const v = variant === 'auto' ? ((M > 1 ? (shapeVariant(gpu, { op: 'int4 y=x·Wᵀ', M, K: L.K, N: L.N, bits: L.bits, group: L.group }) as QmatmulVariant | undefined) : undefined) ?? pickQmatmulVariant(gpu, M)) : variant;
  const bindings = [x, w.codes, w.scales, w.zeros, y];
  switch (v) {
    case 'gemv_rows':
      if (M !== 1) throw new Error('qmatmul gemv_rows needs M = 1');
      gpu.run({ shader: 'qmatmul', entry: 'gemv_rows', constants: { WG: ROWS_WG } }, { params: params(L, 1), bindings, workgroups: gpu.grid(Math.ceil(L.N / (8 * ROWS_WG))) });
      return;
    case 'gemm_sg':
      if (!hasSubgroup8(gpu)) throw new Error(`qmatmul gemm_sg needs WGSL subgroups of exactly 8 lanes; this adapter (${gpu.info.description || gpu.info.vendor}) has none`);
      // K % 4 == 0: the same kernel reading x as vec4s (its buffer bound again at 6)
      if (L.K % 4 === 0) gpu.run({ shader: 'qmatmul_sg', entry: 'gemm_sg4' }, { params: params(L, M), bindings: { 2: w.codes, 3: w.scales, 4: w.zeros, 5: y, 6: x }, workgroups: [Math.ceil(L.N / 32), Math.ceil(M / 16)] });
      else gpu.run({ shader: 'qmatmul_sg', entry: 'gemm_sg' }, { params: params(L, M), bindings, workgroups: [Math.ceil(L.N / 32), Math.ceil(M / 16)] });
      return;
    case 'gemv_sg':
      if (M !== 1) throw new Error('qmatmul gemv_sg needs M = 1');
      if (!hasSubgroup8(gpu)) throw new Error(`qmatmul gemv_sg needs WGSL subgroups of exactly 8 lanes; this adapter (${gpu.info.description || gpu.info.vendor}) has none`);
      // 4 bits with K and the group multiples of 32: one vec4u of codes per row per 32 codes, x as
      // vec4s (gemv_sg32, 4x fewer loads; README); otherwise one word per 8 codes
      if (L.bits === 4 && L.K % 32 === 0 && L.group % 32 === 0) gpu.run({ shader: 'qmatmul_sg', entry: 'gemv_sg32', constants: { WG: SG_WG } }, { params: params(L, 1), bindings: { 3: w.scales, 4: w.zeros, 5: y, 6: x, 7: w.codes }, workgroups: gpu.grid(Math.ceil(L.N / (4 * SG_WG))) });
      else gpu.run({ shader: 'qmatmul_sg', entry: 'gemv_sg', constants: { WG: SG_WG, WORD_CHUNK: wordChunk(L.bits) ? 1 : 0 } }, { params: params(L, 1), bindings, workgroups: gpu.grid(Math.ceil(L.N / (4 * SG_WG))) });
      return;
    case 'gemv_red':
      if (M !== 1) throw new Error('qmatmul gemv_red needs M = 1');
      qmatmulGemvRed(gpu, y, x, w);
      return;
    case 'gemv_wide':
      if (M !== 1) throw new Error('qmatmul gemv_wide needs M = 1');
      qmatmulGemvWide(gpu, y, x, w);
      return;
    case 'gemv':
      if (M !== 1) throw new Error('qmatmul gemv needs M = 1');
      gpu.run({ shader: 'qmatmul', entry: 'gemv', constants: { WG: GEMV_WG } }, { params: params(L, 1), bindings, workgroups: gpu.grid(L.N) });
      return;
    case 'gemm_wg8':
    case 'gemm_wg8p':
    case 'gemm_wg': {
      // gemm_wg8(p) needs every 8-code chunk inside one group; otherwise the 4x4-tile kernel
      const t8 = v !== 'gemm_wg' && chunkable(L);
      const tile = t8 ? 128 : 64;
      gpu.run({ shader: 'qmatmul', entry: t8 ? 'gemm_wg8' : 'gemm_wg', ...(t8 ? { constants: { PREFETCH: v === 'gemm_wg8p' ? 1 : 0 } } : {}) }, { params: params(L, M), bindings, workgroups: [Math.ceil(L.N / tile), Math.ceil(M / tile)] });
      return;
    }
    case 'gemm':
      gpu.run({ shader: 'qmatmul', entry: 'gemm' }, { params: params(L, M), bindings, workgroups: [Math.ceil(L.N / 64), Math.ceil(M / 32)] });
      return;
  }
}

/** y (1, N) = x (1, K) · dequant(W)ᵀ with gemv_red (assigns). opts: the workgroup shape
 *  (gemvRedShape: wg invocations per workgroup, rows per workgroup, rb rows per block 1..4). Tests
 *  set odd values (a workgroup smaller than a subgroup, rows not a multiple of the block count);
 *  the bench times rb 1, 2, 4. x binds twice (f32 and vec4f views): a K < 4 vector (under 16 bytes,
 *  too small for the vec4 view) runs 'gemv' instead. */
export function qmatmulGemvRed(gpu: Gpu, y: Tensor, x: Tensor, w: GpuPacked, opts: { wg?: number; rows?: number; rb?: number } = {}): void {
  const L = w.layout;
  check('qmatmulGemvRed x', x, L.K);
  check('qmatmulGemvRed y', y, L.N);
  const { WG, RPW, RB } = gemvRedShape(gpu, 'qmatmul gemv_red', opts);
  if (x.buffer.size < 16) {
    qmatmulForward(gpu, y, x, w, 1, 'gemv');
    return;
  }
  gpu.run({ shader: 'qmatmul_gemv', entry: 'gemv_red', constants: { WG, RPW, RB } }, { params: params(L, 1), bindings: [x, w.codes, w.scales, w.zeros, y, x], workgroups: gpu.grid(Math.ceil(L.N / RPW)) });
}

const WIDE_WG = 128; // gemv_wide: invocations per workgroup
const WIDE_TPR = 32; // gemv_wide: threads per row block (4 × 16 bytes of each row per step at 32)
const WIDE_RB = 2; // gemv_wide: rows per block (their codes loaded together, sharing the x loads)

/** y (1, N) = x (1, K) · dequant(W)ᵀ with gemv_wide (assigns). opts: wg invocations per workgroup,
 *  tpr threads per row block (a power of two dividing wg), rb rows per block (1..4); defaults
 *  WIDE_WG, WIDE_TPR, WIDE_RB (the bench times others). Rows that do not start on 16 bytes
 *  (wordsPerRow % 4 ≠ 0) or a K < 4 vector (under 16 bytes, too small for the vec4 view) run 'gemv'. */
export function qmatmulGemvWide(gpu: Gpu, y: Tensor, x: Tensor, w: GpuPacked, opts: { wg?: number; tpr?: number; rb?: number } = {}): void {
  const L = w.layout;
  check('qmatmulGemvWide x', x, L.K);
  check('qmatmulGemvWide y', y, L.N);
  const WG = opts.wg ?? WIDE_WG, TPR = opts.tpr ?? WIDE_TPR, RB = opts.rb ?? WIDE_RB;
  if (!(RB >= 1 && RB <= 4)) throw new Error(`qmatmul gemv_wide: rb = ${RB}, needs 1..4`);
  if (!(TPR >= 1 && (TPR & (TPR - 1)) === 0 && WG % TPR === 0)) throw new Error(`qmatmul gemv_wide: tpr = ${TPR} must be a power of two dividing wg = ${WG}`);
  if (L.wordsPerRow % 4 !== 0 || x.buffer.size < 16) {
    qmatmulForward(gpu, y, x, w, 1, 'gemv');
    return;
  }
  gpu.run({ shader: 'qmatmul_gemv_wide', entry: 'gemv_wide', constants: { WG, TPR, RB } }, { params: params(L, 1), bindings: { 1: x, 3: w.scales, 4: w.zeros, 5: y, 6: x, 7: w.codes }, workgroups: gpu.grid(Math.ceil(L.N / ((RB * WG) / TPR))) });
}

export type QmatmulDxVariant = 'auto' | 'dx' | 'dx_wg' | 'dx_wg8' | 'dx_wg8p' | 'dx_sg' | 'dx_deq';
export const QMATMUL_DX_VARIANTS: readonly Exclude<QmatmulDxVariant, 'auto'>[] = ['dx', 'dx_wg', 'dx_wg8', 'dx_wg8p', 'dx_sg', 'dx_deq'];

// dx_deq's dequantized weights, (N, K) f32, one per device, grown to the largest projection:
// projections run their dX one at a time, and dispatches on one queue run in order
const deqScratch = new WeakMap<Gpu, Tensor>();
function dequantScratch(gpu: Gpu, n: number): Tensor {
  const have = deqScratch.get(gpu);
  if (have && have.numel >= n) return have;
  gpu.free(have ?? null);
  const t = gpu.tensor('qmatmul.dx_deq.weights', [n]);
  deqScratch.set(gpu, t);
  return t;
}

/** The dX variant 'auto' runs (for groups that are a multiple of 8): the one chosen with
 *  preferQmatmulVariants, else the adapter's. */
export function pickQmatmulDxVariant(gpu: Gpu): Exclude<QmatmulDxVariant, 'auto'> {
  return preferred.get(gpu)?.dx ?? adapterQmatmulDxVariant(gpu);
}

/** The dX variant this adapter's kind calls for (see qmatmulBackwardInput). */
export function adapterQmatmulDxVariant(gpu: Gpu): Exclude<QmatmulDxVariant, 'auto'> {
  return isSoftwareAdapter(gpu) ? (hasSubgroup8(gpu) ? 'dx_sg' : 'dx') : 'dx_wg';
}

const dxSgRowsOverride = new WeakMap<Gpu, 8 | 16>();
/** Run dx_sg with 8 or 16 rows of dY per subgroup at every M (tests compare the two); null: back to
 *  16 from M = 16. */
export function setDxSgRows(gpu: Gpu, rows: 8 | 16 | null): void {
  if (rows === null) dxSgRowsOverride.delete(gpu);
  else dxSgRowsOverride.set(gpu, rows);
}

/** dx (M, K) = dy (M, N) · dequant(W) (assigns, or += with accumulate). 'dx_deq' dequantizes W
 *  into a per-device scratch (N·K f32, one pass: 1/M of the work) and runs the fp32 dX matmul on
 *  it, so the int4 dX gets whatever fp32 kernel is fastest on the adapter; on lavapipe it is at
 *  parity with dx_sg, within this shared machine's noise (README, "Kernel speed", fourth session).
 *  'auto': 'dx_sg' on CPU adapters with 8-wide subgroups, 'dx' on other CPU adapters, 'dx_wg' on
 *  real GPUs (none timed there yet: the GPU panel and `quench kernels` time every variant);
 *  groups that are not a multiple of 8 always run 'dx_wg'. */
export function qmatmulBackwardInput(gpu: Gpu, dx: Tensor, dy: Tensor, w: GpuPacked, M: number, accumulate = false, variant: QmatmulDxVariant = 'auto'): void {
  const L = w.layout;
  check('qmatmulBackwardInput dy', dy, M * L.N);
  check('qmatmulBackwardInput dx', dx, M * L.K);
  // 'dx' and 'dx_wg8' read one group per 8-column chunk: odd group sizes (not a multiple of 8) go to dx_wg
  const entry = !chunkable(L) ? 'dx_wg' : variant === 'auto' ? ((shapeVariant(gpu, { op: 'int4 dX', M, K: L.K, N: L.N, bits: L.bits, group: L.group }) as QmatmulDxVariant | undefined) ?? pickQmatmulDxVariant(gpu)) : variant;
  if (entry === 'dx_deq') {
    const wq = dequantScratch(gpu, L.N * L.K);
    dequantize(gpu, wq, w);
    // the fp32 family's kernel, not a per-shape 'auto': the int4 dX shape's choice is what was
    // timed, and an inner 'auto' would be noted by a shape capture as a new fp32 dX shape once
    // dx_deq had been chosen (a second run of the same shapes would tune again)
    matmulBackwardInput(gpu, dx, dy, wq, M, L.K, L.N, { accumulate, variant: pickMatmulVariant(gpu) });
    return;
  }
  if (entry === 'dx_sg') {
    if (!hasSubgroup8(gpu)) throw new Error(`qmatmul dX variant 'dx_sg' needs WGSL subgroups of exactly 8 lanes; this adapter has ${gpu.hasSubgroups ? `${gpu.info.subgroupMinSize}-${gpu.info.subgroupMaxSize}` : 'none'}`);
    // 16 rows of dY per subgroup from M = 16 (the code words, scales and zeros a lane loads serve
    // twice the rows: 1.1-1.4x), 8 below
    const rows = dxSgRowsOverride.get(gpu) ?? (M >= 16 ? 16 : 8);
    gpu.run({ shader: 'qmatmul_dx_sg', entry: rows === 16 ? 'dx_sg16' : 'dx_sg', constants: { WORD_CHUNK: wordChunk(L.bits) ? 1 : 0 } }, { params: params(L, M, accumulate), bindings: [dy, w.codes, w.scales, w.zeros, dx], workgroups: [Math.ceil(L.K / 64), Math.ceil(M / rows)] });
    return;
  }
  const t8 = entry === 'dx_wg8' || entry === 'dx_wg8p';
  const tile = t8 ? 128 : 64;
  gpu.run({ shader: 'qmatmul', entry: t8 ? 'dx_wg8' : entry, ...(t8 ? { constants: { PREFETCH: entry === 'dx_wg8p' ? 1 : 0 } } : {}) }, { params: params(L, M, accumulate), bindings: [dy, w.codes, w.scales, w.zeros, dx], workgroups: [Math.ceil(L.K / tile), Math.ceil(M / tile)] });
}
