// The GPU a command runs on: Dawn (createNodeGpu), with the matmul kernels of $QUENCH_KERNELS when
// set ("matmul,gemm,dx", e.g. "shared8,gemm_wg8,dx_wg8", as `quench kernels` prints the fastest
// here); otherwise the adapter's defaults.
import { createNodeGpu } from '../engine/gpu/node';
import type { Gpu } from '../engine/gpu/runtime';
import { applyKernelChoice, kernelCandidates, validKernelChoice } from '../engine/ops/kernel-choice';

/** lenient: warn about an unusable QUENCH_KERNELS and run with the defaults (`quench kernels`,
 *  which prints the line to replace it with) instead of refusing to start. */
export async function cliGpu(opts: { lenient?: boolean } = {}): Promise<Gpu> {
  const gpu = await createNodeGpu();
  const env = process.env.QUENCH_KERNELS?.trim();
  if (env) {
    const [matmul, gemm, dx] = env.split(',').map((s) => s.trim());
    const choice = validKernelChoice(gpu, { matmul, gemm, dx });
    if (!choice) {
      const c = kernelCandidates(gpu);
      const why = `QUENCH_KERNELS="${env}": expected "matmul,gemm,dx" with matmul one of ${c.matmul.join('|')}, gemm one of ${c.gemm.join('|')}, dx one of ${c.dx.join('|')} (this adapter's variants)`;
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
