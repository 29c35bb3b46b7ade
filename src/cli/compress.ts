// quench compress: prune → KD → PTQ → KD-QAT, plus CE-only baselines; a thin parser over
// src/engine/workflow/compress.ts (the studio calls runCompress too).
import { cliGpu } from './gpu';
import { makeCompressSpec } from '../engine/workflow/compress';
import { compressInFolder } from '../engine/workflow/compress-folder';
import type { ChannelMetric, LayerMetric } from '../engine/train/prune';
import { int, num, parse } from './args';
import { loadTeacher, parseLoss, splitFromArgs } from './distill';
import { ptqFromArgs } from './quant-args';
import { parseTasks, scoreTasks } from './evals';

const HELP = `usage: quench compress --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE] [--sep S]
                       [--layers N | --drop-layers 1,3] [--heads-keep R] [--mlp-keep R]
                       [--layer-metric loss|cosine] [--channel-metric taylor|magnitude] [--calib N]
                       --bits 4 --group 32 [--sym] --steps N [--qat-steps N] [--batch B] [--seq T]
                       [--lr X] [--qat-lr X] [--temperature T] [--loss kl=1,ce=0.5,hidden=0] [--seed S]
                       [--embed-bits 8|4|none] [--embed-group G] [--no-baselines] [--holdout N]
                       [--eval-docs N] [--tasks arc_easy,piqa,... --data-dir DIR [--limit N]]
                       [--resume] --out DIR
A smaller student cut from the teacher, distilled, then quantized:
  prune   layers by measured importance (the rise in calibration loss when a layer is skipped, or
          1 − cosine(input, output)) or named (--drop-layers, 0-based); attention heads by KV group
          (--heads-keep: a ratio of the KV groups, or a count of query heads, a multiple of NH/NKV);
          MLP channels (--mlp-keep ratio, rounded to a multiple of --group so down packs without
          padding) by first-order Taylor |w·dL/dw| or |activation|×‖w_down‖
  KD      KL(teacher‖student)·T² + CE on the data (+ hidden-state MSE on mapped layers), --steps
  PTQ     --bits/--group with the per-group clip search; the token embedding (and a tied
          classifier) --embed-bits (default 8, groups of --embed-group 32; none keeps it fp32),
          kept at those codes through KD-QAT
  KD-QAT  --qat-steps (default steps/2): the distilled FP student teaches its own quantized copy
          (the original teacher's shape differs from the student's)
  baselines  the same small shape trained with CE only on KD's token budget, from a random init and
          from the pruned init (no teacher)
Writes DIR/{pruned,kd,ptq,kdqat,ce-scratch,ce-pruned}/ (model folders), DIR/runs/<stage>/
(metrics.jsonl, checkpoints; --resume continues), DIR/importance.json, DIR/results.json + .csv.
With --tasks, every stage's model is also scored on those zero-shot tasks (as quench evals).`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, {
    teacher: { type: 'string' }, tokenizer: { type: 'string' }, data: { type: 'string' }, eval: { type: 'string' }, sep: { type: 'string' },
    layers: { type: 'string' }, 'drop-layers': { type: 'string' }, 'heads-keep': { type: 'string' }, 'mlp-keep': { type: 'string' },
    'layer-metric': { type: 'string' }, 'channel-metric': { type: 'string' }, calib: { type: 'string' },
    bits: { type: 'string' }, group: { type: 'string' }, sym: { type: 'boolean' }, steps: { type: 'string' }, 'qat-steps': { type: 'string' },
    batch: { type: 'string' }, seq: { type: 'string' }, lr: { type: 'string' }, 'qat-lr': { type: 'string' }, temperature: { type: 'string' }, loss: { type: 'string' },
    seed: { type: 'string' }, 'no-baselines': { type: 'boolean' }, holdout: { type: 'string' }, 'eval-docs': { type: 'string' }, resume: { type: 'boolean' }, out: { type: 'string' },
    'embed-bits': { type: 'string' }, 'embed-group': { type: 'string' }, tasks: { type: 'string' }, 'data-dir': { type: 'string' }, limit: { type: 'string' },
  }, HELP);
  if (!a) return 0;
  if (!a.teacher || !a.data || !a.out) throw new Error(`--teacher, --data and --out are required\n\n${HELP}`);
  const q = ptqFromArgs({ ...a, bits: a.bits ?? '4' });
  const o = (k: string, f: typeof int | typeof num) => (a[k] === undefined ? undefined : f(a[k], k, 0));
  const lm = a['layer-metric'] as string | undefined, cm = a['channel-metric'] as string | undefined;
  if (lm !== undefined && lm !== 'loss' && lm !== 'cosine') throw new Error(`--layer-metric must be loss or cosine, not ${lm}`);
  if (cm !== undefined && cm !== 'taylor' && cm !== 'magnitude') throw new Error(`--channel-metric must be taylor or magnitude, not ${cm}`);
  const dropLayers = a['drop-layers'] === undefined ? undefined : (a['drop-layers'] as string).split(',').map((s) => {
    const x = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(x)) throw new Error(`--drop-layers: "${s}" is not a layer index (0-based integers, comma-separated)`);
    return x;
  });
  const kdLoss = a.loss === undefined ? undefined : parseLoss(a.loss as string);
  if (kdLoss && (kdLoss.attnMap || kdLoss.attnOut)) throw new Error('--loss: compress distils with kl, ce and hidden (attention losses need the same head layout)');
  const spec = makeCompressSpec({
    prune: { layers: o('layers', int), dropLayers, headsKeep: o('heads-keep', num), mlpKeep: o('mlp-keep', num), layerMetric: lm as LayerMetric | undefined, channelMetric: cm as ChannelMetric | undefined },
    calibration: a.calib === undefined ? undefined : { sequences: int(a.calib, 'calib', 8) },
    kd: { steps: o('steps', int), batch: o('batch', int), seq: o('seq', int), lr: o('lr', num), temperature: o('temperature', num), seed: o('seed', int), loss: kdLoss && { kl: kdLoss.kl, ce: kdLoss.ce, hidden: kdLoss.hidden } },
    qat: { bits: q!.bits, group: q!.group, sym: q!.sym, steps: o('qat-steps', int), lr: o('qat-lr', num), batch: o('batch', int), seq: o('seq', int), seed: o('seed', int) },
    baselines: !a['no-baselines'],
    embedding: a['embed-bits'] === 'none' ? null : a['embed-bits'] === undefined && a['embed-group'] === undefined ? undefined : { bits: int(a['embed-bits'] ?? '8', 'embed-bits', 8), group: o('embed-group', int) },
  }, 'flags');
  const tasks = a.tasks ? parseTasks(a.tasks as string) : [];
  if (tasks.length && !a['data-dir']) throw new Error('--tasks needs --data-dir (the folder of the task files)');
  const limit = a.limit ? int(a.limit, 'limit', 0) : 0;
  const split = splitFromArgs(a);
  const m = await loadTeacher(a);
  const gpu = await cliGpu();
  try {
    const r = await compressInFolder(gpu, m, spec, split, a.out as string, {
      resume: !!a.resume,
      accuracy: tasks.length ? (label, model) => scoreTasks(model, m.tokenizer!, tasks, a['data-dir'] as string, limit, `accuracy ${label}`) : undefined,
    });
    console.log(JSON.stringify({ status: r.status, out: a.out, student: r.student, rows: r.rows.map((x) => ({ stage: x.stage, params: x.params, bytes: x.bytes, ppl: +x.ppl.toFixed(4) })) }));
  } finally {
    gpu.destroy();
  }
  return 0;
}
