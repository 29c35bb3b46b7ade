// High-level use of a LlamaModel: perplexity of token sequences and generation with a KV cache
// (greedy, temperature, top-p), streaming tokens to a callback.
import type { AsyncRead } from '../gpu/runtime';
import type { LlamaModel } from './llama';
import { checkTargets, IGNORE_INDEX, segmentSums, tokenNllRows } from '../ops/loss';
import { Rng } from '../train/data';

/** log p(tokens[i] | tokens[<i]) for i = 1..T-1, from one GPU forward (float64 log-softmax on the
 *  host); a sequence longer than maxSeqLen keeps its end (the continuation). */
export async function tokenLogprobs(model: LlamaModel, tokens: number[]): Promise<Float64Array> {
  return (await tokenLogprobsBatch(model, [tokens]))[0];
}

/** Bytes of logits held at once when scoring (a chunk of rows; under any adapter's binding limit). */
export const LOGIT_CHUNK_BYTES = 2 ** 26;

/**
 * log-probabilities of several sequences, batched: sequences of one chunk are padded at the end to
 * the longest (causal attention: padding never affects earlier positions) and run as one B x T
 * forward. Each sequence keeps its last maxSeqLen tokens, as tokenLogprobs. Batches are sized so
 * their logits would stay under ~64 MiB; the logits themselves are computed and read in chunks of
 * rows of at most `logitBytes` (and the adapter's maxStorageBufferBindingSize), so any document
 * length and any vocabulary fit.
 */
export async function tokenLogprobsBatch(model: LlamaModel, seqs: number[][], maxBatch = 16, logitBytes = LOGIT_CHUNK_BYTES): Promise<Float64Array[]> {
  const V = model.cfg.vocabSize, L = model.cfg.maxSeqLen;
  const bind = model.gpu.device.limits.maxStorageBufferBindingSize;
  const rowsCap = Math.max(1, Math.floor(Math.min(logitBytes, bind) / (4 * V)));
  const out: Float64Array[] = new Array(seqs.length);
  let i = 0;
  while (i < seqs.length) {
    const T0 = Math.min(L, seqs[i].length);
    const cap = Math.max(1, Math.min(maxBatch, Math.floor(2 ** 26 / (4 * V * Math.max(T0, 1)))));
    const chunk: number[] = [];
    let T = 0;
    while (i < seqs.length && chunk.length < cap) {
      const t = Math.min(L, seqs[i].length);
      if (chunk.length > 0 && (chunk.length + 1) * Math.max(T, t) * V * 4 > 2 ** 26) break;
      T = Math.max(T, t);
      chunk.push(i++);
    }
    const B = chunk.length;
    const ids = new Uint32Array(B * T);
    chunk.forEach((k, b) => ids.set(seqs[k].slice(seqs[k].length - Math.min(L, seqs[k].length)), b * T));
    const rows = Math.min(B * T, rowsCap);
    // a forward only: one layer's activations reused by every layer (store 'none'), so a long
    // document at 30 layers holds ~1/30 of the activation bytes
    const acts = model.activations(B, T, false, rows, 'none');
    model.gpu.write(acts.tokens, ids);
    model.forward(acts);
    const lps = chunk.map((k) => new Float64Array(seqs[k].length - 1));
    for (let r0 = 0; r0 < B * T; r0 += rows) {
      const n = Math.min(rows, B * T - r0);
      if (rows < B * T) model.logitsRows(acts, r0, n);
      const logits = await model.gpu.readBytes(acts.logits.buffer, n * V * 4, 0).then((b) => new Float32Array(b));
      for (let r = r0; r < r0 + n; r++) {
        const b = Math.floor(r / T), t = r - b * T;
        const toks = seqs[chunk[b]], Tk = Math.min(L, toks.length), skip = toks.length - Tk;
        if (t + 1 >= Tk) continue; // the last token and the padding predict nothing
        const row = logits.subarray((r - r0) * V, (r - r0 + 1) * V);
        let max = -Infinity;
        for (let v = 0; v < V; v++) if (row[v] > max) max = row[v];
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
        lps[b][skip + t] = row[ids[r + 1]] - max - Math.log(sum);
      }
    }
    chunk.forEach((k, b) => (out[k] = lps[b]));
  }
  return out;
}

/** Summed NLL (nats) of tokens[1..] given their prefixes, computed on the GPU in one forward. */
export async function sequenceNll(model: LlamaModel, tokens: number[]): Promise<number> {
  return (await sequenceNlls(model, [tokens]))[0];
}

