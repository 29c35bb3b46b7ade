// `npm run ptq-table`: stories260K perplexity on held-out TinyStories (documents 600..799 of
// ../shared/data/text/tinystories_val_800.txt; 0..599 are the distillation training split), FP32
// and PTQ (RTN and clip search) at w8 (per channel), w4g32, w4g64, w3g32, w2g32. Prints Markdown.
import { readFileSync } from 'node:fs';
import { createNodeGpu } from '../src/engine/gpu/node';
import { sharedPath } from '../src/engine/io/data';
import { readLlama2cCheckpoint } from '../src/engine/io/llama2c';
import { Llama2cTokenizer } from '../src/engine/io/tokenizer';
import { LlamaModel } from '../src/engine/model/llama';
import { sequenceNll } from '../src/engine/model/runner';
import { encodeDocuments, perplexity, splitDocuments } from '../src/engine/eval/perplexity';
import { quantizeWeights, type PtqConfig } from '../src/engine/quant/ptq';

// usage: tsx bench/ptq-table.ts [documents=200] [only=w2g32,...]
const limit = Number(process.argv[2] ?? 200);
const only = process.argv[3]?.split(',');
const gpu = await createNodeGpu();
const { config, weights } = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', config.vocabSize);
const docs = splitDocuments(readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8'), '<|endoftext|>').slice(600, 600 + limit);
const seqs = encodeDocuments(docs, (s) => tok.encode(s), config.maxSeqLen);
async function ppl(q?: PtqConfig): Promise<number> {
  const m = LlamaModel.fromWeights(gpu, config, weights, { quantized: q ? quantizeWeights(config, weights, q) : undefined });
  const r = await perplexity(seqs, (ids) => sequenceNll(m, ids));
  m.free();
  return r.ppl;
}
const fp = await ppl();
console.log(`held-out: ${seqs.length} documents, ${seqs.reduce((s, x) => s + x.length - 1, 0)} predicted tokens\n`);
console.log('| weights | RTN (min/max) ppl | clip-search ppl | RTN Δ vs FP | clip Δ vs FP |');
console.log('|---|---|---|---|---|');
console.log(`| FP32 | ${fp.toFixed(4)} | | | |`);
for (const [bits, group] of [[8, 0], [4, 32], [4, 64], [3, 32], [2, 32]] as const) {
  if (only && !only.includes(`w${bits}g${group}`)) continue;
  const rtn = await ppl({ bits, group, sym: false, clipSearch: false });
  const cs = await ppl({ bits, group, sym: false, clipSearch: true });
  const pct = (x: number) => `${x >= fp ? '+' : ''}${(((x - fp) / fp) * 100).toFixed(1)}%`;
  console.log(`| w${bits}${group ? `g${group}` : ' (per channel)'} | ${rtn.toFixed(4)} | ${cs.toFixed(4)} | ${pct(rtn)} | ${pct(cs)} |`);
}
gpu.destroy();
process.exit(0);
