// The typed message protocol between the studio page and the engine worker. Requests carry an id;
// the worker answers each with exactly one 'result' or 'error' event of the same id, and may send
// 'progress' and 'step' events for it (bounded: at most one per step or ~10 per second), plus
// unsolicited 'gpuError' / 'log' events. The work itself is the workflow layer's
// (src/engine/workflow), the same the CLI runs.
import type { GpuInfo } from '../engine/gpu/runtime';
import type { OnnxCheckResult } from '../engine/quant/onnx-check';
import type { KernelBenchRow } from '../engine/quant/kernel-bench';
import type { AttentionShape, KernelChoice, KernelState, KernelTimings } from '../engine/ops/kernel-choice';
import type { AccuracyRequest, AccuracyResult, AutoFreezeSummary, CompressRequest, CompressSummary, DataInfo, ModelCard, ModelEntry, PretrainPoint, PretrainResult, PretrainSpec, QuantReport, TrainRequest, TrainResult } from './studio-engine';
import type { PtqConfig } from '../engine/quant/ptq';
import type { Bits } from '../engine/quant/pack';
import type { StepMetrics } from '../engine/train/distill';
import type { Checkpoint } from '../engine/workflow/checkpoint';
import type { EvalDescription } from '../engine/workflow/data';
import type { ExportFormat, ExportResult } from '../engine/workflow/export';
import type { Baselines } from '../engine/workflow/results';
import type { Progress, RunSummary } from '../engine/workflow/run';
import type { RunSpec } from '../engine/workflow/spec';
export type { KernelChoice, KernelState, KernelTimings };
export type { AccuracyRequest, AccuracyResult, AutoFreezeSummary, CompressRequest, CompressSummary, Baselines, Checkpoint, DataInfo, EvalDescription, ExportFormat, OnnxCheckResult, KernelBenchRow, ModelCard, ModelEntry, PretrainPoint, PretrainResult, PretrainSpec, Progress, QuantReport, RunSpec, RunSummary, StepMetrics, TrainRequest, TrainResult };

export type Request =
  | { id: number; type: 'init' }
  | { id: number; type: 'selfTest' }
  | { id: number; type: 'onnxCheck'; providers: string[] }
  | { id: number; type: 'benchKernels' }
  | { id: number; type: 'timeKernels'; shapes: [number, number, number][]; attentionShapes?: AttentionShape[] }
  | { id: number; type: 'setKernels'; choice: KernelChoice | null }
  /** on: runs tune the matmul kernels to their shapes first (off clears the per-shape table); null: only read the state */
  | { id: number; type: 'setShapeTuning'; on: boolean | null }
  | { id: number; type: 'createTiny' }
  | { id: number; type: 'loadFiles'; files: File[]; name?: string; byteTokenizer?: boolean }
  | { id: number; type: 'pretrain'; spec: PretrainSpec }
  | { id: number; type: 'exportModel' }
  | { id: number; type: 'accuracy'; req: AccuracyRequest }
  | { id: number; type: 'quantize'; ptq: PtqConfig }
  | { id: number; type: 'baselines'; bits: Bits; group: number; sym: boolean }
  | { id: number; type: 'export'; format: ExportFormat }
  | { id: number; type: 'exportAs'; key: string; format: ExportFormat }
  | { id: number; type: 'train'; req: TrainRequest; resume?: Checkpoint }
  | { id: number; type: 'autoFreeze'; req: TrainRequest }
  | { id: number; type: 'recipe'; spec: RunSpec }
  | { id: number; type: 'compress'; req: CompressRequest }
  | { id: number; type: 'compressedFiles'; stage: string }
  | { id: number; type: 'loadStudent'; runId: string; label: string; files: Record<string, Uint8Array> }
  | { id: number; type: 'models' }
  | { id: number; type: 'heldOut' }
  | { id: number; type: 'dataInfo' }
  | { id: number; type: 'stop' }
  | { id: number; type: 'pause' }
  | { id: number; type: 'setData'; text: string; name: string }
  | { id: number; type: 'teacherData'; sequences: number; tokens: number }
  | { id: number; type: 'generate'; key: string; prompt: string; maxTokens: number; temperature: number };

export interface SelfTestResult {
  kernels: { name: string; maxAbsError: number; ok: boolean }[];
  ms: number;
}

export interface ResultMap {
  init: GpuInfo;
  selfTest: SelfTestResult;
  onnxCheck: OnnxCheckResult[];
  benchKernels: KernelBenchRow[];
  timeKernels: KernelTimings;
  /** what auto runs now, the adapter's own picks, and what it can run */
  setKernels: KernelState;
  setShapeTuning: KernelState;
  createTiny: ModelCard;
  loadFiles: ModelCard;
  pretrain: PretrainResult;
  exportModel: Record<string, Uint8Array>;
  accuracy: AccuracyResult;
  quantize: QuantReport;
  baselines: Baselines & { eval: EvalDescription };
  export: ExportResult;
  exportAs: ExportResult;
  train: TrainResult;
  recipe: Record<string, Uint8Array>;
  compress: CompressSummary;
  compressedFiles: Record<string, Uint8Array>;
  autoFreeze: TrainResult & { spec: RunSpec; auto: AutoFreezeSummary; history: StepMetrics[] };
  loadStudent: ModelEntry;
  models: ModelEntry[];
  heldOut: { text: string; eval: EvalDescription };
  dataInfo: DataInfo | null;
  stop: null;
  pause: null;
  setData: DataInfo;
  teacherData: DataInfo;
  generate: { tokens: number; tokensPerSec: number; label: string };
}
export type ResultOf<R extends Request['type']> = ResultMap[R];

export type WorkerEvent =
  | { type: 'result'; id: number; result: unknown }
  | { type: 'error'; id: number; message: string }
  | { type: 'progress'; id: number; done: number; total: number; label: string; etaSeconds?: number | null }
  | { type: 'step'; id: number; runId: string; metrics: StepMetrics }
  | { type: 'pretrainStep'; id: number; point: PretrainPoint }
  | { type: 'text'; id: number; text: string }
  | { type: 'gpuError'; message: string }
  | { type: 'log'; message: string };
