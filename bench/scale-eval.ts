// `quench eval` of a SmolLM2-135M-shaped model (30 layers, dim 576, MLP 1536, 9/3 heads, vocab
// 49152, tied; random weights) on one long document: the logits of 2,000 tokens x 49,152 (393 MB)
// are more than one storage binding, so scoring must run in row chunks (issue 13).
// Usage: npx tsx bench/scale-eval.ts [--layers 30] [--tokens 2000] [--dir /tmp/quench-smollm2-shape]
// Needs ../shared/data (TinyStories text and stories260K's tokenizer, which the model's larger
// vocabulary admits). Writes a 538 MB F32 HF folder (once; reused when present).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomWeights, type LlamaConfig } from '../src/engine/model/config';
import { writeHfModel } from '../src/engine/io/hf';
import { tokenizerJsonFromPieces } from '../src/engine/io/hf-tokenizer';
import { Llama2cTokenizer } from '../src/engine/io/tokenizer';
import { sharedPath } from '../src/engine/io/data';
import { run as evalCli } from '../src/cli/eval';

const { values: a } = parseArgs({ options: { layers: { type: 'string', default: '30' }, tokens: { type: 'string', default: '2000' }, dir: { type: 'string' } } });
const layers = Number(a.layers), nTok = Number(a.tokens);
const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: layers, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: Math.max(2048, nTok), normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
const dir = a.dir ?? `/tmp/quench-smollm2-shape-${layers}l`;
const tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin');
if (!existsSync(join(dir, 'config.json'))) {
  mkdirSync(dir, { recursive: true });
  const files = writeHfModel(cfg, randomWeights(cfg, 1, 0.02), { tokenizerJson: JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores)) });
  for (const [f, b] of Object.entries(files)) writeFileSync(join(dir, f), b);
}
// one document of exactly nTok tokens (BOS included) from TinyStories
const words = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').replaceAll('<|endoftext|>', '').split(/\s+/).filter(Boolean);
let lo = 1, hi = words.length;
while (lo < hi) {
  const mid = (lo + hi) >> 1;
  if (tok.encode(words.slice(0, mid).join(' ')).length >= nTok) hi = mid;
  else lo = mid + 1;
}
const doc = words.slice(0, lo).join(' ');
const textFile = join(dir, 'doc.txt');
writeFileSync(textFile, doc);
console.log(`model ${dir} (${layers} layers), document of ${tok.encode(doc).length} tokens`);
const t0 = performance.now();
await evalCli(['--model', dir, '--text', textFile]);
console.log(`quench eval: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
