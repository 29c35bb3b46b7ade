// KD-QAT step throughput, Quench beside PyTorch eager on one CPU thread, on the same run:
// stories260K (../shared/data/models/stories260K), w4g32, the default losses (KL + 0.5 CE) and
// freeze scheme, AdamW, 8 x 128 tokens per step, tinystories text. Quench runs `quench distill`;
// PyTorch runs the same spec through `quench export-recipe` and the recipe's kdqat.py (the exact
// KD-QAT step in PyTorch, src/engine/workflow/kdqat.py) with --device cpu --threads 1, via
// bench/kdqat_step.py. Detailed metrics (per-layer norms, code flips) are off (--metrics-every 1000)
// on both sides: they cost ~37 extra readbacks on the steps that take them. tokens/s is the median over the steps after the first two (compile, warm-up).
// Dispatches, submits, host waits (blocking), async readbacks and throttle waits per Quench step: the difference of two `quench distill` runs
// (S and S + 4 steps, same data and evaluation; QUENCH_GPU_COUNTS=1) over the 4 extra steps.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { BenchRow } from './types';

const ROOT = resolve(import.meta.dirname, '..');
const SHARED = resolve(ROOT, '../shared/data');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function stepRates(metricsFile: string): number[] {
  const lines = readFileSync(metricsFile, 'utf8').trim().split('\n').filter(Boolean);
  const rates = lines.map((l) => JSON.parse(l) as { step?: number; tokensPerSec?: number }).filter((m) => typeof m.tokensPerSec === 'number').map((m) => m.tokensPerSec!);
  return rates.length > 2 ? rates.slice(2) : rates;
}

export async function benchKdqat(opts: { steps?: number; counts?: boolean } = {}): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const model = join(SHARED, 'models/stories260K');
  const text = join(SHARED, 'text/tinystories_val_800.txt');
  if (!existsSync(join(model, 'stories260K.bin')) || !existsSync(text)) {
    notes.push(`KD-QAT: ${model} or ${text} not found, skipped`);
    return { rows, notes };
  }
  const steps = opts.steps ?? 12;
  const dir = mkdtempSync(join(tmpdir(), 'quench-kdqat-bench-'));
  const shape = `stories260K w4g32 B=8 T=128, ${steps} steps`;
  const flagsFor = (n: number) => ['--teacher', join(model, 'stories260K.bin'), '--tokenizer', join(model, 'tok512.bin'), '--data', text, '--bits', '4', '--group', '32',
    '--batch', '8', '--seq', '128', '--steps', String(n), '--metrics-every', '1000', '--eval-docs', '1'];
  const flags = flagsFor(steps);
  const env = { ...process.env, QUENCH_PROGRESS: '0', QUENCH_GPU_COUNTS: '1' };
  type Counts = { dispatches: number; submits: number; hostWaits: number; asyncReads?: number; throttleWaits?: number };
  const distill = (n: number, out: string): Counts | null => {
    const r = spawnSync('node', [join(ROOT, 'bin/quench.mjs'), 'distill', ...flagsFor(n), '--out', out], { cwd: ROOT, env, encoding: 'utf8', timeout: 900_000 });
    if (r.status !== 0) throw new Error(`quench distill failed: ${(r.stderr ?? '').trim().split('\n').pop()}`);
    const line = (r.stderr ?? '').split('\n').find((l) => l.startsWith('quench gpu counts '));
    return line ? (JSON.parse(line.slice('quench gpu counts '.length)) as Counts) : null;
  };
  try {
    const c1 = distill(steps, join(dir, 'quench'));
    const q = median(stepRates(join(dir, 'quench/metrics.jsonl')));
    rows.push({ name: 'KD-QAT step (quench distill, WebGPU)', shape, ms: (8 * 128 * 1000) / q, note: `${q.toFixed(0)} tokens/s` });
    if (opts.counts !== false && c1) {
      const c2 = distill(steps + 4, join(dir, 'quench2'));
      const per = (k: keyof Counts) => ((c2?.[k] ?? 0) - (c1[k] ?? 0)) / 4;
      if (c2) notes.push(`KD-QAT quench step: ${per('dispatches')} dispatches, ${per('submits')} submits, host syncs per KD-QAT step: ${per('hostWaits')} (blocking readbacks/syncs; target 0: ${per('hostWaits') === 0 ? 'met' : 'missed'}), ${per('asyncReads')} async readbacks, ${per('throttleWaits')} throttle waits (the loop, 2 steps ahead, waiting for the step 2 back to land)`);
    }

    const py = '/usr/bin/python3';
    const hasTorch = existsSync(py) && spawnSync(py, ['-c', 'import torch'], { timeout: 60_000 }).status === 0;
    if (!hasTorch) {
      notes.push('KD-QAT: /usr/bin/python3 cannot import torch (apt-get install python3-torch), no PyTorch row');
      return { rows, notes };
    }
    const rec = join(dir, 'recipe');
    execFileSync('node', [join(ROOT, 'bin/quench.mjs'), 'export-recipe', ...flags, '--out', rec], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    execFileSync(py, [join(ROOT, 'bench/kdqat_step.py'), '--recipe', rec, '--out', join(dir, 'torch'), '--steps', String(steps)], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 900_000 });
    const t = median(stepRates(join(dir, 'torch/metrics.jsonl')));
    rows.push({ name: 'KD-QAT step (PyTorch eager CPU, 1 thread)', shape, ms: (8 * 128 * 1000) / t, note: `${t.toFixed(0)} tokens/s; peer` });
    notes.push(`KD-QAT ${shape}: quench ${q.toFixed(0)} tokens/s, PyTorch 1 thread ${t.toFixed(0)} tokens/s -> quench/PyTorch ${(q / t).toFixed(2)} (target >= 1: ${q >= t ? 'met' : 'missed'})`);
  } catch (e) {
    notes.push(`KD-QAT bench failed: ${(e as Error).message.split('\n')[0]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, notes };
}
