// The typed message protocol between the studio page and the engine worker. Requests carry an id;
// the worker answers each with exactly one 'result' or 'error' event of the same id, and may send
// any number of 'progress' events for it (rate-limited by the worker) plus unsolicited events
// ('gpuError', 'log').
import type { GpuInfo } from '../engine/gpu/runtime';
import type { OnnxCheckResult } from '../engine/quant/onnx-check';
import type { KernelBenchRow } from '../engine/quant/kernel-bench';
export type { OnnxCheckResult, KernelBenchRow };

export type Request =
  | { id: number; type: 'init' }
  | { id: number; type: 'selfTest' }
  | { id: number; type: 'onnxCheck'; providers: string[] }
  | { id: number; type: 'benchKernels' };

export interface SelfTestResult {
  kernels: { name: string; maxAbsError: number; ok: boolean }[];
  ms: number;
}

export type ResultOf<R extends Request['type']> = R extends 'init' ? GpuInfo : R extends 'selfTest' ? SelfTestResult : R extends 'onnxCheck' ? OnnxCheckResult[] : R extends 'benchKernels' ? KernelBenchRow[] : never;

export type WorkerEvent =
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string }
  | { type: 'progress'; id: number; done: number; total: number; label: string }
  | { type: 'gpuError'; message: string }
  | { type: 'log'; message: string };
