// The page-side client of the engine worker (typed requests returning promises) and the store
// actions: the only code that writes engine events into the zustand store and persists runs, the
// model's files and the data in IndexedDB.
import type { AccuracyRequest, ExportFormat, KernelChoice, PretrainSpec, Request, ResultOf, RunSpec, WorkerEvent } from '../worker/protocol';
import { ATTENTION_TIMING_SHAPES, baselineKey, KERNEL_TIMING_SHAPES, useStudio } from './store';
import { deleteRun, forgetModel, loadRuns, loadSavedData, loadSavedModel, saveData, saveModel, saveRun, type StoredRun } from './db';
import type { PtqConfig } from '../engine/quant/ptq';
import type { Bits } from '../engine/quant/pack';
import { runLabel } from '../engine/workflow/spec';
import { resultRows, resultsCsv, type ResultRow } from '../engine/workflow/results';
import { describeGgufReport } from '../engine/workflow/export';

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
    this.worker = new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module' });
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
        s.setProgress({ label: e.label, done: e.done, total: e.total, etaSeconds: e.etaSeconds, queue: queueProgress(e.etaSeconds), startedAt: s.progress?.label === e.label ? s.progress.startedAt : Date.now() });
        break;
      case 'step': {
        const run = s.runs.find((r) => r.id === e.runId);
        if (!run) break;
        const next: StoredRun = { ...run, status: 'running', metrics: [...run.metrics, e.metrics] };
        s.upsertRun(next);
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
      s.setGpu(await this.request('init'));
    } catch (e) {
      s.setGpuError((e as Error).message);
      return;
    }
    await restoreKernels();
    await restoreSession();
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

/** The adapter a kernel choice was measured on: a choice applies again only on the same one. */
export function adapterKey(g: { vendor: string; architecture: string; device: string; description: string }): string {
  return [g.vendor, g.architecture, g.device, g.description].join(' | ');
}

/** After start-up: the kernels chosen on this adapter before (by timing them), else its defaults. */
async function restoreKernels(): Promise<void> {
  const s = useStudio.getState();
  const saved = s.settings.kernels;
  const mine = saved && s.gpu && saved.adapter === adapterKey(s.gpu) ? saved.choice : null;
  try {
    s.setKernels(await engine().request('setKernels', { choice: mine }));
  } catch (e) {
    // a stored choice this adapter no longer runs (a driver update, say): forget it, use the defaults
    s.log(`kernel choice not applied, back to the adapter's defaults: ${(e as Error).message}`);
    s.setNotice(`The matmul kernels chosen on this GPU before could not be applied; using its defaults (${(e as Error).message})`);
    s.updateSettings((st) => ({ ...st, kernels: null }));
    try {
      s.setKernels(await engine().request('setKernels', { choice: null }));
    } catch (e2) {
      s.log(`kernel defaults not read: ${(e2 as Error).message}`);
    }
  }
  if (useStudio.getState().settings.tuneKernelShapes) await setKernelTuning(true);
}

/** Runs tune the matmul kernels to their own shapes first, or not (kept across reloads); null: read
 *  the kernel state again (the per-shape choices runs have made). */
export async function setKernelTuning(on: boolean | null): Promise<void> {
  const s = useStudio.getState();
  try {
    s.setKernels(await engine().request('setShapeTuning', { on }));
    if (on !== null) s.updateSettings((st) => ({ ...st, tuneKernelShapes: on }));
  } catch (e) {
    s.log(`kernel tuning not set: ${(e as Error).message}`);
  }
}

/** Time every matmul variant this adapter runs (GPU panel), at the chosen size. */
export async function timeKernels(): Promise<void> {
  const s = useStudio.getState();
  s.setKernelTimes({ status: 'running' });
  try {
    s.setKernelTimes({ status: 'done', result: await engine().request('timeKernels', { shapes: KERNEL_TIMING_SHAPES[s.settings.kernelTiming], attentionShapes: ATTENTION_TIMING_SHAPES[s.settings.kernelTiming] }) });
  } catch (e) {
    s.setKernelTimes({ status: 'failed', message: (e as Error).message });
  } finally {
    useStudio.getState().setProgress(null);
  }
}

