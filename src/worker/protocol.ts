// The typed message protocol between the studio page and the engine worker. Requests carry an id;
// the worker answers each with exactly one 'result' or 'error' event of the same id, and may send
// 'progress' and 'step' events for it (bounded: at most one per step or ~10 per second), plus
// unsolicited 'gpuError' / 'log' events.
import type { GpuInfo } from '../engine/gpu/runtime';
import type { OnnxCheckResult } from '../engine/quant/onnx-check';
import type { KernelBenchRow } from '../engine/quant/kernel-bench';
import type { AccuracyRequest, AccuracyResult, ModelCard, PretrainPoint, PretrainResult, PretrainSpec, QuantReport, RunSpec, RunSummary, TrainCheckpoint, TrainResult } from './studio-engine';
import type { PtqConfig } from '../engine/quant/ptq';
import type { StepMetrics } from '../engine/train/distill';
export type { AccuracyRequest, AccuracyResult, OnnxCheckResult, KernelBenchRow, ModelCard, PretrainPoint, PretrainResult, PretrainSpec, QuantReport, RunSpec, RunSummary, StepMetrics, TrainCheckpoint, TrainResult };

export type Request =
  | { id: number; type: 'init'; sampleText: string }
  | { id: number; type: 'selfTest' }
  | { id: number; type: 'onnxCheck'; providers: string[] }
  | { id: number; type: 'benchKernels' }
  | { id: number; type: 'createTiny' }
  | { id: number; type: 'loadFiles'; files: File[]; name?: string }
  | { id: number; type: 'pretrain'; spec: PretrainSpec }
  | { id: number; type: 'exportModel' }
  | { id: number; type: 'accuracy'; req: AccuracyRequest }
  | { id: number; type: 'quantize'; ptq: PtqConfig }
  | { id: number; type: 'export'; format: 'safetensors' | 'onnx' }
  | { id: number; type: 'train'; spec: RunSpec; resume?: TrainCheckpoint }
  | { id: number; type: 'stop' }
  | { id: number; type: 'pause' }
  | { id: number; type: 'setData'; text: string; name: string }
  | { id: number; type: 'teacherData'; sequences: number; tokens: number }
  | { id: number; type: 'generate'; which: 'teacher' | 'ptq' | 'student'; prompt: string; maxTokens: number; temperature: number };

export interface SelfTestResult {
  kernels: { name: string; maxAbsError: number; ok: boolean }[];
  ms: number;
}

export interface ResultMap {
  init: GpuInfo;
  selfTest: SelfTestResult;
  onnxCheck: OnnxCheckResult[];
  benchKernels: KernelBenchRow[];
  createTiny: ModelCard;
  loadFiles: ModelCard;
  pretrain: PretrainResult;
  exportModel: Record<string, Uint8Array>;
  accuracy: AccuracyResult;
  quantize: QuantReport;
  export: Record<string, Uint8Array>;
  train: TrainResult;
  stop: null;
  pause: null;
  setData: { name: string; documents: number; tokens: number };
  teacherData: { name: string; documents: number; tokens: number };
  generate: { tokens: number; tokensPerSec: number; available: boolean };
}
export type ResultOf<R extends Request['type']> = ResultMap[R];

export type WorkerEvent =
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string }
  | { type: 'progress'; id: number; done: number; total: number; label: string }
  | { type: 'step'; id: number; runId: string; metrics: StepMetrics }
  | { type: 'pretrainStep'; id: number; point: PretrainPoint }
  | { type: 'text'; id: number; text: string }
  | { type: 'gpuError'; message: string }
  | { type: 'log'; message: string };
