// The studio's engine state, behind the worker: the loaded model, its quantized copy, and
// distillation runs. No DOM, no React.
import { checkVocabularies } from '../engine/io/validate';
import type { Gpu } from '../engine/gpu/runtime';
import { paramCount, randomWeights, type LlamaConfig, type LlamaWeights } from '../engine/model/config';
import { LlamaModel } from '../engine/model/llama';
import { generate, sequenceNlls, tokenLogprobsBatch } from '../engine/model/runner';
import { perplexityBatched, unigramPerplexity } from '../engine/eval/perplexity';
import { loadHfModel, type HfFiles } from '../engine/io/hf';
import { readLlama2cCheckpoint } from '../engine/io/llama2c';
import { blobSource, bytesSource } from '../engine/io/source';
import { Llama2cTokenizer, type Tokenizer } from '../engine/io/tokenizer';
import { HfTokenizer, parseTokenizerJson } from '../engine/io/hf-tokenizer';
import { ByteTokenizer } from '../engine/io/byte-tokenizer';
import { quantizeWeights, type PtqConfig, type QuantizedModel, type TensorReport } from '../engine/quant/ptq';
import type { StepMetrics } from '../engine/train/distill';
import { parseFreeze } from '../engine/train/freeze';
import { sampleTeacherDocs } from '../engine/train/teacher-data';
import { tokenStream } from '../engine/train/data';
import type { Bits } from '../engine/quant/pack';
import type { Checkpoint } from '../engine/workflow/checkpoint';
import { carveValidation, evalSequences, heldOutText, splitText, trainStream, type DataSplit, type EvalDescription } from '../engine/workflow/data';
import { autoFreeze } from '../engine/workflow/auto-freeze';
import { exportModel, modelFiles, tokenizerJsonOf, type ExportFormat, type ExportResult } from '../engine/workflow/export';
import { computeBaselines, type Baselines } from '../engine/workflow/results';
import { adapterLimits, runTraining, type Progress, type RunOutcome, type RunSummary } from '../engine/workflow/run';
import { DEFAULT_RUN_SPEC, makeRunSpec, resolveRunSpec, runLabel, type PretrainSpec, type RunSpec } from '../engine/workflow/spec';
import { memoryRefusal, planDistillMemory } from '../engine/train/memory';
import { PRETRAIN_CONFIGS, Pretrainer, pretrainConfigOf } from '../engine/train/pretrain';
import { evaluateTask, type McResult } from '../engine/eval/multiple-choice';
import { parseTask, TASKS, type TaskName } from '../engine/eval/tasks';

export interface AccuracyRequest {
  task: TaskName;
  docsText: string;
  labelsText?: string;
  fileName: string;
  limit: number;
  /** model keys to score (ModelEntry.key: 'teacher', 'ptq-rtn:w4g32', 'run:<id>', ...) */
  models: string[];
}

export interface AccuracyResult {
  task: TaskName;
  file: string;
  n: number;
  /** by model key */
  results: Record<string, McResult>;
}
import { trainBpe } from '../engine/io/bpe-train';

export type { PretrainSpec };

export interface PretrainPoint {
  step: number;
  loss: number;
  lr: number;
}

export interface PretrainResult {
  card: ModelCard;
  steps: number;
  finalLoss: number;
  evalPpl: number;
  unigramPpl: number;
  seconds: number;
  tokensPerSec: number;
}

export interface ModelCard {
  name: string;
  format: string;
  layers: number;
  heads: number;
  kvHeads: number;
  dim: number;
  hidden: number;
  vocab: number;
  maxSeq: number;
  params: number;
  tied: boolean;
  dtypes: string[];
  gpuBytes: number;
  hasTokenizer: boolean;
  /** a line about where the model comes from (the default model's card) */
  about?: string;
  /** what kind of tokenizer it runs: "byte-level BPE, 49152 tokens", "llama2.c tokenizer.bin, 512 tokens", … */
  tokenizer: string;
  /** the GPU memory a KD-QAT run of this model needs (train/memory.ts), at `at`; refusal when it will not fit */
  memory: { at: string; bytes: { teacher: number; weights: number; gradients: number; optimizer: number; activations: number; logits: number; total: number }; perParam: number; refusal: string | null };
}

