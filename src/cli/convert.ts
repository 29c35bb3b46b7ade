// quench convert --model stories260K.bin [--tokenizer tok512.bin] --out DIR [--dtype F32|F16|BF16]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFromPath } from '../engine/io/load-node';
import { writeHfModel } from '../engine/io/hf';
import { tokenizerJsonFromPieces } from '../engine/io/hf-tokenizer';
import { Llama2cTokenizer } from '../engine/io/tokenizer';
import { parse } from './args';

const HELP = `usage: quench convert --model PATH [--tokenizer PATH] --out DIR [--dtype F32|F16|BF16]
Writes DIR/config.json, DIR/model.safetensors and DIR/tokenizer.json (Hugging Face LLaMA layout)
from a llama2.c checkpoint (or re-writes an HF model in another dtype). A llama2.c tokenizer.bin is
converted to tokenizer.json (BPE, byte fallback, merges ranked by score).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { model: { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' } }, HELP);
  if (!a) return 0;
  if (!a.model || !a.out) throw new Error(`--model and --out are required\n\n${HELP}`);
  const dtype = ((a.dtype as string | undefined) ?? 'F32').toUpperCase();
  if (!['F32', 'F16', 'BF16'].includes(dtype)) throw new Error(`--dtype must be F32, F16 or BF16, got ${a.dtype}`);
  const m = await loadModelFromPath(a.model as string, a.tokenizer as string | undefined);
  let tokenizerJson = m.tokenizerJson;
  if (m.tokenizer instanceof Llama2cTokenizer) tokenizerJson = JSON.stringify(tokenizerJsonFromPieces(m.tokenizer.vocab, m.tokenizer.scores));
  if (!tokenizerJson) console.error('quench convert: no tokenizer found; writing the model without tokenizer.json');
  const files = writeHfModel(m.config, m.weights, { dtype: dtype as 'F32' | 'F16' | 'BF16', tokenizerJson });
  mkdirSync(a.out as string, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(a.out as string, name), bytes);
  console.log(`wrote ${Object.keys(files).map((f) => join(a.out as string, f)).join(', ')}`);
  return 0;
}
