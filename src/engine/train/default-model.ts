// The bundled default teacher's recipe and its evaluation (held-out perplexity next to the
// unigram baseline, greedy samples). Used by `npm run make-default-model` and by the test that
// checks the committed model against its card.
import type { Gpu } from '../gpu/runtime';
import type { LoadedModel } from '../io/load-node';
import { encodeDocuments, perplexity, type PerplexityResult } from '../eval/perplexity';
import { LlamaModel } from '../model/llama';
import { generate, sequenceNll } from '../model/runner';
import type { Corpus } from './corpus';

export const DEFAULT_MODEL_RECIPE = {
  config: 'default',
  vocabSize: 2048,
  steps: 1500,
  batch: 8,
  seq: 128,
  lr: 3e-3,
  warmup: 100,
  minLrRatio: 0.1,
  weightDecay: 0.1,
  gradClip: 1,
  seed: 1,
  machine: '2 CPU cores shared with other jobs, WebGPU on Mesa lavapipe, no GPU',
  prompts: ['Call me', 'The whale', 'Captain Ahab said', 'The sea was'],
} as const;

/** How many held-out paragraphs the quick check (and the test) uses. */
export const QUICK_DOCS = 40;

export interface DefaultModelEval {
  parameters: number;
  heldOut: PerplexityResult;
  heldOutQuick: PerplexityResult;
  unigram: { ppl: number; tokens: number };
}

export function parameterCount(m: LoadedModel): number {
  const w = m.weights;
  let n = w.tokEmbed.length + w.finalNorm.length + (w.lmHead?.length ?? 0);
  for (const L of w.layers) for (const t of Object.values(L)) n += (t as Float32Array).length;
  return n;
}

/** Held-out perplexity (all held-out paragraphs, and the first QUICK_DOCS), and the unigram
 *  baseline on the same predicted tokens: training-token frequencies with add-one smoothing. */
export async function evaluateDefaultModel(gpu: Gpu, m: LoadedModel, corpus: Corpus, onProgress?: (done: number, total: number) => void): Promise<DefaultModelEval> {
  const tok = m.tokenizer;
  if (!tok) throw new Error(`${m.path}: no tokenizer`);
  const seqs = encodeDocuments(corpus.heldOut, (s) => tok.encode(s, { bos: true }), m.config.maxSeqLen);
  const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
  try {
    const heldOut = await perplexity(seqs, (t) => sequenceNll(model, t), onProgress);
    const heldOutQuick = await perplexity(seqs.slice(0, QUICK_DOCS), (t) => sequenceNll(model, t));
    const V = m.config.vocabSize;
    const counts = new Float64Array(V).fill(1);
    let total = V;
    for (const d of corpus.train)
      for (const id of tok.encode(d, { bos: true })) {
        counts[id]++;
        total++;
      }
    let nll = 0, n = 0;
    for (const s of seqs)
      for (let i = 1; i < s.length; i++) {
        nll -= Math.log(counts[s[i]] / total);
        n++;
      }
    return { parameters: parameterCount(m), heldOut, heldOutQuick, unigram: { ppl: Math.exp(nll / n), tokens: n } };
  } finally {
    model.free();
  }
}

export async function greedySamples(gpu: Gpu, m: LoadedModel, prompts: readonly string[], maxTokens: number): Promise<{ prompt: string; text: string }[]> {
  const tok = m.tokenizer!;
  const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
  try {
    const out = [];
    for (const prompt of prompts) {
      const ids = tok.encode(prompt, { bos: true });
      const gen = await generate(model, ids, { maxTokens, temperature: 0, stopToken: tok.eosId });
      out.push({ prompt, text: tok.decode([...ids, ...gen]).slice(prompt.length) });
    }
    return out;
  } finally {
    model.free();
  }
}