/** Make `choice` what every run on this adapter uses (null: its defaults); kept across reloads. */
export async function chooseKernels(choice: KernelChoice | null): Promise<void> {
  const s = useStudio.getState();
  try {
    const k = await engine().request('setKernels', { choice });
    s.setKernels(k);
    s.updateSettings((st) => ({ ...st, kernels: choice && s.gpu ? { adapter: adapterKey(s.gpu), choice } : null }));
  } catch (e) {
    s.log(`kernel choice not applied: ${(e as Error).message}`);
    s.setNotice(`kernel choice not applied: ${(e as Error).message}`);
  }
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

/** After a reload: the last model (or the bundled default), the last data, every stored run, and
 *  the finished runs' students back in the worker. */
async function restoreSession(): Promise<void> {
  const s = useStudio.getState();
  const notes: string[] = [];
  const saved = await loadSavedModel().catch(() => null);
  let loaded = false;
  if (saved && saved.files.length > 0) {
    loaded = await loadModelFiles(saved.files, { name: saved.name, restoring: true });
    notes.push(loaded ? `restored the last model, ${saved.name}` : `the last model (${saved.name}) could not be restored; drop its files again`);
  } else if (saved?.tooLarge) notes.push(`the last model (${saved.name}, ${(saved.tooLarge / 2 ** 20).toFixed(0)} MiB) is too large to keep in the browser: drop its files again`);
  if (!loaded && !(await loadDefaultModel())) await loadTinyModel();
  const data = await loadSavedData().catch(() => null);
  if (data && loaded) {
    await setDataText(data.text, data.name, false);
    notes.push(`restored the data, ${data.name}`);
  } else if (loaded) await loadDefaultData();
  try {
    // runs interrupted by a reload are marked stopped; their metrics so far are kept
    const runs = (await loadRuns((m) => notes.push(m))).map((r) => (r.status === 'running' || r.status === 'queued' ? { ...r, status: 'stopped' as const } : r));
    useStudio.getState().setRuns(runs);
    for (const r of runs) if (r.studentFiles && r.context.model === runContext().model) await engine().request('loadStudent', { runId: r.id, label: studentLabel(r), files: r.studentFiles }).catch((e) => notes.push(`student of run ${r.id.slice(-5)}: ${(e as Error).message}`));
    if (runs.length) notes.push(`${runs.length} saved run${runs.length > 1 ? 's' : ''}`);
  } catch (e) {
    notes.push(`could not read saved runs: ${(e as Error).message}`);
  }
  await refreshModels();
  s.setRestoreNote(notes.length ? notes.join('; ') : null);
}

const studentLabel = (r: StoredRun) => `KD-QAT student ${r.label} (${r.summary?.steps ?? r.metrics.length} steps, run ${r.id.slice(-5)})`;

export async function refreshModels(): Promise<void> {
  try {
    useStudio.getState().setModels(await engine().request('models'));
  } catch {
    /* no model yet */
  }
}

export async function loadModelFiles(files: File[], opts: { name?: string; restoring?: boolean } = {}): Promise<boolean> {
  const s = useStudio.getState();
  s.setModelLoading(true);
  try {
    const card = await engine().request('loadFiles', { files, name: opts.name, byteTokenizer: s.settings.byteTokenizer });
    s.setModel(card);
    if (!opts.restoring) await saveModel({ name: card.name, files, savedAt: Date.now() }).catch(() => false);
    await refreshData();
    await refreshModels();
    return true;
  } catch (e) {
    s.setModel(null, (e as Error).message);
    return false;
  } finally {
    s.setModelLoading(false);
    useStudio.getState().setProgress(null); // the weights' reading progress
  }
}

async function refreshData(): Promise<void> {
  const d = await engine().request('dataInfo').catch(() => null);
  if (d) useStudio.getState().setData(d);
}

/** The files of the bundled default model, as the page serves them; its size is its card's
 *  (card.json `parameters`, written by `npm run make-default-model`), never written here. */
export const DEFAULT_MODEL = { base: '/models/default/', files: ['config.json', 'model.safetensors', 'tokenizer.json'], data: 'data.txt', title: 'Moby-Dick + State of the Union', corpus: 'Moby-Dick + State of the Union addresses' };

/** The fields of the default model's card.json the studio shows. */
export interface DefaultModelCard {
  parameters: number;
  training: { steps: number; batch: number; seq: number };
  heldOut: { ppl: number };
  unigram: { ppl: number };
}

let defaultCard: Promise<DefaultModelCard | null> | null = null;
/** The bundled model's card.json (fetched once; null when the page does not serve it). */
export function defaultModelCard(): Promise<DefaultModelCard | null> {
  defaultCard ??= fetch(DEFAULT_MODEL.base + 'card.json').then((x) => (x.ok ? (x.json() as Promise<DefaultModelCard>) : null)).catch(() => null);
  return defaultCard;
}

/** A parameter count as a short label: 150960 -> "0.15M", 2.6e6 -> "2.6M". */
export const paramsLabel = (n: number) => `${Number((n / 1e6).toPrecision(2))}M`;

/** "Moby-Dick + State of the Union, 0.15M" (the size from the card, when it is known). */
export function defaultModelLabel(card: Pick<DefaultModelCard, 'parameters'> | null): string {
  return card && Number.isFinite(card.parameters) ? `${DEFAULT_MODEL.title}, ${paramsLabel(card.parameters)}` : DEFAULT_MODEL.title;
}

/** Load the bundled default teacher and its corpus's text (Moby-Dick + State of the Union) as the data; false when unavailable. */
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
    const c = await defaultModelCard();
    const card = await engine().request('loadFiles', { files, name: `quench-default (${defaultModelLabel(c)})` });
    await forgetModel().catch(() => {});
    // the data first, so that a shown model card means everything is in place
    await loadDefaultData();
    // its card's headline numbers, shown on the Model tab
    const about = c?.heldOut ? `pretrained here on ${DEFAULT_MODEL.corpus}: ${c.training.steps} steps of ${c.training.batch}×${c.training.seq} tokens; held-out perplexity ${c.heldOut.ppl.toFixed(1)} (unigram ${c.unigram.ppl.toFixed(0)})` : undefined;
    s.setModel({ ...card, about });
    await refreshModels();
    return true;
  } catch (e) {
    s.log(`default model not loaded: ${(e as Error).message}`);
    return false;
  } finally {
    s.setModelLoading(false);
  }
}

