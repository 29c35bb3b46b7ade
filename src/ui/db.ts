// Runs persist in IndexedDB: settings, metrics and results survive a reload.
import type { RunSpec, RunSummary, StepMetrics, TrainCheckpoint } from '../worker/protocol';

export interface StoredRun {
  id: string;
  spec: RunSpec;
  scheme: string;
  status: 'queued' | 'running' | 'paused' | 'done' | 'stopped' | 'failed';
  /** set while paused: resume continues from here, also after a reload */
  checkpoint?: TrainCheckpoint;
  metrics: StepMetrics[];
  summary?: RunSummary;
  error?: string;
  createdAt: number;
}

const DB = 'quench';
const STORE = 'runs';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const r = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(r.result);
    t.onerror = () => reject(t.error);
  });
}

export const saveRun = (r: StoredRun) => tx('readwrite', (s) => s.put(r)).then(() => undefined);
export const loadRuns = () => tx<StoredRun[]>('readonly', (s) => s.getAll() as IDBRequest<StoredRun[]>).then((rs) => rs.sort((a, b) => a.createdAt - b.createdAt));
export const deleteRun = (id: string) => tx('readwrite', (s) => s.delete(id)).then(() => undefined);
