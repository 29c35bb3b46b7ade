// npm run bench:scale — KD-QAT memory at a real model size (issue 13): a SmolLM2-135M-shaped model
// (30 layers, dim 576, MLP 1536, 9/3 heads, vocab 49152, tied; random weights, in memory) distils
// into its w4g32 student with ov-freeze at B=4, T=256 on this adapter, and prints the peak GPU
// bytes of the runtime's accounting, the student's parameters, bytes per student parameter, the
// step time and where the bytes are (teacher / student weights / gradients / optimizer /
// activations and scratch), next to the plan the workflow checks before a run (train/memory.ts).
// Usage: npm run bench:scale -- [--layers 30] [--batch 4] [--seq 256] [--steps 1] [--freeze ov]
//          [--teacher-half auto|on|off] [--recompute auto|on|off] [--profile] [--plan-only]
// First it prints the plan (train/memory.ts, what a run checks before it starts) for the
// SmolLM2-135M, TinyLlama-1.1B and Llama-3.2-1B shapes on this adapter: bytes per student
// parameter, the embedding's chunks (model/vocab.ts: a table over one binding is split into
// chunks of rows, so the 1B shapes' 250 MiB and 1002 MiB embeddings are no longer refused on
// lavapipe's 128 MiB binding), and whether the estimate fits this host's memory (a software
// adapter's GPU memory is the host's). --plan-only stops there; otherwise the SmolLM2 run is measured.
import { parseArgs } from 'node:util';
import { totalmem } from 'node:os';
import { createNodeGpu } from '../src/engine/gpu/node';
import { randomWeights, type LlamaConfig } from '../src/engine/model/config';
import { DEFAULT_DISTILL, Distiller, type DistillConfig } from '../src/engine/train/distill';
import { parseFreeze } from '../src/engine/train/freeze';
import { Rng } from '../src/engine/train/data';
import { memoryRefusal, planDistillMemory } from '../src/engine/train/memory';
import { adapterLimits } from '../src/engine/workflow/run';