/** The bundled corpus text as the data (not kept in IndexedDB: the page serves it): training
 *  paragraphs of the default model's corpus, then held-out ones (the studio's held-out split). */
async function loadDefaultData(): Promise<void> {
  const r = await fetch(DEFAULT_MODEL.base + DEFAULT_MODEL.data);
  if (r.ok) await setDataText(await r.text(), `${DEFAULT_MODEL.corpus} excerpt (${DEFAULT_MODEL.base}${DEFAULT_MODEL.data})`, false);
  await saveData(null).catch(() => {});
}

/** A tiny random LLaMA with a byte tokenizer: instant, for trying the controls. */
export async function loadTinyModel(): Promise<void> {
  const s = useStudio.getState();
  try {
    s.setModel(await engine().request('createTiny'));
    await forgetModel().catch(() => {});
    if (!useStudio.getState().data) await loadDefaultData();
    else await refreshData();
    await refreshModels();
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
    await refreshData();
    await refreshModels();
  } catch (e) {
    useStudio.getState().setPretrain({ status: 'failed', message: (e as Error).message, points: useStudio.getState().pretrain.points });
  } finally {
    useStudio.getState().setProgress(null);
  }
}

/** Score every available model (teacher, PTQ baselines, students) on a task file. */
export async function runAccuracy(req: Omit<AccuracyRequest, 'models'>): Promise<void> {
  const s = useStudio.getState();
  s.setAccuracyJob({ status: 'running' });
  try {
    const models = (await engine().request('models')).map((m) => m.key);
    useStudio.getState().setAccuracy(await engine().request('accuracy', { req: { ...req, models } }));
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

function saveFiles(files: Record<string, Uint8Array>, prefix = ''): void {
  for (const [name, bytes] of Object.entries(files)) saveBlob(prefix + name, new Blob([bytes as BlobPart]));
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
    await refreshModels();
  } catch (e) {
    s.setQuant({ status: 'failed', message: (e as Error).message });
  } finally {
    s.setProgress(null);
  }
}

/** FP, PTQ round-to-nearest and PTQ clip search for one bits/group on the held-out text. */
export async function computeBaselines(q: { bits: Bits; group: number; sym: boolean }): Promise<void> {
  const s = useStudio.getState();
  s.setBaselinesJob({ status: 'running' });
  try {
    s.setBaselines(baselineKey(q), await engine().request('baselines', q));
    s.setBaselinesJob({ status: 'idle' });
    await refreshModels();
  } catch (e) {
    s.setBaselinesJob({ status: 'failed', message: (e as Error).message });
  } finally {
    s.setProgress(null);
  }
}

/** Save an export's files and say what the format did (GGUF's rounding, warnings). */
function saveExport(r: import('../engine/workflow/export').ExportResult, prefix: string): void {
  saveFiles(r.files, prefix);
  const what = r.gguf ? describeGgufReport(r.gguf) : `${Object.keys(r.files).join(', ')}`;
  useStudio.getState().setNotice(`exported ${prefix.replace(/-$/, '')}: ${what}${r.warnings.length ? ` (${r.warnings.join('; ')})` : ''}`);
}

export async function downloadExport(format: ExportFormat): Promise<void> {
  saveExport(await engine().request('export', { format }), 'ptq-');
}

/** The compare queue in flight: which run, and the seconds per step measured so far. */
let queue: { ids: string[]; index: number } | null = null;

function queueProgress(etaThisRun: number | null | undefined): { index: number; total: number; etaSeconds: number | null } | undefined {
  if (!queue) return undefined;
  const runs = useStudio.getState().runs;
  const cur = runs.find((r) => r.id === queue!.ids[queue!.index]);
  const done = cur?.metrics.length ?? 0;
  // the rest of the queue at this run's measured rate (same model, data and shape)
  const rest = queue.ids.slice(queue.index + 1).reduce((n, id) => n + (runs.find((r) => r.id === id)?.spec.steps ?? 0), 0);
  const perStep = etaThisRun && cur && cur.spec.steps > done ? etaThisRun / (cur.spec.steps - done) : null;
  return { index: queue.index + 1, total: queue.ids.length, etaSeconds: perStep !== null && etaThisRun != null ? etaThisRun + perStep * rest : null };
}

/** Queue runs and execute them in turn (identical seed and data; they differ in their spec). The
 *  PTQ baselines of their bits/group are computed first, so the results view has its references. */
export async function runQueue(specs: RunSpec[]): Promise<void> {
  const s = useStudio.getState();
  const batchId = `${Date.now()}`;
  const context = runContext();
  const runs: StoredRun[] = specs.map((spec, index) => ({
    id: `${batchId}-${index}-${Math.random().toString(36).slice(2, 7)}`, spec, label: runLabel(spec), context, status: 'queued', metrics: [], createdAt: Date.now() + index,
    batch: specs.length > 1 ? { id: batchId, index, total: specs.length } : undefined,
  }));
  for (const r of runs) {
    s.upsertRun(r);
    await saveRun(r);
  }
  for (const q of new Set(specs.filter((x) => x.kind === 'kdqat').map((x) => baselineKey(x))))
    if (!useStudio.getState().baselines[q]) {
      const sp = specs.find((x) => baselineKey(x) === q)!;
      await computeBaselines({ bits: sp.bits, group: sp.group, sym: sp.sym });
    }
  queue = { ids: runs.map((r) => r.id), index: 0 };
  try {
    for (const [i, r] of runs.entries()) {
      queue.index = i;
      if (stopQueue) break;
      await trainRun(r);
    }
  } finally {
    queue = null;
    stopQueue = false;
    useStudio.getState().setProgress(null);
  }
}

let stopQueue = false;

async function trainRun(r: StoredRun): Promise<void> {
  const cur = () => useStudio.getState().runs.find((x) => x.id === r.id)!;
  const resume = r.checkpoint;
  useStudio.getState().upsertRun({ ...cur(), status: 'running', checkpoint: undefined, error: undefined });
  try {
    const res = await engine().request('train', { req: { id: r.id, spec: r.spec }, resume });
    let next: StoredRun;
    if (res.status === 'paused') next = { ...cur(), status: 'paused', checkpoint: res.checkpoint ?? undefined, metrics: res.checkpoint?.meta.history ?? cur().metrics };
    else next = { ...cur(), status: res.status === 'stopped' ? 'stopped' : 'done', summary: res.summary ?? undefined, studentFiles: res.studentFiles ?? undefined };
    useStudio.getState().upsertRun(next);
    await saveRun(next);
  } catch (e) {
    // a failed run keeps its checkpoint (if it had one) so nothing is lost
    const failed: StoredRun = { ...cur(), status: 'failed', error: (e as Error).message, checkpoint: resume };
    useStudio.getState().upsertRun(failed);
    await saveRun(failed);
  }
  await refreshModels();
}

/** Auto-freeze: probes, candidates and successive halving in the worker, then the chosen run. */
export async function runAutoFreeze(spec: RunSpec): Promise<void> {
  const s = useStudio.getState();
  const key = baselineKey(spec);
  if (!s.baselines[key]) await computeBaselines({ bits: spec.bits, group: spec.group, sym: spec.sym });
  const r: StoredRun = { id: `${Date.now()}-auto-${Math.random().toString(36).slice(2, 7)}`, spec, label: `w${spec.bits}g${spec.group} auto`, context: runContext(), status: 'running', metrics: [], createdAt: Date.now() };
  useStudio.getState().upsertRun(r);
  await saveRun(r);
  const cur = () => useStudio.getState().runs.find((x) => x.id === r.id)!;
  try {
    const res = await engine().request('autoFreeze', { req: { id: r.id, spec } });
    const next: StoredRun = { ...cur(), spec: res.spec, label: `w${spec.bits}g${spec.group} auto → ${res.auto.chosen}`, status: res.status === 'stopped' ? 'stopped' : 'done', summary: res.summary ?? undefined, studentFiles: res.studentFiles ?? undefined, metrics: res.history, auto: res.auto };
    useStudio.getState().upsertRun(next);
    await saveRun(next);
  } catch (e) {
    const failed: StoredRun = { ...cur(), status: 'failed', error: (e as Error).message };
    useStudio.getState().upsertRun(failed);
    await saveRun(failed);
  } finally {
    useStudio.getState().setProgress(null);
    await refreshModels();
  }
}

/** Continue a paused run from its checkpoint (also after a reload). */
export async function resumeRun(id: string): Promise<void> {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r || !r.checkpoint) return;
  const now = runContext();
  const was = r.context;
  if (was.model !== now.model || was.data !== now.data) {
    const error = `to resume, load the same teacher and data first: it ran on ${was.model} with ${was.data}; loaded now: ${now.model} with ${now.data}`;
    useStudio.getState().upsertRun({ ...r, error });
    return;
  }
  // the checkpoint's own history is the truth (metrics saved after it would be recorded twice)
  const kept: StoredRun = { ...r, error: undefined, metrics: r.checkpoint.meta.history };
  useStudio.getState().upsertRun(kept);
  queue = { ids: [id], index: 0 };
  try {
    await trainRun(kept);
  } finally {
    queue = null;
    useStudio.getState().setProgress(null);
  }
}

