// Node: one run into a folder, and a comparison of freeze schemes into a folder of runs — the
// workflow layer's jobs as `quench distill` and `quench compare` run them. The folder holds
// metrics.jsonl (one line per step), checkpoint.json + checkpoint-N.safetensors (resume),
// summary.json, and student/ (a quantized model folder `quench eval` loads).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../gpu/runtime';
import type { McResult } from '../eval/multiple-choice';
import { LlamaModel } from '../model/llama';
import { RunDir } from './run-dir';
import { checkSpecMemory, runTraining, type Progress, type RunOutcome, type Teacher } from './run';
import { carveValidation, evalSequences, trainStream, type DataSplit } from './data';
import { autoFreeze, type AutoFreezeResult } from './auto-freeze';
import { modelFiles, tokenizerJsonOf } from './export';
import { computeBaselines, formatTable, resultRows, resultsCsv, type FinishedRun, type ResultRow } from './results';
import { makeRunSpec, type RunSpec } from './spec';

export interface FolderOptions {
  resume?: boolean;
  log?: (s: string) => void;
  tokenizerJson?: string;
  /** steps between checkpoints (default 100, and always at the end) */
  checkpointEvery?: number;
  /** asked between steps: true stops the run (its last checkpoint kept) */
  shouldStop?: () => boolean;
  /** the folder was claimed by the caller already (auto-freeze's chosen run) */
  fresh?: boolean;
  /** GPU memory the run may use (RunHooks.memoryBudgetBytes) */
  memoryBudgetBytes?: number;
}

/** A progress printer: a line at most every 5 s and at the end, with ETA. */
export function progressLog(log: (s: string) => void): (p: Progress) => void {
  let last = 0;
  return (p) => {
    const now = performance.now();
    if (now - last < 5000 && p.done < p.total) return;
    last = now;
    log(`${p.label}: ${p.done}/${p.total}${p.etaSeconds !== null && p.done < p.total ? `, ETA ${p.etaSeconds.toFixed(0)} s` : ''}`);
  };
}

export async function runInFolder(gpu: Gpu, teacher: Teacher & { tokenizerJson?: string }, spec: RunSpec, split: DataSplit, outDir: string, o: FolderOptions = {}): Promise<RunOutcome> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const dir = new RunDir(outDir);
  // everything that can refuse, before the folder is touched
  const stream = trainStream(split.train, teacher.tokenizer);
  checkSpecMemory(gpu, teacher.config, spec, stream.length, o.memoryBudgetBytes);
  const resume = o.resume ? await dir.readCheckpoint() : undefined;
  if (!o.resume && !o.fresh) dir.claimFresh();
  if (o.fresh) dir.atomicWrite('metrics.jsonl', '');
  const evalSeqs = evalSequences(split.evalDocs, teacher.tokenizer, teacher.config.maxSeqLen, split.description);
  let resumedHistory = false;
  let lastStepLog = 0;
  const outcome = await runTraining(gpu, teacher, spec, stream, evalSeqs, {
    resumeFrom: dir.checkpointJson,
    checkpointEvery: o.checkpointEvery ?? 100,
    memoryBudgetBytes: o.memoryBudgetBytes,
    onStep: (m) => {
      if (resume && !resumedHistory) {
        // the checkpoint verified: only now is the folder's metrics file rewritten
        dir.restartMetrics(resume.meta.history);
        resumedHistory = true;
        log(`resumed at step ${resume.meta.step}`);
      }
      dir.appendMetrics(m);
      const now = performance.now();
      if (now - lastStepLog > 5000 || m.step + 1 === spec.steps) {
        lastStepLog = now;
        log(`step ${m.step + 1}/${spec.steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} |g| ${m.gradNorm.toFixed(3)} ${m.tokensPerSec.toFixed(0)} tok/s`);
      }
    },
    onProgress: progressLog(log),
    onCheckpoint: async (c) => dir.saveCheckpoint(c),
    shouldStop: o.shouldStop,
  }, resume);
  let studentDir: string | null = null;
  if (outcome.student) {
    studentDir = join(outDir, 'student');
    mkdirSync(studentDir, { recursive: true });
    const tj = tokenizerJsonOf(teacher.tokenizer, o.tokenizerJson ?? teacher.tokenizerJson);
    for (const [name, bytes] of Object.entries(modelFiles(teacher.config, outcome.student.weights, outcome.student.quantized, tj))) writeFileSync(join(studentDir, name), bytes);
  }
  dir.writeJson('summary.json', { ...outcome.summary, spec, data: split.description, studentDir });
  return outcome;
}

/**
 * `--freeze auto` into a folder: the probes and successive halving in memory, then the chosen
 * candidate's run continues from its checkpoint in outDir (a normal run folder), with
 * outDir/auto-freeze.json holding the signals, candidates, rounds, choice, cost and curves.
 */