function tokenizerKind(t: Tokenizer): string {
  const kind = t instanceof HfTokenizer ? `${t.kind} (tokenizer.json)` : t instanceof Llama2cTokenizer ? 'llama2.c tokenizer.bin (SentencePiece BPE)' : t instanceof ByteTokenizer ? 'raw bytes (no tokenizer)' : 'tokenizer';
  return `${kind}, ${t.vocabSize} tokens, BOS ${t.bosId} / EOS ${t.eosId}`;
}

export interface QuantReport {
  ptq: PtqConfig;
  tensors: TensorReport[];
  pplBefore: number;
  pplAfter: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** A training request: the run's id and its spec (the workflow's, as the CLI's). */
export interface TrainRequest {
  id: string;
  spec: RunSpec;
}

export interface TrainResult {
  status: RunOutcome['status'];
  summary: RunSummary | null;
  /** set when paused */
  checkpoint: Checkpoint | null;
  /** the student as a quantized model folder (kept by the page in IndexedDB) */
  studentFiles: Record<string, Uint8Array> | null;
}

export interface CompressRequest {
  prune: { layers?: number; headsKeep?: number; mlpKeep?: number };
  kd: { steps?: number; batch?: number; seq?: number; lr?: number };
  qat: { bits?: Bits; group?: number; steps?: number };
  baselines: boolean;
  /** the token embedding's bits (groups of 32); null = fp32; absent = the workflow's default (8) */
  embedding?: { bits: Bits; group?: number } | null;
  /** a zero-shot task file every stage's model is scored on (as `quench compress --tasks`) */
  accuracy?: Omit<AccuracyRequest, 'models'>;
}

export interface CompressSummary {
  status: 'done' | 'stopped';
  rows: import('../engine/workflow/compress').CompressRow[];
  stages: string[];
  data: EvalDescription;
  importance: { baseLoss: number; layerMetric: string; layers: Record<string, unknown>[]; kvGroups: number[][]; channelMetric: string; channelsPerLayer: number[] } | null;
  plan: unknown;
}

/** What the studio keeps of an auto-freeze: the choice, the evidence, the candidates' curves. */
export interface AutoFreezeSummary {
  chosen: string;
  reason: string;
  candidates: { name: string; score: number; reason: string }[];
  rounds: { toStep: number; results: { name: string; valPpl: number; kept: boolean }[] }[];
  /** the survivors' validation perplexity extrapolated to the full run (the final decision) */
  predicted: Record<string, number>;
  costRuns: number;
  /** training loss per step of every candidate, as far as it went */
  curves: Record<string, number[]>;
  /** per layer × projection: gradient norm² relative to the FP reference, and the added KL */
  cells: { layer: number; proj: string; gradRatio: number; addedKl: number }[];
  codeFlips: Record<string, number>;
  validationDocuments: number;
}

export interface DataInfo {
  name: string;
  documents: number;
  tokens: number;
  /** the split and evaluation protocol, as the screen names them */
  eval: EvalDescription;
}

/** A model the playground and the exports can use: the teacher, a PTQ baseline or a student. */
export interface ModelEntry {
  key: string;
  label: string;
  kind: 'fp' | 'ptq-rtn' | 'ptq-clip' | 'ptq' | 'student';
}

type Held = { label: string; kind: ModelEntry['kind']; weights: LlamaWeights; quantized: QuantizedModel | undefined };

export class StudioEngine {
  model: { name: string; format: string; config: LlamaConfig; weights: LlamaWeights; tokenizer: Tokenizer; tokenizerJson?: string; dtypes: string[] } | null = null;
  /** the Quantize tab's last PTQ model */
  quantized: QuantizedModel | null = null;
  /** models besides the teacher, by key: PTQ baselines ('ptq-rtn:w4g32', 'ptq-clip:w4g32'), the
   *  Quantize tab's ('ptq'), students ('run:<id>') */
  readonly held = new Map<string, Held>();
  private text = '';
  private dataName = '';
  private split: DataSplit | null = null;
  constructor(readonly gpu: Gpu) {}

  card(): ModelCard {
    const m = this.model!;
    const c = m.config;
    return {
      name: m.name, format: m.format, layers: c.nLayers, heads: c.nHeads, kvHeads: c.nKvHeads, dim: c.dim, hidden: c.hiddenDim, vocab: c.vocabSize,
      maxSeq: c.maxSeqLen, params: paramCount(c), tied: c.tiedEmbeddings, dtypes: m.dtypes, gpuBytes: paramCount(c) * 4, hasTokenizer: !(m.tokenizer instanceof ByteTokenizer),
      tokenizer: tokenizerKind(m.tokenizer),
      memory: this.memoryEstimate(c),
    };
  }

