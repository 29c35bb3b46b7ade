// The bundled default teacher's recipe and its evaluation: held-out perplexity and bits per byte
// next to the unigram baseline and zlib, bits per byte on unseen English (Shakespeare) next to
// zlib, the PTQ table (RTN and clip search at w4g32, w3g32, w2g32) and the KD-QAT repair at the
// studio's defaults, and greedy samples. Used by `npm run make-default-model` (which writes the
// card) and by the test that checks the committed model against its card. Node-only (zlib, fs).
import { existsSync, readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import type { Gpu } from '../gpu/runtime';
import type { LoadedModel } from '../io/load-node';
import type { Tokenizer } from '../io/tokenizer';
import { sharedPath } from '../io/data';
import { unigramPerplexity } from '../eval/perplexity';
import { paramCount, type LlamaConfig, type LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { generate, tokenLogprobsBatch } from '../model/runner';
import type { Bits } from '../format/pack';
import { quantizeWeights, type PtqConfig } from '../quant/ptq';
import { makeRunSpec } from '../workflow/spec';
import { runTraining } from '../workflow/run';

export const DEFAULT_MODEL_RECIPE = {
  // the 'micro' shape trained long: 8000 steps of 16 x 128 (16.4 M tokens, ~109 per parameter).
  // Tokens per parameter is what makes a model fragile to PTQ, as it makes real LLMs: the 'tiny'
  // shape at 4000 steps (~33 per parameter) lost only +19.7% at w3g32 RTN
  config: 'micro',
  vocabSize: 1024,
  steps: 8000,
  batch: 16,
  seq: 128,
  lr: 3e-3, // warm-up, decay, weight decay and clipping: pretrainConfigOf's defaults
  seed: 1,
  machine: '2 CPU cores, otherwise near idle (short tests and probes beside it), WebGPU on Mesa lavapipe, no GPU',
  // the KD-QAT repairs on the card: the studio's DEFAULT_RUN_SPEC with these bits and its own
  // number of steps
  repair: [4, 3, 2],
  repairSteps: 300,
  // measured when the bundled model was made (card.json has the seconds)
  trainMinutes: 92,
  evalMinutes: 9,
  prompts: ['Call me', 'The whale', 'Fellow-Citizens of the Senate', 'The sea was'],
} as const;

/** Held-out paragraphs the card's figures use: this many, evenly strided over the held-out split
 *  (both books), among those that fit the context with BOS (so perplexity and bits per byte are
 *  over the same whole paragraphs, nothing truncated). 100 keeps the card's nine evaluations (FP,
 *  six PTQ copies, KD-QAT) within minutes on 2 shared CPU cores. */
export const EVAL_DOCS = 100;
/** How many of those the quick check (and the test) uses: the first ones. */
export const QUICK_DOCS = 40;
/** Unseen English: the first paragraphs of tinyshakespeare.txt (../shared/data/text) that fit. */
export const UNSEEN_DOCS = 200;
export const UNSEEN_NAME = 'the first 200 paragraphs (blank-line separated) of ../shared/data/text/tinyshakespeare.txt that fit the context';

/** Documents whose BOS-prefixed encoding fits `maxSeqLen`, `n` of them evenly strided (or the first
 *  `n` when `strided` is false). */
export function fitting(docs: string[], tok: Tokenizer, maxSeqLen: number, n: number, strided: boolean): string[] {
  const fits = (d: string) => d.length > 0 && tok.encode(d, { bos: true }).length <= maxSeqLen;
  if (!strided) {
    const out: string[] = [];
    for (const d of docs) if (out.length < n && fits(d)) out.push(d);
    return out;
  }
  const ok = docs.filter(fits);
  if (ok.length <= n) return ok;
  return Array.from({ length: n }, (_, i) => ok[Math.floor((i * ok.length) / n)]);
}

/** The unseen-English paragraphs, or null where ../shared is absent. */
export function unseenEnglish(tok: Tokenizer, maxSeqLen: number): string[] | null {
  const p = sharedPath('text/tinyshakespeare.txt');
  if (!existsSync(p)) return null;
  const paras = readFileSync(p, 'utf8').split(/\n\s*\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  return fitting(paras, tok, maxSeqLen, UNSEEN_DOCS, false);
}

export interface TextScore {
  documents: number;
  /** predicted tokens (every token after BOS) */
  tokens: number;
  /** mean NLL per predicted token (nats) */
  nll: number;
  ppl: number;
  /** UTF-8 bytes of the documents, every byte counted */
  bytes: number;
  /** total NLL / ln 2 / bytes */
  bitsPerByte: number;
  /** zlib level 9 on each document alone: 8 x compressed bytes summed / bytes */
  zlibBitsPerByte: number;
}

/** Summed NLL (nats) of every token after the first, per sequence (batched, longest first). */
export async function batchNll(model: LlamaModel, seqs: number[][]): Promise<number[]> {
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b].length - seqs[a].length);
  const lps = await tokenLogprobsBatch(model, order.map((i) => seqs[i]));
  const out = new Array<number>(seqs.length);
  order.forEach((i, k) => (out[i] = -lps[k].reduce((s, x) => s + x, 0)));
  return out;
}

export const zlibBits = (doc: string) => 8 * deflateSync(Buffer.from(doc, 'utf8'), { level: 9 }).length;

/** Perplexity and bits per byte of whole documents (each encoded with BOS, none longer than the
 *  context), zlib-9 beside. The first token is conditioned on BOS only, so every byte is paid for. */
export async function scoreText(model: LlamaModel, tok: Tokenizer, docs: string[]): Promise<TextScore> {
  const seqs = docs.map((d) => tok.encode(d, { bos: true }));
  for (const [i, s] of seqs.entries()) if (s.length > model.cfg.maxSeqLen) throw new Error(`document ${i} has ${s.length} tokens, more than the context (${model.cfg.maxSeqLen})`);
  const nlls = await batchNll(model, seqs);
  const total = nlls.reduce((s, x) => s + x, 0);
  const tokens = seqs.reduce((s, x) => s + x.length - 1, 0);
  const bytes = docs.reduce((s, d) => s + Buffer.byteLength(d, 'utf8'), 0);
  const z = docs.reduce((s, d) => s + zlibBits(d), 0);
  return { documents: docs.length, tokens, nll: total / tokens, ppl: Math.exp(total / tokens), bytes, bitsPerByte: total / Math.LN2 / bytes, zlibBitsPerByte: z / bytes };
}

export interface QuantRow {
  weights: string;
  bits: Bits;
  group: number;
  rtnPpl: number;
  clipPpl: number;
}

export interface DefaultModelEval {
  parameters: number;
  heldOut: TextScore;
  heldOutQuick: TextScore;
  unigram: { ppl: number; tokens: number };
  unseen: (TextScore & { text: string }) | null;
  quantization: QuantRow[];
}

/** The card's figures of a loaded model (see the constants above for what is evaluated). */
export async function evaluateDefaultModel(gpu: Gpu, m: LoadedModel, heldOutDocs: string[], trainStream: Uint32Array, log: (s: string) => void = () => {}): Promise<DefaultModelEval> {
  const tok = m.tokenizer;
  if (!tok) throw new Error(`${m.path}: no tokenizer`);
  const L = m.config.maxSeqLen;
  const docs = fitting(heldOutDocs, tok, L, EVAL_DOCS, true);
  const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
  try {
    const heldOut = await scoreText(model, tok, docs);
    log(`held-out: ppl ${heldOut.ppl.toFixed(3)}, ${heldOut.bitsPerByte.toFixed(3)} bits/byte (zlib-9 ${heldOut.zlibBitsPerByte.toFixed(3)})`);
    const heldOutQuick = await scoreText(model, tok, docs.slice(0, QUICK_DOCS));
    const u = unseenEnglish(tok, L);
    const unseen = u ? { text: UNSEEN_NAME, ...(await scoreText(model, tok, u)) } : null;
    if (unseen) log(`unseen English: ${unseen.bitsPerByte.toFixed(3)} bits/byte (zlib-9 ${unseen.zlibBitsPerByte.toFixed(3)})`);
    const seqs = docs.map((d) => tok.encode(d, { bos: true }));
    const quantization = await ptqTable(gpu, m.config, m.weights, seqs, log);
    return { parameters: paramCount(m.config), heldOut, heldOutQuick, unigram: unigramPerplexity(trainStream, seqs, m.config.vocabSize), unseen, quantization };
  } finally {
    model.free();
  }
}

/** Perplexity of PTQ'd copies (asymmetric, RTN min/max and clip search) at w4g32, w3g32, w2g32. */
export async function ptqTable(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, seqs: number[][], log: (s: string) => void = () => {}): Promise<QuantRow[]> {
  const ppl = async (q: PtqConfig) => {
    const model = LlamaModel.fromWeights(gpu, cfg, w, { quantized: quantizeWeights(cfg, w, q) });
    try {
      const n = await batchNll(model, seqs);
      return Math.exp(n.reduce((s, x) => s + x, 0) / seqs.reduce((s, x) => s + x.length - 1, 0));
    } finally {
      model.free();
    }
  };
  const rows: QuantRow[] = [];
  for (const bits of [4, 3, 2] as const) {
    const row = { weights: `w${bits}g32`, bits, group: 32, rtnPpl: await ppl({ bits, group: 32, sym: false, clipSearch: false }), clipPpl: await ppl({ bits, group: 32, sym: false, clipSearch: true }) };
    log(`${row.weights}: RTN ppl ${row.rtnPpl.toFixed(3)}, clip search ${row.clipPpl.toFixed(3)}`);
    rows.push(row);
  }
  return rows;
}

export interface RepairResult {
  bits: number;
  group: number;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  loss: string;
  scales: string;
  ppl: number;
  seconds: number;
}

/** KD-QAT with the studio's defaults (DEFAULT_RUN_SPEC; only the bits changed) from the model on the
 *  training stream, evaluated on the same held-out paragraphs as the card's figures. */
export async function repairAtDefaults(gpu: Gpu, m: LoadedModel, heldOutDocs: string[], trainStream: Uint32Array, bits: Bits, log: (s: string) => void = () => {}, steps?: number): Promise<RepairResult> {
  const tok = m.tokenizer!;
  const docs = fitting(heldOutDocs, tok, m.config.maxSeqLen, EVAL_DOCS, true);
  const spec = makeRunSpec(steps ? { bits, steps } : { bits }, 'default KD-QAT');
  let last = 0;
  const t0 = performance.now();
  const r = await runTraining(gpu, { name: m.path, config: m.config, weights: m.weights, tokenizer: tok }, spec, trainStream, docs.map((d) => tok.encode(d, { bos: true })), {
    onProgress: (p) => {
      if (performance.now() - last > 20000) {
        last = performance.now();
        log(`${p.label}: ${p.done}/${p.total}`);
      }
    },
  });
  const s = r.summary!;
  const loss = Object.entries(spec.loss).filter(([, v]) => v > 0).map(([k, v]) => `${v} ${k}`).join(' + ');
  return { bits, group: spec.group, steps: s.steps, batch: spec.batch, seq: spec.seq, lr: spec.lr, loss, scales: `${spec.scales} (init ${spec.scaleInit})`, ppl: s.evalPpl, seconds: +((performance.now() - t0) / 1000).toFixed(0) };
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
