// Generation (decoding one token at a time, as the studio's playground and `quench generate` run
// it) on a SmolLM2-135M-shaped model with random weights (dim 576, MLP 1536, 9/3 heads of 64,
// vocab 49152, tied fp32 classifier; every layer the same values): tokens/s and ms per token of greedy decoding after a one-token
// prompt, the FP model with each fp32 GEMV kernel this adapter runs (the fp32gemv family), and the
// model quantized w4g32 (round-to-nearest) with the adapter's int4 GEMV, side by side in one run.
// All 30 layers on a GPU; on a software adapter 4 (quick: 2) so that it takes seconds, which the
// shape line says. The classifier (113 MB of fp32) is read every token in both. Each token reads
// its logits back (V floats) to pick the next one on the host, as generate() does: one host wait
// per token. "weights GB/s" = the weight bytes one token reads over its wall time (a floor on the
// memory traffic; on a GPU, against its bandwidth).
import type { Gpu } from '../src/engine/gpu/runtime';
import type { LlamaConfig } from '../src/engine/model/config';
import { LlamaModel } from '../src/engine/model/llama';
import { generate } from '../src/engine/model/runner';
import { fp32GemvVariants, pickFp32GemvVariant, preferFp32GemvVariant, type Fp32GemvKernel } from '../src/engine/ops/matmul';
import { pickQmatmulVariant } from '../src/engine/ops/qmatmul';
import { isSoftwareAdapterInfo } from '../src/engine/gpu/runtime';
import { quantizeWeights } from '../src/engine/quant/ptq';
import { pretrainInit } from '../src/engine/train/pretrain';
import type { BenchRow } from './types';

export async function benchGenerate(gpu: Gpu, opts: { quick?: boolean; layers?: number; tokens?: number; deadline?: number } = {}): Promise<{ rows: BenchRow[]; notes: string[] }> {
  // the size by what the adapter is (a CPU one also when it picks kernels as a GPU: QUENCH_PICKS=gpu)
  const soft = isSoftwareAdapterInfo({ ...gpu.info, picksAs: undefined });
  const L = opts.layers ?? (soft ? (opts.quick ? 2 : 4) : 30);
  const nTok = opts.tokens ?? (soft ? (opts.quick ? 8 : 16) : 64);
  const deadline = opts.deadline ?? Infinity;
  const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: L, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
  const shape = `SmolLM2-135M shape, ${L}${L === 30 ? '' : ' of 30'} layers, ${nTok} tokens`;
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  // every layer holds the same random weights, each in its own GPU buffers (so a token reads all of
  // them): initialising and quantizing 30 distinct layers on the host took 30 s on this machine, and
  // the values do not change the timing
  const one: LlamaConfig = { ...cfg, nLayers: 1 };
  const w1 = pretrainInit(one, 3);
  const weights = { ...w1, layers: Array.from({ length: L }, () => w1.layers[0]) };
  // weight bytes per token: the 7 projections of every layer, and the tied classifier (fp32 in both)
  const kv = (cfg.dim / cfg.nHeads) * cfg.nKvHeads;
  const proj = L * (2 * cfg.dim * cfg.dim + 2 * cfg.dim * kv + 3 * cfg.dim * cfg.hiddenDim);
  const head = 4 * cfg.vocabSize * cfg.dim;
  const bytes = { fp32: 4 * proj + head, w4g32: proj * (0.5 + 8 / 32) + head };
  // each case: a model and the fp32 GEMV it runs with. Rounds alternate the cases (the host's noise
  // is 20-50%); the first generation of each compiles its pipelines, untimed.
  const q1 = quantizeWeights(one, w1, { bits: 4, group: 32, sym: false, clipSearch: false });
  const quantized = { ...q1, config: cfg, packed: Array.from({ length: L }, () => q1.packed[0]) };
  const fp32 = LlamaModel.fromWeights(gpu, cfg, weights);
  const q4 = LlamaModel.fromWeights(gpu, cfg, weights, { quantized });
  const autoGemv = pickFp32GemvVariant(gpu);
  interface Case { name: string; kind: 'fp32' | 'w4g32'; model: LlamaModel; gemv: Fp32GemvKernel; auto: boolean; ms: number[]; dispatches: number; waits: number }
  const cases: Case[] = [
    ...fp32GemvVariants(gpu).map((k): Case => ({ name: `generate fp32 (fp32 GEMV ${k})`, kind: 'fp32', model: fp32, gemv: k, auto: k === autoGemv, ms: [], dispatches: 0, waits: 0 })),
    { name: `generate w4g32 (int4 GEMV ${pickQmatmulVariant(gpu, 1)}, fp32 GEMV ${autoGemv})`, kind: 'w4g32', model: q4, gemv: autoGemv, auto: true, ms: [], dispatches: 0, waits: 0 },
  ];
  const rounds = opts.quick ? 1 : 3;
  try {
    for (let r = -1; r < rounds; r++)
      for (const c of cases) {
        if (r >= 0 && performance.now() > deadline) continue;
        preferFp32GemvVariant(gpu, c.gemv);
        if (r < 0) { await generate(c.model, [1], { maxTokens: 2, temperature: 0 }); continue; }
        const d0 = gpu.counts.dispatches, w0 = gpu.counts.hostWaits;
        const t0 = performance.now();
        const out = await generate(c.model, [1], { maxTokens: nTok, temperature: 0 });
        c.ms.push((performance.now() - t0) / out.length);
        c.dispatches = (gpu.counts.dispatches - d0) / out.length;
        c.waits = (gpu.counts.hostWaits - w0) / out.length;
      }
  } finally {
    preferFp32GemvVariant(gpu, null);
    fp32.free();
    q4.free();
  }
  const median = (xs: number[]) => (xs.length ? [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] : NaN);
  for (const c of cases) {
    const ms = median(c.ms);
    if (!c.ms.length) { rows.push({ name: c.name, shape, ms: NaN, note: 'skipped: section time cap' }); continue; }
    rows.push({
      name: c.name, shape, ms, gbps: bytes[c.kind] / ms / 1e6,
      note: `${c.auto ? 'auto; ' : ''}${(1000 / ms).toFixed(1)} tokens/s (median of ${c.ms.length}: ${c.ms.map((x) => x.toFixed(1)).join(', ')} ms); ${c.dispatches.toFixed(0)} dispatches, ${c.waits.toFixed(1)} host waits per token; ${(bytes[c.kind] / 1e6).toFixed(0)} MB of weights per token`,
    });
  }
  const fpAuto = median(cases.find((c) => c.kind === 'fp32' && c.auto)?.ms ?? []), q4ms = median(cases.find((c) => c.kind === 'w4g32')?.ms ?? []);
  if (Number.isFinite(fpAuto) && Number.isFinite(q4ms)) notes.push(`generate ${shape}: w4g32 ${(1000 / q4ms).toFixed(1)} tokens/s, fp32 ${(1000 / fpAuto).toFixed(1)} tokens/s -> w4g32 / fp32 time per token ${(q4ms / fpAuto).toFixed(2)} (the adapter's GEMVs; medians of ${rounds} alternating rounds)`);
  const best = cases.filter((c) => c.kind === 'fp32' && c.ms.length).sort((x, y) => median(x.ms) - median(y.ms))[0];
  if (best && Number.isFinite(fpAuto)) notes.push(`generate fp32 ${shape}: fastest fp32 GEMV ${best.gemv} ${median(best.ms).toFixed(2)} ms/token, the adapter's ${autoGemv} ${fpAuto.toFixed(2)} ms/token (${(fpAuto / median(best.ms)).toFixed(2)}x)`);
  return { rows, notes };
}