  /** KD-QAT's GPU memory for this model at the default recipe, as the run will check it. */
  private memoryEstimate(c: LlamaConfig): ModelCard['memory'] {
    const spec = DEFAULT_RUN_SPEC;
    const dc = resolveRunSpec(spec, c);
    const seq = Math.min(dc.seq, c.maxSeqLen);
    const lim = adapterLimits(this.gpu);
    const p = planDistillMemory(c, { ...dc, seq }, lim);
    return { at: `KD-QAT w${spec.bits}g${spec.group}, batch ${spec.batch}×${seq}, no freeze (the default recipe)`, bytes: p.bytes, perParam: p.bytes.total / p.studentParams, refusal: memoryRefusal(p, lim) };
  }

  private setModel(m: NonNullable<StudioEngine['model']>): ModelCard {
    this.model = m;
    this.quantized = null;
    this.held.clear();
    return this.card();
  }

  /** A small random LLaMA with a byte tokenizer, so the studio has something to work on. */
  createTiny(): ModelCard {
    const config: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, maxSeqLen: 128, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
    return this.setModel({ name: 'tiny random LLaMA (built in)', format: 'random', config, weights: randomWeights(config, 1, 0.5), tokenizer: new ByteTokenizer(), dtypes: ['F32'] });
  }

  /** Use a text (documents split at <|endoftext|>) as training data and held-out evaluation text. */
  setData(text: string, name: string): DataInfo {
    this.split = splitText(text, name);
    this.text = text;
    this.dataName = name;
    return this.dataInfo();
  }

  private needSplit(): DataSplit {
    if (!this.split) throw new Error('no data yet: drop a text file or sample from the teacher');
    return this.split;
  }

  private dataInfo(): DataInfo {
    const split = this.needSplit();
    const tok = this.model?.tokenizer;
    const desc = { ...split.description };
    if (this.model) evalSequences(split.evalDocs, this.model.tokenizer, this.model.config.maxSeqLen, desc);
    const docs = [...split.train, ...split.evalDocs];
    return { name: this.dataName, documents: split.description.documents, tokens: tok ? docs.reduce((s, d) => s + tok.encode(d).length, 0) : 0, eval: desc };
  }

  /** The data as it is now, for a model just loaded (its tokenizer changes the token counts). */
  currentData(): DataInfo | null {
    return this.split ? this.dataInfo() : null;
  }

  /** The held-out evaluation documents as a text file: `quench eval --text` on it gives the
   *  studio's perplexities. */
  heldOut(): { text: string; eval: EvalDescription } {
    return { text: heldOutText(this.needSplit()), eval: this.dataInfo().eval };
  }

  /** Data-free distillation (LLM-QAT): sample sequences from the teacher and train on them. */
  async teacherData(sequences: number, tokens: number, onProgress: (d: number, t: number) => void): Promise<DataInfo> {
    const m = this.needModel();
    const docs = await sampleTeacherDocs(this.gpu, m.config, m.weights, m.tokenizer, { sequences, tokens, seed: 1000, onProgress });
    return this.setData(docs.join('\n<|endoftext|>\n'), `${sequences} sequences sampled from the teacher`);
  }

  private needModel(): NonNullable<StudioEngine['model']> {
    if (!this.model) throw new Error('load a model first');
    return this.model;
  }

  /** The models the playground, accuracy and exports can pick. */
  models(): ModelEntry[] {
    if (!this.model) return [];
    return [{ key: 'teacher', label: `teacher (FP32): ${this.model.name}`, kind: 'fp' }, ...[...this.held].map(([key, h]) => ({ key, label: h.label, kind: h.kind }))];
  }

  private modelOf(key: string): { weights: LlamaWeights; quantized: QuantizedModel | undefined; label: string } {
    const m = this.needModel();
    if (key === 'teacher') return { weights: m.weights, quantized: undefined, label: 'teacher (FP32)' };
    const h = this.held.get(key);
    if (!h) throw new Error(`${key}: not available in this session (quantize or train it again, or reload its student)`);
    return h;
  }

