// The memory estimate before a run: the plan (train/memory.ts) counts the bytes a KD-QAT run holds
// as the runtime's accounting does (checked against a real Distiller in several configurations),
// and the workflow refuses, with the estimate and the limit, a run over its budget or a tensor
// over one binding, before anything is allocated or any folder written.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig, type LlamaWeights } from '../model/config';
import { rng, testGpu } from '../testing';
import { DEFAULT_DISTILL, Distiller, type DistillConfig } from '../train/distill';
import { parseFreeze } from '../train/freeze';
import { memoryRefusal, paramCount, planDistillMemory, vocabRowsOf } from '../train/memory';
import { ByteTokenizer } from '../io/byte-tokenizer';
import { adapterLimits, checkRunMemory, runTraining } from './run';
import { runInFolder } from './run-folder';
import { makeRunSpec } from './spec';

const cfg = tinyConfig({ dim: 64, hiddenDim: 172, nHeads: 4, nKvHeads: 2, vocabSize: 300, maxSeqLen: 64 });
const stream = (() => {
  const r = rng(2);
  return Uint32Array.from({ length: 2000 }, () => Math.floor(r() * cfg.vocabSize));
})();

describe('KD-QAT memory plan', () => {
  for (const [name, over, mem] of [
    ['ov-freeze, KL + CE, all activations', {}, { recompute: false, teacherHalf: false }],
    ['no freeze, recomputed layers, f16 teacher, chunks of 16 rows', { freeze: parseFreeze('none', 2) }, { recompute: true, teacherHalf: true, logitRows: 16 }],
    ['attention-map + hidden + attention-output losses, min/max scales', { loss: { kl: 1, ce: 0, attnMap: 1, attnOut: 0.5, hidden: 0.5 }, scales: 'minmax' as const }, { recompute: true, teacherHalf: false }],
    ['FP reference run', { fpReference: true }, {}],
  ] as [string, Partial<DistillConfig>, Parameters<typeof planDistillMemory>[3]][]) {
    it(`the estimate is the bytes a Distiller holds after a step (${name})`, async () => {
      const gpu = await testGpu();
      const dc: DistillConfig = { ...DEFAULT_DISTILL, scaleInit: 'minmax', freeze: parseFreeze('ov', 2), batch: 2, seq: 40, steps: 2, warmup: 1, metricsEvery: 0, ...over };
      const w = randomWeights(cfg, 3, 0.3);
      // a first run grows the kernels' own scratch (reductions) to this size; that is not the run's
      const warm = new Distiller(gpu, cfg, w, dc, stream, mem);
      await warm.trainStep();
      warm.free();
      const before = gpu.liveBytes;
      const d = new Distiller(gpu, cfg, w, dc, stream, mem);
      await d.trainStep();
      const held = gpu.liveBytes - before;
      const plan = planDistillMemory(cfg, dc, adapterLimits(gpu), mem);
      expect(plan).toEqual(d.plan);
      // the plan leaves out a few tiny scalars (loss slots, clip scale, per-tensor norms)
      expect(Math.abs(held - plan.bytes.total)).toBeLessThan(4096 + 4 * (d.params.length + 8 * cfg.nLayers));
      d.free();
      expect(gpu.liveBytes).toBe(before);
    });
  }

  it('counts the student parameters of the model', () => {
    const smol: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
    expect(paramCount(smol)).toBe(134_515_008); // SmolLM2-135M
    expect(paramCount({ ...cfg, tiedEmbeddings: false })).toBe(paramCount({ ...cfg, tiedEmbeddings: true }) + cfg.vocabSize * cfg.dim);
  });
});

describe('a run that will not fit is refused before it starts', () => {
  const teacherOf = (c: LlamaConfig, w: LlamaWeights) => ({ name: 'm', config: c, weights: w, tokenizer: new ByteTokenizer() });

  it('over the memory budget: the estimate and the budget, nothing allocated, no folder written', async () => {
    const gpu = await testGpu();
    const spec = makeRunSpec({ steps: 2, batch: 4, seq: 32, scheme: 'ov' }, 'test');
    const teacher = teacherOf(cfg, randomWeights(cfg, 1, 0.3));
    const before = gpu.liveBytes;
    await expect(runTraining(gpu, teacher, spec, stream, [[1, 2, 3]], { memoryBudgetBytes: 1 << 20 })).rejects.toThrow(/needs ~\d+ MiB of GPU memory \(teacher .*\), the adapter allows 1 MiB/);
    expect(gpu.liveBytes).toBe(before);
    const dir = mkdtempSync(join(tmpdir(), 'quench-mem-'));
    try {
      const out = join(dir, 'run');
      const docs = Array.from({ length: 40 }, (_, i) => `document ${i} `.repeat(20));
      await expect(runInFolder(gpu, teacher, spec, { train: docs, evalDocs: docs.slice(0, 2), description: 'test' } as never, out, { memoryBudgetBytes: 1 << 20, log: () => {} })).rejects.toThrow(/the adapter allows 1 MiB/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // with room it runs
    const ok = checkRunMemory(gpu, cfg, { ...DEFAULT_DISTILL, freeze: parseFreeze('ov', 2), batch: 4, seq: 32 }, 'test', 1 << 30);
    expect(ok.bytes.total).toBeLessThan(1 << 30);
  });

  it('a tensor over one binding (a 65536 x 576 gate projection on a 128 MiB adapter): named, with its size and the limit', async () => {
    const gpu = await testGpu();
    const big: LlamaConfig = { ...cfg, dim: 576, hiddenDim: 65536, nHeads: 9, nKvHeads: 3 };
    const bind = gpu.device.limits.maxStorageBufferBindingSize;
    if (65536 * 576 * 4 <= bind) return; // an adapter with larger bindings holds it
    const spec = makeRunSpec({ steps: 1, batch: 1, seq: 16, scheme: 'ov' }, 'test');
    const before = gpu.liveBytes;
    // the weights are never read: the check comes first
    await expect(runTraining(gpu, teacherOf(big, {} as LlamaWeights), spec, stream, [[1, 2]])).rejects.toThrow(/tensor layers\.0\.gate needs ~144 MiB in one binding, the adapter allows 128 MiB \(maxStorageBufferBindingSize\)/);
    expect(gpu.liveBytes).toBe(before);
  });

  it('an embedding over one binding is split, not refused: a 65536 x 576 one is 2 chunks under 128 MiB', async () => {
    const gpu = await testGpu();
    const big: LlamaConfig = { ...cfg, dim: 576, hiddenDim: 1536, nHeads: 9, nKvHeads: 3, vocabSize: 65536 };
    const lim = adapterLimits(gpu);
    const plan = checkRunMemory(gpu, big, { ...DEFAULT_DISTILL, freeze: parseFreeze('ov', 2), batch: 1, seq: 16 }, 'test');
    const bind = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
    expect(plan.largest.bytes).toBeLessThanOrEqual(bind);
    expect(plan.vocabChunks).toBe(Math.ceil(65536 / vocabRowsOf(big, lim)));
    if (65536 * 576 * 4 > bind) expect(plan.vocabChunks).toBeGreaterThan(1);
    // what still does not fit is refused with the estimate
    expect(memoryRefusal(plan, lim, plan.bytes.total - 1)).toMatch(/this run needs ~\d+ MiB of GPU memory/);
    expect(memoryRefusal(plan, lim, plan.bytes.total)).toBeNull();
  });
});
