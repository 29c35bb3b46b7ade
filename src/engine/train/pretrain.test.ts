import { describe, expect, it } from 'vitest';
import { tinyConfig } from '../model/config';
import { testGpu } from '../testing';
import { Pretrainer, type PretrainStep } from './pretrain';

describe('pretraining from scratch', () => {
  it('learns a repeating sequence: loss falls far below the uniform baseline', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ vocabSize: 13, maxSeqLen: 32 });
    const pattern = [1, 4, 7, 2, 9, 11, 3, 5];
    const stream = Uint32Array.from({ length: 400 }, (_, i) => pattern[i % pattern.length]);
    const p = new Pretrainer(gpu, cfg, { steps: 40, batch: 4, seq: 16, lr: 1e-2, warmup: 4, minLrRatio: 0.1, weightDecay: 0, gradClip: 1, seed: 3 }, stream);
    let last = Infinity;
    for (let i = 0; i < 40; i++) last = (await p.trainStep()).loss;
    expect(last).toBeLessThan(0.25 * Math.log(cfg.vocabSize));
    p.free();
  });

  it('submitted steps never wait on the GPU and drain to the waited-for losses', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ vocabSize: 13, maxSeqLen: 32 });
    const stream = Uint32Array.from({ length: 400 }, (_, i) => (i * 7) % 13);
    const pc = { steps: 6, batch: 2, seq: 8, lr: 1e-2, warmup: 2, minLrRatio: 0.1, weightDecay: 0.1, gradClip: 1, seed: 3 };
    const a = new Pretrainer(gpu, cfg, pc, stream);
    const want: PretrainStep[] = [];
    for (let i = 0; i < 6; i++) want.push(await a.trainStep());
    a.free();
    const b = new Pretrainer(gpu, cfg, pc, stream);
    b.maxInFlight = 6;
    const c0 = { ...gpu.counts };
    const got: PretrainStep[] = [];
    for (let i = 0; i < 6; i++) got.push(...(await b.submitStep()));
    expect(gpu.counts.hostWaits - c0.hostWaits, 'host waits inside 6 submitted steps').toBe(0);
    got.push(...(await b.drain()));
    expect(got).toEqual(want);
    b.free();
  });
});
