// quench pretrain --text FILE... --config tiny|small --steps N --out DIR [--tokenizer PATH]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeGpu } from '../engine/gpu/node';
import { loadTokenizerFile } from '../engine/io/load-node';
import { writeHfModel } from '../engine/io/hf';
import { ByteTokenizer } from '../engine/io/byte-tokenizer';
import { tokenStream } from '../engine/train/data';
import { PRETRAIN_CONFIGS, Pretrainer, pretrainConfigOf, type PretrainStep } from '../engine/train/pretrain';
import { int, num, parse } from './args';
import { trainBpe } from '../engine/io/bpe-train';
import { parseTokenizerJson } from '../engine/io/hf-tokenizer';
import { loadDocs } from './distill';

const HELP = `usage: quench pretrain --text FILE[,FILE...] [--sep S] --config ${Object.keys(PRETRAIN_CONFIGS).join('|')} --steps N --out DIR
                       [--tokenizer tokenizer.json|tokenizer.bin | --bpe N] [--batch B] [--seq T] [--lr X] [--seed S]
Trains a LLaMA (GQA, SwiGLU, RoPE) from random initialisation with next-token cross-entropy and
AdamW; writes DIR as an HF model folder (config.json, model.safetensors, tokenizer.json).
--bpe N first trains a SentencePiece-style BPE tokenizer of N tokens on the text (as the default
model's); --tokenizer uses an existing one; with neither, a byte-level tokenizer (259 ids).
The bundled default model is made by \`npm run make-default-model\` (recipe and card included).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { text: { type: 'string' }, sep: { type: 'string' }, bpe: { type: 'string' }, config: { type: 'string' }, steps: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' }, lr: { type: 'string' }, seed: { type: 'string' } }, HELP);
  if (!a) return 0;
  if (!a.text || !a.out) throw new Error(`--text and --out are required\n\n${HELP}`);
  const base = PRETRAIN_CONFIGS[(a.config as string | undefined) ?? 'tiny'];
  if (!base) throw new Error(`--config must be one of ${Object.keys(PRETRAIN_CONFIGS).join(', ')}`);
  if (a.tokenizer && a.bpe) throw new Error('give --tokenizer or --bpe, not both');
  const docs = (a.text as string).split(',').flatMap((f) => loadDocs(f, (a.sep as string | undefined) ?? '<|endoftext|>'));
  let tokenizerJson: string | undefined;
  if (a.bpe) tokenizerJson = JSON.stringify(trainBpe(docs, { vocabSize: int(a.bpe, 'bpe', 1024), onProgress: (m, n) => process.stderr.write(`bpe: ${m}/${n} merges\n`) }));
  else if (typeof a.tokenizer === 'string' && a.tokenizer.endsWith('.json')) tokenizerJson = readFileSync(a.tokenizer, 'utf8');
  const tok = tokenizerJson ? parseTokenizerJson(tokenizerJson, 'tokenizer.json (trained)') : a.tokenizer ? loadTokenizerFile(a.tokenizer as string) : new ByteTokenizer();
  const stream = tokenStream(docs, (s) => tok.encode(s, { bos: true }));
  const cfg = { ...base, vocabSize: tok.vocabSize };
  const steps = int(a.steps, 'steps', 1000);
  const gpu = await createNodeGpu();
  try {
    const p = new Pretrainer(gpu, cfg, pretrainConfigOf({ steps, batch: int(a.batch, 'batch', 8), seq: Math.min(int(a.seq, 'seq', 128), cfg.maxSeqLen), lr: num(a.lr, 'lr', 3e-3), seed: int(a.seed, 'seed', 1) }), stream);
    const t0 = performance.now();
    let last = 0;
    // steps are submitted without waiting; their losses land a step or two later
    const report = (ss: PretrainStep[]) => {
      for (const s of ss)
        if (performance.now() - last > 5000 || s.step + 1 === steps) {
          last = performance.now();
          process.stderr.write(`step ${s.step + 1}/${steps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} |g| ${s.gradNorm.toFixed(3)}\n`);
        }
    };
    while (p.step < steps) report(await p.submitStep());
    report(await p.drain());
    const w = await p.weights();
    mkdirSync(a.out as string, { recursive: true });
    for (const [n, b] of Object.entries(writeHfModel(cfg, w, { tokenizerJson }))) writeFileSync(join(a.out as string, n), b);
    console.log(JSON.stringify({ out: a.out, steps, seconds: +((performance.now() - t0) / 1000).toFixed(1), config: cfg }));
    p.free();
  } finally {
    gpu.destroy();
  }
  return 0;
}
