import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testGpu } from '../testing';
import { DEFAULT_POLL_SLEEP_US, dawnPolls, pollSleepUsFor } from './node';
import { isSoftwareAdapterInfo } from './runtime';
import { scaleInPlace } from '../ops/elementwise';

const repo = resolve(import.meta.dirname, '../../..');
const lavapipe = { vendor: 'mesa', architecture: '', device: 'llvmpipe (LLVM 15.0.6, 256 bits)', description: 'Vulkan driver' };
const h200 = { vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200', description: 'NVIDIA 550.54' };

describe("Dawn's busy poll (README, \"Dawn's busy poll\")", () => {
  it('sleeps between polls on software adapters by default, spins on GPUs, follows QUENCH_DAWN_POLL_US', () => {
    expect(pollSleepUsFor(undefined, lavapipe)).toBe(DEFAULT_POLL_SLEEP_US);
    expect(pollSleepUsFor('', lavapipe)).toBe(DEFAULT_POLL_SLEEP_US);
    expect(pollSleepUsFor(undefined, h200)).toBe(0);
    expect(pollSleepUsFor('0', lavapipe)).toBe(0);
    expect(pollSleepUsFor('750', h200)).toBe(750);
    expect(() => pollSleepUsFor('fast', lavapipe)).toThrow(/QUENCH_DAWN_POLL_US=fast/);
    expect(() => pollSleepUsFor('-5', lavapipe)).toThrow(/>= 0/);
    expect(isSoftwareAdapterInfo(lavapipe)).toBe(true);
    expect(isSoftwareAdapterInfo(h200)).toBe(false);
  });

  it("a long GPU wait sleeps between Dawn's polls; JavaScript setImmediate callbacks are not delayed or counted", async () => {
    const gpu = await testGpu();
    if (!isSoftwareAdapterInfo(gpu.info) || process.env.QUENCH_DAWN_POLL_US !== undefined) return; // the default only applies here
    expect(dawnPolls().sleepUs).toBe(DEFAULT_POLL_SLEEP_US);
    // ~0.1 s of lavapipe work: 40 rounds of an elementwise kernel over 2^20 values
    const n = 1 << 20;
    const a = gpu.tensor('a', [n], 'f32', new Float32Array(n).fill(1));
    const before = dawnPolls();
    for (let i = 0; i < 40; i++) scaleInPlace(gpu, a, 1.0001);
    const got = gpu.readF32(a);
    // a JavaScript callback during the wait runs with its arguments, and is no poll of Dawn's
    const js = await new Promise<number>((resolve) => setImmediate((x: number, y: number) => resolve(x + y), 2, 3));
    expect(js).toBe(5);
    const out = await got;
    expect(out[0]).toBeCloseTo(Math.pow(1.0001, 40), 5);
    expect(out[n - 1]).toBeCloseTo(Math.pow(1.0001, 40), 5);
    const after = dawnPolls();
    expect(after.polls).toBeGreaterThan(before.polls);
    expect(after.sleeps).toBeGreaterThan(before.sleeps); // it waited past the spin, then slept
    gpu.free(a);
  });
});

describe('QUENCH_REPO_ROOT (bench/gpu-pack.sh bundles run outside src/)', () => {
  it('moves where shaders/ is looked for; unset, it is this repository', () => {
    const root = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--import', 'tsx', '-e', "import('./src/engine/gpu/node.ts').then((m) => process.stdout.write(m.repoRoot))"], { cwd: repo, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
    const moved = root({ QUENCH_REPO_ROOT: '/tmp/quench-root-test/x/..' });
    expect(moved.status, moved.stderr).toBe(0);
    expect(moved.stdout).toBe('/tmp/quench-root-test');
    const unset = root({ QUENCH_REPO_ROOT: '' });
    expect(unset.stdout).toBe(repo);
  }, 60_000);
});

describe('QUENCH_PICKS=gpu (bench/gpu.sh --software --gpu-picks: the GPU kernels, dry-run on lavapipe)', () => {
  const info = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'info', '--json'], { cwd: repo, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  it("makes a CPU adapter pick the kernels a GPU's 'auto' would; a wrong value is refused by name", async () => {
    const gpu = await testGpu();
    if (!isSoftwareAdapterInfo(gpu.info)) return; // on a GPU the picks are the GPU's anyway
    const asGpu = info({ QUENCH_PICKS: 'gpu', QUENCH_KERNELS: '' });
    expect(asGpu.status, asGpu.stderr).toBe(0);
    const g = JSON.parse(asGpu.stdout);
    expect(g.picksAs).toBe('gpu');
    // the GPU defaults (matmul.ts, qmatmul.ts, attention.ts): workgroup-memory tiles, no 8-lane subgroup kernels
    expect(g.kernels).toMatchObject({ matmul: 'shared', gemm: 'gemm_wg', dx: 'dx_wg', gemv: 'gemv' });
    expect(g.attention).toBe('flash_tiled');
    const own = JSON.parse(info({ QUENCH_PICKS: '', QUENCH_KERNELS: '' }).stdout);
    expect(own.picksAs).toBeUndefined();
    expect(own.kernels.matmul).not.toBe('shared');
    const bad = info({ QUENCH_PICKS: 'cuda' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/QUENCH_PICKS=cuda: expected 'gpu'/);
  }, 120_000);
});

describe('GPU timestamps at full resolution (bench/step-profile.mts, the GEMV rows by kernel time)', () => {
  it("are not rounded to Dawn's default 65,536 ns quantum", async () => {
    const gpu = await testGpu();
    if (!gpu.hasTimestamps) return;
    const a = gpu.tensor('a', [4096], 'f32', new Float32Array(4096).fill(1));
    const ns: number[] = [];
    for (let i = 0; i < 8; i++) {
      gpu.startProfile();
      scaleInPlace(gpu, a, 1.0001);
      const prof = await gpu.endProfile();
      ns.push(prof ? [...prof.values()].reduce((s, x) => s + x.ns, 0) : 0);
    }
    gpu.free(a);
    // quantized, every reading is a multiple of 65536 (0 included); at full resolution 8 readings
    // of a ~0.1 ms kernel all landing on multiples has a chance of about 65536^-8
    expect(ns.filter((t) => t % 65536 !== 0).length, `readings ${ns.join(', ')} ns`).toBeGreaterThan(0);
  });
});
