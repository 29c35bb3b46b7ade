// One data split and one evaluation protocol for the CLI and the studio: documents split at a
// separator; the last `holdout` documents held out (never trained on); perplexity on the first
// `evalDocs` of them, each encoded with BOS and truncated to the model's context (as `quench eval`).
import { encodeDocuments, splitDocuments } from '../eval/perplexity';
import type { Tokenizer } from '../io/tokenizer';
import { tokenStream } from '../train/data';

export const DOC_SEPARATOR = '<|endoftext|>';

export interface DataSpec {
  /** documents at the end held out for evaluation; 'auto' = a tenth, at least 2, at most 200 */
  holdout: number | 'auto';
  /** how many held-out documents to evaluate on (the first ones); 'all' by default */
  evalDocs: number | 'all';
  sep: string;
}

export const DEFAULT_DATA_SPEC: DataSpec = { holdout: 'auto', evalDocs: 'all', sep: DOC_SEPARATOR };

export const autoHoldout = (n: number) => Math.min(200, Math.max(2, Math.round(n / 10)));

export interface DataSplit {
  train: string[];
  evalDocs: string[];
  /** what the screen and the results say about the evaluation text */
  description: EvalDescription;
}

export interface EvalDescription {
  /** the text's name (a file name, or what it was sampled from) */
  source: string;
  documents: number;
  trainDocuments: number;
  heldOutDocuments: number;
  evalDocuments: number;
  /** filled by evalSequences: predicted tokens, truncation */
  evalTokens?: number;
  truncatedTo?: number;
  truncatedDocuments?: number;
  protocol: string;
}

export const EVAL_PROTOCOL = 'documents split at <|endoftext|>; the last held-out documents are never trained on; each evaluated document is encoded with BOS and truncated to the model\'s context; every token after BOS is predicted; perplexity = exp(total NLL / predicted tokens) — the same as `quench eval`';

/** Split one text into training and held-out documents. */
export function splitText(text: string, source: string, spec: Partial<DataSpec> = {}): DataSplit {
  const d = { ...DEFAULT_DATA_SPEC, ...spec };
  const docs = splitDocuments(text, d.sep);
  return splitDocs(docs, source, d);
}

export function splitDocs(docs: string[], source: string, spec: Partial<DataSpec> = {}): DataSplit {
  const d = { ...DEFAULT_DATA_SPEC, ...spec };
  if (docs.length < 3) throw new Error(`${source}: needs at least 3 documents separated by ${d.sep} lines (some are held out for evaluation); found ${docs.length}`);
  const h = d.holdout === 'auto' ? autoHoldout(docs.length) : d.holdout;
  if (!Number.isInteger(h) || h < 1) throw new Error(`${source}: holdout must be a positive integer, got ${JSON.stringify(d.holdout)}`);
  if (h >= docs.length) throw new Error(`${source}: holding out ${h} documents leaves none to train on (it has ${docs.length})`);
  const held = docs.slice(docs.length - h);
  const n = d.evalDocs === 'all' ? held.length : Math.min(held.length, d.evalDocs);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${source}: evalDocs must be a positive integer or 'all', got ${JSON.stringify(d.evalDocs)}`);
  const evalDocs = held.slice(0, n);
  return { train: docs.slice(0, docs.length - h), evalDocs, description: { source, documents: docs.length, trainDocuments: docs.length - h, heldOutDocuments: h, evalDocuments: n, protocol: EVAL_PROTOCOL } };
}

/** A separate evaluation text (--eval FILE): all its documents, or the first evalDocs. */
export function evalOnlySplit(train: string[], evalText: string, source: string, spec: Partial<DataSpec> = {}): DataSplit {
  const d = { ...DEFAULT_DATA_SPEC, ...spec };
  const docs = splitDocuments(evalText, d.sep);
  const n = d.evalDocs === 'all' ? docs.length : Math.min(docs.length, d.evalDocs);
  if (n < 1) throw new Error(`${source}: no evaluation documents`);
  return { train, evalDocs: docs.slice(0, n), description: { source, documents: docs.length, trainDocuments: train.length, heldOutDocuments: docs.length, evalDocuments: n, protocol: EVAL_PROTOCOL } };
}

/** The evaluation protocol's token sequences (BOS + tokens, truncated to maxSeqLen). */
export function evalSequences(docs: string[], tok: Tokenizer, maxSeqLen: number, desc?: EvalDescription): number[][] {
  let truncated = 0;
  const seqs = encodeDocuments(docs, (s) => {
    const ids = tok.encode(s, { bos: true });
    if (ids.length > maxSeqLen) truncated++;
    return ids;
  }, maxSeqLen);
  if (desc) {
    desc.evalTokens = seqs.reduce((s, x) => s + x.length - 1, 0);
    desc.truncatedTo = maxSeqLen;
    desc.truncatedDocuments = truncated;
  }
  return seqs;
}

/** The training token stream: documents with BOS, concatenated. */
export function trainStream(docs: string[], tok: Tokenizer): Uint32Array {
  return tokenStream(docs, (s) => tok.encode(s, { bos: true }));
}

/** The held-out documents as a text file (the studio's download; `quench eval --text` on it gives
 *  the studio's perplexity). */
export function heldOutText(split: DataSplit, sep = DOC_SEPARATOR): string {
  return split.evalDocs.join(`\n${sep}\n`) + '\n';
}

export function describeEval(d: EvalDescription): string {
  return `${d.source}: ${d.evalDocuments} held-out documents of ${d.documents} (last ${d.heldOutDocuments} held out, ${d.trainDocuments} trained on)${d.evalTokens !== undefined ? `, ${d.evalTokens} predicted tokens, truncated to ${d.truncatedTo} tokens (${d.truncatedDocuments} documents cut)` : ''}`;
}

/** Validation documents carved from the end of the training documents (auto-freeze chooses on
 *  them, never on the held-out text): a tenth, at least 2, at most 20. */
export function carveValidation(train: string[]): { train: string[]; val: string[] } {
  const n = Math.min(20, Math.max(2, Math.round(train.length / 10)));
  if (n >= train.length) throw new Error(`auto-freeze needs more training documents than ${train.length} (it keeps ${n} aside to choose on)`);
  return { train: train.slice(0, train.length - n), val: train.slice(train.length - n) };
}
