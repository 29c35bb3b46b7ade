// Studio state (zustand). Components read one value per selector; only the worker bridge writes
// engine events here.
import { create } from 'zustand';
import type { GpuInfo } from '../engine/gpu/runtime';
import type { AccuracyResult, KernelBenchRow, ModelCard, OnnxCheckResult, PretrainPoint, PretrainResult, QuantReport, SelfTestResult } from '../worker/protocol';
import type { StoredRun } from './db';

export type Tab = 'model' | 'pretrain' | 'quantize' | 'distill' | 'compare' | 'playground' | 'gpu';

type Job<T> = { status: 'idle' } | { status: 'running' } | { status: 'done'; result: T } | { status: 'failed'; message: string };
export type SelfTestState = Job<SelfTestResult>;
export type OnnxCheckState = Job<OnnxCheckResult[]>;
export type KernelBenchState = Job<KernelBenchRow[]>;
export type QuantState = Job<QuantReport>;
export type PretrainState = Job<PretrainResult> & { points: PretrainPoint[] };

interface StudioState {
  tab: Tab;
  gpu: GpuInfo | null;
  gpuError: string | null;
  selfTest: SelfTestState;
  onnxCheck: OnnxCheckState;
  kernelBench: KernelBenchState;
  model: ModelCard | null;
  modelError: string | null;
  modelLoading: boolean;
  quant: QuantState;
  pretrain: PretrainState;
  /** accuracy per task (latest evaluation of each task), for the compare table */
  accuracy: AccuracyResult[];
  accuracyJob: Job<null>;
  runs: StoredRun[];
  data: { name: string; documents: number; tokens: number } | null;
  dataError: string | null;
  progress: { label: string; done: number; total: number; startedAt?: number } | null;
  logs: string[];
  setTab(t: Tab): void;
  setGpu(g: GpuInfo): void;
  setGpuError(m: string): void;
  setSelfTest(s: SelfTestState): void;
  setOnnxCheck(s: OnnxCheckState): void;
  setKernelBench(s: KernelBenchState): void;
  setModel(m: ModelCard | null, error?: string | null): void;
  setModelLoading(b: boolean): void;
  setQuant(q: QuantState): void;
  setPretrain(p: PretrainState): void;
  setAccuracy(a: AccuracyResult): void;
  setAccuracyJob(j: Job<null>): void;
  addPretrainPoint(p: PretrainPoint): void;
  setRuns(r: StoredRun[]): void;
  setData(d: StudioState['data'], error?: string | null): void;
  upsertRun(r: StoredRun): void;
  setProgress(p: StudioState['progress']): void;
  log(m: string): void;
}

export const useStudio = create<StudioState>((set) => ({
  tab: 'model',
  gpu: null,
  gpuError: null,
  selfTest: { status: 'idle' },
  onnxCheck: { status: 'idle' },
  kernelBench: { status: 'idle' },
  model: null,
  modelError: null,
  modelLoading: false,
  quant: { status: 'idle' },
  pretrain: { status: 'idle', points: [] },
  accuracy: [],
  accuracyJob: { status: 'idle' },
  runs: [],
  data: null,
  dataError: null,
  progress: null,
  logs: [],
  setTab: (tab) => set({ tab }),
  setGpu: (gpu) => set({ gpu, gpuError: null }),
  setGpuError: (gpuError) => set({ gpuError }),
  setSelfTest: (selfTest) => set({ selfTest }),
  setOnnxCheck: (onnxCheck) => set({ onnxCheck }),
  setKernelBench: (kernelBench) => set({ kernelBench }),
  setModel: (model, modelError = null) => set(model ? { model, modelError, quant: { status: 'idle' }, accuracy: [] } : { modelError }),
  setModelLoading: (modelLoading) => set({ modelLoading }),
  setQuant: (quant) => set({ quant }),
  setPretrain: (pretrain) => set({ pretrain }),
  setAccuracy: (a) => set((s) => ({ accuracy: [...s.accuracy.filter((x) => x.task !== a.task), a] })),
  setAccuracyJob: (accuracyJob) => set({ accuracyJob }),
  addPretrainPoint: (p) => set((s) => ({ pretrain: { ...s.pretrain, points: [...s.pretrain.points, p] } })),
  setRuns: (runs) => set({ runs }),
  setData: (data, dataError = null) => set(data ? { data, dataError } : { dataError }),
  upsertRun: (r) => set((s) => ({ runs: s.runs.some((x) => x.id === r.id) ? s.runs.map((x) => (x.id === r.id ? r : x)) : [...s.runs, r] })),
  setProgress: (progress) => set({ progress }),
  log: (m) => set((s) => ({ logs: [...s.logs.slice(-199), m] })),
}));
