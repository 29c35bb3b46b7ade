// quench import-run: the output folder of a recipe's kdqat.py (metrics.jsonl, summary.json,
// student/) as a Quench run folder, for the compare table and the studio.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadModelFromPath } from '../engine/io/load-node';
import { makeRunSpec } from '../engine/workflow/spec';
import type { StepMetrics } from '../engine/train/distill';
import { parse } from './args';

const HELP = `usage: quench import-run RECIPE_OUT_DIR --out RUN_DIR
Turns the folder kdqat.py wrote (python3 kdqat.py --out RECIPE_OUT_DIR) into a Quench run folder:
RUN_DIR/metrics.jsonl (checked line by line), RUN_DIR/summary.json (the spec checked, studentDir
pointing into RUN_DIR, engine: pytorch) and RUN_DIR/student (the quantized student, checked to load).`;

export interface ImportedRun {
  steps: number;
  evalPpl: number;
  studentDir: string | null;
}

export async function importRun(from: string, out: string): Promise<ImportedRun> {
  const need = (f: string) => {
    const p = join(from, f);
    if (!existsSync(p)) throw new Error(`${p}: not found; is ${from} the --out folder of kdqat.py?`);
    return p;
  };
  const metricsPath = need('metrics.jsonl');
  const summaryPath = need('summary.json');
  const lines = readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim());
  const steps = lines.map((l, i) => {
    let m: StepMetrics;
    try {
      m = JSON.parse(l) as StepMetrics;
    } catch {
      throw new Error(`${metricsPath}:${i + 1}: not JSON`);
    }
    if (m.step !== i || typeof m.loss !== 'number' || typeof m.gradNorm !== 'number' || !m.losses) throw new Error(`${metricsPath}:${i + 1}: not a Quench step line (step ${i} with loss, losses, gradNorm)`);
    return m;
  });
  const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as Record<string, unknown> & { spec: unknown; evalPpl: number; steps: number };
  const spec = makeRunSpec(summary.spec as never, summaryPath);
  if (summary.steps !== steps.length) throw new Error(`${summaryPath} says ${summary.steps} steps, ${metricsPath} has ${steps.length} lines`);
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${out} exists and is not empty; choose another --out`);
  mkdirSync(out, { recursive: true });
  let studentDir: string | null = null;
  const src = join(from, 'student');
  if (spec.kind === 'kdqat') {
    if (!existsSync(src) || !statSync(src).isDirectory()) throw new Error(`${src}: the student folder is missing`);
    const m = await loadModelFromPath(src);
    if (!m.quantized) throw new Error(`${src}: not a quantized model folder`);
    studentDir = resolve(out, 'student');
    mkdirSync(studentDir, { recursive: true });
    for (const f of readdirSync(src)) copyFileSync(join(src, f), join(studentDir, f));
  }
  copyFileSync(metricsPath, join(out, 'metrics.jsonl'));
  writeFileSync(join(out, 'summary.json'), JSON.stringify({ ...summary, spec, studentDir, importedFrom: resolve(from) }, null, 2));
  return { steps: steps.length, evalPpl: summary.evalPpl, studentDir };
}

export async function run(argv: string[]): Promise<number> {
  const pos = argv.filter((x, i) => !x.startsWith('-') && (i === 0 || !argv[i - 1].startsWith('--out')));
  const a = parse(argv.filter((x) => !pos.includes(x)), { out: { type: 'string' } }, HELP);
  if (!a) return 0;
  if (pos.length !== 1 || !a.out) throw new Error(`one RECIPE_OUT_DIR and --out RUN_DIR are required\n\n${HELP}`);
  const r = await importRun(pos[0], a.out as string);
  console.log(JSON.stringify({ ...r, runDir: resolve(a.out as string) }));
  return 0;
}
