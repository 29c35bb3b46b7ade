// The page side of the worker protocol: typed requests returning promises. The bridge is the only
// code that writes engine events into the zustand store (and persists runs).
import type { AccuracyRequest, PretrainSpec, Request, ResultOf, RunSpec, WorkerEvent } from './protocol';
import { useStudio } from '../ui/store';
import { loadRuns, saveRun, type StoredRun } from '../ui/db';
import type { PtqConfig } from '../engine/quant/ptq';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class EngineBridge {
  private worker: Worker;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private lastSave = 0;
  /** per-request text stream listeners (generation) */
  readonly textListeners = new Map<number, (t: string) => void>();
  /** steps of the pretraining in flight (for its progress bar) */
  pretrainSteps = 0;

  constructor() {
    this.worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
    this.worker.onmessage = (ev: MessageEvent<WorkerEvent>) => this.onEvent(ev.data);
    this.worker.onerror = (ev) => useStudio.getState().setGpuError(`engine worker failed: ${ev.message}`);
  }

  private onEvent(e: WorkerEvent): void {
    const s = useStudio.getState();
    switch (e.type) {
      case 'result':
      case 'error': {
        const p = this.pending.get(e.id);
        this.pending.delete(e.id);
        this.textListeners.delete(e.id);
        if (e.type === 'result') p?.resolve(e.result);
        else p?.reject(new Error(e.message));
        break;
      }
      case 'progress':
        s.setProgress({ label: e.label, done: e.done, total: e.total, startedAt: s.progress?.label === e.label ? s.progress.startedAt : Date.now() });
        break;
      case 'step': {
        const run = s.runs.find((r) => r.id === e.runId);
        if (!run) break;
        const next: StoredRun = { ...run, status: 'running', metrics: [...run.metrics, e.metrics] };
        s.upsertRun(next);
        const label = `training ${run.scheme}`;
        s.setProgress({ label, done: e.metrics.step + 1, total: run.spec.steps, startedAt: s.progress?.label === label && s.progress.startedAt ? s.progress.startedAt : Date.now() });
        const now = Date.now();
        if (now - this.lastSave > 2000) {
          this.lastSave = now;
          void saveRun(next);
        }
        break;
      }
      case 'pretrainStep':
        s.addPretrainPoint(e.point);
        s.setProgress({ label: 'pretraining', done: e.point.step + 1, total: s.pretrain.status === 'running' ? this.pretrainSteps : e.point.step + 1, startedAt: s.progress?.label === 'pretraining' ? s.progress.startedAt : Date.now() });
        break;
      case 'text':
        this.textListeners.get(e.id)?.(e.text);
        break;
      case 'gpuError':
        s.setGpuError(e.message);
        break;
      case 'log':
        s.log(e.message);
        break;
    }
  }

  request<T extends Request['type']>(type: T, body: Omit<Extract<Request, { type: T }>, 'id' | 'type'> = {} as never, onText?: (t: string) => void): Promise<ResultOf<T>> {
    const id = this.nextId++;
    if (onText) this.textListeners.set(id, onText);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...body, id, type } as Request);
    });
  }

  async init(): Promise<void> {
    const s = useStudio.getState();
    try {
      const sampleText = await fetch('/sample.txt').then((r) => r.text());
      s.setGpu(await this.request('init', { sampleText }));
    } catch (e) {
      s.setGpuError((e as Error).message);
      return;
    }
    // the bundled default teacher (public/models/default) and its text; the tiny random model
    // when it cannot be fetched
    if (!(await loadDefaultModel())) await loadTinyModel();
    try {
      // runs interrupted by a reload are marked stopped; their metrics so far are kept
      const runs = (await loadRuns()).map((r) => (r.status === 'running' || r.status === 'queued' ? { ...r, status: 'stopped' as const } : r));
      s.setRuns(runs);
    } catch (e) {
      s.log(`could not read saved runs: ${(e as Error).message}`);
    }
  }

  async selfTest(): Promise<void> {
    const s = useStudio.getState();
    s.setSelfTest({ status: 'running' });
    try {
      s.setSelfTest({ status: 'done', result: await this.request('selfTest') });
    } catch (e) {
      s.setSelfTest({ status: 'failed', message: (e as Error).message });
    }
  }
}

let bridge: EngineBridge | null = null;
export function engine(): EngineBridge {
  if (!bridge) bridge = new EngineBridge();
  return bridge;
}

