// int4 (group 32, asymmetric) packed matmul: GEMV (M = 1, decode) at K = N in {256, ..., 4096} and
// GEMM (M = 256) up to 2048, every kernel variant this device runs, and the backward dX (M = 256);
// gemv_red (subgroup reductions, real GPUs) also with 1 and 4 rows per block beside its default 2, and
// gemv_wide (16-byte code loads, real GPUs) with 4 rows per block and with 8 threads of 4-row blocks.
// Cases estimated (from the same variant's speed on a smaller shape) to take over callCapMs per call,
// and everything after the deadline, are skipped and say so.
// ms is per call: short calls are batched several per GPU sync, slow ones get fewer repetitions
// (about budgetMs per row) so the whole run stays near 30-40 s on CPU Vulkan. GB/s counts the bytes a call must
// move at least: packed codes + scales + zeros + x + y. GEMV calls rotate through copies of W that
// span ~200 MB (bench/types.ts coldCopies), so a GPU's L2 does not serve them. Figures are printed,
// never asserted.
import type { Gpu } from '../src/engine/gpu/runtime';
import { pickQmatmulDxVariant, pickQmatmulVariant, qmatmulBackwardInput, qmatmulForward, qmatmulGemvRed, qmatmulGemvWide, qmatmulVariants, type GpuPacked, type QmatmulDxVariant, type QmatmulVariant } from '../src/engine/ops/qmatmul';
import { quantizeHost } from '../src/engine/quant/pack';
import { randn } from '../src/engine/testing';
import { hasSubgroup8 } from '../src/engine/ops/matmul';
import { coldCopies, timeIt, type BenchRow } from './types';

