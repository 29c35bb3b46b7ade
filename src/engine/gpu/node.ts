// Node entry to the GPU: Dawn (npm `webgpu`) on a Vulkan driver. With no GPU, prefer Mesa's
// lavapipe (Debian backports; has shader-f16), else Chromium's SwiftShader. Shaders are read from
// shaders/ on disk.
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { Gpu, gpuWait, gpuWaitStartedAt, isSoftwareAdapterInfo, setNeedsKeepAlive } from './runtime';
import { setShaderSource } from './shaders';

// $QUENCH_REPO_ROOT: where shaders/ is when this module runs bundled into one file elsewhere
// (bench/gpu-pack.sh's .gpu/js/*.mjs, for a GPU machine without node_modules)
export const repoRoot = process.env.QUENCH_REPO_ROOT ? resolve(process.env.QUENCH_REPO_ROOT) : resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

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
  // timestamp_quantization off: by default Dawn rounds every timestamp down to a multiple of 65,536 ns
  // (a browser's defence against timing attacks), so a profiled dispatch shorter than ~65 µs read 0
  // or 65.5 µs: every kernel of a GPU's step profile, and the int4 GEMV's bandwidth by kernel time
  // (~3 µs at 4096² on an H200). Measured here: a 64-float kernel read 65536 or 0 ns, now ~80,000.
  instances.push(create(['disable-dawn-features=timestamp_quantization']));
  const gpu = instances[instances.length - 1];
  const adapter = await gpuWait(gpu.requestAdapter({ powerPreference: 'high-performance' }));
  if (!adapter) {
    throw new Error(`no WebGPU adapter from Dawn (driver: ${backend}). Install Mesa's lavapipe from Debian bookworm-backports (mesa-vulkan-drivers) or Debian's chromium (SwiftShader); see README.`);
  }
  pollSleepUs = pollSleepUsFor(process.env.QUENCH_DAWN_POLL_US, adapter.info);
  if (pollSleepUs > 0) throttleDawnPolls();
  const picks = process.env.QUENCH_PICKS;
  if (picks !== undefined && picks !== '' && picks !== 'gpu' && picks !== 'adapter') throw new Error(`QUENCH_PICKS=${picks}: expected 'gpu' (pick kernels as on a real GPU, even on a CPU adapter) or 'adapter' (the default)`);
  const g = await Gpu.fromAdapter(adapter, `dawn-node/${backend}`);
  if (picks === 'gpu') g.info.picksAs = 'gpu';
  return g;
}

// Dawn's Node binding finds finished GPU work (mapAsync, onSubmittedWorkDone) by re-arming
// setImmediate for as long as any such promise is pending: a busy loop on the main thread for the
// whole of every wait. On a CPU adapter the GPU's work runs on the same cores (lavapipe runs one
// worker per core), so that loop took a core from it: `quench eval` ran 1.5x faster on 2 cores
// with the polls spaced out (README, "Dawn's busy poll"). So a wait spins as Dawn does for its
// first POLL_SPIN_US (short waits, many in tests and one per generated token, keep their latency;
// a wait starts when the first of the pending ones does), then sleeps the main thread
// (Atomics.wait: sub-millisecond, unlike timers) for pollSleepUs before each further poll.
// Default on software adapters only (a real GPU loses nothing to a spinning core);
// QUENCH_DAWN_POLL_US=0 restores Dawn's spin, =N sleeps N µs.
export const DEFAULT_POLL_SLEEP_US = 200;
const POLL_SPIN_US = 1000;
let pollSleepUs = 0;
const pollStats = { polls: 0, sleeps: 0 };

/** The sleep before each of Dawn's polls past the spin: QUENCH_DAWN_POLL_US if set, else
 *  DEFAULT_POLL_SLEEP_US on a software adapter and 0 (Dawn's own spin) on a GPU. */
export function pollSleepUsFor(env: string | undefined, info: { vendor?: string; architecture?: string; device?: string; description?: string }): number {
  if (env !== undefined && env.trim() !== '') {
    const us = Number(env);
    if (!Number.isFinite(us) || us < 0) throw new Error(`QUENCH_DAWN_POLL_US=${env}: expected a number of microseconds >= 0 (0 = Dawn's busy poll)`);
    return us;
  }
  return isSoftwareAdapterInfo(info) ? DEFAULT_POLL_SLEEP_US : 0;
}

/** This process's poll sleep (µs, 0 = Dawn's spin), the spin before it, and how many of Dawn's
 *  polls ran, and slept. */
export function dawnPolls(): { sleepUs: number; spinUs: number; polls: number; sleeps: number } {
  return { sleepUs: pollSleepUs, spinUs: POLL_SPIN_US, ...pollStats };
}
let throttled = false;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function throttleDawnPolls(): void {
  if (throttled) return;
  throttled = true;
  const immediate = globalThis.setImmediate;
  // Dawn schedules its poll with a native (N-API) function; JavaScript callers pass JavaScript
  // functions and keep the real setImmediate
  const isNative = (fn: unknown) => typeof fn === 'function' && /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(fn));
  const wrapped = function (this: unknown, fn: (...a: unknown[]) => void, ...args: unknown[]) {
    if (pollSleepUs <= 0 || !isNative(fn)) return immediate(fn, ...args);
    return immediate(() => {
      pollStats.polls++;
      // the wait began when the first of the pending GPU waits did (runtime.ts, gpuWait)
      if ((performance.now() - gpuWaitStartedAt()) * 1000 >= POLL_SPIN_US) {
        pollStats.sleeps++;
        Atomics.wait(sleepCell, 0, 0, pollSleepUs / 1000);
      }
      fn(...args);
    });
  } as typeof setImmediate;
  Object.assign(wrapped, immediate); // keeps setImmediate's own properties (util.promisify.custom)
  globalThis.setImmediate = wrapped;
}