export async function removeRun(id: string): Promise<void> {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (r?.status === 'running') throw new Error('stop the run before deleting it');
  await deleteRun(id);
  useStudio.getState().removeRun(id);
}

/** What a run depends on besides its spec: the loaded teacher and the training data. */
export function runContext(): { model: string; data: string } {
  const s = useStudio.getState();
  const m = s.model;
  return {
    model: m ? `${m.name} (${m.layers} layers, dim ${m.dim}, vocabulary ${m.vocab})` : 'no model',
    data: s.data ? `${s.data.name} (${s.data.documents} documents)` : 'no data',
  };
}

async function setDataText(text: string, name: string, persist: boolean): Promise<void> {
  const s = useStudio.getState();
  try {
    s.setData(await engine().request('setData', { text, name }));
    if (persist) await saveData({ name, text }).catch(() => {});
  } catch (e) {
    s.setData(null, (e as Error).message);
  }
}

export async function loadDataFile(file: File): Promise<void> {
  await setDataText(await file.text(), file.name, true);
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
  stopQueue = queue !== null;
  void engine().request('stop');
}

/** A run's student as files: the saved quantized folder, or ONNX made by the worker. */
export async function exportRun(id: string, format: ExportFormat): Promise<void> {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r?.studentFiles) throw new Error('this run has no student (it did not finish, or it is the FP fine-tune)');
  const prefix = `student-${r.label.replace(/[^\w-]+/g, '_')}-${r.id.slice(-5)}-`;
  if (format === 'safetensors') return saveFiles(r.studentFiles, prefix);
  const models = await engine().request('models');
  if (!models.some((m) => m.key === `run:${id}`)) await engine().request('loadStudent', { runId: id, label: studentLabel(r), files: r.studentFiles });
  saveExport(await engine().request('exportAs', { key: `run:${id}`, format }), prefix);
}