/** Rows (B·T, documents padded to the longest) one evaluation forward holds at most. */
export const EVAL_BATCH_TOKENS = 4096;
/** Default SequenceNllOptions.padWork. */
export const EVAL_PAD_WORK = 1.15;

export interface SequenceNllOptions {
  /** rows (B·T, padding included) per forward; a longer document still runs alone */
  maxTokens?: number;
  /** the most attention work a batch's padding may add, as a ratio to its documents' own
   *  (Σ T_max² / Σ T_i²) */
  padWork?: number;
  /** bytes of one chunk of logit rows (also under the adapter's binding limit) */
  logitBytes?: number;
  /** after each batch: documents scored so far, of all */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Summed NLL (nats) of tokens[1..] of each sequence given its prefixes, scored on the GPU and
 * batched across documents: sorted by length, documents are padded at the end to the longest of
 * their batch (causal attention: padding never reaches an earlier position) and run as one B x T
 * forward of at most `maxTokens` rows. Each chunk of logit rows goes through a log-softmax + gather
 * of its targets on the GPU (tokenNllRows: B·T·V never needs one binding); per-document sums of
 * those NLLs (segmentSums, Kahan) are the only thing read back, asynchronously, while the next
 * batch runs. A sequence longer than maxSeqLen keeps its end, as tokenLogprobs.
 */
export async function sequenceNlls(model: LlamaModel, seqs: number[][], o: SequenceNllOptions = {}): Promise<number[]> {
  const { gpu, cfg } = model;
  const V = cfg.vocabSize, L = cfg.maxSeqLen;
  const maxTokens = o.maxTokens ?? EVAL_BATCH_TOKENS;
  const bind = gpu.device.limits.maxStorageBufferBindingSize;
  const rowsCap = Math.max(1, Math.floor(Math.min(o.logitBytes ?? LOGIT_CHUNK_BYTES, bind) / (4 * V)));
  const len = (k: number) => Math.min(L, seqs[k].length);
  const order = seqs.map((_, k) => k).sort((a, b) => len(b) - len(a) || a - b);
  // batches of consecutive documents in that order (the first is the longest of its batch), while
  // the padding keeps attention's work (quadratic in the padded length) within padWork of the
  // documents' own: padded rows cost the same as real ones
  const padWork = o.padWork ?? EVAL_PAD_WORK;
  const batches: number[][] = [];
  for (let i = 0; i < order.length; ) {
    const T = Math.max(1, len(order[i]));
    let n = 1, own = T * T;
    while (i + n < order.length && (n + 1) * T <= maxTokens && (n + 1) * T * T <= padWork * (own + len(order[i + n]) ** 2)) own += len(order[i + n++]) ** 2;
    batches.push(order.slice(i, i + n));
    i += n;
  }
  const maxBT = Math.max(1, ...batches.map((b) => b.length * Math.max(1, len(b[0]))));
  const maxB = Math.max(1, ...batches.map((b) => b.length));
  const chunkRows = Math.min(maxBT, rowsCap);
  const targets = gpu.tensor('eval.targets', [maxBT], 'u32'); // (B*T) next token, IGNORE on the last and the padding
  const nll = gpu.tensor('eval.nll', [maxBT]); // (B*T) per-token NLL
  const tChunk = gpu.tensor('eval.tchunk', [chunkRows], 'u32');
  const lChunk = gpu.tensor('eval.lchunk', [chunkRows]);
  const sums = gpu.tensor('eval.sums', [maxB]); // (B) per-document NLL sums
  const out: number[] = new Array(seqs.length).fill(0);
  const inFlight: { read: AsyncRead; docs: number[] }[] = [];
  let done = 0;
  const land = async () => {
    const f = inFlight.shift()!;
    const v = new Float32Array((await gpu.awaitRead(f.read))[0]);
    f.docs.forEach((k, b) => (out[k] = v[b]));
    done += f.docs.length;
    o.onProgress?.(done, seqs.length);
  };
  try {
    for (const docs of batches) {
      const B = docs.length, T = Math.max(1, len(docs[0])), BT = B * T;
      const ids = new Uint32Array(BT);
      const tg = new Uint32Array(BT).fill(IGNORE_INDEX);
      docs.forEach((k, b) => {
        const toks = seqs[k].slice(seqs[k].length - len(k));
        ids.set(toks, b * T);
        for (let t = 0; t + 1 < toks.length; t++) tg[b * T + t] = toks[t + 1];
      });
      checkTargets(tg, V, 'evaluation tokens');
      const rows = Math.min(BT, rowsCap);
      // a forward only: one layer's activations reused by every layer (store 'none'), so a long
      // document at 30 layers holds ~1/30 of the activation bytes
      const acts = model.activations(B, T, false, rows, 'none');
      gpu.write(acts.tokens, ids);
      gpu.write(targets, tg);
      model.forward(acts);
      for (let r0 = 0; r0 < BT; r0 += rows) {
        const n = Math.min(rows, BT - r0);
        if (rows < BT) model.logitsRows(acts, r0, n);
        tokenNllRows(gpu, nll, acts.logits, targets, r0, n, V, tChunk, lChunk);
      }
      segmentSums(gpu, sums, nll, B, T);
      inFlight.push({ read: gpu.readAsync([{ t: sums, bytes: B * 4 }]), docs });
      // one batch in flight while the next is recorded: the host never waits for the batch it just submitted
      while (inFlight.length > 1) await land();
    }
    while (inFlight.length) await land();
  } finally {
    for (const t of [targets, nll, tChunk, lChunk, sums]) gpu.free(t);
  }
  return out;
}

export interface GenerateOptions {
  maxTokens: number;
  /** 0 = greedy */
  temperature?: number;
  topP?: number;
  seed?: number;
  /** stop at this token (EOS); not emitted */
  stopToken?: number;
  onToken?: (id: number) => void;
}


/** Pick the next token from logits: argmax when temperature is 0, else nucleus sampling. */
export function sampleToken(logits: Float32Array, temperature: number, topP: number, rand: () => number): number {
  const V = logits.length;
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(V);
  let s = 0;
  for (let i = 0; i < V; i++) s += p[i] = Math.exp((logits[i] - max) / temperature);
  for (let i = 0; i < V; i++) p[i] /= s;
  const order = Array.from({ length: V }, (_, i) => i);
  let cut = V;
  if (topP > 0 && topP < 1) {
    order.sort((a, b) => p[b] - p[a]);
    let cum = 0;
    for (let i = 0; i < V; i++) {
      cum += p[order[i]];
      if (cum >= topP) {
        cut = i + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let i = 0; i < cut; i++) mass += p[order[i]];
  let r = rand() * mass;
  for (let i = 0; i < cut; i++) {
    r -= p[order[i]];
    if (r <= 0) return order[i];
  }
  return order[cut - 1];
}

/** Generate after `prompt` (which should start with BOS). Returns the new tokens. */
export async function generate(model: LlamaModel, prompt: number[], o: GenerateOptions): Promise<number[]> {
  if (prompt.length === 0) throw new Error('generate: empty prompt (start with BOS)');
  const maxT = Math.min(model.cfg.maxSeqLen, prompt.length + o.maxTokens);
  if (prompt.length > maxT) throw new Error(`prompt of ${prompt.length} tokens exceeds the model's ${model.cfg.maxSeqLen}`);
  const cache = model.createKvCache(maxT);
  const r = new Rng(o.seed ?? 1);
  const rand = () => r.next();
  const V = model.cfg.vocabSize;
  const out: number[] = [];
  try {
    // Prefill the prompt in one pass, then one token per step.
    // (only the last row's logits: a long prompt times a large vocabulary would not fit a binding)
    let acts = model.activations(1, prompt.length, false, 1, 'none');
    model.gpu.write(acts.tokens, new Uint32Array(prompt));
    model.forwardCached(acts, cache, 0);
    if (prompt.length > 1) model.logitsRows(acts, prompt.length - 1, 1);
    let pos = prompt.length;
    let lastRow = 0;
    const step = model.activations(1, 1, false, 1, 'none');
    while (out.length < o.maxTokens && pos < maxT + 0) {
      const all = await model.gpu.readBytes(acts.logits.buffer, V * 4, lastRow * V * 4);
      const next = sampleToken(new Float32Array(all), o.temperature ?? 0, o.topP ?? 1, rand);
      if (o.stopToken !== undefined && next === o.stopToken) break;
      out.push(next);
      o.onToken?.(next);
      if (out.length >= o.maxTokens || pos >= maxT) break;
      acts = step;
      model.gpu.write(acts.tokens, new Uint32Array([next]));
      model.forwardCached(acts, cache, pos);
      pos++;
      lastRow = 0;
    }
  } finally {
    model.freeKvCache(cache);
  }
  return out;
}
