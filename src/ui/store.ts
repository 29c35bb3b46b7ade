// Studio state (zustand). Components read one value per selector; only the actions (actions.ts)
// write engine events here. The forms (`settings`) persist in localStorage, so switching tabs or
// reloading never resets them; runs, the model's files and the data persist in IndexedDB (db.ts).
import { create } from 'zustand';
import { persist } from 'zustand/middleware';
import type { GpuInfo } from '../engine/gpu/runtime';
import type { AccuracyResult, Baselines, DataInfo, EvalDescription, KernelBenchRow, KernelChoice, KernelState, KernelTimings, ModelCard, ModelEntry, OnnxCheckResult, PretrainPoint, PretrainResult, PretrainSpec, QuantReport, SelfTestResult } from '../worker/protocol';
import type { StoredRun } from './db';
import { DEFAULT_PRETRAIN_SPEC, DEFAULT_RUN_SPEC, type RunSpec } from '../engine/workflow/spec';
import { ATTENTION_TIMING_SHAPES, KERNEL_TIMING_SHAPES } from '../engine/ops/kernel-choice';
import type { FreezeMask } from '../engine/train/freeze';
import type { Bits } from '../engine/quant/pack';
import type { TaskName } from '../engine/eval/tasks';

export type Tab = 'model' | 'pretrain' | 'compress' | 'quantize' | 'distill' | 'compare' | 'results' | 'analysis' | 'playground' | 'gpu';

type Job<T> = { status: 'idle' } | { status: 'running' } | { status: 'done'; result: T } | { status: 'failed'; message: string };
export type SelfTestState = Job<SelfTestResult>;
export type OnnxCheckState = Job<OnnxCheckResult[]>;
export type KernelBenchState = Job<KernelBenchRow[]>;
export type KernelTimingState = Job<KernelTimings>;
export { ATTENTION_TIMING_SHAPES, KERNEL_TIMING_SHAPES };
export type QuantState = Job<QuantReport>;
export type PretrainState = Job<PretrainResult> & { points: PretrainPoint[] };

/** Every form's values: the distill/compare and pretrain forms start at the workflow's defaults (the CLI's). */
export interface Settings {
  run: RunSpec;
  /** the Distill tab's freeze matrix (null: the scheme in `run`) */
  mask: FreezeMask | null;
  compareSchemes: string[];
  compareFpReference: boolean;
  quantize: { bits: Bits; group: number; sym: boolean; clipSearch: boolean };
  playground: { prompt: string; maxTokens: number; temperature: number; models: string[] };
  accuracy: { task: string; limit: number };
  byteTokenizer: boolean;
  pretrain: PretrainSpec;
  /** the Compress tab's form; `task` and `taskLimit`: the optional zero-shot task every stage is
   *  scored on (its files are chosen again after a reload) */
  compress: { layers: number; headsKeep: number; mlpKeep: number; kdSteps: number; batch: number; seq: number; lr: number; bits: Bits; group: number; qatSteps: number; baselines: boolean; embedBits: 0 | 4 | 8; task: TaskName; taskLimit: number };
  /** the GPU panel: the matmul kernels chosen by timing them on this adapter (applied again on
   *  load when the adapter is the same), and the timing size */
  kernels: { adapter: string; choice: KernelChoice } | null;
  kernelTiming: keyof typeof KERNEL_TIMING_SHAPES;
  /** runs tune the matmul kernels to their own shapes first (GPU panel) */
  tuneKernelShapes: boolean;
}

export const DEFAULT_SETTINGS: Settings = {
  run: DEFAULT_RUN_SPEC,
  mask: null,
  compareSchemes: ['none', 'ov'],
  compareFpReference: false,
  quantize: { bits: 4, group: 32, sym: false, clipSearch: false },
  playground: { prompt: 'Once upon a time', maxTokens: 64, temperature: 0, models: ['teacher'] },
  accuracy: { task: 'copa', limit: 100 },
  byteTokenizer: false,
  pretrain: DEFAULT_PRETRAIN_SPEC,
  compress: { layers: 0, headsKeep: 1, mlpKeep: 0.5, kdSteps: 300, batch: 8, seq: 128, lr: 2e-3, bits: 4, group: 32, qatSteps: 100, baselines: true, embedBits: 8, task: 'copa', taskLimit: 100 },
  kernels: null,
  kernelTiming: 'medium',
  tuneKernelShapes: false,
};

