// npx tsx bench/step-profile.mts [--steps N] [--model PATH] [--tokenizer PATH] [--dx VARIANT] [--gemm VARIANT]
//                                [--smollm2 [--layers L] [--batch B] [--seq T]]
// Where a KD-QAT step's dispatches (and, with timestamp queries, GPU time) go, and how much CPU time
// recording it costs (JS time inside gpu.run per dispatch: what a fast GPU waits on, so a floor on
// its step time). The step: stories260K (../shared/data) at the studio's defaults (w4g32, learned
// scales, B=8, T=128); or with --smollm2 the GPU target's shape (SmolLM2-135M: 30 layers, dim 576,
// MLP 1536, 9/3 heads, vocab 49152; random weights; w4g32, ov; B=1, T=32 by default so that lavapipe
// runs it in seconds: the dispatches and their bindings are those of any B and T; bench/gpu.sh runs
// it at the GPU comparison's B=4, T=256 for per-kernel GPU times on a real GPU). A few warm-up steps,
// then N steps recorded without waiting, then N profiled steps counted per kernel entry, largest
// first. For deciding what to fuse next; figures are per step, not timed against anything. --dx
// runs the int4 dX through that variant (dx, dx_sg, dx_wg, dx_wg8, dx_deq) and --gemm the int4 forward
// (gemm, gemm_sg, gemm_wg, gemm_wg8) instead of the adapter's picks.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeGpu, repoRoot } from '../src/engine/gpu/node';
import { loadModelFromPath } from '../src/engine/io/load-node';
import { DEFAULT_DISTILL, Distiller } from '../src/engine/train/distill';
import { DEFAULT_RUN_SPEC, resolveRunSpec } from '../src/engine/workflow/spec';
import { Rng } from '../src/engine/train/data';
import { parseFreeze } from '../src/engine/train/freeze';
import { pretrainInit } from '../src/engine/train/pretrain';
import type { LlamaConfig } from '../src/engine/model/config';
import type { Gpu } from '../src/engine/gpu/runtime';
import { preferQmatmulVariants, type QmatmulDxVariant, type QmatmulVariant } from '../src/engine/ops/qmatmul';

const data = join(repoRoot, '../shared/data/models/stories260K');
const { values: a } = parseArgs({ options: { steps: { type: 'string', default: '2' }, model: { type: 'string', default: join(data, 'stories260K.bin') }, tokenizer: { type: 'string', default: join(data, 'tok512.bin') }, dx: { type: 'string' }, gemm: { type: 'string' }, smollm2: { type: 'boolean', default: false }, layers: { type: 'string', default: '30' }, batch: { type: 'string', default: '1' }, seq: { type: 'string', default: '32' } } });
if (!a.smollm2 && !existsSync(a.model!)) {
  console.log(`step-profile: ${a.model} not found (../shared/data absent?); nothing to profile`);
  process.exit(0);
}
const gpu = await createNodeGpu();
if (a.dx || a.gemm) preferQmatmulVariants(gpu, { dx: a.dx as Exclude<QmatmulDxVariant, 'auto'> | undefined, gemm: a.gemm as Exclude<QmatmulVariant, 'auto'> | undefined });
const { d, what } = await (async () => {
  if (a.smollm2) {
    const L = Number(a.layers), B = Number(a.batch), T = Number(a.seq);
    const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: L, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
    const r = new Rng(7);
    const stream = Uint32Array.from({ length: B * T * 8 + 1 }, () => Math.floor(r.next() * cfg.vocabSize));
    // min/max scales: the clip search over 106 M weights is host work that changes no dispatch
    const dc = { ...DEFAULT_DISTILL, scaleInit: 'minmax' as const, freeze: parseFreeze('ov', L), steps: 100, batch: B, seq: T, warmup: 1, metricsEvery: 0 };
    return { d: new Distiller(gpu, cfg, pretrainInit(cfg, 1), dc, stream), what: `SmolLM2-135M shape (${L} layers), w${dc.bits}g${dc.group} ov, B=${B} T=${T}` };
  }
  const m = await loadModelFromPath(a.model!, a.tokenizer);
  const dc = resolveRunSpec({ ...DEFAULT_RUN_SPEC, batch: 8, seq: 128 }, m.config);
  const r = new Rng(3);
  const stream = Uint32Array.from({ length: 8 * 129 * 8 }, () => 1 + Math.floor(r.next() * (m.config.vocabSize - 1)));
  return { d: new Distiller(gpu, m.config, m.weights, dc, stream), what: `stories260K, w${dc.bits}g${dc.group} ${dc.scales} scales, B=${dc.batch} T=${dc.seq}` };
})();
for (let s = 0; s < 3; s++) await d.trainStep();
const counts = new Map<string, number>();
const run = gpu.run.bind(gpu);
let encodeMs = 0;
(gpu as { run: Gpu['run'] }).run = (spec, args) => {
  const k = `${spec.shader}:${spec.entry ?? 'main'}`;
  counts.set(k, (counts.get(k) ?? 0) + 1);
  const t = performance.now();
  run(spec, args);
  encodeMs += performance.now() - t;
};
const steps = Number(a.steps);
// the CPU cost of recording a step (what a fast GPU waits on): steps submitted without waiting,
// no timestamp queries, JS time inside gpu.run
{
  const b0 = gpu.counts.bindGroupsCreated, d0 = gpu.counts.dispatches;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await d.submitStep();
  await d.drain();
  const wall = (performance.now() - t0) / steps, n = (gpu.counts.dispatches - d0) / steps;
  console.log(`${what}, recording: ${(encodeMs / steps).toFixed(2)} ms of CPU per step in gpu.run (${((1000 * encodeMs) / steps / n).toFixed(1)} us per dispatch), ${(gpu.counts.bindGroupsCreated - b0) / steps} bind groups created per step (cached: ${n} dispatches), wall ${wall.toFixed(1)} ms per step`);
  counts.clear();
}
gpu.startProfile();
const d0 = gpu.counts.dispatches;
for (let s = 0; s < steps; s++) await d.trainStep();
const per = (gpu.counts.dispatches - d0) / steps;
console.log(`KD-QAT step, ${what}: ${per} dispatches per step (trainStep waits at the end, so this includes the metrics readback's)`);
const prof = await gpu.endProfile(); // (waits for the last batch's timestamps)
const ns = prof ?? new Map<string, { ns: number; count: number }>();
const rows = [...counts.entries()].sort((x, y) => y[1] - x[1]);
console.log(`${'kernel'.padEnd(36)} ${'per step'.padStart(8)}  ${prof && ns.size ? 'GPU ms per step' : '(no timestamp queries on this adapter)'}`);
for (const [k, c] of rows) console.log(`${k.padEnd(36)} ${String(c / steps).padStart(8)}  ${ns.get(k) ? (ns.get(k)!.ns / 1e6 / steps).toFixed(2) : ''}`);
if (ns.size) console.log(`${'all kernels'.padEnd(36)} ${String(per).padStart(8)}  ${([...ns.values()].reduce((x, r) => x + r.ns, 0) / 1e6 / steps).toFixed(2)} (each dispatch in its own timed pass)`);
d.free();
gpu.destroy();
