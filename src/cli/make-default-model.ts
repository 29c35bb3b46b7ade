// npm run make-default-model [-- --steps N --out DIR]
// Reproduces the bundled default teacher (public/models/default): trains the BPE tokenizer on the
// Moby-Dick training chapters, pretrains the 'default' LLaMA config on them from random
// initialisation, evaluates held-out perplexity against the unigram baseline, samples greedily,
// and writes config.json, model.safetensors, tokenizer.json, card.json and README.md (the card).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeGpu } from '../engine/gpu/node';
import { trainBpe } from '../engine/io/bpe-train';
import { parseTokenizerJson } from '../engine/io/hf-tokenizer';
import { writeHfModel } from '../engine/io/hf';
import { loadModelFromPath } from '../engine/io/load-node';
import { tokenStream } from '../engine/train/data';
import { CORPUS_NAME, HELD_OUT_EVERY, loadMobyDick, studioDataText } from '../engine/train/corpus';
import { PRETRAIN_CONFIGS, Pretrainer, pretrainConfigOf } from '../engine/train/pretrain';
import { DEFAULT_MODEL_RECIPE, evaluateDefaultModel, greedySamples } from '../engine/train/default-model';
import { int, parse } from './args';

const HELP = `usage: npm run make-default-model -- [--steps N] [--out DIR] [--seed S]
Trains the tokenizer and the default teacher from scratch on Moby-Dick and writes DIR
(default public/models/default) with its card. Takes about an hour on 2 CPU cores (lavapipe).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { steps: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' } }, HELP);
  if (!a) return 0;
  const R = DEFAULT_MODEL_RECIPE;
  const out = (a.out as string | undefined) ?? 'public/models/default';
  const steps = int(a.steps, 'steps', R.steps);
  const seed = int(a.seed, 'seed', R.seed);
  const log = (s: string) => process.stderr.write(s + '\n');
  const t0 = performance.now();

  const corpus = loadMobyDick();
  log(`corpus: ${corpus.train.length} training paragraphs, ${corpus.heldOut.length} held out (chapters ${corpus.heldOutChapters.join(', ')})`);
  const tokJson = trainBpe(corpus.train, { vocabSize: R.vocabSize, onProgress: (m, n) => log(`bpe: ${m}/${n} merges`) });
  const tokText = JSON.stringify(tokJson);
  const tok = parseTokenizerJson(tokText, 'tokenizer.json');
  const stream = tokenStream(corpus.train, (s) => tok.encode(s, { bos: true }));
  const cfg = { ...PRETRAIN_CONFIGS[R.config], vocabSize: tok.vocabSize };
  log(`tokenizer: ${tok.vocabSize} tokens; training stream ${stream.length} tokens`);

  const pc = pretrainConfigOf({ steps, batch: R.batch, seq: R.seq, lr: R.lr, seed });
  const gpu = await createNodeGpu();
  let trainSeconds = 0;
  const lossCurve: { step: number; loss: number }[] = [];
  try {
    const p = new Pretrainer(gpu, cfg, pc, stream);
    const tTrain = performance.now();
    let last = 0, avg = NaN;
    while (p.step < steps) {
      const s = await p.trainStep();
      avg = Number.isNaN(avg) ? s.loss : 0.95 * avg + 0.05 * s.loss;
      if (p.step % 50 === 0 || p.step === steps) lossCurve.push({ step: p.step, loss: +avg.toFixed(4) });
      if (performance.now() - last > 10000 || p.step === steps) {
        last = performance.now();
        const el = (performance.now() - tTrain) / 1000;
        log(`step ${p.step}/${steps} loss ${avg.toFixed(4)} lr ${s.lr.toExponential(2)} |g| ${s.gradNorm.toFixed(3)} ${el.toFixed(0)}s (eta ${((el / p.step) * (steps - p.step)).toFixed(0)}s)`);
      }
    }
    trainSeconds = (performance.now() - tTrain) / 1000;
    const w = await p.weights();
    p.free();
    mkdirSync(out, { recursive: true });
    const files = writeHfModel(cfg, w, { tokenizerJson: tokText, metadata: { producer: 'quench make-default-model' } });
    for (const [n, b] of Object.entries(files)) writeFileSync(join(out, n), b);
    writeFileSync(join(out, 'data.txt'), studioDataText(corpus));
  } finally {
    gpu.destroy();
  }

  // Evaluate what was written, loaded back the way users load it.
  const gpu2 = await createNodeGpu();
  try {
    const m = await loadModelFromPath(out);
    const ev = await evaluateDefaultModel(gpu2, m, corpus.heldOut, stream, (d, n) => d % 50 === 0 && log(`eval: ${d}/${n}`));
    const samples = await greedySamples(gpu2, m, R.prompts, 40);
    const card = {
      name: 'quench-default (Moby-Dick)',
      config: cfg,
      parameters: ev.parameters,
      corpus: CORPUS_NAME,
      split: `paragraphs; every ${HELD_OUT_EVERY}th chapter held out (${corpus.heldOutChapters.join(', ')})`,
      tokenizer: { type: 'BPE (SentencePiece style, byte fallback), trained by quench', vocabSize: tok.vocabSize },
      training: { ...pc, tokensPerStep: pc.batch * pc.seq, trainingTokens: stream.length, seconds: +trainSeconds.toFixed(0), machine: R.machine },
      command: `npm run make-default-model${steps !== R.steps ? ` -- --steps ${steps}` : ''}`,
      heldOut: ev.heldOut,
      heldOutQuick: ev.heldOutQuick,
      unigram: ev.unigram,
      samples,
      lossCurve,
      totalSeconds: +((performance.now() - t0) / 1000).toFixed(0),
    };
    writeFileSync(join(out, 'card.json'), JSON.stringify(card, null, 2) + '\n');
    writeFileSync(join(out, 'README.md'), cardMarkdown(card));
    log(`held-out perplexity ${ev.heldOut.ppl.toFixed(2)} (unigram ${ev.unigram.ppl.toFixed(1)}); wrote ${out}`);
    console.log(JSON.stringify({ out, heldOut: ev.heldOut, unigram: ev.unigram, trainSeconds: card.training.seconds }));
  } finally {
    gpu2.destroy();
  }
  return 0;
}

function cardMarkdown(c: Record<string, any>): string {
  const cfg = c.config;
  return `# Quench default teacher: a ${(c.parameters / 1e6).toFixed(2)}M-parameter LLaMA trained on Moby-Dick

