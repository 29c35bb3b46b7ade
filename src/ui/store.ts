// Studio state (zustand). Components read one value per selector; only the worker bridge writes
// engine events here.
import { create } from 'zustand';
import type { GpuInfo } from '../engine/gpu/runtime';
import type { KernelBenchRow, OnnxCheckResult, SelfTestResult } from '../worker/protocol';

export type Tab = 'model' | 'quantize' | 'distill' | 'compare' | 'playground' | 'gpu';

export type OnnxCheckState = { status: 'idle' } | { status: 'running' } | { status: 'done'; result: OnnxCheckResult[] } | { status: 'failed'; message: string };
export type KernelBenchState = { status: 'idle' } | { status: 'running' } | { status: 'done'; result: KernelBenchRow[] } | { status: 'failed'; message: string };
export type SelfTestState = { status: 'idle' } | { status: 'running' } | { status: 'done'; result: SelfTestResult } | { status: 'failed'; message: string };

interface StudioState {
  tab: Tab;
  gpu: GpuInfo | null;
  gpuError: string | null;
  selfTest: SelfTestState;
  onnxCheck: OnnxCheckState;
  kernelBench: KernelBenchState;
  progress: { label: string; done: number; total: number } | null;
  logs: string[];
  setTab(t: Tab): void;
  setGpu(g: GpuInfo): void;
  setGpuError(m: string): void;
  setSelfTest(s: SelfTestState): void;
  setOnnxCheck(s: OnnxCheckState): void;
  setKernelBench(s: KernelBenchState): void;
  setProgress(p: StudioState['progress']): void;
  log(m: string): void;
}

export const useStudio = create<StudioState>((set) => ({
  tab: 'gpu',
  gpu: null,
  gpuError: null,
  selfTest: { status: 'idle' },
  onnxCheck: { status: 'idle' },
  kernelBench: { status: 'idle' },
  progress: null,
  logs: [],
  setTab: (tab) => set({ tab }),
  setGpu: (gpu) => set({ gpu, gpuError: null }),
  setGpuError: (gpuError) => set({ gpuError }),
  setSelfTest: (selfTest) => set({ selfTest }),
  setOnnxCheck: (onnxCheck) => set({ onnxCheck }),
  setKernelBench: (kernelBench) => set({ kernelBench }),
  setProgress: (progress) => set({ progress }),
  log: (m) => set((s) => ({ logs: [...s.logs.slice(-199), m] })),
}));
