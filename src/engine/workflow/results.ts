// The results of a repair, the same in the CLI's results.json/csv and the studio's table and
// exports: FP teacher → PTQ (round-to-nearest and clip search, computed for the students' own bits
// and group) → every KD-QAT student → the FP fine-tune with the same recipe (the fair ceiling).
import type { Gpu } from '../gpu/runtime';
import { LlamaModel } from '../model/llama';
import { sequenceNlls } from '../model/runner';
import { perplexityBatched } from '../eval/perplexity';
import type { McResult } from '../eval/multiple-choice';
import { quantizeWeights, type PtqConfig, type QuantizedModel } from '../quant/ptq';
import type { Bits } from '../format/pack';
import type { EvalDescription } from './data';
import { studentBytes, type RunSummary, type Teacher } from './run';
import type { RunSpec } from './spec';

export type ResultKind = 'fp' | 'ptq-rtn' | 'ptq-clip' | 'student' | 'fp-finetune';

export interface ResultRow {
  kind: ResultKind;
  label: string;
  bits: number | null;
  group: number | null;
  scheme: string | null;
  steps: number | null;
  lr: number | null;
  ppl: number;
  /** share of the PTQ (round-to-nearest) perplexity loss won back, against the teacher, in % */
  recoveredVsTeacher: number | null;
  /** the same against the FP fine-tune's perplexity (when that row exists), in % */
  recoveredVsFinetune: number | null;
  finalKl: number | null;
  bytes: number;
  wallSeconds: number | null;
  accuracy?: Record<string, McResult>;
  /** the run's full spec (student, fp-finetune), or the PTQ settings */
  spec: RunSpec | PtqConfig | null;
  runId?: string;
}

export interface Baselines {
  bits: Bits;
  group: number;
  sym: boolean;
  fp: number;
  rtn: number;
  clip: number;
  bytes: { fp: number; rtn: number; clip: number };
  evalTokens: number;
}

/** Quantize the teacher both ways for these bits/group and evaluate all three on evalSeqs. */
export async function computeBaselines(gpu: Gpu, t: Teacher, q: { bits: Bits; group: number; sym: boolean }, evalSeqs: number[][], onProgress?: (label: string, done: number, total: number) => void): Promise<Baselines & { models: { rtn: QuantizedModel; clip: QuantizedModel } }> {
  const rtn = quantizeWeights(t.config, t.weights, { ...q, clipSearch: false });
  const clip = quantizeWeights(t.config, t.weights, { ...q, clipSearch: true });
  const ppl = async (label: string, quantized?: QuantizedModel) => {
    const model = LlamaModel.fromWeights(gpu, t.config, t.weights, { quantized });
    try {
      return await perplexityBatched(evalSeqs, (s, p) => sequenceNlls(model, s, { onProgress: p }), (d, n) => onProgress?.(label, d, n));
    } finally {
      model.free();
    }
  };
  const fp = await ppl('evaluating the FP teacher');
  const r = await ppl(`evaluating PTQ round-to-nearest w${q.bits}g${q.group}`, rtn);
  const c = await ppl(`evaluating PTQ clip search w${q.bits}g${q.group}`, clip);
  return {
    ...q, fp: fp.ppl, rtn: r.ppl, clip: c.ppl, evalTokens: fp.tokens, models: { rtn, clip },
    bytes: { fp: studentBytes(t.config, null), rtn: studentBytes(t.config, rtn), clip: studentBytes(t.config, clip) },
  };
}

export interface FinishedRun {
  id: string;
  spec: RunSpec;
  summary: RunSummary;
  accuracy?: Record<string, McResult>;
}

/**
 * The results table for one bit width and group: its baselines, the students of exactly those
 * bits/group, and the FP fine-tune rows. Recovered = (RTN − ppl) / (RTN − reference) · 100.
 */
