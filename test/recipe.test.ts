// The PyTorch recipe (issue 18): a stories260K w4g32 run exported by `quench export-recipe` and run
// by its kdqat.py on CPU PyTorch gives Quench's step 0 (loss, every loss term, gradient norm) within
// 1e-4 relative, a 20-step curve within the tolerance measured (README "PyTorch recipe"), a student
// `quench eval` scores at the perplexity the script reports, and the same curve from two gloo
// processes under torchrun; every loss weight, both scale modes, symmetric grids, accumulation and
// a custom per-layer freeze mask are checked at step 0. Spans the CLI and the workflow layer.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath } from '../src/engine/io/data';
import { testGpu } from '../src/engine/testing';
import { loadModelFromPath } from '../src/engine/io/load-node';
import { LlamaModel } from '../src/engine/model/llama';
import { sequenceNll } from '../src/engine/model/runner';
import { perplexity, splitDocuments } from '../src/engine/eval/perplexity';
import { evalSequences, heldOutText, splitDocs, trainStream, type DataSplit } from '../src/engine/workflow/data';
import { runInFolder, type FolderOptions } from '../src/engine/workflow/run-folder';
import { runTraining, type Teacher } from '../src/engine/workflow/run';
import { makeRunSpec, type RunSpec } from '../src/engine/workflow/spec';
import { recipeFiles } from '../src/engine/workflow/recipe';
import { KDQAT_PY } from '../src/engine/workflow/kdqat-py';
import { run as exportRecipeCli } from '../src/cli/export-recipe';
import { importRun } from '../src/cli/import-run';
import type { StepMetrics } from '../src/engine/train/distill';
import { PROJECTIONS, randomWeights, type LlamaConfig } from '../src/engine/model/config';
import { ByteTokenizer } from '../src/engine/io/byte-tokenizer';

