// The optimizer part of a stories260K KD-QAT step, per-tensor beside multi-tensor, in one run:
// per-tensor gradient norms, global-norm clip and AdamW over the 81 tensors the Distiller trains
// there (35 latents, 35 learned scale tensors, 11 norms). Per-tensor (the previous step): one
// norm partial dispatch and one adamwStep per tensor. Multi (now): sumSquaresMany with up to 15
// tensors per partial dispatch, MultiAdamW with up to 6 (m and v in arenas). Each round records
// `steps` optimizer steps and waits for the GPU; rounds alternate between the two, and the
// median ms per step of each is printed with its dispatches.
// Wall time, so it includes what dispatches cost on the host (encoding, bind groups, Dawn's
// validation) and in the driver, which GPU timestamps do not see.
//   npx tsx bench/optimizer.bench.mts [--rounds 7] [--steps 20] [--model path/to/stories260K.bin]
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createNodeGpu } from '../src/engine/gpu/node';
import { readLlama2cCheckpoint } from '../src/engine/io/llama2c';
import { Distiller, DEFAULT_DISTILL } from '../src/engine/train/distill';
import { parseFreeze } from '../src/engine/train/freeze';
import { MultiAdamW, adamwStep, clipScale, sumSquaresMany } from '../src/engine/ops/optim';
import type { Tensor } from '../src/engine/gpu/runtime';

const argv = process.argv.slice(2);
const arg = (k: string, d: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : d);
const rounds = Number(arg('--rounds', '7')), steps = Number(arg('--steps', '20'));
const modelPath = resolve(arg('--model', resolve(import.meta.dirname, '../../shared/data/models/stories260K/stories260K.bin')));
if (!existsSync(modelPath)) {
  console.log(`optimizer bench: ${modelPath} not found, skipped`);
  process.exit(0);
}
const gpu = await createNodeGpu();
const m = readLlama2cCheckpoint(new Uint8Array(readFileSync(modelPath)));
// the parameter set of the default KD-QAT run (learned scales, no freeze), from a real Distiller
const d = new Distiller(gpu, m.config, m.weights, { ...DEFAULT_DISTILL, freeze: parseFreeze('none', m.config.nLayers), steps: 10 }, new Uint32Array(4096));
const tensors = d.params.map((p) => ({ param: gpu.tensor(`b.${p.name}`, [...p.param.shape], 'f32', new Float32Array(p.param.numel).fill(0.5)), grad: gpu.tensor(`b.${p.name}.g`, [...p.param.shape], 'f32', new Float32Array(p.param.numel).fill(1e-3)) }));
d.free();
const mv = tensors.map((t) => ({ m: gpu.tensor('m', [...t.param.shape]), v: gpu.tensor('v', [...t.param.shape]) }));
const multi = new MultiAdamW(gpu, 'bench', tensors);
const sumsq = gpu.tensor('sumsq', [tensors.length]), clip = gpu.tensor('clip', [2]);
const h = { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 };
let t = 1;
const variants: Record<string, () => void> = {
  'per-tensor (partials, adamwStep)': () => {
    sumSquaresMany(gpu, sumsq, 0, tensors.map((x) => x.grad), { tensorsPerDispatch: 1 });
    clipScale(gpu, clip, sumsq, tensors.length, 1);
    tensors.forEach((x, i) => adamwStep(gpu, x.param, x.grad, mv[i].m, mv[i].v, clip, t, h));
  },
  [`multi (partials by 15, MultiAdamW by ${multi.perDispatch})`]: () => {
    sumSquaresMany(gpu, sumsq, 0, tensors.map((x) => x.grad));
    clipScale(gpu, clip, sumsq, tensors.length, 1);
    multi.step(clip, t, h);
  },
};
const times: Record<string, number[]> = {}, dispatches: Record<string, number> = {};
for (let r = 0; r < rounds + 1; r++)
  for (const [name, fn] of Object.entries(variants)) {
    await gpu.sync();
    const d0 = gpu.counts.dispatches, t0 = performance.now();
    for (let s = 0; s < steps; s++, t++) {
      fn();
      gpu.flush();
    }
    await gpu.sync();
    if (r === 0) continue; // the first round compiles the pipelines
    (times[name] ??= []).push((performance.now() - t0) / steps);
    dispatches[name] = (gpu.counts.dispatches - d0) / steps;
  }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`adapter: ${gpu.info.description || gpu.info.vendor}; ${tensors.length} tensors (${tensors.reduce((s, x) => s + x.param.numel, 0)} elements), ${rounds} rounds x ${steps} steps, load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
for (const name of Object.keys(variants)) console.log(`${name.padEnd(42)} ${median(times[name]).toFixed(2).padStart(8)} ms/step  ${dispatches[name]} dispatches/step (norms + clip + AdamW)  rounds: ${times[name].map((x) => x.toFixed(2)).join(' ')}`);
const [a, b] = Object.keys(variants).map((n) => median(times[n]));
console.log(`multi / per-tensor time: ${(b / a).toFixed(2)}`);
gpu.destroy();