/** A run's PyTorch recipe (quench export-recipe's folder), for when it outgrows the tab. */
export async function downloadRecipe(id: string): Promise<void> {
  const r = useStudio.getState().runs.find((x) => x.id === id);
  if (!r) return;
  const now = runContext();
  if (r.context.model !== now.model || r.context.data !== now.data) throw new Error(`the recipe needs the run's teacher and data loaded: it ran on ${r.context.model} with ${r.context.data}`);
  const files = await engine().request('recipe', { spec: r.spec });
  saveFiles(files, `recipe-${r.id.slice(-5)}-`);
  useStudio.getState().setNotice(`recipe of ${r.label}: ${Object.keys(files).join(', ')} — put them in one folder (names after the prefix; teacher/ files in teacher/) and run python3 kdqat.py --out OUT (README.md inside has the torchrun commands)`);
}

/** A model (teacher, PTQ baseline, student) as files. */
export async function exportModelAs(key: string, format: ExportFormat): Promise<void> {
  saveExport(await engine().request('exportAs', { key, format }), `${key.replace(/[^\w-]+/g, '_')}-`);
}

/** The results rows for every bits/group with baselines, as the CLI's results.json. */
export function currentResults(): ResultRow[] {
  const s = useStudio.getState();
  const context = runContext();
  const finished = s.runs.filter((r) => r.summary && (r.status === 'done' || r.status === 'stopped') && r.context.model === context.model && r.context.data === context.data);
  const acc = (key: string) => {
    const out: Record<string, import('../engine/eval/multiple-choice').McResult> = {};
    for (const a of s.accuracy) if (a.results[key]) out[a.task] = a.results[key];
    return Object.keys(out).length ? out : undefined;
  };
  return Object.entries(s.baselines).flatMap(([key, b]) =>
    resultRows(b, finished.map((r) => ({ id: r.id, spec: r.spec, summary: r.summary!, accuracy: acc(`run:${r.id}`) })), { fp: acc('teacher'), 'ptq-rtn': acc(`ptq-rtn:${key}`), 'ptq-clip': acc(`ptq-clip:${key}`) }),
  );
}