Made by Quench itself, from random initialisation, with no network and no third-party weights.
Reproduce with \`${c.command}\` (${Math.round(c.totalSeconds / 60)} min here, ${c.training.machine}).

| | |
|---|---|
| architecture | LLaMA: RMSNorm, RoPE (theta ${cfg.ropeTheta}), SwiGLU, GQA (${cfg.nHeads} query heads, ${cfg.nKvHeads} KV heads), tied embeddings |
| size | dim ${cfg.dim}, hidden ${cfg.hiddenDim}, ${cfg.nLayers} layers, context ${cfg.maxSeqLen}, vocabulary ${cfg.vocabSize}: ${c.parameters.toLocaleString('en-US')} parameters |
| tokenizer | ${c.tokenizer.type}, ${c.tokenizer.vocabSize} tokens (tokenizer.json) |
| data | ${c.corpus}; ${c.split}; ${c.training.trainingTokens.toLocaleString('en-US')} training tokens |
| training | ${c.training.steps} steps of ${c.training.batch} x ${c.training.seq} tokens, AdamW (lr ${c.training.lr}, warm-up ${c.training.warmup}, cosine to ${c.training.minLrRatio}x, weight decay ${c.training.weightDecay}, clip ${c.training.gradClip}), seed ${c.training.seed}; ${c.training.seconds} s of training |
| held-out perplexity | **${c.heldOut.ppl.toFixed(2)}** over ${c.heldOut.tokens.toLocaleString('en-US')} tokens (${c.heldOut.documents} paragraphs, each with BOS, truncated to ${cfg.maxSeqLen}) |
| unigram baseline | ${c.unigram.ppl.toFixed(1)} (training-set token frequencies, add-one smoothed, same tokens) |
| quick check | first ${c.heldOutQuick.documents} held-out paragraphs: ${c.heldOutQuick.ppl.toFixed(3)} (the test in src/engine/train/default-model.test.ts checks this) |

Greedy samples (40 tokens):

${c.samples.map((s: { prompt: string; text: string }) => `- **${s.prompt}**${s.text}`).join('\n')}

Licence: the weights and tokenizer are the project's; the training text is public domain.
\`data.txt\` (400 training paragraphs from across the book, then the first 20 held-out ones) is the
text the studio starts with.
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  run(process.argv.slice(2)).then(
    (c) => process.exit(c),
    (e) => {
      process.stderr.write(`make-default-model: ${e instanceof Error ? e.message : e}\n`);
      process.exit(1);
    },
  );
}
