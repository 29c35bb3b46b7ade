// Node: the compress job into a folder (`quench compress --out DIR`): every stage's model folder
// (DIR/pruned, DIR/kd, DIR/ptq, DIR/kdqat, DIR/ce-scratch, DIR/ce-pruned), each training stage's
// run state (DIR/runs/<stage>/: metrics.jsonl, checkpoint.json + checkpoint-N.safetensors, written
// as KD-QAT run folders are), DIR/importance.json (the scores and the plan) and DIR/results.json +
// results.csv. --resume continues from the checkpoints (pruning is deterministic and is redone).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../gpu/runtime';
import type { Checkpoint } from './checkpoint';
import type { DataSplit } from './data';
import { RunDir } from './run-dir';
import { progressLog } from './run-folder';
import type { Teacher } from './run';
import { compressCsv, compressTable, compressVerdict, runCompress, type CompressResult, type CompressHooks, type CompressSpec, type TrainStage } from './compress';

const TRAIN_STAGES: TrainStage[] = ['kd', 'kdqat', 'ce-scratch', 'ce-pruned'];

export async function compressInFolder(gpu: Gpu, teacher: Teacher & { tokenizerJson?: string }, spec: CompressSpec, split: DataSplit, outDir: string, o: { resume?: boolean; log?: (s: string) => void; checkpointEvery?: number; shouldStop?: () => boolean; accuracy?: CompressHooks['accuracy'] } = {}): Promise<CompressResult> {
  const log = o.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const dirs = Object.fromEntries(TRAIN_STAGES.map((s) => [s, new RunDir(join(outDir, 'runs', s))])) as Record<TrainStage, RunDir>;
  const resume: Partial<Record<TrainStage, Checkpoint>> = {};
  if (o.resume) {
    if (!existsSync(outDir)) throw new Error(`${outDir}: no such compress folder to resume`);
    for (const s of TRAIN_STAGES) if (dirs[s].hasCheckpoint()) resume[s] = await dirs[s].readCheckpoint();
    if (Object.keys(resume).length === 0) throw new Error(`${outDir}: no checkpoint to resume (runs/*/checkpoint.json); nothing was changed`);
  } else {
    for (const s of TRAIN_STAGES) if (dirs[s].hasCheckpoint()) throw new Error(`${outDir} already holds a compress run (runs/${s}/checkpoint.json); pass --resume to continue it, or choose another --out`);
  }
  mkdirSync(outDir, { recursive: true });
  const claimed = new Set<TrainStage>();
  const claim = (s: TrainStage) => {
    if (claimed.has(s)) return;
    claimed.add(s);
    if (resume[s]) dirs[s].restartMetrics(resume[s]!.meta.history);
    else dirs[s].claimFresh();
  };
  let lastLog = 0;
  const r = await runCompress(gpu, teacher, spec, split, {
    log, onProgress: progressLog(log), shouldStop: o.shouldStop, accuracy: o.accuracy, checkpointEvery: o.checkpointEvery ?? 100, resume, tokenizerJson: teacher.tokenizerJson,
    onStep: (s, m) => {
      claim(s);
      dirs[s].appendMetrics(m);
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now();
        log(`[${s}] step ${m.step + 1} loss ${m.loss.toFixed(4)} (kl ${m.losses.kl.toFixed(4)}, ce ${m.losses.ce.toFixed(4)}) lr ${m.lr.toExponential(2)} |g| ${m.gradNorm.toFixed(3)} ${m.tokensPerSec.toFixed(0)} tok/s`);
      }
    },
    onCheckpoint: (s, c) => {
      claim(s);
      dirs[s].saveCheckpoint(c);
    },
    onModel: (stage, files) => {
      const d = join(outDir, stage);
      mkdirSync(d, { recursive: true });
      for (const [name, bytes] of Object.entries(files)) writeFileSync(join(d, name), bytes);
    },
  });
  writeFileSync(join(outDir, 'importance.json'), JSON.stringify({ plan: r.plan, student: r.student, importance: r.importance && { ...r.importance, channels: r.importance.channels.map((c) => Array.from(c)) } }, null, 2));
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ status: r.status, rows: r.rows, verdict: compressVerdict(r.rows), spec, data: r.data }, null, 2));
  writeFileSync(join(outDir, 'results.csv'), compressCsv(r.rows));
  log(compressTable(r.rows));
  return r;
}