export interface ProgressState {
  label: string;
  done: number;
  total: number;
  startedAt?: number;
  etaSeconds?: number | null;
  /** "run 2 of 3" for a compare queue */
  queue?: { index: number; total: number; etaSeconds: number | null };
}

interface StudioState {
  tab: Tab;
  gpu: GpuInfo | null;
  gpuError: string | null;
  selfTest: SelfTestState;
  onnxCheck: OnnxCheckState;
  kernelBench: KernelBenchState;
  kernelTimes: KernelTimingState;
  /** what the engine's auto runs now, the adapter's own picks and its variants (from the worker) */
  kernels: KernelState | null;
  model: ModelCard | null;
  modelError: string | null;
  modelLoading: boolean;
  /** a line about what came back after a reload (or which file to drop again) */
  restoreNote: string | null;
  /** the last export's description (format, rounding, warnings) */
  notice: string | null;
  quant: QuantState;
  pretrain: PretrainState;
  /** PTQ baselines by setting key ("w4g32"), computed on the current model and data */
  baselines: Record<string, Baselines & { eval: EvalDescription }>;
  baselinesJob: Job<null>;
  /** accuracy per task (latest evaluation of each task) by model key */
  accuracy: AccuracyResult[];
  accuracyJob: Job<null>;
  models: ModelEntry[];
  compressJob: Job<import('../worker/protocol').CompressSummary>;
  runs: StoredRun[];
  data: DataInfo | null;
  dataError: string | null;
  progress: ProgressState | null;
  logs: string[];
  settings: Settings;
  setTab(t: Tab): void;
  setGpu(g: GpuInfo): void;
  setGpuError(m: string): void;
  setSelfTest(s: SelfTestState): void;
  setOnnxCheck(s: OnnxCheckState): void;
  setKernelBench(s: KernelBenchState): void;
  setKernelTimes(s: KernelTimingState): void;
  setKernels(k: KernelState | null): void;
  setModel(m: ModelCard | null, error?: string | null): void;
  setModelLoading(b: boolean): void;
  setRestoreNote(n: string | null): void;
  setNotice(n: string | null): void;
  setQuant(q: QuantState): void;
  setPretrain(p: PretrainState): void;
  setBaselines(key: string, b: Baselines & { eval: EvalDescription }): void;
  setBaselinesJob(j: Job<null>): void;
  setAccuracy(a: AccuracyResult): void;
  setAccuracyJob(j: Job<null>): void;
  setModels(m: ModelEntry[]): void;
  setCompressJob(j: Job<import('../worker/protocol').CompressSummary>): void;
  addPretrainPoint(p: PretrainPoint): void;
  setRuns(r: StoredRun[]): void;
  setData(d: DataInfo | null, error?: string | null): void;
  upsertRun(r: StoredRun): void;
  removeRun(id: string): void;
  setProgress(p: ProgressState | null): void;
  log(m: string): void;
  updateSettings(f: (s: Settings) => Settings): void;
  resetSettings(): void;
}

export const baselineKey = (b: { bits: number; group: number; sym: boolean }) => `w${b.bits}g${b.group}${b.sym ? ' sym' : ''}`;

