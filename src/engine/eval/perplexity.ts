// Perplexity protocol (README "Perplexity"): split the text into documents at a separator (the
// whole text is one document when none is given), trim each, skip empty ones, encode each with
// BOS, truncate to the model's maximum sequence length, and predict every token after BOS.
// perplexity = exp(total NLL / predicted tokens).

export interface PerplexityResult {
  documents: number;
  tokens: number; // predicted tokens (all tokens after BOS, after truncation)
  nll: number; // mean negative log-likelihood per predicted token (nats)
  ppl: number;
}

export function splitDocuments(text: string, sep?: string): string[] {
  const parts = sep ? text.split(sep) : [text];
  return parts.map((d) => d.trim()).filter((d) => d.length > 0);
}

/** Encode documents for evaluation: BOS + tokens, truncated to maxLen; single-token docs dropped
 *  (nothing to predict). */
export function encodeDocuments(docs: string[], encode: (s: string) => number[], maxLen: number): number[][] {
  const out: number[][] = [];
  for (const d of docs) {
    const ids = encode(d).slice(0, maxLen);
    if (ids.length >= 2) out.push(ids);
  }
  return out;
}

/** Unigram baseline on the same predicted tokens (tokens[1..] of each sequence): token frequencies
 *  of the training stream, add-one smoothed over the vocabulary. */
export function unigramPerplexity(train: ArrayLike<number>, seqs: number[][], vocabSize: number): { ppl: number; tokens: number } {
  const counts = new Float64Array(vocabSize).fill(1);
  for (let i = 0; i < train.length; i++) counts[train[i]]++;
  const total = train.length + vocabSize;
  let nll = 0, n = 0;
  for (const s of seqs)
    for (let i = 1; i < s.length; i++, n++) nll -= Math.log(counts[s[i]] / total);
  return { ppl: Math.exp(nll / Math.max(1, n)), tokens: n };
}

/**
 * Runs the protocol given a scorer that returns the summed NLL of tokens[1..] given their prefixes.
 * `onProgress(done, total)` is called after each document.
 */
export async function perplexity(
  seqs: number[][],
  nllSum: (tokens: number[]) => Promise<number>,
  onProgress?: (done: number, total: number) => void,
): Promise<PerplexityResult> {
  let total = 0;
  let count = 0;
  for (let i = 0; i < seqs.length; i++) {
    total += await nllSum(seqs[i]);
    count += seqs[i].length - 1;
    onProgress?.(i + 1, seqs.length);
  }
  const nll = count > 0 ? total / count : NaN;
  return { documents: seqs.length, tokens: count, nll, ppl: Math.exp(nll) };
}

/**
 * The same protocol with a batch scorer: `nllSums(seqs, onProgress)` returns the summed NLL of
 * tokens[1..] of every sequence (runner's sequenceNlls: documents batched on the GPU, only sums
 * read back). Totals are summed in float64 in document order.
 */
export async function perplexityBatched(
  seqs: number[][],
  nllSums: (seqs: number[][], onProgress?: (done: number, total: number) => void) => Promise<number[]>,
  onProgress?: (done: number, total: number) => void,
): Promise<PerplexityResult> {
  const sums = await nllSums(seqs, onProgress);
  let total = 0;
  let count = 0;
  for (let i = 0; i < seqs.length; i++) {
    total += sums[i];
    count += seqs[i].length - 1;
  }
  const nll = count > 0 ? total / count : NaN;
  return { documents: seqs.length, tokens: count, nll, ppl: Math.exp(nll) };
}
