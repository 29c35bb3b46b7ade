// One fuzz worker: classifies cases [from, to) of a kind, reporting each start (the runner's
// watchdog) and each outcome.
import { parentPort, workerData } from 'node:worker_threads';
import { caseAt, classify, type Kind } from './cases';

const { kind, seed, from, to, dir } = workerData as { kind: Kind; seed: number; from: number; to: number; dir: string };
for (let i = from; i < to; i++) {
  parentPort!.postMessage({ type: 'start', i });
  const c = caseAt(kind, seed, i);
  const r = await classify(c, dir);
  parentPort!.postMessage({ type: 'done', i, outcome: r.outcome, detail: r.detail, mutation: c.mutation, ms: r.ms });
}
parentPort!.postMessage({ type: 'end', i: to });