export const useStudio = create<StudioState>()(
  persist(
    (set) => ({
      tab: 'model',
      gpu: null,
      gpuError: null,
      selfTest: { status: 'idle' },
      onnxCheck: { status: 'idle' },
      kernelBench: { status: 'idle' },
      kernelTimes: { status: 'idle' },
      kernels: null,
      model: null,
      modelError: null,
      modelLoading: false,
      restoreNote: null,
      notice: null,
      quant: { status: 'idle' },
      pretrain: { status: 'idle', points: [] },
      baselines: {},
      baselinesJob: { status: 'idle' },
      accuracy: [],
      accuracyJob: { status: 'idle' },
      models: [],
      compressJob: { status: 'idle' },
      runs: [],
      data: null,
      dataError: null,
      progress: null,
      logs: [],
      settings: DEFAULT_SETTINGS,
      setTab: (tab) => set({ tab }),
      setGpu: (gpu) => set({ gpu, gpuError: null }),
      setGpuError: (gpuError) => set({ gpuError }),
      setSelfTest: (selfTest) => set({ selfTest }),
      setOnnxCheck: (onnxCheck) => set({ onnxCheck }),
      setKernelBench: (kernelBench) => set({ kernelBench }),
      setKernelTimes: (kernelTimes) => set({ kernelTimes }),
      setKernels: (kernels) => set({ kernels }),
      // a new model invalidates what was computed on the previous one
      setModel: (model, modelError = null) => set(model ? { model, modelError, quant: { status: 'idle' }, accuracy: [], baselines: {} } : { modelError }),
      setModelLoading: (modelLoading) => set({ modelLoading }),
      setRestoreNote: (restoreNote) => set({ restoreNote }),
      setNotice: (notice) => set({ notice }),
      setQuant: (quant) => set({ quant }),
      setPretrain: (pretrain) => set({ pretrain }),
      setBaselines: (key, b) => set((s) => ({ baselines: { ...s.baselines, [key]: b } })),
      setBaselinesJob: (baselinesJob) => set({ baselinesJob }),
      setAccuracy: (a) => set((s) => ({ accuracy: [...s.accuracy.filter((x) => x.task !== a.task), a] })),
      setAccuracyJob: (accuracyJob) => set({ accuracyJob }),
      setModels: (models) => set({ models }),
      setCompressJob: (compressJob) => set({ compressJob }),
      addPretrainPoint: (p) => set((s) => ({ pretrain: { ...s.pretrain, points: [...s.pretrain.points, p] } })),
      setRuns: (runs) => set({ runs }),
      // new data invalidates the baselines (they were evaluated on the previous held-out text)
      setData: (data, dataError = null) => set(data ? { data, dataError, baselines: {} } : { dataError }),
      upsertRun: (r) => set((s) => ({ runs: s.runs.some((x) => x.id === r.id) ? s.runs.map((x) => (x.id === r.id ? r : x)) : [...s.runs, r] })),
      removeRun: (id) => set((s) => ({ runs: s.runs.filter((r) => r.id !== id) })),
      setProgress: (progress) => set({ progress }),
      log: (m) => set((s) => ({ logs: [...s.logs.slice(-199), m] })),
      updateSettings: (f) => set((s) => ({ settings: f(s.settings) })),
      resetSettings: () => set({ settings: DEFAULT_SETTINGS }),
    }),
    {
      name: 'quench-settings',
      version: 1,
      // only the forms and the open tab go to localStorage; runs and files go to IndexedDB
      partialize: (s) => ({ settings: s.settings, tab: s.tab }),
      merge: (persisted, current) => {
        const p = (persisted ?? {}) as Partial<StudioState>;
        const settings = { ...DEFAULT_SETTINGS, ...(p.settings ?? {}) };
        settings.compress = { ...DEFAULT_SETTINGS.compress, ...(p.settings?.compress ?? {}) };
        settings.pretrain = { ...DEFAULT_SETTINGS.pretrain, ...(p.settings?.pretrain ?? {}) };
        settings.accuracy = { ...DEFAULT_SETTINGS.accuracy, ...(p.settings?.accuracy ?? {}) };
        if (!(settings.kernelTiming in KERNEL_TIMING_SHAPES)) settings.kernelTiming = DEFAULT_SETTINGS.kernelTiming;
        settings.run = { ...DEFAULT_RUN_SPEC, ...(settings.run ?? {}), loss: { ...DEFAULT_RUN_SPEC.loss, ...(settings.run?.loss ?? {}) } };
        return { ...current, settings, tab: p.tab ?? current.tab };
      },
    },
  ),
);
