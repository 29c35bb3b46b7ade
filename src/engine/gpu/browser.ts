// Browser entry to the GPU: navigator.gpu, shaders bundled by Vite.
import { Gpu } from './runtime';
import { setShaderSource } from './shaders';

const sources = import.meta.glob('../../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;

setShaderSource((name) => {
  const src = sources[`../../../shaders/${name}.wgsl`];
  if (src === undefined) throw new Error(`shader "${name}" is not bundled (shaders/${name}.wgsl)`);
  return src;
});

export async function createBrowserGpu(): Promise<Gpu> {
  const nav = (globalThis as { navigator?: Navigator }).navigator;
  if (!nav?.gpu) throw new Error('WebGPU is not available in this browser (navigator.gpu is missing). Use a recent Chrome, served over https or http://localhost.');
  const adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('WebGPU is present but no GPU adapter was found.');
  return Gpu.fromAdapter(adapter, 'browser');
}