  /** Generate from any model (teacher, PTQ baseline, student), streaming text. */
  async generate(key: string, prompt: string, maxTokens: number, temperature: number, onText: (s: string) => void): Promise<{ tokens: number; tokensPerSec: number; label: string }> {
    const m = this.needModel();
    const src = this.modelOf(key);
    const model = LlamaModel.fromWeights(this.gpu, m.config, src.weights, { quantized: src.quantized });
    const dec = new TextDecoder();
    try {
      const ids = m.tokenizer.encode(prompt, { bos: true });
      let prev = ids[ids.length - 1];
      const t0 = performance.now();
      const out = await generate(model, ids, { maxTokens: Math.max(1, Math.min(maxTokens, m.config.maxSeqLen - ids.length)), temperature, topP: 0.9, seed: 1, stopToken: m.tokenizer.eosId, onToken: (id) => {
        const t = dec.decode(m.tokenizer.tokenBytes(prev, id), { stream: true });
        prev = id;
        if (t) onText(t);
      } });
      return { tokens: out.length, tokensPerSec: out.length / ((performance.now() - t0) / 1000), label: src.label };
    } finally {
      model.free();
    }
  }

  /** Dropped files: an HF folder's files, or a llama2.c .bin with its tokenizer.bin (a byte
   *  tokenizer only when asked for). */
  async loadFiles(files: File[], name?: string, opts: { byteTokenizer?: boolean; onProgress?: (done: number, total: number, label: string) => void } = {}): Promise<ModelCard> {
    const byName = new Map(files.map((f) => [f.name, f]));
    const ggufFile = files.find((f) => f.name.endsWith('.gguf'));
    if (ggufFile) {
      // llama.cpp's format: weights dequantized to fp32, the tokenizer from its metadata
      const { loadGgufModel } = await import('../engine/io/gguf');
      const g = await loadGgufModel(blobSource(ggufFile));
      if (!g.tokenizerJson && !opts.byteTokenizer) throw new Error(`${ggufFile.name}: no tokenizer usable here in its metadata (tokenizer.ggml.*); tick "byte tokenizer" to use raw bytes`);
      const tokenizer = g.tokenizerJson ? parseTokenizerJson(g.tokenizerJson, `${ggufFile.name} (tokenizer.ggml.*)`, { generationConfig: g.specialIds }) : new ByteTokenizer();
      checkVocabularies(g.config, tokenizer, ggufFile.name, g.tokenizerJson ? `${ggufFile.name} (tokenizer.ggml.*)` : 'byte tokenizer');
      return this.setModel({ name: name ?? ggufFile.name, format: 'GGUF (llama.cpp)', config: g.config, weights: g.weights, tokenizer, tokenizerJson: g.tokenizerJson ?? undefined, dtypes: g.dtypes });
    }
    const bin = files.find((f) => f.name.endsWith('.bin') && !/tok/i.test(f.name));
    if (bin && !byName.has('config.json')) {
      const { config, weights, version } = readLlama2cCheckpoint(new Uint8Array(await bin.arrayBuffer()), bin.name);
      const tokFile = files.find((f) => f !== bin && f.name.endsWith('.bin'));
      if (!tokFile && !opts.byteTokenizer) throw new Error(`${bin.name}: its tokenizer is missing — drop tokenizer.bin (llama2.c's, e.g. tok512.bin) together with it, or tick "byte tokenizer" to use raw bytes`);
      if (!tokFile && config.vocabSize < 259) throw new Error(`${bin.name}: vocabulary ${config.vocabSize} is too small for the byte tokenizer (259); drop its tokenizer.bin`);
      const tokenizer = tokFile ? new Llama2cTokenizer(new Uint8Array(await tokFile.arrayBuffer()), tokFile.name, config.vocabSize) : new ByteTokenizer();
      checkVocabularies(config, tokenizer, bin.name, tokFile?.name ?? 'byte tokenizer');
      return this.setModel({ name: name ?? bin.name, format: `llama2.c v${version}`, config, weights, tokenizer, dtypes: [version === 2 ? 'Q8_0' : 'F32'] });
    }
    if (!byName.has('config.json')) throw new Error(`no config.json among the dropped files (${files.map((f) => f.name).join(', ')}); drop a whole Hugging Face model folder, or a llama2.c .bin with its tokenizer.bin`);
    const hf: HfFiles = {};
    for (const f of files) hf[f.name] = blobSource(f);
    const shards = files.filter((f) => f.name.endsWith('.safetensors')).length;
    const mb = (b: number) => Math.round(b / 2 ** 20);
    const m = await loadHfModel(hf, { onProgress: (read, total) => opts.onProgress?.(mb(read), mb(total), `reading weights (MiB${shards > 1 ? `, ${shards} shards` : ''})`) });
    if (!m.tokenizerJson && !opts.byteTokenizer) throw new Error('tokenizer.json is missing among the dropped files: drop it with config.json and the safetensors, or tick "byte tokenizer" to use raw bytes');
    const tokenizer = m.tokenizerJson ? parseTokenizerJson(m.tokenizerJson, 'tokenizer.json', m.tokenizerExtras) : new ByteTokenizer();
    if (!m.tokenizerJson && m.config.vocabSize < 259) throw new Error('no tokenizer.json among the dropped files, and the model is too small for the byte tokenizer');
    checkVocabularies(m.config, tokenizer, 'config.json', m.tokenizerJson ? 'tokenizer.json' : 'byte tokenizer');
    return this.setModel({ name: name ?? files.find((f) => f.name.endsWith('.safetensors'))?.name ?? 'model', format: m.quantized ? 'HF (Quench-quantized)' : 'Hugging Face', config: m.config, weights: m.weights, tokenizer, tokenizerJson: m.tokenizerJson ?? undefined, dtypes: m.dtypes });
  }

