// fp32 matmul figures (shaders/matmul.wgsl, shaders/matmul_sg.wgsl), side by side in one run:
//   GEMM: forward y = x·Wᵀ, dX = dY·W, dW += dYᵀ·X at the issue's shapes (M×K×N) 256×1024×1024,
//         1024³ (the lavapipe target) and 256×2048×2048, for every variant this device runs
//         (subgroup / regtile / shared; subgroup dX / dW also with its strided-B kernels, the previous
//         default), and numpy's sgemm on the same products (the roofline on these cores): the
//         fastest of the pythons here with numpy ($QUENCH_NUMPY_PYTHON, python3, /usr/bin/python3: hostPythons),
//         named with its BLAS.
//   f16-weight GEMM: the frozen teacher's forward y = x·Wᵀ with W in f16 (ops/matmul-half: half_nt4,
//         half_wg8, and half_wg8h where the adapter has shader-f16) at the same shapes, beside the
//         fp32 rows (GB/s counts W at 2 bytes).
//   GEMV: M = 1 forward (decode) at K = N in {1024, 2048, 4096}, each fp32 GEMV kernel this adapter
//         runs (the fp32gemv family: gemv_rows, gemv_wg, and gemv_red where the adapter has subgroups
//         and subgroup_id, also with 1 and 4 rows per subgroup block beside its default 2; no 'auto'
//         picks gemv_red until a GPU has timed it).
// A case whose estimated time (its FLOPs at the speed the same variant and product reached on a
// smaller shape) exceeds callCapMs is skipped and says so, as is everything after the section's
// deadline: the whole bench has to finish on CPU Vulkan. GB/s counts W, x and y once per call.
import { spawnSync } from 'node:child_process';
import type { Gpu } from '../src/engine/gpu/runtime';
import { fp32GemvVariants, matmulBackwardInput, matmulBackwardWeight, matmulForward, matmulGemvRed, matmulVariants, pickFp32GemvVariant, pickMatmulVariant, type MatmulKernel } from '../src/engine/ops/matmul';
import { halfVariants, matmulHalfForward, pickHalfVariant } from '../src/engine/ops/matmul-half';
import { packHalf } from '../src/engine/model/half';
import { randn } from '../src/engine/testing';
import { coldCopies, hostPythons, measure, type BenchRow } from './types';

export interface MatmulBenchOpts {
  /** GEMM shapes [M, K, N] */
  gemm?: [number, number, number][];
  /** GEMV sizes K = N */
  gemv?: number[];
  /** stop adding repetitions once this much (estimated) time per case is spent, ms */
  budgetMs?: number;
  /** skip a case expected to take longer than this per call, ms */
  callCapMs?: number;
  /** no new case starts after this time (performance.now() ms) */
  deadline?: number;
}

type Op = 'fwd' | 'dx' | 'dw';
const OP_NAME: Record<Op, string> = { fwd: 'y=x·Wᵀ', dx: 'dX=dY·W', dw: 'dW+=dYᵀ·X' };


/** numpy sgemm GFLOP/s for each [M, K, N] and product, from the fastest numpy among the pythons
 *  here (Debian's numpy links the reference BLAS unless OpenBLAS is installed: ~4 GFLOP/s against
 *  a pip numpy's bundled OpenBLAS at ~200 on these cores, so the peer must name its BLAS), or why
 *  there are none. */
export function numpySgemm(shapes: [number, number, number][]): { gflops: Record<string, number>; label: string } | string {
  const script = `
import json, sys, time
import numpy as np
try:
    blas = np.show_config(mode='dicts')['Build Dependencies']['blas']['name']
except Exception:
    blas = '+'.join(getattr(np.__config__, 'blas_opt_info', {}).get('libraries', [])) or 'unknown BLAS'
out = {}
for M, K, N in json.loads(sys.argv[1]):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, K), dtype=np.float32); w = rng.standard_normal((N, K), dtype=np.float32)
    dy = rng.standard_normal((M, N), dtype=np.float32)
    for op, f in (('fwd', lambda: x @ w.T), ('dx', lambda: dy @ w), ('dw', lambda: dy.T @ x)):
        f(); best = 1e9
        for _ in range(3):
            t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
        out[f'{M}x{K}x{N} {op}'] = 2 * M * N * K / best / 1e9
print(json.dumps({'label': f'numpy {np.__version__}, {blas}', 'gflops': out}))
`;
  const why: string[] = [];
  let best: { gflops: Record<string, number>; label: string } | null = null;
  const total = (g: Record<string, number>) => Object.values(g).reduce((a, b) => a + b, 0);
  for (const py of hostPythons(process.env.QUENCH_NUMPY_PYTHON)) {
    // OpenBLAS threads thrash on a busy shared machine: allow minutes
    const r = spawnSync(py, ['-c', script, JSON.stringify(shapes)], { encoding: 'utf8', timeout: 600_000 });
    if (r.error) { why.push(`${py}: ${r.error.message}`); continue; }
    if (r.status !== 0) { why.push(`${py}: ${/No module named/.test(r.stderr) ? 'numpy not installed' : `exited ${r.status}: ${r.stderr.trim().split('\n').pop()}`}`); continue; }
    try {
      const got = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { gflops: Record<string, number>; label: string };
      const cand = { gflops: got.gflops, label: `${py}: ${got.label}` };
      if (!best || total(cand.gflops) > total(best.gflops)) {
        if (best) why.push(`slower peer not shown: ${best.label}`);
        best = cand;
      } else why.push(`slower peer not shown: ${cand.label}`);
    } catch {
      why.push(`${py}: numpy printed no figures`);
    }
  }
  if (best) return { ...best, label: best.label + (why.length ? ` (${why.join('; ')})` : '') };
  return why.join('; ') || 'no python3 found';
}