export function resultRows(b: Baselines, runs: FinishedRun[], accuracy: Partial<Record<'fp' | 'ptq-rtn' | 'ptq-clip', Record<string, McResult>>> = {}): ResultRow[] {
  const ft = runs.find((r) => r.spec.kind === 'fp-finetune');
  const rec = (p: number, ref: number | undefined) => (ref === undefined || !Number.isFinite(b.rtn - ref) || b.rtn === ref ? null : ((b.rtn - p) / (b.rtn - ref)) * 100);
  const w = `w${b.bits}g${b.group}${b.sym ? ' sym' : ''}`;
  const base = (kind: ResultKind, label: string, ppl: number, bytes: number, spec: PtqConfig | null): ResultRow => ({
    kind, label, bits: kind === 'fp' ? null : b.bits, group: kind === 'fp' ? null : b.group, scheme: null, steps: null, lr: null, ppl,
    recoveredVsTeacher: kind === 'fp' ? null : rec(ppl, b.fp), recoveredVsFinetune: kind === 'fp' ? null : rec(ppl, ft?.summary.evalPpl),
    finalKl: null, bytes, wallSeconds: null, accuracy: accuracy[kind as 'fp'], spec,
  });
  const rows: ResultRow[] = [
    base('fp', 'FP teacher', b.fp, b.bytes.fp, null),
    base('ptq-rtn', `PTQ round-to-nearest ${w}`, b.rtn, b.bytes.rtn, { bits: b.bits, group: b.group, sym: b.sym, clipSearch: false }),
    base('ptq-clip', `PTQ clip search ${w}`, b.clip, b.bytes.clip, { bits: b.bits, group: b.group, sym: b.sym, clipSearch: true }),
  ];
  for (const r of runs) {
    const isFt = r.spec.kind === 'fp-finetune';
    if (!isFt && (r.spec.bits !== b.bits || r.spec.group !== b.group || r.spec.sym !== b.sym)) continue;
    const s = r.summary;
    rows.push({
      kind: isFt ? 'fp-finetune' : 'student', label: isFt ? 'FP fine-tune (same recipe)' : `KD-QAT ${w} freeze ${s.scheme}`,
      bits: isFt ? null : r.spec.bits, group: isFt ? null : r.spec.group, scheme: isFt ? null : s.scheme, steps: s.steps, lr: s.lr, ppl: s.evalPpl,
      recoveredVsTeacher: isFt ? null : rec(s.evalPpl, b.fp), recoveredVsFinetune: isFt ? null : rec(s.evalPpl, ft?.summary.evalPpl),
      finalKl: isFt ? null : s.finalKl, bytes: s.studentBytes ?? b.bytes.fp, wallSeconds: s.wallSeconds, accuracy: r.accuracy, spec: r.spec, runId: r.id,
    });
  }
  return rows;
}

const fmt = (x: number | null | undefined, d: number) => (x === null || x === undefined ? '' : x.toFixed(d));

/** The columns of the results table (CLI print, CSV, studio). */
export const RESULT_COLUMNS = ['row', 'kind', 'bits', 'group', 'scheme', 'steps', 'lr', 'eval ppl', 'recovered % (vs teacher)', 'recovered % (vs FP fine-tune)', 'final KL', 'MB', 'wall s'] as const;

export function resultCells(r: ResultRow): string[] {
  return [r.label, r.kind, fmt(r.bits, 0), fmt(r.group, 0), r.scheme ?? '', fmt(r.steps, 0), r.lr === null ? '' : r.lr.toExponential(1), fmt(r.ppl, 4), fmt(r.recoveredVsTeacher, 1), fmt(r.recoveredVsFinetune, 1), fmt(r.finalKl, 5), (r.bytes / 1e6).toFixed(3), fmt(r.wallSeconds, 1)];
}

/** The hyperparameters a CSV row carries (every field of the run spec, flattened). */
const SPEC_COLUMNS = ['kind', 'scheme', 'bits', 'group', 'sym', 'clip', 'scales', 'scaleLrRatio', 'scaleInit', 'loss.kl', 'loss.ce', 'loss.attnMap', 'loss.attnOut', 'loss.hidden', 'temperature', 'steps', 'batch', 'seq', 'accum', 'lr', 'minLrRatio', 'warmup', 'weightDecay', 'gradClip', 'beta1', 'beta2', 'seed', 'metricsEvery', 'trainNorms'];

function specCell(spec: ResultRow['spec'], key: string): string {
  if (!spec) return '';
  const v = key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), spec);
  return v === undefined ? '' : String(v);
}

export function toCsv(rows: string[][]): string {
  return rows.map((r) => r.map((c) => (/[,"\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n') + '\n';
}

/** One CSV row per result with every hyperparameter, the evaluation text and accuracy columns. */
export function resultsCsv(rows: ResultRow[], data?: EvalDescription): string {
  const tasks = [...new Set(rows.flatMap((r) => Object.keys(r.accuracy ?? {})))];
  const header = [...RESULT_COLUMNS, ...SPEC_COLUMNS.map((k) => `spec.${k}`), 'eval text', 'eval documents', 'eval tokens', ...tasks.flatMap((t) => [`${t} acc`, `${t} acc_stderr`, `${t} acc_norm`, `${t} acc_norm_stderr`])];
  const body = rows.map((r) => [
    ...resultCells(r), ...SPEC_COLUMNS.map((k) => specCell(r.spec, k)), data?.source ?? '', String(data?.evalDocuments ?? ''), String(data?.evalTokens ?? ''),
    ...tasks.flatMap((t) => {
      const a = r.accuracy?.[t];
      return a ? [a.acc, a.acc_stderr, a.acc_norm, a.acc_norm_stderr].map((x) => x.toFixed(4)) : ['', '', '', ''];
    }),
  ]);
  return toCsv([header, ...body]);
}

/** A fixed-width table for the terminal. */
export function formatTable(rows: ResultRow[]): string {
  const t = [[...RESULT_COLUMNS] as string[], ...rows.map(resultCells)];
  const w = t[0].map((_, i) => Math.max(...t.map((r) => r[i].length)));
  return t.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ')).join('\n');
}