export async function runOnnxCheck(providers: string[]): Promise<void> {
  const s = useStudio.getState();
  s.setOnnxCheck({ status: 'running' });
  try {
    s.setOnnxCheck({ status: 'done', result: await engine().request('onnxCheck', { providers }) });
  } catch (e) {
    s.setOnnxCheck({ status: 'failed', message: (e as Error).message });
  }
}

export async function runKernelBench(): Promise<void> {
  const s = useStudio.getState();
  s.setKernelBench({ status: 'running' });
  try {
    s.setKernelBench({ status: 'done', result: await engine().request('benchKernels') });
  } catch (e) {
    s.setKernelBench({ status: 'failed', message: (e as Error).message });
  }
}

export async function loadModelFiles(files: File[]): Promise<void> {
  const s = useStudio.getState();
  s.setModelLoading(true);
  try {
    s.setModel(await engine().request('loadFiles', { files }));
  } catch (e) {
    s.setModel(null, (e as Error).message);
  } finally {
    s.setModelLoading(false);
  }
}

/** The files of the bundled default model, as the page serves them. */
export const DEFAULT_MODEL = { base: '/models/default/', files: ['config.json', 'model.safetensors', 'tokenizer.json'], data: 'data.txt', name: 'quench-default (Moby-Dick, 1M)' };

/** Load the bundled default teacher and its Moby-Dick text as the data; false when unavailable. */
export async function loadDefaultModel(): Promise<boolean> {
  const s = useStudio.getState();
  s.setModelLoading(true);
  try {
    const files = await Promise.all(
      DEFAULT_MODEL.files.map(async (f) => {
        const r = await fetch(DEFAULT_MODEL.base + f);
        if (!r.ok) throw new Error(`${DEFAULT_MODEL.base}${f}: HTTP ${r.status}`);
        return new File([await r.blob()], f);
      }),
    );
    const card = await engine().request('loadFiles', { files, name: DEFAULT_MODEL.name });
    // the data first, so that a shown model card means everything is in place
    const r = await fetch(DEFAULT_MODEL.base + DEFAULT_MODEL.data);
    if (r.ok) s.setData(await engine().request('setData', { text: await r.text(), name: `Moby-Dick excerpt (${DEFAULT_MODEL.data})` }));
    // its card's headline numbers, shown on the Model tab
    const c = await fetch(DEFAULT_MODEL.base + 'card.json').then((x) => (x.ok ? x.json() : null)).catch(() => null);
    const about = c?.heldOut ? `pretrained here on ${String(c.corpus).split(' (')[0]}: ${c.training.steps} steps of ${c.training.batch}×${c.training.seq} tokens; held-out perplexity ${c.heldOut.ppl.toFixed(1)} (unigram ${c.unigram.ppl.toFixed(0)})` : undefined;
    s.setModel({ ...card, about });
    return true;
  } catch (e) {
    s.log(`default model not loaded: ${(e as Error).message}`);
    return false;
  } finally {
    s.setModelLoading(false);
  }
}

/** A tiny random LLaMA with a byte tokenizer: instant, for trying the controls. */
export async function loadTinyModel(): Promise<void> {
  const s = useStudio.getState();
  try {
    s.setModel(await engine().request('createTiny'));
  } catch (e) {
    s.setModel(null, (e as Error).message);
  }
}

export async function runPretrain(spec: PretrainSpec): Promise<void> {
  const s = useStudio.getState();
  engine().pretrainSteps = spec.steps;
  s.setPretrain({ status: 'running', points: [] });
  try {
    const result = await engine().request('pretrain', { spec });
    useStudio.getState().setPretrain({ status: 'done', result, points: useStudio.getState().pretrain.points });
    useStudio.getState().setModel(result.card);
  } catch (e) {
    useStudio.getState().setPretrain({ status: 'failed', message: (e as Error).message, points: useStudio.getState().pretrain.points });
  } finally {
    useStudio.getState().setProgress(null);
  }
}

/** Score the teacher, the PTQ model and this session's finished runs on a task file. */
export async function runAccuracy(req: Omit<AccuracyRequest, 'runIds'>): Promise<void> {
  const s = useStudio.getState();
  s.setAccuracyJob({ status: 'running' });
  try {
    const runIds = s.runs.filter((r) => r.status === 'done').map((r) => r.id);
    useStudio.getState().setAccuracy(await engine().request('accuracy', { req: { ...req, runIds } }));
    useStudio.getState().setAccuracyJob({ status: 'idle' });
  } catch (e) {
    useStudio.getState().setAccuracyJob({ status: 'failed', message: (e as Error).message });
  } finally {
    useStudio.getState().setProgress(null);
  }
}