export async function benchMatmul(gpu: Gpu, opts: MatmulBenchOpts = {}): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const gemmShapes = opts.gemm ?? [[256, 1024, 1024], [1024, 1024, 1024], [256, 2048, 2048]];
  const gemvSizes = opts.gemv ?? [1024, 2048, 4096];
  const budget = opts.budgetMs ?? 1500;
  const cap = opts.callCapMs ?? 10_000;
  const deadline = opts.deadline ?? Infinity;
  const auto = pickMatmulVariant(gpu);
  const variants = matmulVariants(gpu);
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const speed = new Map<string, number>(); // variant+op -> GFLOP/s measured so far (for the skip estimate)
  const skipped = (name: string, shape: string, why: string) => rows.push({ name, shape, ms: NaN, note: `skipped: ${why}` });

  // GEMV first: quick, and the int4/fp32 GEMV ratio needs it even when the GEMMs hit the cap
  for (const K of gemvSizes) {
    const N = K;
    const shape = `M=1 K=${K} N=${N}`;
    const x = gpu.tensor('bench.x', [1, K], 'f32', randn(K, 2));
    // calls rotate through copies of W (coldCopies): each reads its weights from memory, not a cache
    const wHost = randn(N * K, 1, 0.05);
    const ws = Array.from({ length: coldCopies(4 * N * K) }, (_, i) => gpu.tensor(`bench.w${i}`, [N, K], 'f32', wHost));
    const y = gpu.tensor('bench.y', [1, N]);
    let next = 0;
    // each fp32 GEMV kernel (the matmul variants share these), then gemv_red at rb 1 and 4 too
    const gemvAuto = pickFp32GemvVariant(gpu);
    const gemvs: { name: string; auto: boolean; call: (w: typeof ws[number]) => void }[] = fp32GemvVariants(gpu).map((kernel) => ({ name: `fp32 gemv (${kernel})`, auto: kernel === gemvAuto, call: (wi) => matmulForward(gpu, y, x, wi, 1, K, N, { gemvKernel: kernel }) }));
    if (fp32GemvVariants(gpu).includes('gemv_red')) for (const rb of [1, 4]) gemvs.push({ name: `fp32 gemv (gemv_red rb=${rb})`, auto: false, call: (wi) => matmulGemvRed(gpu, y, x, wi, K, N, { rb }) });
    for (const g of gemvs) {
      if (performance.now() > deadline) { skipped(g.name, shape, 'section time cap'); continue; }
      // one call per W copy, untimed: its bind group is made here, not in a timed call
      for (const wi of ws) g.call(wi);
      await gpu.sync();
      const { ms, note } = await measure(gpu, () => g.call(ws[next++ % ws.length]), budget);
      rows.push({ name: g.name, shape, ms, gflops: (2 * N * K) / ms / 1e6, gbps: (4 * (N * K + K + N)) / ms / 1e6, note: `${g.auto ? 'auto; ' : ''}${note}; ${ws.length} W copies` });
    }
    for (const t of [x, ...ws, y]) gpu.free(t);
  }
  for (const [M, K, N] of gemmShapes) {
    const shape = `M=${M} K=${K} N=${N}`;
    const x = gpu.tensor('bench.x', [M, K], 'f32', randn(M * K, 2));
    const w = gpu.tensor('bench.w', [N, K], 'f32', randn(N * K, 1, 0.05));
    const y = gpu.tensor('bench.y', [M, N], 'f32', randn(M * N, 3));
    const dx = gpu.tensor('bench.dx', [M, K]);
    const dw = gpu.tensor('bench.dw', [N, K]);
    const flops = 2 * M * N * K;
    for (const op of ['fwd', 'dx', 'dw'] as Op[]) {
      // 'subgroup' dX / dW also with the strided-B kernels (sg_nn4 / sg_tn4, the previous default) beside it
      const runs = variants.flatMap((v): { variant: MatmulKernel; stridedB: boolean }[] => (v === 'subgroup' && op !== 'fwd' ? [{ variant: v, stridedB: false }, { variant: v, stridedB: true }] : [{ variant: v, stridedB: false }]));
      for (const { variant, stridedB } of runs) {
        const name = `fp32 gemm ${OP_NAME[op]} (${variant}${stridedB ? ', strided B (old)' : ''})`;
        const key = variant + op + (stridedB ? ' strided' : '');
        const est = flops / ((speed.get(key) ?? Infinity) * 1e6);
        if (performance.now() > deadline) { skipped(name, shape, 'section time cap'); continue; }
        if (est > cap) { skipped(name, shape, `estimated ${(est / 1000).toFixed(0)} s per call > ${cap / 1000} s cap`); continue; }
        const call = op === 'fwd' ? () => matmulForward(gpu, y, x, w, M, K, N, { variant })
          : op === 'dx' ? () => matmulBackwardInput(gpu, dx, y, w, M, K, N, { variant, stridedB })
          : () => matmulBackwardWeight(gpu, dw, y, x, M, K, N, { variant, stridedB });
        const { ms, note } = await measure(gpu, call, budget);
        const gflops = flops / ms / 1e6;
        speed.set(key, gflops);
        rows.push({ name, shape, ms, gflops, gbps: (4 * (N * K + M * K + M * N)) / ms / 1e6, note: `${variant === auto && !stridedB ? 'auto; ' : ''}${note}` });
      }
    }
    // the f16-weight forward (the teacher's projections), every variant this adapter runs
    const wh = gpu.tensor('bench.wf16', [N, K / 2], 'u32', packHalf(randn(N * K, 1, 0.05))); // (N, K) f16 pairs
    for (const variant of halfVariants(gpu)) {
      const name = `f16-weight gemm ${OP_NAME.fwd} (${variant})`;
      const est = flops / ((speed.get(variant) ?? Infinity) * 1e6);
      if (performance.now() > deadline) { skipped(name, shape, 'section time cap'); continue; }
      if (est > cap) { skipped(name, shape, `estimated ${(est / 1000).toFixed(0)} s per call > ${cap / 1000} s cap`); continue; }
      const { ms, note } = await measure(gpu, () => matmulHalfForward(gpu, y, x, wh, M, K, N, false, variant), budget);
      const gflops = flops / ms / 1e6;
      speed.set(variant, gflops);
      rows.push({ name, shape, ms, gflops, gbps: (2 * N * K + 4 * (M * K + M * N)) / ms / 1e6, note: `${variant === pickHalfVariant(gpu) ? 'auto; ' : ''}${note}` });
    }
    for (const t of [x, w, y, dx, dw, wh]) gpu.free(t);
  }

  const np = numpySgemm(gemmShapes);
  if (typeof np !== 'string') {
    notes.push(`numpy sgemm peer: ${np.label}`);
    for (const [M, K, N] of gemmShapes) for (const op of ['fwd', 'dx', 'dw'] as Op[]) {
      const g = np.gflops[`${M}x${K}x${N} ${op}`];
      if (g) rows.push({ name: `numpy sgemm ${OP_NAME[op]} (CPU)`, shape: `M=${M} K=${K} N=${N}`, ms: (2 * M * N * K) / g / 1e6, gflops: g, note: 'peer' });
    }
  } else notes.push(`numpy sgemm: ${np}; no roofline row`);
  // the headline ratio: best Quench fp32 GEMM vs numpy at each shape and product
  for (const [M, K, N] of gemmShapes) for (const op of ['fwd', 'dx', 'dw'] as Op[]) {
    const shape = `M=${M} K=${K} N=${N}`;
    const ours = rows.filter((r) => r.shape === shape && r.name.startsWith(`fp32 gemm ${OP_NAME[op]}`) && r.gflops).sort((a, b) => b.gflops! - a.gflops!)[0];
    const peer = rows.find((r) => r.shape === shape && r.name.startsWith(`numpy sgemm ${OP_NAME[op]}`));
    if (ours) notes.push(`${shape} ${OP_NAME[op]}: best ${ours.name} ${ours.gflops!.toFixed(2)} GFLOP/s${peer ? `, numpy ${peer.gflops!.toFixed(1)} GFLOP/s (numpy/ours ${(peer.gflops! / ours.gflops!).toFixed(1)}x)` : ''}`);
  }

  return { rows, notes };
}