export async function benchQmatmul(gpu: Gpu, sizes = [256, 512, 1024, 2048, 4096], opts: { budgetMs?: number; callCapMs?: number; deadline?: number } = {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const budget = opts.budgetMs ?? 2500; // per (shape, variant): fewer repetitions for slow cases
  const cap = opts.callCapMs ?? 15_000;
  const deadline = opts.deadline ?? Infinity;
  const speed = new Map<string, number>(); // variant -> GFLOP/s so far, to skip cases that would take too long
  const available = qmatmulVariants(gpu);
  for (const K of sizes) {
    const N = K;
    const p = quantizeHost(randn(N * K, 1, 0.05), N, K, { bits: 4, group: 32, sym: false });
    // W on the GPU; GEMV calls rotate through further copies of it (coldCopies, below): each reads
    // its weights from memory, not from the cache the previous call filled
    const upload = (i: number): GpuPacked => ({
      layout: p,
      codes: gpu.tensor(`bench.codes${i}`, [N, p.wordsPerRow], 'u32', p.codes),
      scales: gpu.tensor(`bench.scales${i}`, [N, p.nBlocks], 'f32', p.scales),
      zeros: gpu.tensor(`bench.zeros${i}`, [N, p.nBlocks], 'f32', p.zeros),
    });
    const w = upload(0);
    const packed = w.codes.bytes + w.scales.bytes + w.zeros.bytes;
    for (const M of [1, 256]) {
      const x = gpu.tensor('bench.x', [M, K], 'f32', randn(M * K, 2));
      const y = gpu.tensor('bench.y', [M, N]);
      // GEMV at every size; GEMM (M = 256) up to 2048
      if (M > 1 && K > 2048) { gpu.free(x); gpu.free(y); continue; }
      const isDx = (v: string): v is Exclude<QmatmulDxVariant, 'auto'> => v.startsWith('dx');
      // gemv_red also with 1 and 4 rows per subgroup block (its default is 2): a GPU's figures say
      // which to keep
      type Timed = Exclude<QmatmulVariant, 'auto'> | Exclude<QmatmulDxVariant, 'auto'> | 'gemv_red rb=1' | 'gemv_red rb=4' | 'gemv_wide rb=4' | 'gemv_wide tpr=8 rb=4';
      const variants = ((M === 1 ? ['gemv_sg', 'gemv_rows', 'gemv', 'gemv_red', 'gemv_red rb=1', 'gemv_red rb=4', 'gemv_wide', 'gemv_wide rb=4', 'gemv_wide tpr=8 rb=4'] : ['gemm_sg', 'gemm', 'gemm_wg', 'gemm_wg8', 'gemm_wg8p', 'dx_sg', 'dx', 'dx_wg', 'dx_wg8', 'dx_wg8p', 'dx_deq']) as Timed[])
        .filter((v) => (v === 'dx_sg' ? hasSubgroup8(gpu) : isDx(v) || available.includes(v.split(' ')[0] as Exclude<QmatmulVariant, 'auto'>)));
      const autoDx = pickQmatmulDxVariant(gpu);
      const dx = M === 1 ? null : gpu.tensor('bench.dx', [M, K]);
      const auto = pickQmatmulVariant(gpu, M);
      const ws = M === 1 ? [w, ...Array.from({ length: coldCopies(packed) - 1 }, (_, i) => upload(i + 1))] : [w];
      let next = 0;
      for (const v of variants) {
        const name = isDx(v) ? `int4 dx=dy·W (${v})` : `int4 ${M === 1 ? 'gemv' : 'gemm'} (${v})`;
        const est = (2 * M * N * K) / ((speed.get(v) ?? Infinity) * 1e6);
        if (performance.now() > deadline || est > cap) {
          rows.push({ name, shape: `M=${M} K=${K} N=${N}`, ms: NaN, note: `skipped: ${est > cap ? `estimated ${(est / 1000).toFixed(0)} s per call > ${cap / 1000} s cap` : 'section time cap'}` });
          continue;
        }
        // "gemv_red rb=4", "gemv_wide tpr=8 rb=4": the variant with those options
        const [base, ...kv] = v.split(' ');
        const o = Object.fromEntries(kv.map((t) => [t.split('=')[0], Number(t.split('=')[1])]));
        const call = () => {
          const wi = ws[next++ % ws.length];
          if (isDx(v)) qmatmulBackwardInput(gpu, dx!, y, wi, M, false, v);
          else if (kv.length && base === 'gemv_red') qmatmulGemvRed(gpu, y, x, wi, o);
          else if (kv.length && base === 'gemv_wide') qmatmulGemvWide(gpu, y, x, wi, o);
          else qmatmulForward(gpu, y, x, wi, M, v as Exclude<QmatmulVariant, 'auto'>);
        };
        const once = async () => {
          call();
          await gpu.sync();
        };
        await once(); // compile + warm
        // one call per further W copy, untimed: its bind group is made here, not in a timed call
        for (let i = 1; i < ws.length; i++) call();
        await gpu.sync();
        // one call after the compile sizes the batch
        const t0 = performance.now();
        await once();
        const first = performance.now() - t0;
        // batch several calls per sync when a call is short, so the sync overhead does not dominate
        const reps = Math.max(1, Math.min(50, Math.floor(20 / Math.max(first, 0.05))));
        const iters = Math.max(1, Math.min(7, Math.floor(budget / Math.max(first * reps, 1))));
        const ms =
          (await timeIt(async () => {
            for (let r = 0; r < reps; r++) call();
            await gpu.sync();
          }, iters, 0)) / reps;
        speed.set(v, (2 * M * N * K) / ms / 1e6);
        const bytes = packed + 4 * (M * K + M * N);
        // GEMV: also the kernel's own GPU time (timestamps, each call in its own timed pass), the
        // median of `reps` calls; a 4096² int4 GEMV moves ~8.5 MB, microseconds on a GPU, where the
        // wall time per call also counts the dispatch gaps
        let kernelGbps: number | undefined;
        if (M === 1 && gpu.hasTimestamps) {
          const ns: number[] = [];
          for (let r = 0; r < Math.min(reps, 20); r++) {
            gpu.startProfile();
            call();
            const prof = await gpu.endProfile();
            const t = prof ? [...prof.values()].reduce((a, x) => a + x.ns, 0) : 0;
            if (t > 0) ns.push(t);
          }
          ns.sort((a, b) => a - b);
          if (ns.length) kernelGbps = bytes / ns[Math.floor(ns.length / 2)];
        }
        rows.push({
          name,
          shape: `M=${M} K=${K} N=${N}`,
          ms,
          gflops: (2 * M * N * K) / ms / 1e6,
          gbps: bytes / ms / 1e6,
          ...(kernelGbps !== undefined ? { kernelGbps } : {}),
          note: [v === auto || v === autoDx ? 'auto' : '', M === 1 ? `${ws.length} W copies` : ''].filter(Boolean).join('; '),
        });
      }
      for (const c of ws.slice(1)) for (const t of [c.codes, c.scales, c.zeros]) gpu.free(t);
      gpu.free(x);
      gpu.free(y);
      gpu.free(dx);
    }
    for (const t of [w.codes, w.scales, w.zeros]) gpu.free(t);
  }
  return rows;
}
