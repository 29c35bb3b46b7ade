// quench compare: a thin argument parser over the workflow layer's comparison (the same runs,
// baselines and results rows the studio shows).
import { cliGpu } from './gpu';
import { FREEZE_PRESETS } from '../engine/train/freeze';
import { compareInFolder } from '../engine/workflow/run-folder';
import { int, parse } from './args';
import { DISTILL_HELP, DISTILL_OPTIONS, loadTeacher, specFromArgs, splitFromArgs, teacherData } from './distill';
import { parseTasks, scoreTasks } from './evals';

const HELP = `usage: quench compare --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE | --holdout N]
                      --bits B --group G --schemes none,ov,qk,attention,mlp,auto [--fp-reference] [distill options] --out DIR
                      [--tasks arc_easy,piqa,... --data-dir DIR [--limit N]]
Each scheme runs with the same seed, data order and settings into DIR/<scheme>/; the FP teacher and
its PTQ (round-to-nearest, and with the per-group clip search; same bits/group) are evaluated as
baseline rows; --fp-reference adds the FP model fine-tuned with the same recipe (DIR/fp-finetune,
the fair ceiling). "recovered" is the share of the RTN perplexity loss won back, against the
teacher and against the FP fine-tune. With --tasks, every row is also scored on those zero-shot
tasks (as quench evals). Writes DIR/results.json (one object per row: kind, bits, group, scheme,
steps, ppl, spec, ...) and DIR/results.csv (every hyperparameter) and prints the table.

distill options:
${DISTILL_HELP.split('\n').slice(1).join('\n')}`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, DISTILL_OPTIONS, HELP);
  if (!a) return 0;
  if (!a.teacher || !(a.data || a['teacher-data']) || !a.out) throw new Error(`--teacher, --data (or --teacher-data) and --out are required\n\n${HELP}`);
  const tasks = a.tasks ? parseTasks(a.tasks as string) : [];
  if (tasks.length && !a['data-dir']) throw new Error('--tasks needs --data-dir (the folder of the task files)');
  const schemes = ((a.schemes as string | undefined) ?? 'none,ov').split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of schemes) if (!Object.hasOwn(FREEZE_PRESETS, s) && !/^[a-z+]+$/.test(s)) throw new Error(`--schemes: unknown scheme "${s}" (presets ${Object.keys(FREEZE_PRESETS).join(', ')}, or projections joined by +, e.g. q+k)`);
  const m = await loadTeacher(a);
  const base = specFromArgs({ ...a, 'fp-reference': false }, schemes[0] === 'auto' ? 'none' : schemes[0]);
  for (const s of schemes) if (s !== 'auto') specFromArgs({ ...a, 'fp-reference': false }, s); // every scheme checked up front
  let split = splitFromArgs(a, a['teacher-data'] ? ['(sampled from the teacher)'] : undefined);
  const limit = a.limit ? int(a.limit, 'limit', 0) : 0;
  const gpu = await cliGpu();
  try {
    if (a['teacher-data']) split = { ...split, train: await teacherData(gpu, m, int(a['teacher-data'], 'teacher-data', 0), base.seq, base.seed) };
    await compareInFolder(gpu, m, base, schemes, split, a.out as string, {
      fpReference: !!a['fp-reference'],
      log: (s) => process.stderr.write(s + '\n'),
      accuracy: tasks.length ? (label, model) => scoreTasks(model, m.tokenizer, tasks, a['data-dir'] as string, limit, `accuracy ${label}`) : undefined,
    });
  } finally {
    gpu.destroy();
  }
  return 0;
}
