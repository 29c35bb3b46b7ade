// npm run fuzz [-- --cases N --seed S --kinds a,b --verbose]
// Runs N cases (default 10,000) spread over every input kind, each in a worker thread with a
// memory cap: a case that takes over 10 s is a hang (the worker is terminated and restarted at the
// next case), a worker that dies (out of memory, an uncaught error) is a crash. Prints a summary
// table and exits non-zero on any crash, hang, silently accepted invalid input or unclear message.
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getBases, HANG_MS, KINDS, type Kind, type Outcome } from './cases';

const { values } = parseArgs({ options: { cases: { type: 'string' }, seed: { type: 'string' }, kinds: { type: 'string' }, verbose: { type: 'boolean' } } });
const total = Number(values.cases ?? 10_000);
const seed = Number(values.seed ?? 17);
const kinds = (values.kinds ? values.kinds.split(',') : [...KINDS]) as Kind[];
for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`--kinds: unknown kind "${k}" (${KINDS.join(', ')})`);
const perKind = Math.ceil(total / kinds.length);

const B = getBases();
if (!B.realTokenizer) console.log(`note: ${'../shared/data/models/stories260K/tok512.bin'} is absent: tokenizer cases use a synthetic tokenizer written by writeLlama2cTokenizer`);

const COLS: Outcome[] = ['error', 'load', 'crash', 'hang', 'silent', 'unclear'];
type Row = Record<Outcome, number> & { cases: number };
const rows = new Map<Kind, Row>();
const examples: string[] = [];
const shown = new Map<string, number>();

interface Msg {
  type: 'start' | 'done' | 'end';
  i: number;
  outcome?: Outcome;
  detail?: string;
  mutation?: string;
  ms?: number;
}

/** Run cases [from, to) of a kind in one worker; resolves with the index it stopped at. */
function runRange(kind: Kind, from: number, to: number, dir: string, row: Row): Promise<number> {
  return new Promise((resolve) => {
    const w = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: { kind, seed, from, to, dir }, resourceLimits: { maxOldGenerationSizeMb: 1536 } });
    let current = from;
    let timer: NodeJS.Timeout | null = null;
    let settled = false;
    const finish = (next: number) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve(next);
    };
    const record = (outcome: Outcome, detail: string, mutation: string) => {
      row[outcome]++;
      row.cases++;
      const key = `${kind} ${outcome}`;
      if (outcome !== 'error' && outcome !== 'load' && (shown.get(key) ?? 0) < 6) {
        shown.set(key, (shown.get(key) ?? 0) + 1);
        examples.push(`${kind} #${current} [${outcome}] ${mutation}: ${detail}`);
      }
    };
    w.on('message', (m: Msg) => {
      if (m.type === 'start') {
        current = m.i;
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          record('hang', `no result after ${HANG_MS / 1000} s`, '?');
          void w.terminate();
          finish(current + 1);
        }, HANG_MS + 2000);
      } else if (m.type === 'done') {
        if (timer) clearTimeout(timer);
        record(m.outcome!, m.detail!, m.mutation!);
        if (values.verbose) console.log(`${kind} #${m.i} ${m.outcome} ${m.ms!.toFixed(0)}ms ${m.mutation} ${m.detail}`);
      } else if (m.type === 'end') finish(to);
    });
    w.on('error', (e) => {
      if (settled) return;
      record('crash', `worker died: ${String((e as Error)?.message ?? e).slice(0, 200)}`, '?');
      finish(current + 1);
    });
    w.on('exit', () => finish(current + 1));
  });
}

const t0 = performance.now();
const dir = mkdtempSync(join(tmpdir(), 'quench-fuzz-'));
try {
  for (const kind of kinds) {
    const row = { cases: 0, error: 0, load: 0, crash: 0, hang: 0, silent: 0, unclear: 0 };
    rows.set(kind, row);
    let i = 0;
    while (i < perKind) i = await runRange(kind, i, perKind, join(dir, kind), row);
    process.stderr.write(`fuzz: ${kind} done (${row.cases} cases, ${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const head = ['kind', 'cases', 'clear errors', 'correct loads', 'crashes', 'hangs', 'silently accepted', 'unclear messages'];
const all: Row = { cases: 0, error: 0, load: 0, crash: 0, hang: 0, silent: 0, unclear: 0 };
const lines: (string | number)[][] = [...rows].map(([k, r]) => {
  for (const c of [...COLS, 'cases'] as const) all[c] += r[c];
  return [k, r.cases, r.error, r.load, r.crash, r.hang, r.silent, r.unclear];
});
lines.push(['total', all.cases, all.error, all.load, all.crash, all.hang, all.silent, all.unclear]);
const width = head.map((h, c) => Math.max(h.length, ...lines.map((l) => String(l[c]).length)));
const fmt = (l: (string | number)[]) => `| ${l.map((x, c) => (c === 0 ? String(x).padEnd(width[c]) : String(x).padStart(width[c]))).join(' | ')} |`;
console.log(`\nnpm run fuzz: seed ${seed}, ${all.cases} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
console.log(fmt(head));
console.log(`|${width.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const l of lines) console.log(fmt(l));
if (examples.length) console.log(`\nfirst problems:\n${examples.join('\n')}`);
const bad = all.crash + all.hang + all.silent + all.unclear;
process.exit(bad > 0 ? 1 : 0);
