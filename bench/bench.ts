// `npm run bench` / `quench bench`: kernel figures measured side by side in one run, on whatever
// adapter Dawn finds here. Printed, never asserted (this machine is shared and noisy).
//   --only fp32|int4|attention|generate|eval|kdqat   run one family     --json   also print rows as JSON
//   --quick                      small shapes (checks that every section runs; bench/gpu.sh uses it to try itself)
//   --section-s S                time cap per section (default 240): no new case starts after it
// Every section also skips a case whose estimated time per call (from the same kernel's speed on a
// smaller shape) is over its cap, and says so in the table, so the whole bench finishes on CPU Vulkan.
import { createNodeGpu, dawnPolls } from '../src/engine/gpu/node';
import type { BenchRow } from './types';

function fmt(rows: BenchRow[]): string {
  const head = ['kernel', 'shape', 'ms', 'GFLOP/s', 'GB/s', 'kernel GB/s', 'note'];
  const body = rows.map((r) => [r.name, r.shape, Number.isFinite(r.ms) ? r.ms.toFixed(3) : '', r.gflops?.toFixed(2) ?? '', r.gbps?.toFixed(2) ?? '', r.kernelGbps?.toFixed(2) ?? '', r.note ?? '']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ')).join('\n');
}

// The GEMV figures (int4 over fp32 time at each shape; the int4 GEMV's bandwidth, and its fraction
// of QUENCH_PEAK_GBPS on a GPU), printed with the int4 section.
function gemvRatios(rows: BenchRow[]): string[] {
  // int4 GEMV time over fp32 GEMV time at the same shape (the issue's headline ratio).
  const ratios: string[] = [];
  for (const q of rows.filter((r) => /int4/.test(r.name) && /gemv/i.test(r.name) && /auto/.test(r.note ?? '') && Number.isFinite(r.ms))) {
    const f = rows.filter((r) => /fp32/.test(r.name) && /gemv/i.test(r.name) && r.shape === q.shape && Number.isFinite(r.ms)).sort((a, b) => a.ms - b.ms)[0];
    if (f) ratios.push(`${q.shape}: int4 gemv / best fp32 gemv time = ${(q.ms / f.ms).toFixed(3)} (${q.name} vs ${f.name}); int4 reads ${(q.gbps! * q.ms / (f.gbps! * f.ms)).toFixed(3)} of the bytes`);
  }
  // on a GPU: the int4 GEMV's fraction of the memory bandwidth (QUENCH_PEAK_GBPS, set by bench/gpu.sh)
  const peak = Number(process.env.QUENCH_PEAK_GBPS || 0);
  const q = rows.filter((r) => /int4 gemv/.test(r.name) && r.gbps).sort((a, b) => b.gbps! - a.gbps!);
  const big = q.find((r) => r.shape === 'M=1 K=4096 N=4096') ?? q[0];
  const pct = (gbps: number) => (peak ? ` = ${((100 * gbps) / peak).toFixed(1)}% of ${peak} GB/s` : '');
  if (big) ratios.push(`int4 GEMV ${big.shape}: ${big.gbps!.toFixed(1)} GB/s by wall time per call (${big.name})${pct(big.gbps!)}${peak ? ' (target >= 60% on a GPU)' : ''}`);
  // the same target by kernel time: the best variant at that shape by its own GPU time
  const byKernel = rows.filter((r) => /int4 gemv/.test(r.name) && r.kernelGbps && big && r.shape === big.shape).sort((a, b) => b.kernelGbps! - a.kernelGbps!)[0];
  if (byKernel) ratios.push(`int4 GEMV ${byKernel.shape}: ${byKernel.kernelGbps!.toFixed(1)} GB/s by kernel time (timestamps; ${byKernel.name})${pct(byKernel.kernelGbps!)}`);
  return ratios;
}

export async function run(argv: string[]): Promise<number> {
  const arg = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : null);
  const only = arg('--only');
  const quick = argv.includes('--quick');
  const sectionMs = 1000 * Number(arg('--section-s') ?? 240);
  const gpu = await createNodeGpu();
  const poll = dawnPolls();
  console.log(`adapter: ${gpu.info.description || gpu.info.vendor} (${gpu.info.backend})${gpu.info.picksAs === 'gpu' ? ", kernels picked as on a GPU (QUENCH_PICKS=gpu)" : ''}${quick ? ' [quick]' : ''}; Dawn's poll: ${poll.sleepUs ? `sleeps ${poll.sleepUs} µs past the first ${poll.spinUs / 1000} ms of a wait` : 'busy'} (QUENCH_DAWN_POLL_US)`);
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const t0 = performance.now();
  // each section's table and notes as soon as it ends: a run cut short (bench/gpu.sh's timeout)
  // keeps the sections it finished
  let shownRows = 0, shownNotes = 0, sectionT0 = performance.now();
  const flush = (section: string) => {
    console.log(`\n== ${section} (${((performance.now() - sectionT0) / 1000).toFixed(0)} s)`);
    if (rows.length > shownRows) console.log(fmt(rows.slice(shownRows)));
    if (notes.length > shownNotes) console.log(`\n${notes.slice(shownNotes).join('\n')}`);
    shownRows = rows.length;
    shownNotes = notes.length;
    sectionT0 = performance.now();
  };
  if (!only || only === 'fp32') {
    const { benchMatmul } = await import('./matmul.bench');
    const r = await benchMatmul(gpu, {
      deadline: performance.now() + sectionMs,
      ...(quick ? { gemm: [[64, 256, 256], [256, 256, 256]], gemv: [256, 1024], budgetMs: 300 } : {}),
    });
    rows.push(...r.rows);
    notes.push(...r.notes);
    const g = r.rows.filter((x) => x.shape === 'M=1024 K=1024 N=1024' && x.name.startsWith('fp32 gemm') && x.gflops).sort((a, b) => b.gflops! - a.gflops!)[0];
    if (g) notes.push(`target fp32 GEMM >= 10 GFLOP/s at 1024^3 (on lavapipe): best ${g.name} ${g.gflops!.toFixed(2)} GFLOP/s -> ${g.gflops! >= 10 ? 'met' : 'missed'}`);
    flush('fp32');
  }
  if (!only || only === 'int4') {
    const { benchQmatmul } = await import('./qmatmul.bench');
    rows.push(...(await benchQmatmul(gpu, quick ? [256, 1024] : undefined, { deadline: performance.now() + sectionMs, ...(quick ? { budgetMs: 300 } : {}) })));
    notes.push(...gemvRatios(rows));
    flush('int4');
  }
  if (!only || only === 'attention') {
    const { benchAttention } = await import('./attention.bench');
    const r = await benchAttention(gpu, {
      deadline: performance.now() + sectionMs,
      ...(quick ? { shapes: [{ T: 128, NH: 8, NKV: 8, HS: 8 }, { T: 256, NH: 8, NKV: 4, HS: 64 }], decode: [{ Tk: 256, NH: 8, NKV: 4, HS: 64 }], budgetMs: 300 } : {}),
    });
    rows.push(...r.rows);
    notes.push(...r.ratios);
    const att = r.rows.filter((x) => /attention fwd/.test(x.name) && x.gflops).sort((a, b) => b.gflops! - a.gflops!)[0];
    if (att) notes.push(`attention forward best: ${(att.gflops! / 1000).toFixed(4)} TFLOP/s (${att.name}, ${att.shape})`);
    flush('attention');
  }
  if (!only || only === 'generate') {
    const { benchGenerate } = await import('./generate.bench');
    const r = await benchGenerate(gpu, { quick, deadline: performance.now() + sectionMs });
    rows.push(...r.rows);
    notes.push(...r.notes);
    flush('generate');
  }
  if (!only || only === 'eval') {
    const { benchEval } = await import('./eval.bench');
    const r = await benchEval(gpu, { docs: quick ? 4 : 16, rounds: quick ? 1 : 3 });
    rows.push(...r.rows);
    notes.push(...r.notes);
    flush('eval');
  }
  if (!only || only === 'kdqat') {
    // a real process each (quench distill, python3): runs last, after the kernels' device is idle
    const { benchKdqat } = await import('./kdqat.bench');
    const r = await benchKdqat({ steps: quick ? 4 : 12 });
    rows.push(...r.rows);
    notes.push(...r.notes);
    flush('kdqat');
  }
  console.log(`\nbench wall time ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (argv.includes('--json')) console.log(JSON.stringify(rows));
  gpu.destroy();
  return 0;
}

// Run directly (tsx bench/bench.ts) as well as through the CLI.
if (process.argv[1] && /bench[\\/]bench\.ts$/.test(process.argv[1])) {
  run(process.argv.slice(2)).then((c) => process.exit(c), (e) => { console.error(e); process.exit(1); });
}