export async function downloadModel(): Promise<void> {
  saveFiles(await engine().request('exportModel'));
}

function saveFiles(files: Record<string, Uint8Array>): void {
  for (const [name, bytes] of Object.entries(files)) saveBlob(name, new Blob([bytes as BlobPart]));
}

/** Offer a blob to the user as a download named `name`. */
export function saveBlob(name: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function quantizeModel(ptq: PtqConfig): Promise<void> {
  const s = useStudio.getState();
  s.setQuant({ status: 'running' });
  try {
    s.setQuant({ status: 'done', result: await engine().request('quantize', { ptq }) });
  } catch (e) {
    s.setQuant({ status: 'failed', message: (e as Error).message });
  } finally {
    s.setProgress(null);
  }
}

export async function downloadExport(format: 'safetensors' | 'onnx'): Promise<void> {
  saveFiles(await engine().request('export', { format }));
}

/** Queue runs and execute them in turn (identical seed and data; they differ in their spec). */
export async function runQueue(specs: { spec: RunSpec; scheme: string }[]): Promise<void> {
  const s = useStudio.getState();
  const runs: StoredRun[] = specs.map(({ spec, scheme }) => ({ id: spec.id, spec, scheme, status: 'queued', metrics: [], createdAt: Date.now() }));
  for (const r of runs) {
    s.upsertRun(r);
    await saveRun(r);
  }
  for (const r of runs) await trainRun(r);
  useStudio.getState().setProgress(null);
}

async function trainRun(r: StoredRun): Promise<void> {
  const cur = () => useStudio.getState().runs.find((x) => x.id === r.id)!;
  const resume = r.checkpoint;
  useStudio.getState().upsertRun({ ...cur(), status: 'running', checkpoint: undefined });
  try {
    const res = await engine().request('train', { spec: r.spec, resume });
    let next: StoredRun;
    if (res.checkpoint) next = { ...cur(), status: 'paused', checkpoint: res.checkpoint };
    else next = { ...cur(), status: cur().metrics.length < r.spec.steps ? 'stopped' : 'done', summary: res.summary ?? undefined };
    useStudio.getState().upsertRun(next);
    await saveRun(next);
  } catch (e) {
    const failed: StoredRun = { ...cur(), status: 'failed', error: (e as Error).message };
    useStudio.getState().upsertRun(failed);
    await saveRun(failed);
  }
}

/** Continue a paused run from its checkpoint (also after a reload). */
export async function resumeRun(id: string): Promise<void> {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r || r.status !== 'paused' || !r.checkpoint) return;
  const now = runContext();
  const was = r.spec.context;
  if (was && (was.model !== now.model || was.data !== now.data)) {
    const error = `to resume, load the same teacher and data first: it ran on ${was.model} with ${was.data}; loaded now: ${now.model} with ${now.data}`;
    useStudio.getState().upsertRun({ ...r, error });
    return;
  }
  // metrics after the checkpoint's step (saved at most 2 s apart) would be recorded twice
  const kept: StoredRun = { ...r, error: undefined, metrics: r.metrics.filter((m) => m.step < r.checkpoint!.step) };
  useStudio.getState().upsertRun(kept);
  await trainRun(kept);
  useStudio.getState().setProgress(null);
}

/** What a run depends on besides its spec: the loaded teacher and the training data. */
export function runContext(): { model: string; data: string } {
  const s = useStudio.getState();
  const m = s.model;
  return {
    model: m ? `${m.name} (${m.layers} layers, dim ${m.dim}, vocabulary ${m.vocab})` : 'no model',
    data: s.data ? `${s.data.name} (${s.data.documents} documents, ${s.data.tokens} tokens)` : 'the bundled sample text',
  };
}

export async function loadDataFile(file: File): Promise<void> {
  const s = useStudio.getState();
  try {
    s.setData(await engine().request('setData', { text: await file.text(), name: file.name }));
  } catch (e) {
    s.setData(null, (e as Error).message);
  }
}

export async function sampleTeacherData(sequences: number, tokens: number): Promise<void> {
  const s = useStudio.getState();
  try {
    s.setData(await engine().request('teacherData', { sequences, tokens }));
  } catch (e) {
    s.setData(null, (e as Error).message);
  } finally {
    s.setProgress(null);
  }
}

export function pauseTraining(): void {
  void engine().request('pause');
}

export function stopTraining(): void {
  void engine().request('stop');
}
