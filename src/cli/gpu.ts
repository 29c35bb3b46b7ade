// The GPU a command runs on: Dawn (createNodeGpu), with the kernels of $QUENCH_KERNELS when set
// ("matmul,gemm,dx,half,gemv,attention,decode,fp32gemv", e.g. "shared8,gemm_wg8,dx_wg8,half_wg8,
// gemv_wide,flash_tiled,flash_split,gemv_red", as `quench kernels` prints the fastest here; the
// older forms of 3 to 7 names keep the adapter's kernels for the families they leave out, and the
// fp32 GEMV the named matmul variant's own), and with
// ",tune" (or "tune" alone) training runs tune the kernels to their own shapes first; otherwise the
// adapter's defaults.
import { createNodeGpu } from '../engine/gpu/node';
import type { Gpu } from '../engine/gpu/runtime';
import { FAMILIES, applyKernelChoice, kernelCandidates, validKernelChoice } from '../engine/ops/kernel-choice';
import { setShapeTuning } from '../engine/ops/shape-choice';

/** lenient: warn about an unusable QUENCH_KERNELS and run with the defaults (`quench kernels`,
 *  which prints the line to replace it with) instead of refusing to start. */
export async function cliGpu(opts: { lenient?: boolean } = {}): Promise<Gpu> {
  const gpu = await createNodeGpu();
  const env = process.env.QUENCH_KERNELS?.trim();
  // a last name "tune": runs tune the kernels to their own shapes first (shape-choice.ts); alone,
  // with the adapter's kernels otherwise
  const all = env ? env.split(',').map((s) => s.trim()) : [];
  if (all[all.length - 1] === 'tune') {
    setShapeTuning(gpu, true);
    all.pop();
  }
  if (all.length) {
    const names = all;
    // 3 names: matmul, gemm, dx (the adapter's kernels for the rest); 4: and half; 5: and gemv;
    // 6: and the attention forward; 7: and decoding
    const choice = names.length >= 3 && names.length <= FAMILIES.length ? validKernelChoice(gpu, Object.fromEntries(names.map((n, i) => [FAMILIES[i], n]))) : null;
    if (!choice) {
      const c = kernelCandidates(gpu);
      const why = `QUENCH_KERNELS="${env}": expected "matmul,gemm,dx[,half[,gemv[,attention[,decode[,fp32gemv]]]]][,tune]" (or "tune" alone) with ${FAMILIES.map((f) => `${f} one of ${c[f].join('|')}`).join(', ')} (this adapter's variants)`;
      if (opts.lenient) {
        process.stderr.write(`${why}; ignored\n`);
        return gpu;
      }
      gpu.destroy();
      throw new Error(why);
    }
    applyKernelChoice(gpu, choice);
  }
  return gpu;
}
