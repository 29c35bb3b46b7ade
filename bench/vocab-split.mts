// npm run bench:vocab-split — a real vocabulary split (issue 13): one layer of the Llama-3.2-1B
// shape (dim 2048, MLP 8192, 32/8 heads of 64, llama3 rope scaling, tied) with its full
// 128256-token vocabulary: the 128256×2048 fp32 embedding is 1002 MiB, more than lavapipe's
// 128 MiB binding, so it loads as chunks of rows (model/vocab.ts). Prints the split, load time,
// the logits of a prompt against the float64 reference (ref/llama.ts), its log-probabilities
// (runner.ts tokenLogprobs) against the reference's log-softmax, and greedy tokens against the
// reference decoder. Random weights, in memory; about 3 GB of host memory in all (the fp32 weights
// on the host, their copy on the software GPU, the reference's float64 activations).
// --train: then a trainable copy (the embedding's gradient in 8 chunks too) takes one next-token CE
// backward over the prompt, the loss chunk by chunk of logit rows as pretraining runs it
// (train/logit-loss.ts), and every gradient is checked against the float64 reference's: the
// embedding's (all 128256 rows: the classifier's dW per chunk plus the gather's scatter-add),
// the final norm's and the layer's. About 8 GB of host memory at its peak.
// --overhead: instead, the split's cost side by side in one run: the SmolLM2-135M classifier
// (49152×576, 108 MiB, one binding here) whole and forced into 4 chunks (setMaxBindingBytes), the
// forward, dX and dW of 16 logit rows (a training chunk), alternated, median of --reps.
// Usage: npm run bench:vocab-split -- [--tokens 8] [--generate 3] [--train] [--overhead [--reps 7]]
import { parseArgs } from 'node:util';
import { createNodeGpu } from '../src/engine/gpu/node';
import { randomWeights, type LlamaConfig } from '../src/engine/model/config';
import { LlamaModel } from '../src/engine/model/llama';
import { generate, tokenLogprobs } from '../src/engine/model/runner';
import { namedGrads, refBackward, refForward, refGenerateGreedy, refLoss } from '../src/engine/ref/llama';
import { PROJECTIONS, PROJECTION_KEY } from '../src/engine/model/config';
import { LogitLoss, logitChunkRows } from '../src/engine/train/logit-loss';
import { setMaxBindingBytes, VocabLinear, VocabTable } from '../src/engine/model/vocab';
import { Rng } from '../src/engine/train/data';

const { values: a } = parseArgs({ options: { tokens: { type: 'string', default: '8' }, generate: { type: 'string', default: '3' }, train: { type: 'boolean', default: false }, overhead: { type: 'boolean', default: false }, reps: { type: 'string', default: '7' } } });
const T = Number(a.tokens), G = Number(a.generate);
const cfg: LlamaConfig = { dim: 2048, hiddenDim: 8192, nLayers: 1, nHeads: 32, nKvHeads: 8, vocabSize: 128256, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true, ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } };
const V = cfg.vocabSize, C = cfg.dim;
const gpu = await createNodeGpu();
if (a.overhead) {
  const Vs = 49152, Cs = 576, M = 16, reps = Number(a.reps);
  const r0 = new Rng(3);
  const tab = Float32Array.from({ length: Vs * Cs }, () => (r0.next() - 0.5) * 0.04);
  const heads: [string, VocabLinear][] = [];
  for (const [name, lim] of [['whole', null], ['4 chunks', Math.ceil((4 * Vs * Cs) / 4)]] as const) {
    setMaxBindingBytes(gpu, lim);
    const t = new VocabTable(gpu, `bench.${name}`, Vs, Cs, tab);
    heads.push([`${name} (${t.rows.join(', ')} rows)`, new VocabLinear(gpu, t, t.like(gpu, `bench.${name}.grad`), true, true)]);
  }
  setMaxBindingBytes(gpu, null);
  const x = gpu.tensor('bench.x', [M, Cs], 'f32', Float32Array.from({ length: M * Cs }, () => r0.next() - 0.5));
  const out = gpu.tensor('bench.logits', [M, Vs]), dx = gpu.tensor('bench.dx', [M, Cs]);
  const times = heads.map(() => ({ fwd: [] as number[], dx: [] as number[], dw: [] as number[] }));
  const time = async (f: () => void) => {
    const t0 = performance.now();
    f();
    await gpu.sync();
    return performance.now() - t0;
  };
  for (let rep = 0; rep <= reps; rep++)
    for (const [k, [, h]] of heads.entries()) {
      const f = await time(() => h.forward(out, x, M)), b = await time(() => h.backwardInput(dx, out, M, false)), w = await time(() => h.backwardWeight(out, x, M));
      if (rep > 0) times[k].fwd.push(f), times[k].dx.push(b), times[k].dw.push(w); // rep 0 compiles
    }
  const med = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)];
  console.log(`classifier ${Vs}×${Cs}, ${M} rows, median of ${reps} (ms):       forward     dX     dW`);
  heads.forEach(([name], k) => console.log(`  ${name.padEnd(44)} ${med(times[k].fwd).toFixed(1).padStart(7)} ${med(times[k].dx).toFixed(1).padStart(6)} ${med(times[k].dw).toFixed(1).padStart(6)}`));
  gpu.destroy();
  process.exit(0);
}
const lim = gpu.device.limits;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(`adapter ${gpu.info.description || gpu.info.device}: maxStorageBufferBindingSize ${mib(lim.maxStorageBufferBindingSize)}, maxBufferSize ${mib(lim.maxBufferSize)}`);
console.log(`embedding ${V}×${C} fp32 = ${mib(4 * V * C)}`);
let oneRefused = 'not refused (this adapter binds it whole)';
try {
  gpu.free(gpu.tensor('one.tok_embeddings', [V, C]));
} catch (e) {
  oneRefused = `refused as one tensor: ${(e as Error).message.slice(0, 90)}...`;
}
console.log(`  ${oneRefused}`);
let t = performance.now();
// projections at randomWeights' test scale (sd 0.5/sqrt(in/16)), the embedding at N(0, 0.02) as
// trained models have it (randomWeights draws 0.5): the layer, not the tied embedding's self
// product, shapes the logits, so log-probabilities, greedy tokens and gradients are not degenerate
const w = randomWeights(cfg, 1, 0.5);
for (let i = 0; i < w.tokEmbed.length; i++) w.tokEmbed[i] *= 0.04;
console.log(`random weights on the host: ${((performance.now() - t) / 1000).toFixed(1)} s`);
t = performance.now();
const model = LlamaModel.fromWeights(gpu, cfg, w);
await gpu.sync();
const e = model.tokEmbed;
console.log(`loaded in ${((performance.now() - t) / 1000).toFixed(1)} s: ${e.chunks.length} chunks of rows ${e.rows.join(', ')} (${e.chunks.map((c) => mib(c.bytes)).join(', ')}); GPU live ${mib(gpu.liveBytes)}`);