const { values: a } = parseArgs({
  options: {
    layers: { type: 'string', default: '30' }, batch: { type: 'string', default: '4' }, seq: { type: 'string', default: '256' }, steps: { type: 'string', default: '1' },
    freeze: { type: 'string', default: 'ov' }, 'teacher-half': { type: 'string', default: 'auto' }, recompute: { type: 'string', default: 'auto' }, profile: { type: 'boolean', default: false },
    'plan-only': { type: 'boolean', default: false },
  },
});
const tri = (s: string) => (s === 'on' ? true : s === 'off' ? false : 'auto' as const);
const L = Number(a.layers), B = Number(a.batch), T = Number(a.seq), steps = Number(a.steps);
const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: L, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
const gpu = await createNodeGpu();
// the plan at full depth for three real shapes (random weights are not needed for a plan)
const SHAPES: Record<string, LlamaConfig> = {
  'SmolLM2-135M': cfg,
  'TinyLlama-1.1B': { dim: 2048, hiddenDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4, vocabSize: 32000, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false },
  'Llama-3.2-1B': { dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, vocabSize: 128256, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true, ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } },
};
const lim = adapterLimits(gpu);
const gibOf = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
console.log(`plan (train/memory.ts) at B=${B}, T=${T}, freeze ${a.freeze}, w4g32, full depth, on this adapter (binding ${gibOf(lim.maxStorageBufferBindingSize)}, shader-f16 ${lim.hasF16}):`);
for (const [name, c] of Object.entries(SHAPES)) {
  const pdc = { ...DEFAULT_DISTILL, freeze: parseFreeze(a.freeze!, c.nLayers), batch: B, seq: T };
  const p = planDistillMemory(c, pdc, lim, { teacherHalf: tri(a['teacher-half']!), recompute: tri(a.recompute!) });
  const why = memoryRefusal(p, lim);
  const host = totalmem();
  const fits = p.bytes.total <= host ? `fits this host's ${gibOf(host)}` : `over this host's ${gibOf(host)}`;
  console.log(`  ${name.padEnd(15)} ${p.studentParams.toLocaleString('en-US').padStart(14)} params  ${gibOf(p.bytes.total).padStart(10)}  ${(p.bytes.total / p.studentParams).toFixed(2)} bytes/param  teacher f16 ${p.teacherHalf}, recompute ${p.recompute}, ${p.logitRows} logit rows/chunk, embedding ${gibOf(4 * c.vocabSize * c.dim)} in ${p.vocabChunks} chunk${p.vocabChunks > 1 ? 's' : ''}, ${fits}${why ? `  — refused here: ${why}` : ''}`);
}
if (a['plan-only']) process.exit(0);
const r = new Rng(7);
const stream = Uint32Array.from({ length: B * T * 4 + 1 }, () => Math.floor(r.next() * cfg.vocabSize));
// scales from min/max (the clip search over 106 M weights on the host takes minutes and changes no byte)
const dc: DistillConfig = { ...DEFAULT_DISTILL, scaleInit: 'minmax', freeze: parseFreeze(a.freeze!, L), steps: Math.max(steps, 2), batch: B, seq: T, warmup: 1, metricsEvery: 0 };
const w = randomWeights(cfg, 1, 0.02);
const base = gpu.liveBytes;
gpu.peakBytes = base;
const tb = performance.now();
const d = new Distiller(gpu, cfg, w, dc, stream, { teacherHalf: tri(a['teacher-half']!), recompute: tri(a.recompute!) });
const buildS = (performance.now() - tb) / 1000;
const times: number[] = [];
let snapshot: { label: string; bytes: number }[] = [];
let loss = NaN;
for (let s = 0; s < steps; s++) {
  if (a.profile && s === steps - 1) gpu.startProfile();
  const t0 = performance.now();
  const m = await d.trainStep();
  times.push((performance.now() - t0) / 1000);
  loss = m.loss;
  console.log(`step ${s}: loss ${m.loss.toFixed(4)} ${JSON.stringify(m.losses)}`);
  if (s === 0) snapshot = gpu.memoryReport();
}
const peak = gpu.peakBytes - base;
const params = d.plan.studentParams;
const part = (label: string): string => {
  if (/tok_embeddings(\.\d+)?$/.test(label)) return 'student weights'; // the teacher's buffer, shared by the student
  if (label.startsWith('teacher.')) return 'teacher';
  if (/adam_[mv]$/.test(label)) return 'optimizer';
  if (/\.(grad|scale_grad)$|\.dwq$/.test(label)) return 'gradients';
  if (label.startsWith('student.')) return 'student weights';
  return 'activations + scratch';
};
const by = new Map<string, number>();
for (const t of snapshot) by.set(part(t.label), (by.get(part(t.label)) ?? 0) + t.bytes);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(`KD-QAT at the SmolLM2-135M shape: ${L} layers, dim 576, MLP 1536, 9/3 heads, vocab 49152, tied; w${dc.bits}g${dc.group}, freeze ${a.freeze}, B=${B}, T=${T}, adapter ${gpu.info.description || gpu.info.device} (shader-f16: ${gpu.hasF16})`);
console.log(`plan: ${d.plan.logitRows} logit rows per chunk, recompute layer activations: ${d.plan.recompute}, teacher projections f16: ${d.plan.teacherHalf}; estimate ${mib(d.plan.bytes.total)}`);
console.log(`student parameters         ${params.toLocaleString('en-US')}`);
console.log(`peak GPU bytes             ${peak.toLocaleString('en-US')} (${mib(peak)})`);
console.log(`bytes per student param    ${(peak / params).toFixed(2)}`);
console.log(`build (upload, quantize)   ${buildS.toFixed(1)} s`);
console.log(`step time                  ${times.map((t) => `${t.toFixed(1)} s`).join(', ')} (${((B * T) / times[times.length - 1]).toFixed(2)} tokens/s), loss ${loss.toFixed(4)}`);
console.log('live after step 1, by part (plan in brackets):');
const plan = d.plan.bytes;
const planOf: Record<string, number> = { teacher: plan.teacher, 'student weights': plan.weights, gradients: plan.gradients, optimizer: plan.optimizer, 'activations + scratch': plan.activations + plan.logits };
for (const k of ['teacher', 'student weights', 'gradients', 'optimizer', 'activations + scratch']) console.log(`  ${k.padEnd(24)} ${mib(by.get(k) ?? 0).padStart(12)}  [${mib(planOf[k])}]`);
console.log(`  ${'total'.padEnd(24)} ${mib([...by.values()].reduce((s, x) => s + x, 0)).padStart(12)}  [${mib(plan.total)}]`);
if (a.profile && gpu.profile) {
  const rows = [...gpu.profile.entries()].sort((x, y) => y[1].ns - x[1].ns).slice(0, 12);
  console.log('GPU time of the last step by kernel:');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(40)} ${(v.ns / 1e9).toFixed(2)} s  x${v.count}`);
}
d.free();
