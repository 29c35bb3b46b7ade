// quench kernels [--size small|medium|large] [--json] — time every matmul variant this adapter runs
// (fp32 forward/dX/dW, int4 forward/dX, the f16-weight teacher forward, the int4 and fp32 GEMVs) and every
// flash attention forward (a prefill, one decoding row), each first checked against the float64
// reference, and print the fastest correct one of each family, as the studio's GPU panel does;
// QUENCH_KERNELS=<the printed line> makes the other commands use them. Every attention kernel
// (backwards too) is checked.
import { ATTENTION_TIMING_SHAPES, CHECK_SHAPE, FAMILIES, KERNEL_TIMING_SHAPES, currentKernels, timeKernelVariants, type KernelChoice, type VariantTiming } from '../engine/ops/kernel-choice';
import { parse } from './args';
import { cliGpu } from './gpu';

const SIZES = Object.keys(KERNEL_TIMING_SHAPES) as (keyof typeof KERNEL_TIMING_SHAPES)[];
const HELP = `usage: quench kernels [--size ${SIZES.join('|')}] [--json]
Times every fp32 (forward, dX, dW), int4 (forward, dX), f16-weight (the frozen teacher's forward) and
int4 and fp32 GEMV (decoding one token, timed at 1 x K x N) matmul variant this adapter runs on the size's shapes (${SIZES.map((k) => `${k}: ${KERNEL_TIMING_SHAPES[k].map(([M, K, N]) => `${M}x${K}x${N}`).join(', ')}`).join('; ')}; M x K x N of y = x·Wᵀ),
and every flash attention forward without attention maps at a causal prefill of T rows and at one
decoding row against T cached keys (${SIZES.map((k) => `${k}: ${ATTENTION_TIMING_SHAPES[k].map((a) => `T ${a.T}, ${a.NH}/${a.NKV} heads of ${a.HS}`).join(', ')}`).join('; ')}), prints
each variant's time and the fastest of each family (least total time), and the QUENCH_KERNELS line
that makes distill, compare, compress, pretrain, eval and the rest use them. Default size: medium.
One variant per family serves every shape; a last ",tune" in QUENCH_KERNELS (or "tune" alone) makes
a training run time every variant at the matmul shapes of its first step and use the fastest for
each shape (\`quench distill\` prints what each shape was tuned to).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { size: { type: 'string' }, json: { type: 'boolean' } }, HELP);
  if (!a) return 0;
  const size = (a.size as string | undefined) ?? 'medium';
  if (!(SIZES as string[]).includes(size)) throw new Error(`--size must be one of ${SIZES.join(', ')}, got "${size}"`);
  const gpu = await cliGpu({ lenient: true });
  try {
    const inUse = currentKernels(gpu);
    const sz = size as keyof typeof KERNEL_TIMING_SHAPES;
    // the table's rows print as they are timed (JSON: a progress count), so a run stopped by a
    // time limit (bench/gpu.sh gives this 45 s) keeps what it measured
    const row = (r: VariantTiming) => `${r.op.padEnd(18)} ${r.variant.padEnd(11)} ${r.shape.padEnd(22)} ${r.ms.toFixed(3).padStart(9)} ${r.gflops.toFixed(2).padStart(9)}`;
    if (!a.json) {
      console.log(`adapter: ${gpu.info.description || gpu.info.device || gpu.info.vendor} (${gpu.info.backend})${gpu.info.picksAs === 'gpu' ? ', defaults picked as on a GPU (QUENCH_PICKS=gpu)' : ''}`);
      console.log('checking every variant against the float64 reference first, then timing…');
      console.log(`${'product'.padEnd(18)} ${'variant'.padEnd(11)} ${'shape'.padEnd(22)} ${'ms'.padStart(9)} ${'GFLOP/s'.padStart(9)}`);
    }
    const t = await timeKernelVariants(gpu, {
      shapes: KERNEL_TIMING_SHAPES[sz],
      attentionShapes: ATTENTION_TIMING_SHAPES[sz],
      onProgress: (d, n, r) => (a.json ? process.stderr.write(`\rtiming ${d}/${n}${d === n ? '\n' : ''}`) : console.log(row(r))),
    });
    // every attention kernel is checked too (backwards included), so a kernel wrong on this
    // adapter shows before its figures are trusted
    const att = t.attentionChecks;
    if (a.json) {
      console.log(JSON.stringify({ adapter: gpu.info, inUse, ...t }, null, 2));
      return 0;
    }
    const bad = t.checks.filter((c) => !c.ok && !c.op.startsWith('attention'));
    const nMatmul = t.checks.filter((c) => !c.op.startsWith('attention')).length;
    console.log(bad.length ? `WRONG RESULTS on this adapter (never chosen): ${bad.map((c) => `${c.op} ${c.variant} max |error| ${c.maxAbsError.toExponential(1)}`).join('; ')}` : `every matmul variant matches the float64 reference (${nMatmul} checks, ${CHECK_SHAPE.join('x')})`);
    const attBad = att.filter((c) => !c.ok);
    console.log(attBad.length ? `attention: WRONG RESULTS on this adapter (a wrong forward is never chosen): ${attBad.map((c) => `${c.kernel} (${c.shape}) relative error ${c.relError.toExponential(1)}`).join('; ')}` : `attention: every kernel matches the float64 reference (${att.length} checks: forwards, backwards, decoding)`);
    const line = (c: KernelChoice) => FAMILIES.map((f) => c[f]).join(',');
    console.log(`adapter defaults: ${line(t.defaults)}${line(inUse) !== line(t.defaults) ? `; in use (QUENCH_KERNELS): ${line(inUse)}` : ''}`);
    console.log(`fastest here:     ${line(t.fastest)}`);
    console.log(`to use them:      QUENCH_KERNELS=${line(t.fastest)} quench distill ...`);
    console.log(`or, per shape:    QUENCH_KERNELS=${line(t.fastest)},tune quench distill ...   (each run times the variants at its own shapes first)`);
  } finally {
    gpu.destroy();
  }
  return 0;
}
