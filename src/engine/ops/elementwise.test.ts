import { describe, expect, it } from 'vitest';
import { testGpu, randn, expectClose } from '../testing';
import { addForward, axpy, scaleInPlace } from './elementwise';
import { addRef, axpyRef } from '../ref/elementwise';
import { Params } from '../gpu/runtime';

describe('elementwise', () => {
  for (const n of [1, 255, 257, 4099, 4, 256, 4100]) {
    it(`add, axpy and scale, n=${n} (${n % 4 === 0 ? 'vec4' : 'scalar'} entries)`, async () => {
      const gpu = await testGpu();
      const a = randn(n, 1), b = randn(n, 2);
      const ta = gpu.tensor('a', [n], 'f32', a), tb = gpu.tensor('b', [n], 'f32', b), out = gpu.tensor('out', [n]);
      addForward(gpu, out, ta, tb);
      expectClose('add', await gpu.readF32(out), addRef(a, b), { atol: 1e-6, rtol: 1e-6 });
      axpy(gpu, out, -0.5, ta);
      expectClose('axpy', await gpu.readF32(out), axpyRef(addRef(a, b), -0.5, a), { atol: 1e-6, rtol: 1e-6 });
      scaleInPlace(gpu, out, 2);
      const want = axpyRef(addRef(a, b), -0.5, a).map((x) => 2 * x);
      expectClose('scale', await gpu.readF32(out), want, { atol: 1e-6, rtol: 1e-6 });
      for (const t of [ta, tb, out]) gpu.free(t);
      expect(gpu.liveBytes).toBe(0);
    });
  }
  it('empty tensors: add, axpy and scale record nothing invalid (n = 0 takes the scalar entries)', async () => {
    const gpu = await testGpu();
    const [e0, e1, e2] = [0, 1, 2].map((i) => gpu.tensor(`e${i}`, [0]));
    addForward(gpu, e0, e1, e2);
    axpy(gpu, e0, 2, e1);
    scaleInPlace(gpu, e0, 3);
    await gpu.sync();
    for (const t of [e0, e1, e2]) gpu.free(t);
  });
  it('names the kernel when a dispatch is invalid', async () => {
    const gpu = await testGpu();
    const t = gpu.tensor('x', [4]);
    // wrong binding count for "add": a validation error that must name the kernel
    gpu.run({ shader: 'elementwise', entry: 'add', constants: { WG } as Record<string, number> }, { bindings: [t], workgroups: [1] });
    await expect(gpu.sync()).rejects.toThrow(/elementwise:add/);
    gpu.free(t);
  });
});
const WG = 256;

describe('gpu.counts', () => {
  it('counts dispatches, submits and host waits (npm run bench reports them per KD-QAT step)', async () => {
    const gpu = await testGpu();
    const n = 64;
    const ta = gpu.tensor('a', [n], 'f32', randn(n, 1)), out = gpu.tensor('out', [n]);
    await gpu.sync();
    const c0 = { ...gpu.counts };
    addForward(gpu, out, ta, ta);
    scaleInPlace(gpu, out, 2);
    expect(gpu.counts.dispatches - c0.dispatches).toBe(2);
    expect(gpu.counts.hostWaits - c0.hostWaits).toBe(0); // recording does not wait
    await gpu.readF32(out);
    expect(gpu.counts.submits - c0.submits).toBe(1); // both dispatches and the readback copy in one command buffer
    expect(gpu.counts.hostWaits - c0.hostWaits).toBe(1);
    await gpu.sync();
    expect(gpu.counts.hostWaits - c0.hostWaits).toBe(2);
    for (const t of [ta, out]) gpu.free(t);
  });
});

describe('bind group cache', () => {
  it('the same dispatches after a flush reuse their bind groups and uniform bytes; other buffers get their own, new uniform values are written, results correct', async () => {
    const gpu = await testGpu();
    const n = 64;
    const a = randn(n, 1), b = randn(n, 2), c = randn(n, 3);
    const ta = gpu.tensor('a', [n], 'f32', a), tb = gpu.tensor('b', [n], 'f32', b), tc = gpu.tensor('c', [n], 'f32', c), out = gpu.tensor('out', [n]);
    const step = () => {
      addForward(gpu, out, ta, tb);
      axpy(gpu, out, 2, tc);
    };
    await gpu.sync();
    const c0 = gpu.counts.bindGroupsCreated;
    step();
    await gpu.sync();
    const first = gpu.counts.bindGroupsCreated - c0;
    expect(first).toBe(2);
    const w0 = gpu.counts.uniformWrites;
    step(); // the same two dispatches, the uniform ring back at the start: no new bind groups, no uniform writes
    expect(gpu.counts.bindGroupsCreated - c0).toBe(2);
    expect(gpu.counts.uniformWrites - w0).toBe(0);
    expectClose('a + b + 2c', await gpu.readF32(out), Float64Array.from(a, (x, i) => x + b[i] + 2 * c[i]), { atol: 1e-6, rtol: 1e-6 });
    addForward(gpu, out, ta, tc); // another buffer: its own bind group
    axpy(gpu, out, -3, tc); // the step's second dispatch with another alpha: its bind group, the new value
    expectClose('a + c - 3c', await gpu.readF32(out), Float64Array.from(a, (x, i) => x - 2 * c[i]), { atol: 1e-6, rtol: 1e-6 });
    expect(gpu.counts.uniformWrites - w0).toBe(1); // only axpy's new alpha was written
    expect(gpu.counts.bindGroupsCreated - c0).toBe(3);
    for (const t of [ta, tb, tc, out]) gpu.free(t);
  });
});