  private evalSeqs(): number[][] {
    const m = this.needModel();
    return evalSequences(this.needSplit().evalDocs, m.tokenizer, m.config.maxSeqLen);
  }

  async ppl(quantized: QuantizedModel | null, weights?: LlamaWeights): Promise<number> {
    const m = this.needModel();
    const model = LlamaModel.fromWeights(this.gpu, m.config, weights ?? m.weights, { quantized: quantized ?? undefined });
    try {
      return (await perplexityBatched(this.evalSeqs(), (s) => sequenceNlls(model, s))).ppl;
    } finally {
      model.free();
    }
  }

  async quantize(ptq: PtqConfig, onProgress: (d: number, t: number) => void): Promise<QuantReport> {
    const m = this.needModel();
    const q = quantizeWeights(m.config, m.weights, ptq, onProgress);
    this.quantized = q;
    this.held.set('ptq', { label: `PTQ ${ptq.clipSearch ? 'clip search' : 'round-to-nearest'} w${ptq.bits}${ptq.group ? `g${ptq.group}` : ' per channel'}${ptq.sym ? ' sym' : ''} (Quantize tab)`, kind: 'ptq', weights: m.weights, quantized: q });
    const pplBefore = await this.ppl(null);
    const pplAfter = await this.ppl(q);
    return { ptq, tensors: q.report, pplBefore, pplAfter, bytesBefore: q.report.reduce((s, r) => s + r.bytesFp32, 0), bytesAfter: q.report.reduce((s, r) => s + r.bytesPacked, 0) };
  }

  /** FP, PTQ round-to-nearest and PTQ clip search for these bits/group, on the held-out text. */
  async baselines(q: { bits: Bits; group: number; sym: boolean }, onProgress: (label: string, d: number, t: number) => void): Promise<Baselines & { eval: EvalDescription }> {
    const m = this.needModel();
    const { models, ...b } = await computeBaselines(this.gpu, { name: m.name, config: m.config, weights: m.weights, tokenizer: m.tokenizer }, q, this.evalSeqs(), onProgress);
    const w = `w${q.bits}g${q.group}${q.sym ? ' sym' : ''}`;
    this.held.set(`ptq-rtn:${w}`, { label: `PTQ round-to-nearest ${w}`, kind: 'ptq-rtn', weights: m.weights, quantized: models.rtn });
    this.held.set(`ptq-clip:${w}`, { label: `PTQ clip search ${w}`, kind: 'ptq-clip', weights: m.weights, quantized: models.clip });
    return { ...b, eval: this.dataInfo().eval };
  }

  exportQuantized(format: ExportFormat): ExportResult {
    if (!this.quantized) throw new Error('quantize the model first');
    return this.exportModelAs('ptq', format);
  }

