import { createNodeGpu } from '../engine/gpu/node';

export async function run(argv: string[]): Promise<number> {
  const gpu = await createNodeGpu();
  const json = argv.includes('--json');
  if (json) console.log(JSON.stringify(gpu.info, null, 2));
  else {
    const i = gpu.info;
    console.log(`backend:      ${i.backend}`);
    console.log(`vendor:       ${i.vendor}  architecture: ${i.architecture}  device: ${i.device}`);
    console.log(`description:  ${i.description}`);
    console.log(`features:     ${i.features.join(', ')}`);
    for (const k of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension']) {
      console.log(`${k.padEnd(36)} ${i.limits[k]}`);
    }
  }
  gpu.destroy();
  return 0;
}
