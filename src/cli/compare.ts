// quench compare --teacher PATH --data FILE [--eval FILE] --bits 4 --group 32 --schemes none,ov,qk,attention,mlp
//                [...distill options] --out DIR
// Runs each freeze scheme with identical seed and data, plus the FP and PTQ (RTN) baselines, and
// prints a table (scheme, eval perplexity, final KL, wall time), also written as JSON and CSV.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeGpu } from '../engine/gpu/node';
import { loadModelFromPath } from '../engine/io/load-node';
import { LlamaModel } from '../engine/model/llama';
import { sequenceNll } from '../engine/model/runner';
import { encodeDocuments, perplexity } from '../engine/eval/perplexity';
import { quantizeWeights } from '../engine/quant/ptq';
import { FREEZE_PRESETS } from '../engine/train/freeze';
import { int, parse } from './args';
import { DISTILL_HELP, DISTILL_OPTIONS, distillConfigFrom, runDistill, splitData, teacherData } from './distill';
import { parseTasks, scoreTasks } from './evals';
import type { McResult } from '../engine/eval/multiple-choice';

const HELP = `usage: quench compare --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE | --holdout N]
                      --bits B --group G --schemes none,ov,qk,attention,mlp [distill options] --out DIR
                      [--tasks arc_easy,piqa,... --data-dir DIR [--limit N]]
Each scheme runs with the same seed, data order and settings into DIR/<scheme>/; the FP teacher and
its PTQ (round-to-nearest, and with the per-group clip search; same bits/group) are evaluated as
baseline rows; "recovered" is the share of the RTN perplexity loss won back. With --tasks, every row
is also scored on those zero-shot tasks (as quench evals), so perplexity and accuracy sit side by
side. Writes DIR/results.json and DIR/results.csv and prints the table.

distill options:
${DISTILL_HELP.split('\n').slice(1).join('\n')}`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, DISTILL_OPTIONS, HELP);
  if (!a) return 0;
  if (!a.teacher || !(a.data || a['teacher-data']) || !a.out) throw new Error(`--teacher, --data (or --teacher-data) and --out are required\n\n${HELP}`);
  const tasks = a.tasks ? parseTasks(a.tasks as string) : [];
  if (tasks.length && !a['data-dir']) throw new Error('--tasks needs --data-dir (the folder of the task files)');
  const schemes = ((a.schemes as string | undefined) ?? 'none,ov').split(',').map((s) => s.trim()).filter(Boolean);
  const m = await loadModelFromPath(a.teacher as string, a.tokenizer as string | undefined);
  if (!m.tokenizer) throw new Error(`${m.path}: no tokenizer found; pass --tokenizer`);
  const tok = m.tokenizer;
  for (const s of schemes) if (!(s in FREEZE_PRESETS) && !/^[a-z,]+$/.test(s)) throw new Error(`--schemes: unknown scheme "${s}"`);
  const configs = schemes.map((s) => ({ scheme: s, dc: distillConfigFrom(a, m.config.nLayers, s.replace(/\+/g, ',')) }));
  let { train, evalDocs } = splitData(a);
  const evalSeqs = encodeDocuments(evalDocs, (s) => tok.encode(s), Math.min(m.config.maxSeqLen, 512));
  const out = a.out as string;
  mkdirSync(out, { recursive: true });
  const gpu = await createNodeGpu();
  const rows: { scheme: string; evalPpl: number; finalKl: number | null; wallSeconds: number | null; accuracy?: Record<string, McResult> }[] = [];
  const limit = a.limit ? int(a.limit, 'limit', 0) : 0;
  const accuracyOf = (label: string, model: LlamaModel) => (tasks.length ? scoreTasks(model, tok, tasks, a['data-dir'] as string, limit, `accuracy ${label}`) : Promise.resolve(undefined));
  try {
    if (a['teacher-data']) train = await teacherData(gpu, m, int(a['teacher-data'], 'teacher-data', 0), configs[0].dc.seq, configs[0].dc.seed);
    const base = configs[0].dc;
    // a baseline row: perplexity and (with --tasks) accuracy of the teacher or its PTQ
    const baseline = async (scheme: string, label: string, quant: boolean, clipSearch = false) => {
      const quantized = quant ? quantizeWeights(m.config, m.weights, { bits: base.bits, group: base.group, sym: base.sym, clipSearch }) : undefined;
      const model = LlamaModel.fromWeights(gpu, m.config, m.weights, { quantized });
      try {
        const r = await perplexity(evalSeqs, (ids) => sequenceNll(model, ids));
        rows.push({ scheme, evalPpl: r.ppl, finalKl: null, wallSeconds: null, accuracy: await accuracyOf(label, model) });
        return r.ppl;
      } finally {
        model.free();
      }
    };
    const fpPpl = await baseline('FP (teacher)', 'FP', false);
    const ptqPpl = await baseline(`PTQ RTN w${base.bits}g${base.group}`, 'PTQ', true);
    const searchPpl = await baseline(`PTQ clip-search w${base.bits}g${base.group}`, 'PTQ clip search', true, true);
    process.stderr.write(`FP ppl ${fpPpl.toFixed(4)}, PTQ ppl ${ptqPpl.toFixed(4)} (RTN), ${searchPpl.toFixed(4)} (clip search)\n`);
    for (const { scheme, dc } of configs) {
      process.stderr.write(`--- scheme ${scheme}\n`);
      const r = await runDistill(gpu, m, dc, train, evalDocs, join(out, scheme.replace(/[^a-z0-9+,-]/gi, '_')), { log: (s) => process.stderr.write(`[${scheme}] ${s}\n`) });
      let accuracy: Record<string, McResult> | undefined;
      if (r.student && tasks.length) {
        const model = LlamaModel.fromWeights(gpu, m.config, r.student.weights, { quantized: r.student.quantized });
        try {
          accuracy = await accuracyOf(scheme, model);
        } finally {
          model.free();
        }
      }
      rows.push({ scheme: `KD-QAT freeze=${scheme}`, evalPpl: r.summary.evalPpl as number, finalKl: r.summary.finalKl as number, wallSeconds: r.summary.wallSeconds as number, accuracy });
    }
  } finally {
    gpu.destroy();
  }
  const recovered = (p: number) => ((rows[1].evalPpl - p) / (rows[1].evalPpl - rows[0].evalPpl)) * 100;
  const header = ['scheme', 'eval ppl', 'recovered % of PTQ loss', 'final KL', 'wall s', ...tasks.flatMap((t) => [`${t} acc`, `${t} acc_norm`])];
  const acc = (r: (typeof rows)[number]) => tasks.flatMap((t) => {
    const x = r.accuracy?.[t];
    return x ? [`${x.acc.toFixed(3)}±${x.acc_stderr.toFixed(3)}`, `${x.acc_norm.toFixed(3)}±${x.acc_norm_stderr.toFixed(3)}`] : ['', ''];
  });
  const table = rows.map((r, i) => [r.scheme, r.evalPpl.toFixed(4), i < 1 ? '' : recovered(r.evalPpl).toFixed(1), r.finalKl === null ? '' : r.finalKl.toFixed(5), r.wallSeconds === null ? '' : r.wallSeconds.toFixed(0), ...acc(r)]);
  writeFileSync(join(out, 'results.json'), JSON.stringify({ rows, settings: configs[0].dc }, null, 2));
  writeFileSync(join(out, 'results.csv'), [header, ...table].map((r) => r.map((c) => (/[,"]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n') + '\n');
  const w = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  console.log([header, ...table].map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ')).join('\n'));
  return 0;
}