  /** A KD-QAT run (or the FP fine-tune) through the workflow layer's run loop, as `quench distill`. */
  async train(req: TrainRequest, onStep: (m: StepMetrics) => void, onProgress: (p: Progress) => void, shouldStop: () => boolean, shouldPause: () => boolean = () => false, resume?: Checkpoint): Promise<TrainResult> {
    const m = this.needModel();
    const spec = makeRunSpec(req.spec, `run ${req.id}`);
    const split = this.needSplit();
    const teacher = { name: m.name, config: m.config, weights: m.weights, tokenizer: m.tokenizer };
    const out = await runTraining(this.gpu, teacher, spec, trainStream(split.train, m.tokenizer), this.evalSeqs(), { onStep, onProgress, shouldStop, shouldPause, resumeFrom: `the paused run's checkpoint (${req.id})` }, resume);
    const studentFiles = this.keepStudent(req.id, `KD-QAT student ${runLabel(spec)}`, out);
    return { status: out.status, summary: out.summary, checkpoint: out.status === 'paused' ? out.checkpoint : null, studentFiles };
  }

  /** A finished run's student, kept under run:<id> for the playground, accuracy and exports; its
   *  quantized folder's files go back to the page (IndexedDB). */
  private keepStudent(id: string, label: string, out: RunOutcome): Record<string, Uint8Array> | null {
    if (!out.student) return null;
    const m = this.needModel();
    this.held.set(`run:${id}`, { label: `${label} (${out.summary?.steps ?? 0} steps, run ${id.slice(-5)})`, kind: 'student', ...out.student });
    return modelFiles(m.config, out.student.weights, out.student.quantized, tokenizerJsonOf(m.tokenizer, m.tokenizerJson));
  }

  /** Auto-freeze on the current data (as `quench distill --freeze auto`): the probes and the
   *  successive halving, then the chosen run, whose result is returned like train()'s. */
  async autoFreeze(req: TrainRequest, onStep: (m: StepMetrics) => void, onProgress: (p: Progress) => void, shouldStop: () => boolean): Promise<TrainResult & { spec: RunSpec; auto: AutoFreezeSummary; history: StepMetrics[] }> {
    const m = this.needModel();
    const base = makeRunSpec({ ...req.spec, scheme: 'none', mask: undefined }, `run ${req.id}`);
    const { train, val } = carveValidation(this.needSplit().train);
    const teacher = { name: m.name, config: m.config, weights: m.weights, tokenizer: m.tokenizer };
    const r = await autoFreeze(this.gpu, teacher, base, trainStream(train, m.tokenizer), {
      valSeqs: evalSequences(val, m.tokenizer, m.config.maxSeqLen), evalSeqs: this.evalSeqs(), fullTrain: trainStream(this.needSplit().train, m.tokenizer), onProgress, onStep, shouldStop,
    });
    const out = r.outcome;
    const studentFiles = this.keepStudent(req.id, `KD-QAT student w${base.bits}g${base.group} auto → ${r.chosen.name}`, out);
    const auto: AutoFreezeSummary = {
      chosen: r.chosen.name, reason: r.chosen.reason, candidates: r.candidates.map((c) => ({ name: c.name, score: c.score, reason: c.reason })), rounds: r.rounds, predicted: r.predicted, costRuns: r.costRuns,
      curves: Object.fromEntries(Object.entries(r.curves).map(([k, h]) => [k, h.map((x) => x.loss)])),
      cells: r.signals.cells.map((c) => ({ layer: c.layer, proj: c.proj, gradRatio: c.gradRatio, addedKl: c.addedKl })), codeFlips: r.signals.codeFlips as Record<string, number>, validationDocuments: val.length,
    };
    return { status: out.status, summary: out.summary ? { ...out.summary, scheme: `auto → ${out.summary.scheme}` } : null, checkpoint: null, studentFiles, spec: r.spec, auto, history: out.history };
  }

  /** The run's recipe for PyTorch (recipe.json, kdqat.py, init.safetensors, the teacher, the token
   *  streams, a README): the same spec on DDP/FSDP when a run outgrows the tab. */
  async recipe(spec: RunSpec): Promise<Record<string, Uint8Array>> {
    const m = this.needModel();
    const { recipeFiles } = await import('../engine/workflow/recipe');
    return recipeFiles(makeRunSpec(spec, 'recipe'), { name: m.name, config: m.config, weights: m.weights, tokenizer: m.tokenizer, tokenizerJson: m.tokenizerJson }, this.needSplit());
  }