const r = new Rng(5);
// ids from every chunk, both ends of the vocabulary, the last one in the last chunk
const prompt = Array.from({ length: T }, (_, i) => (i === 0 ? 128000 : i === 1 ? V - 1 : i === 2 ? 0 : i === T - 1 ? 120001 : Math.floor(r.next() * V)));
t = performance.now();
const acts = model.activations(1, T, false);
gpu.write(acts.tokens, new Uint32Array(prompt));
model.forward(acts);
const logits = await gpu.readF32(acts.logits);
const gpuS = (performance.now() - t) / 1000;
t = performance.now();
const f = refForward(cfg, w, prompt, 1, T);
const refS = (performance.now() - t) / 1000;
let maxAbs = 0, maxRef = 0, bad = 0;
for (let i = 0; i < logits.length; i++) {
  const d = Math.abs(logits[i] - f.logits[i]);
  maxAbs = Math.max(maxAbs, d);
  maxRef = Math.max(maxRef, Math.abs(f.logits[i]));
  if (!(d <= 1e-4 + 1e-3 * Math.abs(f.logits[i]))) bad++;
}
console.log(`logits (${T}×${V}): GPU ${gpuS.toFixed(1)} s, float64 reference ${refS.toFixed(1)} s; max |GPU - reference| ${maxAbs.toExponential(2)} (max |logit| ${maxRef.toFixed(3)}); ${bad} of ${logits.length} outside atol 1e-4 + rtol 1e-3`);
const lp = await tokenLogprobs(model, prompt);
let lpMax = 0, lpBad = 0;
for (let i = 0; i + 1 < T; i++) {
  const row = f.logits.subarray(i * V, (i + 1) * V);
  let mx = -Infinity;
  for (const x of row) mx = Math.max(mx, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - mx);
  const want = row[prompt[i + 1]] - mx - Math.log(z), d = Math.abs(lp[i] - want);
  lpMax = Math.max(lpMax, d);
  if (!(d <= 1e-4 + 1e-4 * Math.abs(want))) lpBad++;
}
console.log(`log-probs of the ${T - 1} next tokens: max |GPU - reference| ${lpMax.toExponential(2)} (sum ${lp.reduce((s, x) => s + x, 0).toFixed(3)} nats, uniform would be ${(-(T - 1) * Math.log(V)).toFixed(3)}); ${lpBad} outside atol 1e-4 + rtol 1e-4`);
let same = true;
if (G > 0) {
  t = performance.now();
  const got = await generate(model, prompt, { maxTokens: G });
  const gs = (performance.now() - t) / 1000;
  const want = refGenerateGreedy(cfg, w, prompt, G);
  same = JSON.stringify(got) === JSON.stringify(want);
  console.log(`greedy ${G} tokens: GPU [${got.join(', ')}] in ${gs.toFixed(1)} s, reference [${want.join(', ')}]: ${same ? 'equal' : 'DIFFERENT'}`);
}
let gradOk = true;
model.free();
if (a.train) {
  const tm = LlamaModel.fromWeights(gpu, cfg, w, { trainable: true, label: 'train' });
  const R = logitChunkRows(gpu, T, V);
  const acts = tm.activations(1, T, false, R, 'residuals');
  const targets = prompt.map((_, i) => (i + 1 < T ? prompt[i + 1] : 0xffffffff));
  const n = T - 1;
  t = performance.now();
  gpu.write(acts.tokens, new Uint32Array(prompt));
  tm.zeroGrads();
  tm.forwardStart(acts);
  for (let l = 0; l < cfg.nLayers; l++) tm.forwardLayer(acts, l);
  tm.forwardFinish(acts, false);
  const tt = gpu.tensor('targets', [T], 'u32', targets), out = gpu.tensor('out', [2]), dxnf = gpu.tensor('dxnf', [T, C]);
  const ll = new LogitLoss(gpu);
  ll.run({ student: tm, sa: acts, targets: tt, temperature: 1, klScale: 0, ceScale: 1 / n, out, klIndex: 0, ceIndex: 1, dxnf });
  tm.backwardFromNorm(acts, dxnf);
  const loss = (await gpu.readF32(out))[1] / n;
  const gpuT = (performance.now() - t) / 1000;
  t = performance.now();
  const ref = refLoss(f.logits, targets, V);
  const g = namedGrads(refBackward(cfg, w, prompt, 1, T, f, ref.dlogits));
  const refT = (performance.now() - t) / 1000;
  console.log(`train: CE ${loss.toFixed(6)} (reference ${ref.loss.toFixed(6)}) over ${n} rows in chunks of ${R}; GPU forward + backward ${gpuT.toFixed(1)} s, float64 backward ${refT.toFixed(1)} s; embedding gradient in ${tm.tokEmbedGrad!.chunks.length} chunks`);
  // fp32 error of a gradient entry follows the scale of the terms summed into it: atol from the
  // rms (as llama-family.test.ts) of the tensor, or of each row of `row` entries (the embedding:
  // the prompt's rows also get the gather's scatter-add, far larger than the classifier's
  // dlogitsᵀ·xnf alone that every other row holds), with no fixed floor (it would hide small gradients)
  const check = (name: string, got: Float32Array, want: Float64Array, row = want.length) => {
    let worst = 0, nb = 0, ssAll = 0, atolMin = Infinity, atolMax = 0;
    const badRows = new Set<number>();
    for (let r0 = 0; r0 < want.length; r0 += row) {
      let ss = 0;
      for (let i = r0; i < r0 + row; i++) ss += want[i] * want[i];
      ssAll += ss;
      const atol = 2e-4 * Math.sqrt(ss / row);
      atolMin = Math.min(atolMin, atol), atolMax = Math.max(atolMax, atol);
      for (let i = r0; i < r0 + row; i++) {
        const d = Math.abs(got[i] - want[i]);
        worst = Math.max(worst, d);
        if (!(d <= atol + 2e-3 * Math.abs(want[i]))) nb++, badRows.add(r0 / row);
      }
    }
    if (nb > 0) gradOk = false;
    const at = row === want.length ? `atol ${atolMax.toExponential(1)} (2e-4 rms)` : `atol 2e-4 rms of each row (${atolMin.toExponential(1)}..${atolMax.toExponential(1)})`;
    return `${name}: rms ${Math.sqrt(ssAll / want.length).toExponential(2)}, max |diff| ${worst.toExponential(2)}, ${nb} of ${want.length} outside ${at} + rtol 2e-3${badRows.size ? ` (rows ${[...badRows].slice(0, 8).join(', ')})` : ''}`;
  };
  console.log(`  ${check('d tok_embeddings', await tm.tokEmbedGrad!.read(gpu), g.get('tokEmbed')!, C)}`);
  console.log(`  ${check('d norm', await gpu.readF32(tm.finalNormGrad!), g.get('finalNorm')!)}`);
  for (const p of PROJECTIONS) console.log(`  ${check(`d layers.0.${p}`, await gpu.readF32(tm.layers[0].proj[p].grad!), g.get(`layers.0.${PROJECTION_KEY[p]}`)!)}`);
  ll.free();
  tm.free();
  for (const x of [tt, out, dxnf]) gpu.free(x);
}
const ok = bad === 0 && lpBad === 0 && same && gradOk;
console.log(ok ? 'split embedding and classifier: equal to the float64 reference' : 'MISMATCH against the float64 reference');
gpu.destroy();
process.exit(ok ? 0 : 1);
