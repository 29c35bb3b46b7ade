// quench export-recipe: a run (or a spec, or distill flags) as a self-contained PyTorch recipe
// folder (src/engine/workflow/recipe.ts); quench import-run (./import-run.ts) brings its output back.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeRunSpec, type RunSpec } from '../engine/workflow/spec';
import { memoryEstimate, recipeDistillConfig, recipeFiles } from '../engine/workflow/recipe';
import { trainStream } from '../engine/workflow/data';
import { parse } from './args';
import { DISTILL_OPTIONS, loadTeacher, specFromArgs, splitFromArgs } from './distill';

const HELP = `usage: quench export-recipe (--run DIR | --spec FILE | distill flags: --bits N --group N ...)
                            --teacher PATH [--tokenizer PATH] --data FILE [--eval FILE] [--sep S]
                            [--holdout N] [--eval-docs N] [--no-latents] --out RECIPE_DIR
Writes the run as a PyTorch recipe folder: recipe.json (the run spec, the data split, the engine's
resolved config), kdqat.py (plain PyTorch; DDP under torchrun, --fsdp to shard), init.safetensors
(the student's starting state), teacher/ (HF folder), tokens.safetensors (training stream and
held-out sequences, tokenized) and README.md (commands for one GPU, torchrun on one or several
nodes, memory per GPU). Then: python3 kdqat.py --out run; quench import-run run --out RUN_DIR.
--run DIR takes the spec of a quench distill / compare run folder (summary.json or checkpoint.json)
and its held-out split sizes; the teacher and the data are given again (the folder does not keep
them). --spec FILE: a JSON run spec (missing fields take the defaults). --no-latents leaves the
starting latents out of init.safetensors (they equal the teacher's projections; for big models).`;

function readSpec(path: string, where: string): unknown {
  if (!existsSync(path)) throw new Error(`${path}: not found`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message})`);
  }
}

/** The spec (and split sizes) of a run folder. */
export function runFolderSpec(dir: string): { spec: RunSpec; heldOut?: number; evalDocs?: number; documents?: number } {
  const summary = join(dir, 'summary.json'), ckpt = join(dir, 'checkpoint.json');
  const src = existsSync(summary) ? summary : existsSync(ckpt) ? ckpt : null;
  if (!src) throw new Error(`${dir}: neither summary.json nor checkpoint.json; not a quench run folder`);
  const j = readSpec(src, src) as { spec?: RunSpec; data?: { heldOutDocuments?: number; evalDocuments?: number; documents?: number } };
  if (!j.spec) throw new Error(`${src}: has no "spec"`);
  return { spec: makeRunSpec(j.spec, src), heldOut: j.data?.heldOutDocuments, evalDocs: j.data?.evalDocuments, documents: j.data?.documents };
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { ...DISTILL_OPTIONS, run: { type: 'string' }, spec: { type: 'string' }, 'no-latents': { type: 'boolean' } }, HELP);
  if (!a) return 0;
  if (!a.out || !a.teacher || !a.data) throw new Error(`--teacher, --data and --out are required\n\n${HELP}`);
  if (a['teacher-data']) throw new Error('--teacher-data is not supported by export-recipe: export the text (the recipe ships tokens)');
  if (a.run && a.spec) throw new Error('give --run or --spec, not both');
  let spec: RunSpec;
  let fromRun: ReturnType<typeof runFolderSpec> | null = null;
  if (a.run) {
    fromRun = runFolderSpec(a.run as string);
    spec = fromRun.spec;
    if (a.holdout === undefined && fromRun.heldOut !== undefined && !a.eval) a.holdout = String(fromRun.heldOut);
    if (a['eval-docs'] === undefined && fromRun.evalDocs !== undefined) a['eval-docs'] = String(fromRun.evalDocs);
  } else if (a.spec) spec = makeRunSpec(readSpec(a.spec as string, a.spec as string) as Partial<RunSpec>, a.spec as string);
  else spec = specFromArgs(a);
  const out = a.out as string;
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${out} exists and is not empty; choose another --out`);
  const split = splitFromArgs(a);
  if (fromRun?.documents !== undefined && !a.eval && fromRun.documents !== split.description.documents) {
    throw new Error(`${a.data} has ${split.description.documents} documents but the run in ${a.run} was trained on a text of ${fromRun.documents}; pass the same --data`);
  }
  const m = await loadTeacher(a);
  const files = recipeFiles(spec, { name: m.path, config: m.config, weights: m.weights, tokenizer: m.tokenizer, tokenizerJson: m.tokenizerJson }, split, { latents: !a['no-latents'] });
  for (const [name, bytes] of Object.entries(files)) {
    const p = join(out, name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, bytes);
  }
  const dc = recipeDistillConfig(spec, m.config, trainStream(split.train, m.tokenizer).length);
  const mem = memoryEstimate(m.config, dc, 1, false);
  const total = Object.values(files).reduce((s, b) => s + b.byteLength, 0);
  process.stderr.write(`recipe for ${spec.kind === 'fp-finetune' ? 'FP fine-tune' : `w${spec.bits}g${spec.group} ${spec.mask ? 'custom' : spec.scheme}`} written to ${out} (${(total / 1e6).toFixed(2)} MB); one process needs about ${(mem.bytes / 2 ** 20).toFixed(0)} MiB\n  python3 ${join(out, 'kdqat.py')} --out RUN   |   torchrun --nproc_per_node 8 ${join(out, 'kdqat.py')} --out RUN\n`);
  return 0;
}
