// The bundled default teacher's recipe and its evaluation (held-out perplexity next to the
// unigram baseline, greedy samples). Used by `npm run make-default-model` and by the test that
// checks the committed model against its card.
import type { Gpu } from '../gpu/runtime';
import type { LoadedModel } from '../io/load-node';
import { encodeDocuments, perplexity, unigramPerplexity, type PerplexityResult } from '../eval/perplexity';
import { paramCount } from '../model/config';
import { LlamaModel } from '../model/llama';
import { generate, sequenceNll } from '../model/runner';

export const DEFAULT_MODEL_RECIPE = {
  config: 'default',
  vocabSize: 2048,
  steps: 1500,
  batch: 8,
  seq: 128,
  lr: 3e-3, // warm-up, decay, weight decay and clipping: pretrainConfigOf's defaults
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

/** Held-out perplexity (all held-out paragraphs, and the first QUICK_DOCS: one forward per
 *  paragraph serves both), and the unigram baseline on the same predicted tokens from the
 *  training stream's token frequencies. */
export async function evaluateDefaultModel(gpu: Gpu, m: LoadedModel, heldOutDocs: string[], trainStream: Uint32Array, onProgress?: (done: number, total: number) => void): Promise<DefaultModelEval> {
  const tok = m.tokenizer;
  if (!tok) throw new Error(`${m.path}: no tokenizer`);
  const seqs = encodeDocuments(heldOutDocs, (s) => tok.encode(s, { bos: true }), m.config.maxSeqLen);
  const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
  try {
    const nll = new Map<number[], number>();
    const heldOut = await perplexity(seqs, async (t) => {
      const x = await sequenceNll(model, t);
      nll.set(t, x);
      return x;
    }, onProgress);
    const heldOutQuick = await perplexity(seqs.slice(0, QUICK_DOCS), async (t) => nll.get(t)!);
    return { parameters: paramCount(m.config), heldOut, heldOutQuick, unigram: unigramPerplexity(trainStream, seqs, m.config.vocabSize) };
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
