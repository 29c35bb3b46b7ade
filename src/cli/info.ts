import { cliGpu } from './gpu';
import { FAMILIES, currentKernels } from '../engine/ops/kernel-choice';
import { shapeTuning } from '../engine/ops/shape-choice';
import { DECODE_HS, pickAttentionVariant } from '../engine/ops/attention';

export async function run(argv: string[]): Promise<number> {
  const gpu = await cliGpu();
  const json = argv.includes('--json');
  const k = currentKernels(gpu);
  const tune = shapeTuning(gpu);
  const attention = pickAttentionVariant(gpu, false);
  if (json) console.log(JSON.stringify({ ...gpu.info, kernels: k, attention, tuneKernelShapes: tune }, null, 2));
  else {
    const i = gpu.info;
    console.log(`backend:      ${i.backend}`);
    console.log(`vendor:       ${i.vendor}  architecture: ${i.architecture}  device: ${i.device}`);
    console.log(`description:  ${i.description}`);
    console.log(`features:     ${i.features.join(', ')}`);
    if (i.picksAs === 'gpu') console.log(`picks:        as a real GPU's (QUENCH_PICKS=gpu), though this adapter is ${i.description || i.vendor}`);
    console.log(`kernels:      ${FAMILIES.map((f) => k[f]).join(',')} (fp32 matmul, int4 forward, int4 dX, f16-weight forward, int4 GEMV, attention forward, attention decoding, fp32 GEMV; QUENCH_KERNELS, \`quench kernels\`)${tune ? '; training runs the matmuls tuned to their shapes' : ''}`);
    console.log(`attention:    ${attention} (without attention maps: training, eval, prefill); decoding ${pickAttentionVariant(gpu, false, 1, DECODE_HS)} (one row, heads of ${DECODE_HS})`);
    for (const k of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension']) {
      console.log(`${k.padEnd(36)} ${i.limits[k]}`);
    }
  }
  gpu.destroy();
  return 0;
}