  /** Compress (prune → KD → PTQ → KD-QAT, with the CE-only baselines) on the current model and
   *  data, as `quench compress`; each stage's model folder comes back for download, and the FP
   *  distilled student can become the teacher. */
  private compressed: Record<string, Record<string, Uint8Array>> = {};
  async compress(spec: CompressRequest, onProgress: (p: Progress) => void, shouldStop: () => boolean): Promise<CompressSummary> {
    const m = this.needModel();
    const { makeCompressSpec, runCompress } = await import('../engine/workflow/compress');
    const cs = makeCompressSpec({ prune: spec.prune, kd: spec.kd, qat: spec.qat, baselines: spec.baselines, embedding: spec.embedding }, 'compress settings');
    const files: Record<string, Record<string, Uint8Array>> = {};
    // the task file is parsed before any work, so a bad one is refused at once
    const task = spec.accuracy ? { name: spec.accuracy.task, docs: this.taskDocs(spec.accuracy) } : null;
    const r = await runCompress(this.gpu, { name: m.name, config: m.config, weights: m.weights, tokenizer: m.tokenizer }, cs, this.needSplit(), {
      onProgress, shouldStop, tokenizerJson: tokenizerJsonOf(m.tokenizer, m.tokenizerJson), onModel: (stage, f) => void (files[stage] = f),
      ...(task ? { accuracy: async (label: string, model: LlamaModel) => ({ [task.name]: await evaluateTask(task.docs, (t) => m.tokenizer.encode(t, { bos: true }), (seqs) => tokenLogprobsBatch(model, seqs), (d, t) => onProgress({ phase: 'eval', label: `${task.name}: ${label}`, done: d, total: t, etaSeconds: null })) }) } : {}),
    });
    this.compressed = files;
    const imp = r.importance;
    return {
      status: r.status, rows: r.rows, stages: Object.keys(files), data: r.data,
      importance: imp ? { baseLoss: imp.baseLoss, layerMetric: imp.layerMetric, layers: imp.layers.map((l) => ({ ...l })), kvGroups: imp.kvGroups, channelMetric: imp.channelMetric, channelsPerLayer: imp.channels.map((c) => { let s = 0; for (const x of c) s += x; return s / Math.max(1, c.length); }) } : null,
      plan: JSON.parse(JSON.stringify(r.plan)) as unknown,
    };
  }

  compressedFiles(stage: string): Record<string, Uint8Array> {
    const f = this.compressed[stage];
    if (!f) throw new Error(`no ${stage} model from a compress run in this session`);
    return f;
  }

  /** A saved student (after a reload) made available again under run:<id>. */
  async loadStudent(id: string, label: string, files: Record<string, Uint8Array>): Promise<ModelEntry> {
    const m = this.needModel();
    const hf: HfFiles = {};
    for (const [name, bytes] of Object.entries(files)) hf[name] = bytesSource(name, bytes);
    const s = await loadHfModel(hf);
    if (!s.quantized) throw new Error(`saved student of run ${id}: not a quantized model folder`);
    if (s.config.nLayers !== m.config.nLayers || s.config.dim !== m.config.dim || s.config.vocabSize !== m.config.vocabSize) throw new Error(`saved student of run ${id}: its shape differs from the loaded teacher's`);
    this.held.set(`run:${id}`, { label, kind: 'student', weights: s.weights, quantized: s.quantized });
    return { key: `run:${id}`, label, kind: 'student' };
  }

  /** Any model (teacher, PTQ baseline, student) in any export format. */
  exportModelAs(key: string, format: ExportFormat): ExportResult {
    const m = this.needModel();
    const src = this.modelOf(key);
    return exportModel({ name: src.label, config: m.config, weights: src.weights, quantized: src.quantized ?? null, tokenizer: m.tokenizer, tokenizerJson: m.tokenizerJson }, format, { extra: { source: `Quench studio: ${src.label}` } });
  }