const PY = '/usr/bin/python3';
const hasTorch = existsSync(PY) && spawnSync(PY, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const hasTorchrun = spawnSync('sh', ['-c', 'command -v torchrun'], { encoding: 'utf8' }).status === 0;
const why = !hasSharedData ? '../shared/data is absent' : !hasTorch ? `${PY} cannot import torch (apt-get install -y python3-torch)` : '';
if (why) console.warn(`test/recipe.test.ts skipped: ${why}`);

const PY_SRC = join(dirname(new URL(import.meta.url).pathname), '../src/engine/workflow/kdqat.py');

describe('kdqat-py.ts is generated from kdqat.py', () => {
  it('agrees with its source (QUENCH_REGEN=1 rewrites it)', () => {
    const py = readFileSync(PY_SRC, 'utf8');
    if (process.env.QUENCH_REGEN === '1') {
      const esc = py.replace(/`/g, '${"`"}').replace(/\$\{(?!"`"\})/g, '${"${"}');
      writeFileSync(PY_SRC.replace(/kdqat\.py$/, 'kdqat-py.ts'), `// GENERATED from kdqat.py beside this file (the source to edit); test/recipe.test.ts checks they agree\n// and rewrites this file when run with QUENCH_REGEN=1. A string so the studio (Vite) and Node (tsx)\n// both ship it without a loader.\nexport const KDQAT_PY = String.raw\`${esc}\`;\n`);
      return;
    }
    expect(KDQAT_PY === py, 'src/engine/workflow/kdqat-py.ts is stale: run QUENCH_REGEN=1 npx vitest run test/recipe.test.ts').toBe(true);
  });
});

const BIN = () => sharedPath('models/stories260K/stories260K.bin');
const TOK = () => sharedPath('models/stories260K/tok512.bin');

function docs60(): string[] {
  return splitDocuments(readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8'), '<|endoftext|>').slice(0, 60);
}

function python(args: string[], cwd: string): string {
  const r = spawnSync(args[0], args.slice(1), { cwd, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const readMetrics = (p: string) => readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepMetrics);
const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

function expectStep0(py: StepMetrics, q: StepMetrics, what: string): void {
  expect(rel(py.loss, q.loss), `${what}: loss ${py.loss} vs Quench ${q.loss}`).toBeLessThan(1e-4);
  expect(rel(py.gradNorm, q.gradNorm), `${what}: gradient norm ${py.gradNorm} vs Quench ${q.gradNorm}`).toBeLessThan(1e-4);
  for (const k of Object.keys(q.losses) as (keyof StepMetrics['losses'])[]) {
    if (q.losses[k] === 0) expect(py.losses[k], `${what}: ${k}`).toBe(0);
    else expect(rel(py.losses[k], q.losses[k]), `${what}: ${k} ${py.losses[k]} vs Quench ${q.losses[k]}`).toBeLessThan(1e-4);
  }
  expect(py.lr).toBeCloseTo(q.lr, 12);
}

describe.skipIf(!!why)('the PyTorch recipe of a stories260K w4g32 run', () => {
  it('step 0 equal, 20-step curve within tolerance, the student scores in quench eval as reported, import-run, and torchrun ×2 = ×1', async () => {
    const gpu = await testGpu();
    const root = mkdtempSync(join(tmpdir(), 'quench-recipe-'));
    const dataFile = join(root, 'data.txt');
    const docs = docs60();
    writeFileSync(dataFile, docs.join('\n<|endoftext|>\n'));
    const m = await loadModelFromPath(BIN(), TOK());
    const teacher: Teacher = { name: 'stories260K', config: m.config, weights: m.weights, tokenizer: m.tokenizer! };
    const split = splitDocs(docs, dataFile);
    const spec = makeRunSpec({ bits: 4, group: 32, steps: 20, batch: 2, seq: 32 }, 'test');
    const runDir = join(root, 'quench-run');
    const o: FolderOptions = { log: () => {} };
    const q = await runInFolder(gpu, teacher, spec, split, runDir, o);
    const qm = readMetrics(join(runDir, 'metrics.jsonl'));
    expect(qm.length).toBe(20);

    const rec = join(root, 'recipe');
    process.env.QUENCH_PROGRESS = '0';
    expect(await exportRecipeCli(['--run', runDir, '--teacher', BIN(), '--tokenizer', TOK(), '--data', dataFile, '--out', rec])).toBe(0);
    const recipe = JSON.parse(readFileSync(join(rec, 'recipe.json'), 'utf8'));
    expect(recipe.spec).toEqual(spec);
    expect(recipe.data.heldOutDocuments).toBe(split.description.heldOutDocuments);

    const out = join(root, 'py');
    python([PY, join(rec, 'kdqat.py'), '--out', out, '--device', 'cpu', '--threads', '1', '--quiet'], root);
    const pm = readMetrics(join(out, 'metrics.jsonl'));
    expect(pm.length).toBe(20);
    expectStep0(pm[0], qm[0], 'default recipe');
    // 20 steps: the curves agree to ~5e-7 until the first latent lands on the other side of a
    // rounding boundary (step 3 here: a few codes of one up_proj), then drift apart like two seeds
    // of the same run (measured max 1.8% relative on the loss over 20 steps)
    const drift = pm.map((s, i) => rel(s.loss, qm[i].loss));
    console.log(`recipe vs Quench, relative loss difference per step: ${drift.map((d) => d.toExponential(1)).join(' ')}`);
    expect(Math.max(...drift.slice(0, 3))).toBeLessThan(1e-5);
    expect(Math.max(...drift)).toBeLessThan(0.05);
    const meanQ = qm.slice(-10).reduce((s, x) => s + x.loss, 0) / 10, meanP = pm.slice(-10).reduce((s, x) => s + x.loss, 0) / 10;
    expect(rel(meanP, meanQ)).toBeLessThan(0.02);

    // the student loads in quench's loader and scores the perplexity the script reported
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    const st = await loadModelFromPath(join(out, 'student'));
    expect(st.quantized?.ptq.bits).toBe(4);
    const model = LlamaModel.fromWeights(gpu, st.config, st.weights, { quantized: st.quantized });
    const seqs = evalSequences(split.evalDocs, m.tokenizer!, m.config.maxSeqLen);
    const ev = await perplexity(seqs, (ids) => sequenceNll(model, ids));
    model.free();
    expect(ev.tokens).toBe(summary.evalTokens);
    expect(rel(ev.ppl, summary.evalPpl), `quench eval ${ev.ppl} vs script ${summary.evalPpl}`).toBeLessThan(1e-5);
    // and Quench's own student is about as good (same recipe, curves within tolerance)
    expect(rel(summary.evalPpl, q.summary!.evalPpl)).toBeLessThan(0.02);
    writeFileSync(join(root, 'held-out.txt'), heldOutText(split));

    // import-run: a Quench run folder
    const imported = join(root, 'imported');
    const r = await importRun(out, imported);
    expect(r.steps).toBe(20);
    const isum = JSON.parse(readFileSync(join(imported, 'summary.json'), 'utf8'));
    expect(isum.spec).toEqual(spec);
    expect(isum.engine.name).toBe('pytorch');
    expect((await loadModelFromPath(join(imported, 'student'))).quantized).toBeTruthy();

    // two gloo processes, the same global batch: the same curve
    if (!hasTorchrun) {
      console.warn('torchrun not found: the two-process check is skipped');
      return;
    }
    const out2 = join(root, 'py2');
    python(['torchrun', '--redirects', '1', '--tee', '1', '--nproc_per_node', '2', join(rec, 'kdqat.py'), '--out', out2, '--device', 'cpu', '--threads', '1', '--quiet', '--no-eval'], root);
    const pm2 = readMetrics(join(out2, 'metrics.jsonl'));
    expect(pm2.length).toBe(20);
    const d2 = pm2.map((s, i) => rel(s.loss, pm[i].loss));
    console.log(`torchrun ×2 vs one process, relative loss difference: max ${Math.max(...d2).toExponential(2)}`);
    expectStep0(pm2[0], qm[0], 'torchrun ×2');
    expect(Math.max(...d2.slice(0, 3))).toBeLessThan(1e-5);
    expect(Math.max(...d2)).toBeLessThan(1e-3);
  });

  it('step 0 equals Quench for every loss weight, both scale modes, symmetric grids, accumulation and a custom per-layer freeze mask', async () => {
    const gpu = await testGpu();
    const root = mkdtempSync(join(tmpdir(), 'quench-recipe0-'));
    const m = await loadModelFromPath(BIN(), TOK());
    const teacher: Teacher = { name: 'stories260K', config: m.config, weights: m.weights, tokenizer: m.tokenizer! };
    const split: DataSplit = splitDocs(docs60(), 'tinystories_val_800[:60]');
    const L = m.config.nLayers;
    const mask = Array.from({ length: L }, (_, l) => Object.fromEntries(PROJECTIONS.map((p, j) => [p, (l + j) % 3 === 0])) as Record<(typeof PROJECTIONS)[number], boolean>);
    const variants: [string, Partial<RunSpec>][] = [
      ['minmax scales, KL at T=2 + attention-map KL, custom per-layer mask', { scales: 'minmax', loss: { kl: 1, ce: 0, attnMap: 0.5, attnOut: 0, hidden: 0 }, temperature: 2, scheme: 'custom', mask, clip: 0.9 }],
      ['learned scales from min/max, CE + attention-output + hidden MSE, ov-freeze, symmetric, accum 2', { scales: 'learned', scaleInit: 'minmax', loss: { kl: 0, ce: 1, attnMap: 0, attnOut: 2, hidden: 0.5 }, scheme: 'ov', sym: true, accum: 2, weightDecay: 0.1 }],
    ];
    const stream = trainStream(split.train, teacher.tokenizer);
    const seqs = evalSequences(split.evalDocs.slice(0, 1), teacher.tokenizer, m.config.maxSeqLen);
    for (const [i, [what, over]] of variants.entries()) {
      const spec = makeRunSpec({ bits: 4, group: 32, steps: 1, batch: 2, seq: 32, ...over }, what);
      const qr = await runTraining(gpu, teacher, spec, stream, seqs);
      const dir = join(root, `v${i}`);
      for (const [name, bytes] of Object.entries(recipeFiles(spec, teacher, split))) {
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), bytes);
      }
      python([PY, join(dir, 'kdqat.py'), '--out', join(dir, 'out'), '--device', 'cpu', '--threads', '1', '--quiet', '--no-eval'], root);
      const pm = readMetrics(join(dir, 'out', 'metrics.jsonl'));
      console.log(`${what}: loss ${pm[0].loss} vs Quench ${qr.history[0].loss}, |g| ${pm[0].gradNorm} vs ${qr.history[0].gradNorm}`);
      expectStep0(pm[0], qr.history[0], what);
      // the per-projection gradient norms too (frozen ones are 0 in both)
      for (let l = 0; l < L; l++)
        for (const p of PROJECTIONS) {
          const a = pm[0].gradSq![l][p], b = qr.history[0].gradSq![l][p];
          if (b === 0) expect(a, `${what}: gradSq[${l}].${p}`).toBe(0);
          else expect(rel(a, b), `${what}: gradSq[${l}].${p} ${a} vs ${b}`).toBeLessThan(1e-3);
        }
    }
  });

  it('a head-pruned teacher (explicit head_dim, as quench compress writes): step 0 equals Quench, and the student loads with its head size', async () => {
    const gpu = await testGpu();
    const root = mkdtempSync(join(tmpdir(), 'quench-recipe-hd-'));
    const tok = new ByteTokenizer();
    const cfg: LlamaConfig = { dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 2, nKvHeads: 1, headDim: 12, vocabSize: tok.vocabSize, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
    const teacher: Teacher = { name: 'head-pruned', config: cfg, weights: randomWeights(cfg, 4, 0.3), tokenizer: tok };
    const split: DataSplit = splitDocs(docs60().slice(0, 20), 'tinystories_val_800[:20]');
    const spec = makeRunSpec({ bits: 4, group: 16, steps: 1, batch: 2, seq: 32 }, 'head_dim 12');
    const qr = await runTraining(gpu, teacher, spec, trainStream(split.train, tok), evalSequences(split.evalDocs.slice(0, 1), tok, cfg.maxSeqLen));
    for (const [name, bytes] of Object.entries(recipeFiles(spec, teacher, split))) {
      mkdirSync(dirname(join(root, name)), { recursive: true });
      writeFileSync(join(root, name), bytes);
    }
    python([PY, join(root, 'kdqat.py'), '--out', join(root, 'out'), '--device', 'cpu', '--threads', '1', '--quiet'], root);
    expectStep0(readMetrics(join(root, 'out', 'metrics.jsonl'))[0], qr.history[0], 'head_dim 12');
    const st = await loadModelFromPath(join(root, 'out', 'student'));
    expect(st.config.headDim).toBe(12);
  });
});
