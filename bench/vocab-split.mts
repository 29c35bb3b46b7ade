// npm run bench:vocab-split — a real vocabulary split (issue 13): one layer of the Llama-3.2-1B
// shape (dim 2048, MLP 8192, 32/8 heads of 64, llama3 rope scaling, tied) with its full
// 128256-token vocabulary: the 128256×2048 fp32 embedding is 1002 MiB, more than lavapipe's
// 128 MiB binding, so it loads as chunks of rows (model/vocab.ts). Prints the split, load time,
// the logits of a prompt against the float64 reference (ref/llama.ts), its log-probabilities
// (runner.ts tokenLogprobs) against the reference's log-softmax, and greedy tokens against the
// reference decoder. Random weights, in memory; about 3 GB of host memory in all (the fp32 weights
// on the host, their copy on the software GPU, the reference's float64 activations).
// Usage: npm run bench:vocab-split -- [--tokens 8] [--generate 3]
import { parseArgs } from 'node:util';
import { createNodeGpu } from '../src/engine/gpu/node';
import { randomWeights, type LlamaConfig } from '../src/engine/model/config';
import { LlamaModel } from '../src/engine/model/llama';
import { generate, tokenLogprobs } from '../src/engine/model/runner';
import { refForward, refGenerateGreedy } from '../src/engine/ref/llama';
import { Rng } from '../src/engine/train/data';

const { values: a } = parseArgs({ options: { tokens: { type: 'string', default: '8' }, generate: { type: 'string', default: '3' } } });
const T = Number(a.tokens), G = Number(a.generate);
const cfg: LlamaConfig = { dim: 2048, hiddenDim: 8192, nLayers: 1, nHeads: 32, nKvHeads: 8, vocabSize: 128256, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true, ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } };
const V = cfg.vocabSize, C = cfg.dim;
const gpu = await createNodeGpu();
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
const w = randomWeights(cfg, 1, 0.02);
// the embedding at N(0, 0.02) as trained models have it (randomWeights draws 0.5): tied logits of
// order 1, not 1000, so the log-probabilities and greedy tokens are not degenerate
for (let i = 0; i < w.tokEmbed.length; i++) w.tokEmbed[i] *= 0.04;
console.log(`random weights on the host: ${((performance.now() - t) / 1000).toFixed(1)} s`);
t = performance.now();
const model = LlamaModel.fromWeights(gpu, cfg, w);
await gpu.sync();
const e = model.tokEmbed;
console.log(`loaded in ${((performance.now() - t) / 1000).toFixed(1)} s: ${e.chunks.length} chunks of rows ${e.rows.join(', ')} (${e.chunks.map((c) => mib(c.bytes)).join(', ')}); GPU live ${mib(gpu.liveBytes)}`);

const r = new Rng(5);
// ids from every chunk, both ends of the vocabulary; the last one in the last chunk (a random tied
// model tends to predict its input token: the argmax then lies in the last chunk's columns)
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
const ok = bad === 0 && lpBad === 0 && same;
console.log(ok ? 'split embedding and classifier: equal to the float64 reference' : 'MISMATCH against the float64 reference');
model.free();
gpu.destroy();
process.exit(ok ? 0 : 1);
