// Child process of qmatmul.test.ts and matmul-gemv.test.ts: runs qmatmulGemvRed (int4) or
// matmulGemvRed (fp32, cases with fp32: true) in a fresh Dawn device, so that the test
// can set the driver's environment first (LP_NATIVE_VECTOR_WIDTH=512 makes lavapipe's subgroups
// 16 wide on AVX-512 hosts; the test process's own device has 8). Inputs are rebuilt from the
// same seeds as the parent's; the parent holds the float64 reference and does the comparison.
//   node --import tsx src/engine/ops/gemv-red.child.ts '<JSON GemvRedCase[]>'
// Prints one JSON line: { subgroupMinSize, subgroupMaxSize, ys: number[][] } (ys[i]: case i's y;
// JSON writes a NaN as null, which the parent reads back as NaN).
import { execFileSync } from 'node:child_process';
import { createNodeGpu } from '../gpu/node';
import { quantizeHost, type Bits } from '../format/pack';
import { randn } from '../testing';
import { qmatmulGemvRed } from './qmatmul';
import { matmulGemvRed } from './matmul';

export interface GemvRedCase {
  K: number;
  N: number;
  bits: Bits;
  group: number; // 0: per-channel
  sym: boolean;
  opts: { wg?: number; rows?: number; rb?: number };
}

/** An fp32 gemv_red case: y (1, N) (+)= x (1, K) · Wᵀ. */
export interface Fp32GemvRedCase {
  fp32: true;
  K: number;
  N: number;
  accumulate: boolean;
  opts: { wg?: number; rows?: number; rb?: number };
}

/** The fp32 case's W (N, K), x (1, K) and the y it starts from (accumulate), from fixed seeds. */
export function fp32GemvRedInputs(c: Fp32GemvRedCase): { w: Float32Array; x: Float32Array; y0: Float32Array } {
  return { w: randn(c.N * c.K, c.K + 3 * c.N), x: randn(c.K, c.N + 1), y0: randn(c.N, 5) };
}

/** The case's weight and x, from fixed seeds (parent and child build the same ones). */
export function gemvRedInputs(c: GemvRedCase): { p: ReturnType<typeof quantizeHost>; x: Float32Array } {
  return { p: quantizeHost(randn(c.N * c.K, c.K + c.N + c.bits), c.N, c.K, { bits: c.bits, group: c.group, sym: c.sym }), x: randn(c.K, 2) };
}

/** Run `cases` in a child process with lavapipe's subgroups 16 wide (LP_NATIVE_VECTOR_WIDTH=512, on
 *  AVX-512 hosts): each case's y, NaN where the child wrote one (JSON writes NaN as null, which would
 *  compare as 0), or null where the setting did not give 16 lanes (the caller skips). */
export function gemvRedAt16Lanes(cases: (GemvRedCase | Fp32GemvRedCase)[]): number[][] | null {
  const out = execFileSync(process.execPath, ['--import', 'tsx', 'src/engine/ops/gemv-red.child.ts', JSON.stringify(cases)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LP_NATIVE_VECTOR_WIDTH: '512' },
  });
  const r = JSON.parse(out.trim().split('\n').pop()!) as { subgroupMinSize: number; subgroupMaxSize: number; ys: (number | null)[][] };
  if (r.subgroupMinSize !== 16 || r.subgroupMaxSize !== 16) return null;
  return r.ys.map((y) => y.map((v) => v ?? NaN));
}

async function main(cases: (GemvRedCase | Fp32GemvRedCase)[]): Promise<void> {
  const gpu = await createNodeGpu();
  const ys: number[][] = [];
  for (const c of cases) {
    if ('fp32' in c) {
      const { w, x, y0 } = fp32GemvRedInputs(c);
      const tw = gpu.tensor('w', [c.N, c.K], 'f32', w); // (N, K) f32
      const tx = gpu.tensor('x', [1, c.K], 'f32', x); // (1, K) f32
      const ty = gpu.tensor('y', [1, c.N], 'f32', c.accumulate ? y0 : new Float32Array(c.N).fill(NaN)); // (1, N) f32
      matmulGemvRed(gpu, ty, tx, tw, c.K, c.N, { ...c.opts, accumulate: c.accumulate });
      ys.push(Array.from(await gpu.readF32(ty)));
      for (const t of [tw, tx, ty]) gpu.free(t);
      continue;
    }
    const { p, x } = gemvRedInputs(c);
    const w = {
      layout: p,
      codes: gpu.tensor('codes', [p.N, p.wordsPerRow], 'u32', p.codes), // (N, wordsPerRow) u32
      scales: gpu.tensor('scales', [p.N, p.nBlocks], 'f32', p.scales), // (N, nBlocks) f32
      zeros: gpu.tensor('zeros', [p.N, p.nBlocks], 'f32', p.zeros), // (N, nBlocks) f32
    };
    const tx = gpu.tensor('x', [1, c.K], 'f32', x); // (1, K) f32
    const ty = gpu.tensor('y', [1, c.N], 'f32', new Float32Array(c.N).fill(NaN)); // (1, N) f32, every output must be written
    qmatmulGemvRed(gpu, ty, tx, w, c.opts);
    ys.push(Array.from(await gpu.readF32(ty)));
    for (const t of [tx, ty, w.codes, w.scales, w.zeros]) gpu.free(t);
  }
  console.log(JSON.stringify({ subgroupMinSize: gpu.info.subgroupMinSize, subgroupMaxSize: gpu.info.subgroupMaxSize, ys }));
  gpu.destroy();
}

if (process.argv[1] && /gemv-red\.child\.ts$/.test(process.argv[1])) {
  main(JSON.parse(process.argv[2]) as (GemvRedCase | Fp32GemvRedCase)[]).then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
