// Multiple-choice scoring by log-likelihood, as lm-evaluation-harness does it: for each choice the
// summed log-probability of the continuation's tokens given the context (tokens of
// encode(context + continuation) after those of encode(context)); acc picks the highest sum,
// acc_norm the highest sum divided by the continuation's UTF-8 byte length. Standard errors are
// the sample standard error of the mean.
import type { McDoc } from './tasks';

export interface McResult {
  n: number;
  acc: number;
  acc_stderr: number;
  acc_norm: number;
  acc_norm_stderr: number;
}

/** logprobs(tokens) returns log p(tokens[i] | tokens[<i]) for i = 1..len-1 (length len-1). */
export type LogprobFn = (tokens: number[]) => Promise<Float64Array | number[]>;
/** The same for several sequences at once (all choices of a document go in one GPU batch). */
export type LogprobBatchFn = (seqs: number[][]) => Promise<(Float64Array | number[])[]>;
export const oneAtATime = (f: LogprobFn): LogprobBatchFn => async (seqs) => Promise.all(seqs.map(f));

export function stderrOfMean(xs: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const m = xs.reduce((a, b) => a + b, 0) / n;
  const v = xs.reduce((a, b) => a + (b - m) ** 2, 0) / (n - 1);
  return Math.sqrt(v / n);
}

export async function scoreChoices(doc: McDoc, encode: (s: string) => number[], logprobs: LogprobBatchFn): Promise<{ sums: number[]; bytes: number[] }> {
  const ctx = encode(doc.context);
  const wholes = doc.continuations.map((cont) => encode(doc.context + cont));
  const lps = await logprobs(wholes);
  const sums = wholes.map((whole, c) => {
    // the continuation's tokens: those after the longest common prefix with the context's tokens
    // (lm-eval takes the tokens after len(encode(context)); this is the same when the context's
    // tokens are a prefix, and stays right when a boundary token merges across)
    let split = 0;
    while (split < ctx.length && split < whole.length && whole[split] === ctx[split]) split++;
    split = Math.max(1, Math.min(split, whole.length - 1));
    let s = 0;
    for (let i = split; i < whole.length; i++) s += lps[c][i - 1];
    return s;
  });
  return { sums, bytes: doc.continuations.map((cont) => new TextEncoder().encode(cont).length) };
}

const argmax = (xs: number[]) => xs.reduce((b, x, i) => (x > xs[b] ? i : b), 0);

export async function evaluateTask(docs: McDoc[], encode: (s: string) => number[], logprobs: LogprobBatchFn, onProgress?: (done: number, total: number) => void): Promise<McResult> {
  const acc: number[] = [], accNorm: number[] = [];
  for (let i = 0; i < docs.length; i++) {
    const { sums, bytes } = await scoreChoices(docs[i], encode, logprobs);
    acc.push(argmax(sums) === docs[i].gold ? 1 : 0);
    accNorm.push(argmax(sums.map((s, j) => s / bytes[j])) === docs[i].gold ? 1 : 0);
    onProgress?.(i + 1, docs.length);
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  return { n: docs.length, acc: mean(acc), acc_stderr: stderrOfMean(acc), acc_norm: mean(accNorm), acc_norm_stderr: stderrOfMean(accNorm) };
}
