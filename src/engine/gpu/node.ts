// Node entry to the GPU: Dawn (npm `webgpu`) on a Vulkan driver. With no GPU, prefer Mesa's
// lavapipe (Debian backports; has shader-f16), else Chromium's SwiftShader. Shaders are read from
// shaders/ on disk.
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { Gpu, gpuWait, setNeedsKeepAlive } from './runtime';
import { setShaderSource } from './shaders';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const ICDS = [
  { name: 'lavapipe', path: '/usr/share/vulkan/icd.d/lvp_icd.json' },
  { name: 'swiftshader', path: '/usr/lib/chromium/vk_swiftshader_icd.json' },
];

let registered = false;
const instances: GPU[] = [];
function setup(): string {
  if (!registered) {
    setShaderSource((name) => {
      const file = join(repoRoot, 'shaders', `${name}.wgsl`);
      if (!existsSync(file)) throw new Error(`shader "${name}": ${file} not found`);
      return readFileSync(file, 'utf8');
    });
    Object.assign(globalThis, globals);
    setNeedsKeepAlive(true);
    registered = true;
  }
  if (!process.env.XDG_RUNTIME_DIR) {
    const dir = '/tmp/quench-xdg';
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  // QUENCH_VULKAN=swiftshader|lavapipe picks a driver; otherwise the first one installed, unless
  // VK_ICD_FILENAMES is already set (a real GPU's driver, say).
  const want = process.env.QUENCH_VULKAN;
  if (want || !process.env.VK_ICD_FILENAMES) {
    const icd = ICDS.find((d) => (want ? d.name === want : true) && existsSync(d.path));
    if (icd) {
      process.env.VK_ICD_FILENAMES = icd.path;
      return icd.name;
    }
  }
  return process.env.VK_ICD_FILENAMES ? `vulkan (${process.env.VK_ICD_FILENAMES})` : 'system';
}

export async function createNodeGpu(): Promise<Gpu> {
  const backend = setup();
  // Keep the Dawn instance alive as long as the process: if it is garbage-collected while a
  // device lives, Dawn aborts (std::system_error) on its next callback.
  instances.push(create([]));
  const gpu = instances[instances.length - 1];
  const adapter = await gpuWait(gpu.requestAdapter({ powerPreference: 'high-performance' }));
  if (!adapter) {
    throw new Error(`no WebGPU adapter from Dawn (driver: ${backend}). Install Mesa's lavapipe from Debian bookworm-backports (mesa-vulkan-drivers) or Debian's chromium (SwiftShader); see README.`);
  }
  return Gpu.fromAdapter(adapter, `dawn-node/${backend}`);
}
