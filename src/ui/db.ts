// What the studio keeps in IndexedDB (through idb): runs with their full spec, metrics, summary,
// checkpoint and student files; the last model's files and the data text, so a reload brings them
// back. A stored run is checked when read back (a corrupted record is dropped with a message, never
// trained from).
import { openDB, type IDBPDatabase } from 'idb';
import type { Checkpoint } from '../engine/workflow/checkpoint';
import type { AutoFreezeSummary } from '../worker/protocol';
import type { RunSummary } from '../engine/workflow/run';
import { makeRunSpec, type RunSpec } from '../engine/workflow/spec';
import type { StepMetrics } from '../engine/train/distill';

export type RunStatus = 'queued' | 'running' | 'paused' | 'done' | 'stopped' | 'failed';

export interface StoredRun {
  id: string;
  spec: RunSpec;
  /** runLabel(spec) */
  label: string;
  /** the teacher and data it was started with; a paused run resumes only with the same */
  context: { model: string; data: string };
  status: RunStatus;
  /** set while paused: resume continues from here, also after a reload */
  checkpoint?: Checkpoint;
  metrics: StepMetrics[];
  summary?: RunSummary;
  /** the student as a quantized model folder (config.json, model.safetensors, tokenizer.json) */
  studentFiles?: Record<string, Uint8Array>;
  error?: string;
  createdAt: number;
  /** set for an auto-freeze run: the choice and its evidence */
  auto?: AutoFreezeSummary;
  /** which compare batch it belongs to ("run 2 of 3") */
  batch?: { id: string; index: number; total: number };
}

export interface SavedModel {
  name: string;
  files: File[];
  savedAt: number;
}

export interface SavedData {
  name: string;
  text: string;
}

const MAX_SAVED_MODEL_BYTES = 256 * 1024 * 1024;

let dbp: Promise<IDBPDatabase> | null = null;
function db(): Promise<IDBPDatabase> {
  dbp ??= openDB('quench', 2, {
    upgrade(d, old) {
      if (old < 1) d.createObjectStore('runs', { keyPath: 'id' });
      if (old < 2) d.createObjectStore('kv');
    },
  });
  return dbp;
}

export async function saveRun(r: StoredRun): Promise<void> {
  await (await db()).put('runs', r);
}

export async function deleteRun(id: string): Promise<void> {
  await (await db()).delete('runs', id);
}

/** Every stored run that passes the checks, oldest first; the others are reported and skipped. */
export async function loadRuns(report: (m: string) => void = () => {}): Promise<StoredRun[]> {
  const all = (await (await db()).getAll('runs')) as unknown[];
  const out: StoredRun[] = [];
  for (const raw of all) {
    const r = raw as StoredRun;
    try {
      if (!r || typeof r.id !== 'string' || !Array.isArray(r.metrics)) throw new Error('not a run record');
      r.spec = makeRunSpec(r.spec, `stored run ${r.id}: spec`);
      out.push(r);
    } catch (e) {
      report(`skipped a stored run that cannot be read (${(e as Error).message})`);
    }
  }
  return out.sort((a, b) => a.createdAt - b.createdAt);
}

/** Keep the model's files for the next visit (when small enough); false when not kept. */
export async function saveModel(m: SavedModel): Promise<boolean> {
  const bytes = m.files.reduce((s, f) => s + f.size, 0);
  const d = await db();
  if (bytes > MAX_SAVED_MODEL_BYTES) {
    await d.put('kv', { name: m.name, files: [], savedAt: m.savedAt, tooLarge: bytes }, 'model');
    return false;
  }
  await d.put('kv', m, 'model');
  return true;
}

export async function loadSavedModel(): Promise<(SavedModel & { tooLarge?: number }) | null> {
  return ((await (await db()).get('kv', 'model')) as (SavedModel & { tooLarge?: number }) | undefined) ?? null;
}

export async function forgetModel(): Promise<void> {
  await (await db()).delete('kv', 'model');
}

export async function saveData(d: SavedData | null): Promise<void> {
  if (d) await (await db()).put('kv', d, 'data');
  else await (await db()).delete('kv', 'data');
}

export async function loadSavedData(): Promise<SavedData | null> {
  return ((await (await db()).get('kv', 'data')) as SavedData | undefined) ?? null;
}