describe('profiling many dispatches', () => {
  it('past the 1024 timestamp pairs of one batch (a flush inside a dispatch) every dispatch still gets its own uniform, in the right encoder', async () => {
    const gpu = await testGpu();
    if (!gpu.hasTimestamps) return; // nothing to profile on this adapter
    const n = 8;
    const a = randn(n, 1), b = randn(n, 2);
    const out = gpu.tensor('out', [n], 'f32', a), tb = gpu.tensor('b', [n], 'f32', b), empty = gpu.tensor('empty', [0]);
    gpu.startProfile();
    try {
      let want = Float64Array.from(a);
      for (let i = 0; i < 1100; i++) {
        const alpha = ((i % 7) - 3) / 8;
        axpy(gpu, out, alpha, tb);
        want = want.map((x, j) => x + Math.fround(alpha) * b[j]);
        // dispatches of no workgroups between them (they must take no uniform slot)
        if (i % 5 === 0) gpu.run({ shader: 'elementwise', entry: 'scale', constants: { WG: 256 } }, { params: new Params().u32(0).f32(9), bindings: { 3: empty }, workgroups: [0] });
      }
      expectClose('out after 1100 profiled axpys', await gpu.readF32(out), want, { atol: 1e-4, rtol: 1e-5 });
    } finally {
      gpu.profile = null;
      for (const t of [out, tb, empty]) gpu.free(t);
    }
  });
});

describe('endProfile', () => {
  it('waits for the timestamps of every dispatch and stops profiling', async () => {
    const gpu = await testGpu();
    const n = 64;
    const a = gpu.tensor('a', [n], 'f32', randn(n, 1)), out = gpu.tensor('out', [n]);
    gpu.startProfile();
    for (let i = 0; i < 3; i++) axpy(gpu, out, 1, a);
    scaleInPlace(gpu, out, 2);
    // the queue's 'work done' settling at once: nothing orders it after the timestamps' maps (on
    // lavapipe it happens to come last, so without this the test passes with no wait at all);
    // endProfile must wait for the timestamps themselves
    const queue = gpu.device.queue;
    const workDone = queue.onSubmittedWorkDone;
    queue.onSubmittedWorkDone = () => Promise.resolve(undefined);
    let prof: Map<string, { ns: number; count: number }> | null;
    try {
      prof = await gpu.endProfile();
    } finally {
      queue.onSubmittedWorkDone = workDone;
    }
    expect(gpu.profile).toBeNull();
    if (gpu.hasTimestamps) {
      expect(prof?.get('elementwise:axpy4')?.count).toBe(3);
      expect(prof?.get('elementwise:scale4')?.count).toBe(1);
      expect(prof!.get('elementwise:axpy4')!.ns).toBeGreaterThan(0);
    } else expect(prof).toBeNull();
    for (const t of [a, out]) gpu.free(t);
  });
});

describe('recording fast path', () => {
  it('Params words are the little-endian bytes of u32, i32 and f32 (what a DataView writes), padded to 16 bytes', () => {
    const p = new Params().u32(7, 2 ** 32 - 1).i32(-5).f32(0.1, -0, Number.NaN, 1e-45);
    const want = new DataView(new ArrayBuffer(32));
    [7, 2 ** 32 - 1].forEach((x, i) => want.setUint32(4 * i, x, true));
    want.setInt32(8, -5, true);
    [0.1, -0, Number.NaN, 1e-45].forEach((x, i) => want.setFloat32(12 + 4 * i, x, true));
    expect(p.paddedWords).toBe(8);
    expect([...new Uint8Array(p.bytes())]).toEqual([...new Uint8Array(want.buffer)]);
    expect(new Params().u32(1).bytes().byteLength).toBe(16);
  });

  it('interleaved pipelines in one pass (the pipeline is set only when it changes) and uniforms of different sizes give the right results', async () => {
    const gpu = await testGpu();
    const n = 36; // vec4 entries (add4, axpy4, scale4)
    const a = randn(n, 4), b = randn(n, 5);
    const ta = gpu.tensor('a', [n], 'f32', a), tb = gpu.tensor('b', [n], 'f32', b), o1 = gpu.tensor('o1', [n]), o2 = gpu.tensor('o2', [n]), o3 = gpu.tensor('o3', [n]);
    const w1 = new Float64Array(n), w3 = new Float64Array(n);
    for (let i = 0; i < 3; i++) {
      addForward(gpu, o1, ta, tb); // add4 twice in a row, other buffers: the same pipeline, two bind groups
      addForward(gpu, o2, tb, ta);
      axpy(gpu, o1, 0.5 + i, ta); // another pipeline, then back
      scaleInPlace(gpu, o2, -2);
      addForward(gpu, o3, o2, o1);
      gpu.flush(); // a new pass starts with add4, the pipeline the last one ended with: it must be set again
      for (let j = 0; j < n; j++) {
        w1[j] = Math.fround(a[j] + b[j]) + Math.fround(0.5 + i) * a[j];
        w3[j] = -2 * (b[j] + a[j]) + w1[j];
      }
    }
    expectClose('o1', await gpu.readF32(o1), w1, { atol: 1e-5, rtol: 1e-5 });
    expectClose('o3', await gpu.readF32(o3), w3, { atol: 1e-5, rtol: 1e-5 });
    for (const t of [ta, tb, o1, o2, o3]) gpu.free(t);
  });
});
