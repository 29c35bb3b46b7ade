// `npm run bench` / `quench bench`: kernel figures measured side by side in one run, on whatever
// adapter Dawn finds here. Printed, never asserted (this machine is shared and noisy).
//   --only fp32|int4|attention   run one family     --json   also print rows as JSON
import { createNodeGpu } from '../src/engine/gpu/node';
import type { BenchRow } from './types';

function fmt(rows: BenchRow[]): string {
  const head = ['kernel', 'shape', 'ms', 'GFLOP/s', 'GB/s', 'note'];
  const body = rows.map((r) => [r.name, r.shape, r.ms.toFixed(3), r.gflops?.toFixed(2) ?? '', r.gbps?.toFixed(2) ?? '', r.note ?? '']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  return [head, ...body].map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ')).join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : null;
  const gpu = await createNodeGpu();
  console.log(`adapter: ${gpu.info.description || gpu.info.vendor} (${gpu.info.backend})`);
  const rows: BenchRow[] = [];
  if (!only || only === 'fp32') {
    const { benchMatmul } = await import('./matmul.bench');
    rows.push(...(await benchMatmul(gpu)));
  }
  if (!only || only === 'int4') {
    const { benchQmatmul } = await import('./qmatmul.bench');
    rows.push(...(await benchQmatmul(gpu)));
  }
  const notes: string[] = [];
  if (!only || only === 'attention') {
    const { benchAttention } = await import('./attention.bench');
    const r = await benchAttention(gpu);
    rows.push(...r.rows);
    notes.push(...r.ratios);
  }
  console.log(fmt(rows));
  if (notes.length) console.log(`\n${notes.join('\n')}`);
  // int4 GEMV time over fp32 GEMV time at the same shape (the headline ratio).
  const ratios: string[] = [];
  for (const q of rows.filter((r) => /int4/.test(r.name) && /gemv/i.test(r.name))) {
    const f = rows.filter((r) => /fp32/.test(r.name) && /gemv/i.test(r.name) && r.shape === q.shape).sort((a, b) => a.ms - b.ms)[0];
    if (f) ratios.push(`${q.shape}: int4 gemv / best fp32 gemv time = ${(q.ms / f.ms).toFixed(3)} (${q.name} vs ${f.name})`);
  }
  if (ratios.length) console.log(`\n${ratios.join('\n')}`);
  if (argv.includes('--json')) console.log(JSON.stringify(rows));
  gpu.destroy();
  return 0;
}

// Run directly (tsx bench/bench.ts) as well as through the CLI.
if (process.argv[1] && /bench[\\/]bench\.ts$/.test(process.argv[1])) {
  run(process.argv.slice(2)).then((c) => process.exit(c), (e) => { console.error(e); process.exit(1); });
}
