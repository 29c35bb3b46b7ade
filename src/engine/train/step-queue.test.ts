// StepQueue: pure logic over fake readbacks — step order, the throttle window, landed steps
// collected without waiting, drain, and the "discard the rest" rule when landing a step throws.
import { describe, expect, it } from 'vitest';
import type { AsyncRead } from '../gpu/runtime';
import { StepQueue } from './step-queue';

/** A readback the test lands by hand (resolve), like Gpu.readAsync's record. */
function fakeRead(step: number): AsyncRead & { resolve(): void; reject(e: Error): void } {
  let resolve!: (b: ArrayBuffer[]) => void, reject!: (e: Error) => void;
  const rec = {
    landed: false,
    result: new Promise<ArrayBuffer[]>((res, rej) => ((resolve = res), (reject = rej))),
    resolve: () => {
      rec.landed = true;
      resolve([Float32Array.of(step).buffer]);
    },
    reject: (e: Error) => {
      rec.landed = true;
      reject(e);
    },
  };
  rec.result.catch(() => {});
  return rec;
}

/** The Gpu side: awaitRead counts a wait only when the read has not landed (as Gpu.awaitRead). */
function fakeGpu() {
  const calls: ('wait' | 'throttle')[] = [];
  const counts = { hostWaits: 0, throttleWaits: 0 };
  return {
    calls, counts,
    async awaitRead(r: AsyncRead, why: 'wait' | 'throttle' = 'wait') {
      calls.push(why);
      if (!r.landed) counts[why === 'throttle' ? 'throttleWaits' : 'hostWaits']++;
      return r.result;
    },
  };
}

type Entry = { step: number; read: ReturnType<typeof fakeRead> };
const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('StepQueue', () => {
  it('returns landed steps in step order, never more than maxInFlight in flight, throttle-waiting for the oldest', async () => {
    const gpu = fakeGpu();
    const landedSteps: number[] = [];
    const q = new StepQueue<Entry, number>(gpu, (e, bufs) => {
      expect(new Float32Array(bufs[0])[0]).toBe(e.step); // each step gets its own readback
      landedSteps.push(e.step);
      return e.step;
    });
    expect(q.maxInFlight).toBe(2);
    const reads = Array.from({ length: 6 }, (_, i) => fakeRead(i));
    // steps 0 and 1: nothing landed, nothing returned, nothing waited for
    expect(await q.push({ step: 0, read: reads[0] })).toEqual([]);
    expect(await q.push({ step: 1, read: reads[1] })).toEqual([]);
    expect(q.pending).toBe(2);
    expect(gpu.calls).toEqual([]);
    // step 1's readback lands before step 0's; the 3rd step exceeds the window: push waits for
    // step 0 (a throttle wait) and returns nothing of step 1 before it ...
    reads[1].resolve();
    let settled: number[] | null = null;
    const p = q.push({ step: 2, read: reads[2] }).then((r) => (settled = r));
    await ticks();
    expect(settled).toBeNull();
    expect(q.throttleWaits).toBe(1);
    expect(gpu.counts.throttleWaits).toBe(1);
    // ... and once step 0 lands returns it with the already-landed step 1 behind it
    reads[0].resolve();
    await p;
    expect(settled).toEqual([0, 1]);
    expect(gpu.calls).toEqual(['throttle', 'wait']);
    expect(gpu.counts.hostWaits).toBe(0);
    expect(q.pending).toBe(1);
    expect(await q.push({ step: 3, read: reads[3] })).toEqual([]);
    // a throttle land whose read has already landed is not a wait; landed steps come back in order
    reads[3].resolve();
    reads[2].resolve();
    expect(await q.push({ step: 4, read: reads[4] })).toEqual([2, 3]);
    expect(q.throttleWaits).toBe(1);
    expect(q.pending).toBe(1);
    // drain waits for the rest, in order
    expect(await q.push({ step: 5, read: reads[5] })).toEqual([]);
    const d = q.drain();
    await ticks();
    reads[5].resolve();
    await ticks();
    reads[4].resolve();
    expect(await d).toEqual([4, 5]);
    expect(gpu.counts.hostWaits).toBe(1); // step 4 was waited for; 5 had landed by then
    expect(q.pending).toBe(0);
    expect(landedSteps).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('a window of 0 lands every step before push returns; a larger one holds them all', async () => {
    const gpu = fakeGpu();
    const q = new StepQueue<Entry, number>(gpu, (e) => e.step, 0);
    for (let s = 0; s < 3; s++) {
      const r = fakeRead(s);
      const p = q.push({ step: s, read: r });
      await ticks();
      r.resolve();
      expect(await p).toEqual([s]);
    }
    expect(gpu.counts.throttleWaits).toBe(3);
    const wide = new StepQueue<Entry, number>(gpu, (e) => e.step, 5);
    for (let s = 0; s < 5; s++) expect(await wide.push({ step: s, read: fakeRead(s) })).toEqual([]);
    expect(wide.pending).toBe(5);
  });

  it('when landing a step throws, the steps after it are discarded and the error propagates', async () => {
    const gpu = fakeGpu();
    const seen: number[] = [];
    const q = new StepQueue<Entry, number>(gpu, (e) => {
      seen.push(e.step);
      if (e.step === 1) throw new Error('loss became NaN at step 1');
      return e.step;
    });
    const reads = Array.from({ length: 4 }, (_, i) => fakeRead(i));
    reads[0].resolve();
    expect(await q.push({ step: 0, read: reads[0] })).toEqual([0]);
    // steps 1 and 2 in flight, then all land; the push of step 3 lands 1, which throws
    expect(await q.push({ step: 1, read: reads[1] })).toEqual([]);
    expect(await q.push({ step: 2, read: reads[2] })).toEqual([]);
    reads.forEach((r) => r.resolve());
    await expect(q.push({ step: 3, read: reads[3] })).rejects.toThrow('loss became NaN at step 1');
    expect(seen).toEqual([0, 1]); // 2 and 3 were discarded, never landed
    expect(q.pending).toBe(0);
    expect(await q.drain()).toEqual([]);
    // a fresh step lands normally again
    await expect(q.push({ step: 4, read: reads[0] })).resolves.toEqual([4]);
    const q2 = new StepQueue<Entry, number>(gpu, (e) => {
      if (e.step === 0) throw new Error('broken');
      seen.push(e.step);
      return e.step;
    }, 3);
    const reads2 = Array.from({ length: 3 }, (_, i) => fakeRead(i));
    for (let s = 0; s < 3; s++) await q2.push({ step: s, read: reads2[s] });
    reads2.forEach((r) => r.resolve());
    const d = q2.drain();
    await expect(d).rejects.toThrow('broken');
    expect(q2.pending).toBe(0);
    expect(await q2.drain()).toEqual([]);
  });

  it('a readback that rejects leaves its step at the head, and the error propagates', async () => {
    const q = new StepQueue<Entry, number>(fakeGpu(), (e) => e.step);
    const r0 = fakeRead(0), r1 = fakeRead(1);
    await q.push({ step: 0, read: r0 });
    await q.push({ step: 1, read: r1 });
    r0.reject(new Error('GPU validation error'));
    r1.resolve();
    await expect(q.drain()).rejects.toThrow('GPU validation error');
    expect(q.pending).toBe(2);
  });
});
