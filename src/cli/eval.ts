// quench eval --model PATH [--tokenizer PATH] --text FILE [--sep '<|endoftext|>'] [--limit N] [--json]
import { readFileSync } from 'node:fs';
import { cliGpu } from './gpu';
import { loadModelFromPath } from '../engine/io/load-node';
import { LlamaModel } from '../engine/model/llama';
import { sequenceNlls } from '../engine/model/runner';
import { encodeDocuments, perplexityBatched, splitDocuments } from '../engine/eval/perplexity';
import { int, parse, progress } from './args';
import { describePtq, ptqFromArgs, QUANT_OPTIONS } from './quant-args';
import { quantizeWeights } from '../engine/quant/ptq';
import { requireFiniteResults } from '../engine/io/validate';

const HELP = `usage: quench eval --model PATH [--tokenizer PATH] --text FILE [--sep '<|endoftext|>'] [--limit N] [--json]
                   [--bits 2|3|4|8 --group N [--sym] [--clip-search]]
A quantized folder (from quench quantize) runs through the packed kernels; --bits etc. quantize an
FP model on the fly first (PTQ) and evaluate that.
Perplexity (README "Perplexity protocol"): documents split at --sep (whole file when absent),
trimmed, empty ones skipped, each encoded with BOS, truncated to the model's maximum sequence
length; every token after BOS is predicted; ppl = exp(total NLL / predicted tokens).
--limit N evaluates the first N documents. --json prints one JSON object
{documents, tokens, nll, ppl, ...}. Progress goes to stderr.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { model: { type: 'string' }, tokenizer: { type: 'string' }, text: { type: 'string' }, sep: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' }, ...QUANT_OPTIONS }, HELP);
  if (!a) return 0;
  if (!a.model || !a.text) throw new Error(`--model and --text are required\n\n${HELP}`);
  const m = await loadModelFromPath(a.model as string, a.tokenizer as string | undefined);
  if (!m.tokenizer) throw new Error(`${m.path}: no tokenizer found beside the model; pass --tokenizer`);
  const tok = m.tokenizer;
  let text: string;
  try {
    text = readFileSync(a.text as string, 'utf8');
  } catch {
    throw new Error(`${a.text}: cannot read the text file`);
  }
  let docs = splitDocuments(text, a.sep as string | undefined);
  if (a.limit !== undefined) docs = docs.slice(0, int(a.limit, 'limit', docs.length));
  const seqs = encodeDocuments(docs, (s) => tok.encode(s, { bos: true }), m.config.maxSeqLen);
  const gpu = await cliGpu();
  try {
    const ptq = ptqFromArgs(a);
    if (ptq && m.quantized) throw new Error(`${m.path} is already quantized; drop --bits`);
    const quantized = ptq ? quantizeWeights(m.config, m.weights, ptq) : m.quantized;
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights, { quantized });
    const t0 = performance.now();
    const r = await perplexityBatched(seqs, (s, p) => sequenceNlls(model, s, { onProgress: p }), progress('eval: documents'));
    const seconds = (performance.now() - t0) / 1000;
    requireFiniteResults(`${m.path} on ${a.text}`, { perplexity: r.ppl, 'mean NLL': r.nll });
    const q = quantized?.ptq;
    const label = q ? (ptq ? describePtq(q) : `w${q.bits}${q.group ? `g${q.group}` : ''} ${q.sym ? 'sym' : 'asym'} (quantized folder)`) : 'fp32';
    const out = { model: m.path, text: a.text, quant: label, ...r, seconds: +seconds.toFixed(2), weightBytes: model.weightBytes() };
    if (a.json) console.log(JSON.stringify(out));
    else console.log(`${m.path}${q ? ` (${label})` : ''}: perplexity ${r.ppl.toFixed(4)} (mean NLL ${r.nll.toFixed(5)} nats) over ${r.tokens} tokens in ${r.documents} documents, ${seconds.toFixed(1)} s`);
    model.free();
  } finally {
    gpu.destroy();
  }
  return 0;
}
