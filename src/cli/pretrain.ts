// quench pretrain --text FILE... --out DIR [--config C] [--steps N] [--bpe N | --tokenizer PATH]: flags
// default to the workflow's DEFAULT_PRETRAIN_SPEC, the studio's Pretrain form's defaults too.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliGpu } from './gpu';
import { loadTokenizerFile } from '../engine/io/load-node';
import { writeHfModel } from '../engine/io/hf';
import { ByteTokenizer } from '../engine/io/byte-tokenizer';
import { tokenStream } from '../engine/train/data';
import { PRETRAIN_CONFIGS, Pretrainer, pretrainConfigOf, type PretrainStep } from '../engine/train/pretrain';
import { int, num, parse } from './args';
import { trainBpe } from '../engine/io/bpe-train';
import { parseTokenizerJson } from '../engine/io/hf-tokenizer';
import { loadDocs } from './distill';
import { DEFAULT_PRETRAIN_SPEC, type PretrainSpec } from '../engine/workflow/spec';

const D = DEFAULT_PRETRAIN_SPEC;
const HELP = `usage: quench pretrain --text FILE[,FILE...] [--sep S] --out DIR [--config ${Object.keys(PRETRAIN_CONFIGS).join('|')}] [--steps N]
                       [--bpe N | --tokenizer tokenizer.json|tokenizer.bin] [--batch B] [--seq T] [--lr X] [--seed S]
Trains a LLaMA (GQA, SwiGLU, RoPE) from random initialisation with next-token cross-entropy and
AdamW; writes DIR as an HF model folder (config.json, model.safetensors, tokenizer.json).
Tokenizer: by default a SentencePiece-style BPE of ${D.vocabSize} tokens is first trained on the text (as the
studio's Pretrain tab and the default model do); --bpe N trains one of N tokens; --bpe 0 uses the
byte-level tokenizer (259 ids); --tokenizer uses an existing one.
Defaults (the studio's Pretrain tab's, one set in the workflow layer): --config ${D.config} --steps ${D.steps}
--batch ${D.batch} --seq ${D.seq} (at most the config's context) --lr ${D.lr} --seed ${D.seed} --sep '<|endoftext|>'.
The bundled default model is made by \`npm run make-default-model\` (recipe and card included).`;

/** The pretraining spec the flags ask for, DEFAULT_PRETRAIN_SPEC where a flag is absent (so these
 *  defaults are the studio's), and the tokenizer file given by --tokenizer, if any (then the spec's
 *  tokenizer and vocabSize are unused). */
export function pretrainSpecFromArgs(a: Record<string, unknown>): { spec: PretrainSpec; tokenizerFile?: string } {
  const config = (a.config as string | undefined) ?? D.config;
  if (!PRETRAIN_CONFIGS[config]) throw new Error(`--config must be one of ${Object.keys(PRETRAIN_CONFIGS).join(', ')}, got "${config}"`);
  if (a.tokenizer !== undefined && a.bpe !== undefined) throw new Error('give --tokenizer or --bpe, not both');
  const bpe = int(a.bpe, 'bpe', D.vocabSize);
  const spec: PretrainSpec = {
    config,
    tokenizer: bpe === 0 ? 'byte' : 'bpe',
    vocabSize: bpe === 0 ? D.vocabSize : bpe,
    steps: int(a.steps, 'steps', D.steps),
    batch: int(a.batch, 'batch', D.batch),
    seq: int(a.seq, 'seq', D.seq),
    lr: num(a.lr, 'lr', D.lr),
    seed: int(a.seed, 'seed', D.seed),
  };
  return a.tokenizer === undefined ? { spec } : { spec, tokenizerFile: a.tokenizer as string };
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { text: { type: 'string' }, sep: { type: 'string' }, bpe: { type: 'string' }, config: { type: 'string' }, steps: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' }, batch: { type: 'string' }, seq: { type: 'string' }, lr: { type: 'string' }, seed: { type: 'string' } }, HELP);
  if (!a) return 0;
  if (!a.text || !a.out) throw new Error(`--text and --out are required\n\n${HELP}`);
  const { spec, tokenizerFile } = pretrainSpecFromArgs(a);
  const base = PRETRAIN_CONFIGS[spec.config];
  const docs = (a.text as string).split(',').flatMap((f) => loadDocs(f, (a.sep as string | undefined) ?? '<|endoftext|>'));
  let tokenizerJson: string | undefined;
  if (tokenizerFile === undefined && spec.tokenizer === 'bpe') tokenizerJson = JSON.stringify(trainBpe(docs, { vocabSize: spec.vocabSize, onProgress: (m, n) => process.stderr.write(`bpe: ${m}/${n} merges\n`) }));
  else if (tokenizerFile?.endsWith('.json')) tokenizerJson = readFileSync(tokenizerFile, 'utf8');
  const tok = tokenizerJson ? parseTokenizerJson(tokenizerJson, tokenizerFile ?? 'tokenizer.json (trained)') : tokenizerFile ? loadTokenizerFile(tokenizerFile) : new ByteTokenizer();
  const stream = tokenStream(docs, (s) => tok.encode(s, { bos: true }));
  const cfg = { ...base, vocabSize: tok.vocabSize };
  const steps = spec.steps;
  const gpu = await cliGpu();
  try {
    const p = new Pretrainer(gpu, cfg, pretrainConfigOf({ steps, batch: spec.batch, seq: Math.min(spec.seq, cfg.maxSeqLen), lr: spec.lr, seed: spec.seed }), stream);
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