  /**
   * Pretrain a LLaMA from random initialisation on the current data (its held-out documents kept
   * for evaluation), with the project's BPE tokenizer trained on the same text or bytes. On
   * success the pretrained model becomes the loaded model (the teacher); a stop ends early and
   * keeps what was trained so far.
   */
  async pretrain(spec: PretrainSpec, onStep: (p: PretrainPoint) => void, shouldStop: () => boolean): Promise<PretrainResult> {
    const base = PRETRAIN_CONFIGS[spec.config];
    if (!base) throw new Error(`unknown config ${JSON.stringify(spec.config)} (one of ${Object.keys(PRETRAIN_CONFIGS).join(', ')})`);
    const docs = this.needSplit().train;
    let tokenizer: Tokenizer = new ByteTokenizer();
    let tokenizerJson: string | undefined;
    if (spec.tokenizer === 'bpe') {
      tokenizerJson = JSON.stringify(trainBpe(docs, { vocabSize: spec.vocabSize }));
      tokenizer = parseTokenizerJson(tokenizerJson, 'tokenizer.json (trained)');
    }
    const config: LlamaConfig = { ...base, vocabSize: tokenizer.vocabSize };
    const stream = tokenStream(docs, (d) => tokenizer.encode(d, { bos: true }));
    const seq = Math.min(spec.seq, config.maxSeqLen, stream.length - 1);
    if (seq < 4) throw new Error(`the data has only ${stream.length} tokens: too little to pretrain on`);
    const p = new Pretrainer(this.gpu, config, pretrainConfigOf({ steps: spec.steps, batch: spec.batch, seq, lr: spec.lr, seed: spec.seed }), stream);
    const t0 = performance.now();
    let avg = NaN;
    let weights: LlamaWeights;
    try {
      // steps are submitted without waiting; each step's loss arrives a step or two later
      const report = (ss: { step: number; loss: number; lr: number }[]) => {
        for (const s of ss) {
          avg = Number.isNaN(avg) ? s.loss : 0.9 * avg + 0.1 * s.loss;
          onStep({ step: s.step, loss: s.loss, lr: s.lr });
        }
      };
      while (p.step < spec.steps && !shouldStop()) report(await p.submitStep());
      report(await p.drain());
      weights = await p.weights();
    } finally {
      p.free();
    }
    const seconds = (performance.now() - t0) / 1000;
    const name = `pretrained ${spec.config} (${p.step} steps)`;
    const card = this.setModel({ name, format: 'pretrained here', config, weights, tokenizer, tokenizerJson, dtypes: ['F32'] });
    const unigram = unigramPerplexity(stream, this.evalSeqs(), config.vocabSize);
    return { card, steps: p.step, finalLoss: avg, evalPpl: await this.ppl(null), unigramPpl: unigram.ppl, seconds, tokensPerSec: (p.step * spec.batch * seq) / seconds };
  }

  /**
   * Zero-shot multiple-choice accuracy (acc, acc_norm, standard errors) of the teacher, the PTQ
   * model and the given runs' students on one task file, all choices of a document in one batch.
   */
  async accuracy(req: AccuracyRequest, onProgress: (done: number, total: number, label: string) => void): Promise<AccuracyResult> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    const docs = this.taskDocs(req);
    const results: Record<string, McResult> = {};
    for (const row of req.models) {
      if (row !== 'teacher' && !this.held.has(row)) continue;
      const { weights, quantized } = this.modelOf(row);
      const model = LlamaModel.fromWeights(this.gpu, m.config, weights, { quantized });
      try {
        results[row] = await evaluateTask(docs, (s) => m.tokenizer.encode(s, { bos: true }), (seqs) => tokenLogprobsBatch(model, seqs), (d, t) => onProgress(d, t, `${req.task}: ${row}`));
      } finally {
        model.free();
      }
    }
    return { task: req.task, file: req.fileName, n: docs.length, results };
  }

  /** A task file's documents (the first `limit`; 0 = all), or a clear refusal naming the file. */
  private taskDocs(req: Omit<AccuracyRequest, 'models'>) {
    if (!TASKS.includes(req.task)) throw new Error(`unknown task ${JSON.stringify(req.task)} (one of ${TASKS.join(', ')})`);
    let docs = parseTask(req.task, req.docsText, req.labelsText, req.fileName);
    if (req.limit > 0) docs = docs.slice(0, req.limit);
    if (docs.length === 0) throw new Error(`${req.fileName}: no documents`);
    return docs;
  }

  /** The loaded model as HF files (config.json, model.safetensors, tokenizer.json). */
  exportModel(): Record<string, Uint8Array> {
    return this.exportModelAs('teacher', 'safetensors').files;
  }
}

export { parseFreeze };
