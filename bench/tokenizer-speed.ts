// Encode speed: @huggingface/tokenizers (HfTokenizer on the converted tokenizer.json) against the
// hand-written llama2.c encoder (run.c's algorithm, heap merges) on 1 MB of text, for stories260K's
// tok512.bin and LLaMA-2's tokenizer.bin; also checks they give the same ids (issue 13).
// Usage: npx tsx bench/tokenizer-speed.ts   (needs ../shared/data)
import { readFileSync } from 'node:fs';
import { Llama2cTokenizer } from '../src/engine/io/tokenizer';
import { parseTokenizerJson, tokenizerJsonFromPieces } from '../src/engine/io/hf-tokenizer';
import { sharedPath } from '../src/engine/io/data';

const shakespeare = readFileSync(sharedPath('text/tinyshakespeare.txt'), 'utf8').slice(0, 1_000_000);
const paragraphs = shakespeare.split('\n\n');
for (const f of ['models/stories260K/tok512.bin', 'tokenizers/llama2/tokenizer.bin']) {
  const hand = new Llama2cTokenizer(readFileSync(sharedPath(f)), f);
  let t0 = performance.now();
  const lib = parseTokenizerJson(JSON.stringify(tokenizerJsonFromPieces(hand.vocab, hand.scores)), `${f} (tokenizer.json)`);
  const build = performance.now() - t0;
  const row: string[] = [`${f}: build ${build.toFixed(0)} ms`];
  for (const [what, run] of [['1 MB as one text', (t: Llama2cTokenizer | typeof lib) => t.encode(shakespeare)], ['1 MB as paragraphs', (t: Llama2cTokenizer | typeof lib) => paragraphs.flatMap((p) => t.encode(p))]] as const) {
    t0 = performance.now();
    const a = run(hand);
    const th = performance.now() - t0;
    t0 = performance.now();
    const b = run(lib);
    const tl = performance.now() - t0;
    const same = a.length === b.length && a.every((x, i) => x === b[i]);
    row.push(`${what}: hand-written ${th.toFixed(0)} ms, library ${tl.toFixed(0)} ms (${(tl / th).toFixed(1)}x), ${a.length} tokens, ids ${same ? 'identical' : 'DIFFER'}`);
  }
  console.log(row.join('\n  '));
}