export function downloadResultsJson(): void {
  const s = useStudio.getState();
  const rows = currentResults();
  const runs = s.runs.map((r) => ({ id: r.id, label: r.label, status: r.status, context: r.context, spec: r.spec, summary: r.summary, metrics: r.metrics, error: r.error }));
  // (s.data.eval names the held-out text and the protocol every perplexity here was measured with)
  saveBlob('quench-results.json', new Blob([JSON.stringify({ model: s.model, data: s.data, rows, runs, accuracy: s.accuracy }, null, 1)], { type: 'application/json' }));
}

export function downloadResultsCsv(): void {
  saveBlob('quench-results.csv', new Blob([resultsCsv(currentResults(), useStudio.getState().data?.eval)], { type: 'text/csv' }));
}

export async function downloadHeldOut(): Promise<void> {
  const h = await engine().request('heldOut');
  saveBlob('heldout.txt', new Blob([h.text], { type: 'text/plain' }));
}

/** Compress (prune → KD → PTQ → KD-QAT + CE-only baselines) in the worker, as `quench compress`. */
/** `accuracy`: a zero-shot task file every stage is scored on (the CLI's --tasks). */
export async function runCompressJob(accuracy?: Omit<AccuracyRequest, 'models'>): Promise<void> {
  const s = useStudio.getState();
  const c = s.settings.compress;
  s.setCompressJob({ status: 'running' });
  try {
    const result = await engine().request('compress', {
      req: {
        prune: { layers: c.layers > 0 ? c.layers : undefined, headsKeep: c.headsKeep, mlpKeep: c.mlpKeep },
        kd: { steps: c.kdSteps, batch: c.batch, seq: c.seq, lr: c.lr },
        qat: { bits: c.bits, group: c.group, steps: c.qatSteps },
        baselines: c.baselines,
        embedding: c.embedBits ? { bits: c.embedBits, group: 32 } : null,
        ...(accuracy ? { accuracy } : {}),
      },
    });
    useStudio.getState().setCompressJob({ status: 'done', result });
  } catch (e) {
    useStudio.getState().setCompressJob({ status: 'failed', message: (e as Error).message });
  } finally {
    useStudio.getState().setProgress(null);
  }
}

export async function downloadCompressed(stage: string): Promise<void> {
  saveFiles(await engine().request('compressedFiles', { stage }), `compress-${stage}-`);
}

/** The distilled FP student of the last compress run becomes the teacher (to quantize and distil). */
export async function useCompressedAsTeacher(stage = 'kd'): Promise<void> {
  const f = await engine().request('compressedFiles', { stage });
  const files = Object.entries(f).map(([n, b]) => new File([b as BlobPart], n));
  await loadModelFiles(files, { name: `compressed student (${stage})` });
}
