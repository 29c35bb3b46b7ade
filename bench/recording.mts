// npx tsx bench/recording.mts [--layers 30] — the CPU cost of recording one SmolLM2-shaped KD-QAT
// step (w4g32, ov; random weights; B=1, T=32 so that lavapipe runs it in seconds: the dispatches
// and their bindings are those of any B and T): dispatches per step, ms of CPU in gpu.run per step
// and per dispatch, bind groups created per step once warm. On a fast GPU this CPU time is what
// the GPU waits on, so it bounds the step time from below.
import { parseArgs } from 'node:util';
import { createNodeGpu } from '../src/engine/gpu/node';
import type { Gpu } from '../src/engine/gpu/runtime';
import type { LlamaConfig } from '../src/engine/model/config';
import { pretrainInit } from '../src/engine/train/pretrain';
import { Distiller, DEFAULT_DISTILL } from '../src/engine/train/distill';
import { parseFreeze } from '../src/engine/train/freeze';
import { Rng } from '../src/engine/train/data';
const { values: a } = parseArgs({ options: { layers: { type: 'string', default: '30' } } });
const L = Number(a.layers), B = 1, T = 32;
const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: L, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
const gpu = await createNodeGpu();
const r = new Rng(7);
const stream = Uint32Array.from({ length: B * T * 8 + 1 }, () => Math.floor(r.next() * cfg.vocabSize));
const d = new Distiller(gpu, cfg, pretrainInit(cfg, 1), { ...DEFAULT_DISTILL, scaleInit: 'minmax', freeze: parseFreeze('ov', L), steps: 10, batch: B, seq: T, warmup: 1, metricsEvery: 0 }, stream);
for (let s = 0; s < 2; s++) await d.trainStep();
let enc = 0;
const run = gpu.run.bind(gpu);
(gpu as { run: Gpu['run'] }).run = (spec, args) => {
  const t = performance.now();
  run(spec, args);
  enc += performance.now() - t;
};
const d0 = gpu.counts.dispatches, b0 = gpu.counts.bindGroupsCreated;
const t0 = performance.now();
for (let s = 0; s < 2; s++) await d.submitStep();
await d.drain();
console.log(`SmolLM2 shape, ${L} layers, ov, B=${B} T=${T}: ${(gpu.counts.dispatches - d0) / 2} dispatches per step, recording ${(enc / 2).toFixed(1)} ms of CPU per step (${(1000 * enc / (gpu.counts.dispatches - d0)).toFixed(1)} us per dispatch), ${(gpu.counts.bindGroupsCreated - b0) / 2} bind groups created per step, wall ${((performance.now() - t0) / 2 / 1000).toFixed(1)} s per step on lavapipe`);
process.exit(0);
