// quench evals --model PATH [--tokenizer PATH] --tasks arc_easy,arc_challenge,piqa,boolq,copa,siqa
//              --data-dir DIR [--limit N] [--json] [--out FILE]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliGpu } from './gpu';
import { loadModelFromPath } from '../engine/io/load-node';
import { LlamaModel } from '../engine/model/llama';
import { tokenLogprobsBatch } from '../engine/model/runner';
import { evaluateTask, type McResult } from '../engine/eval/multiple-choice';
import { parseTask, TASK_FILES, TASKS, type TaskName } from '../engine/eval/tasks';
import { int, parse, progress } from './args';
import type { Tokenizer } from '../engine/io/tokenizer';
import { ptqFromArgs, QUANT_OPTIONS } from './quant-args';
import { quantizeWeights } from '../engine/quant/ptq';
import { requireFiniteResults } from '../engine/io/validate';

const HELP = `usage: quench evals --model PATH [--tokenizer PATH] --tasks ${TASKS.join(',')}
                    --data-dir DIR [--limit N] [--json] [--out FILE] [--bits B --group G ...]
Zero-shot multiple choice by log-likelihood (lm-evaluation-harness style): acc and acc_norm (by
continuation byte length) with standard errors. DIR holds the task files as in ../shared/data/evals
(${Object.values(TASK_FILES).map((f) => f.docs).join(', ')}). --json makes the last line one JSON
object {task: {acc, acc_stderr, acc_norm, acc_norm_stderr, n}}; --out also writes it to FILE.`;

export function parseTasks(spec: string | undefined): TaskName[] {
  const tasks = (spec ?? TASKS.join(',')).split(',').map((t) => t.trim()) as TaskName[];
  for (const t of tasks) if (!TASKS.includes(t)) throw new Error(`--tasks: unknown task "${t}" (${TASKS.join(', ')})`);
  return tasks;
}

/** A NaN/Inf log-probability would still give a finite (meaningless) accuracy: refuse it. */
function finiteLogprobs(lps: Float64Array[], where: string): Float64Array[] {
  for (const lp of lps) for (const x of lp) if (!Number.isFinite(x)) throw new Error(`${where}: the model gives a non-finite log-probability (${x}); the model or the data is broken`);
  return lps;
}

/** Score a model on tasks read from dir (TASK_FILES layout); limit 0 = every document. */
export async function scoreTasks(model: LlamaModel, tok: Tokenizer, tasks: TaskName[], dir: string, limit: number, label: string): Promise<Record<string, McResult>> {
  const results: Record<string, McResult> = {};
  for (const t of tasks) {
    const f = TASK_FILES[t];
    const docsPath = join(dir, f.docs);
    if (!existsSync(docsPath)) throw new Error(`${docsPath}: task file for ${t} not found`);
    const labelsPath = f.labels ? join(dir, f.labels) : null;
    if (labelsPath && !existsSync(labelsPath)) throw new Error(`${labelsPath}: labels file for ${t} not found`);
    let docs = parseTask(t, readFileSync(docsPath, 'utf8'), labelsPath ? readFileSync(labelsPath, 'utf8') : undefined, docsPath, labelsPath ?? undefined);
    if (limit > 0) docs = docs.slice(0, limit);
    results[t] = await evaluateTask(docs, (s) => tok.encode(s, { bos: true }), async (seqs) => finiteLogprobs(await tokenLogprobsBatch(model, seqs), `${label}: ${t} (${docsPath})`), progress(`${label}: ${t}`));
    requireFiniteResults(`${label}: ${t} (${docsPath})`, { acc: results[t].acc, acc_norm: results[t].acc_norm });
  }
  return results;
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { model: { type: 'string' }, tokenizer: { type: 'string' }, tasks: { type: 'string' }, 'data-dir': { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' }, out: { type: 'string' }, ...QUANT_OPTIONS }, HELP);
  if (!a) return 0;
  if (!a.model || !a['data-dir']) throw new Error(`--model and --data-dir are required\n\n${HELP}`);
  const tasks = parseTasks(a.tasks as string | undefined);
  const dir = a['data-dir'] as string;
  const m = await loadModelFromPath(a.model as string, a.tokenizer as string | undefined);
  if (!m.tokenizer) throw new Error(`${m.path}: no tokenizer found; pass --tokenizer`);
  const gpu = await cliGpu();
  let results: Record<string, McResult>;
  try {
    const ptq = ptqFromArgs(a);
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights, { quantized: ptq ? quantizeWeights(m.config, m.weights, ptq) : m.quantized });
    results = await scoreTasks(model, m.tokenizer, tasks, dir, a.limit ? int(a.limit, 'limit', 0) : 0, 'evals');
    model.free();
  } finally {
    gpu.destroy();
  }
  const rows = Object.entries(results).map(([t, r]) => `${t.padEnd(14)} n=${String(r.n).padEnd(5)} acc ${r.acc.toFixed(4)} ± ${r.acc_stderr.toFixed(4)}   acc_norm ${r.acc_norm.toFixed(4)} ± ${r.acc_norm_stderr.toFixed(4)}`);
  console.log(rows.join('\n'));
  const json = JSON.stringify(results);
  if (a.out) writeFileSync(a.out as string, json);
  if (a.json) console.log(json);
  return 0;
}