export async function autoFreezeInFolder(gpu: Gpu, teacher: Teacher & { tokenizerJson?: string }, base: RunSpec, split: DataSplit, outDir: string, o: FolderOptions = {}): Promise<AutoFreezeResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const dir = new RunDir(outDir);
  dir.claimFresh();
  const { train, val } = carveValidation(split.train);
  const r = await autoFreeze(gpu, teacher, base, trainStream(train, teacher.tokenizer), {
    log, onProgress: progressLog(log),
    valSeqs: evalSequences(val, teacher.tokenizer, teacher.config.maxSeqLen),
    evalSeqs: evalSequences(split.evalDocs, teacher.tokenizer, teacher.config.maxSeqLen),
    fullTrain: trainStream(split.train, teacher.tokenizer),
    // the chosen scheme's run is an ordinary run folder on the whole split
    finalRun: async (spec) => runInFolder(gpu, teacher, spec, split, outDir, { ...o, log, fresh: true }),
  });
  const { outcome, ...rest } = r;
  dir.writeJson('auto-freeze.json', { ...rest, chosen: { name: r.chosen.name, reason: r.chosen.reason, mask: r.chosen.mask }, validationDocuments: val.length, evalPpl: outcome.summary?.evalPpl });
  return r;
}

export interface CompareOptions extends FolderOptions {
  /** also run the FP fine-tune with the same recipe (the fair ceiling) */
  fpReference?: boolean;
  /** zero-shot accuracy of a model (`quench compare --tasks`) */
  accuracy?: (label: string, model: LlamaModel) => Promise<Record<string, McResult> | undefined>;
}

/** Every scheme with the same seed, data and settings into outDir/<scheme>/, the baselines for the
 *  same bits/group, and results.json / results.csv. */
export async function compareInFolder(gpu: Gpu, teacher: Teacher & { tokenizerJson?: string }, base: RunSpec, schemes: string[], split: DataSplit, outDir: string, o: CompareOptions = {}): Promise<ResultRow[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  mkdirSync(outDir, { recursive: true });
  const evalSeqs = evalSequences(split.evalDocs, teacher.tokenizer, teacher.config.maxSeqLen, split.description);
  const b = await computeBaselines(gpu, teacher, base, evalSeqs);
  log(`FP ppl ${b.fp.toFixed(4)}, PTQ w${b.bits}g${b.group} ppl ${b.rtn.toFixed(4)} (round-to-nearest), ${b.clip.toFixed(4)} (clip search)`);
  const acc: Parameters<typeof resultRows>[2] = {};
  if (o.accuracy) {
    for (const [kind, quantized] of [['fp', undefined], ['ptq-rtn', b.models.rtn], ['ptq-clip', b.models.clip]] as const) {
      const model = LlamaModel.fromWeights(gpu, teacher.config, teacher.weights, { quantized });
      try {
        acc[kind] = await o.accuracy(kind, model);
      } finally {
        model.free();
      }
    }
  }
  const specs: { name: string; spec: RunSpec }[] = schemes.map((s) => ({ name: s, spec: makeRunSpec({ ...base, scheme: s === 'auto' ? 'none' : s, kind: 'kdqat' }, `--schemes ${s}`) }));
  if (o.fpReference) specs.push({ name: 'fp-finetune', spec: makeRunSpec({ ...base, kind: 'fp-finetune', scheme: 'none' }, '--fp-reference') });
  const runs: FinishedRun[] = [];
  for (const [i, { name, spec }] of specs.entries()) {
    log(`--- run ${i + 1} of ${specs.length}: ${name}`);
    const folder = join(outDir, name.replace(/[^a-z0-9+,-]/gi, '_'));
    let r: RunOutcome;
    let runSpec = spec;
    if (name === 'auto') {
      const a = await autoFreezeInFolder(gpu, teacher, spec, split, folder, { ...o, log: (s) => log(`[auto] ${s}`) });
      r = a.outcome;
      runSpec = a.spec;
      log(`[auto] chose ${a.chosen.name} at ${a.costRuns.toFixed(2)}× the cost of one run`);
    } else r = await runInFolder(gpu, teacher, spec, split, folder, { ...o, log: (s) => log(`[${name}] ${s}`) });
    let accuracy: Record<string, McResult> | undefined;
    if (o.accuracy && r.student) {
      const model = LlamaModel.fromWeights(gpu, teacher.config, r.student.weights, { quantized: r.student.quantized });
      try {
        accuracy = await o.accuracy(name, model);
      } finally {
        model.free();
      }
    }
    runs.push({ id: name, spec: runSpec, summary: name === 'auto' ? { ...r.summary!, scheme: `auto: ${r.summary!.scheme}` } : r.summary!, accuracy });
  }
  const rows = resultRows(b, runs, acc);
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ rows, data: split.description, base }, null, 2));
  writeFileSync(join(outDir, 'results.csv'), resultsCsv(rows, split.description));
  log(formatTable(rows));
  return rows;
}
