// The studio's engine state, behind the worker: the loaded model, its quantized copy, and
// distillation runs. No DOM, no React.
import { checkVocabularies } from '../engine/io/validate';
import type { Gpu } from '../engine/gpu/runtime';
import { paramCount, randomWeights, type LlamaConfig, type LlamaWeights } from '../engine/model/config';
import { LlamaModel } from '../engine/model/llama';
import { generate, sequenceNll } from '../engine/model/runner';
import { encodeDocuments, perplexity, splitDocuments, unigramPerplexity } from '../engine/eval/perplexity';
import { loadHfModel, writeHfModel, writeQuantizedHfModel, type HfFiles } from '../engine/io/hf';
import { readLlama2cCheckpoint } from '../engine/io/llama2c';
import { blobSource } from '../engine/io/source';
import { Llama2cTokenizer, type Tokenizer } from '../engine/io/tokenizer';
import { parseTokenizerJson, tokenizerJsonFromPieces } from '../engine/io/hf-tokenizer';
import { ByteTokenizer } from '../engine/io/byte-tokenizer';
import { quantizeWeights, type PtqConfig, type QuantizedModel, type TensorReport } from '../engine/quant/ptq';
import { exportOnnx } from '../engine/quant/onnx';
import { DEFAULT_DISTILL, Distiller, type LossWeights, type StepMetrics } from '../engine/train/distill';
import { parseFreeze, type FreezeMask } from '../engine/train/freeze';
import { tokenStream } from '../engine/train/data';
import { sampleTeacherDocs } from '../engine/train/teacher-data';
import type { Bits } from '../engine/quant/pack';
import { PRETRAIN_CONFIGS, Pretrainer, pretrainConfigOf } from '../engine/train/pretrain';
import { tokenLogprobsBatch } from '../engine/model/runner';
import { evaluateTask, type McResult } from '../engine/eval/multiple-choice';
import { parseTask, TASKS, type TaskName } from '../engine/eval/tasks';

export interface AccuracyRequest {
  task: TaskName;
  docsText: string;
  labelsText?: string;
  fileName: string;
  limit: number;
  /** run ids whose students to score, besides the teacher (FP) and the PTQ model */
  runIds: string[];
}

export interface AccuracyResult {
  task: TaskName;
  file: string;
  n: number;
  /** by row: 'FP', 'PTQ', or a run id */
  results: Record<string, McResult>;
}
import { trainBpe } from '../engine/io/bpe-train';

export interface PretrainSpec {
  config: string;
  /** 'bpe': train a BPE tokenizer of vocabSize tokens on the data first; 'byte': 259 byte ids */
  tokenizer: 'bpe' | 'byte';
  vocabSize: number;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  seed: number;
}

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
}

export interface QuantReport {
  ptq: PtqConfig;
  tensors: TensorReport[];
  pplBefore: number;
  pplAfter: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface RunSpec {
  id: string;
  label: string;
  bits: Bits;
  group: number;
  freeze: FreezeMask;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  seed: number;
  temperature: number;
  loss: LossWeights;
  scales?: 'minmax' | 'learned';
  scaleInit?: 'minmax' | 'search';
  /** the teacher and data it was started with; a paused run resumes only with the same */
  context?: { model: string; data: string };
}

/** A paused run: everything Distiller.restore needs (params, Adam state, step, RNG). */
export interface TrainCheckpoint {
  step: number;
  rngState: number;
  tensors: { name: string; data: Float32Array }[];
}

export interface TrainResult {
  summary: RunSummary | null; // null when paused
  checkpoint: TrainCheckpoint | null; // set when paused
}

export interface RunSummary {
  finalLoss: number;
  finalKl: number;
  evalPpl: number;
  wallSeconds: number;
}

export class StudioEngine {
  model: { name: string; format: string; config: LlamaConfig; weights: LlamaWeights; tokenizer: Tokenizer; tokenizerJson?: string; dtypes: string[] } | null = null;
  quantized: QuantizedModel | null = null;
  /** the most recent distilled student (weights with updated norms, packed projections) */
  student: { label: string; weights: LlamaWeights; quantized: QuantizedModel } | null = null;
  /** distilled students by run id (this session's runs; the latest 16) */
  readonly students = new Map<string, { weights: LlamaWeights; quantized: QuantizedModel }>();
  sampleText = '';
  constructor(readonly gpu: Gpu) {}

  card(): ModelCard {
    const m = this.model!;
    const c = m.config;
    return {
      name: m.name, format: m.format, layers: c.nLayers, heads: c.nHeads, kvHeads: c.nKvHeads, dim: c.dim, hidden: c.hiddenDim, vocab: c.vocabSize,
      maxSeq: c.maxSeqLen, params: paramCount(c), tied: c.tiedEmbeddings, dtypes: m.dtypes, gpuBytes: paramCount(c) * 4, hasTokenizer: !(m.tokenizer instanceof ByteTokenizer),
    };
  }

  /** A small random LLaMA with a byte tokenizer, so the studio has something to work on. */
  createTiny(): ModelCard {
    const config: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, maxSeqLen: 128, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
    this.model = { name: 'tiny random LLaMA (built in)', format: 'random', config, weights: randomWeights(config, 1, 0.5), tokenizer: new ByteTokenizer(), dtypes: ['F32'] };
    this.quantized = null;
    this.student = null;
    this.students.clear();
    return this.card();
  }

  /** Use a dropped text file (documents split at <|endoftext|>) as training/eval data. */
  setData(text: string, name: string): { name: string; documents: number; tokens: number } {
    const docs = splitDocuments(text, '<|endoftext|>');
    if (docs.length < 2) throw new Error(`${name}: needs at least 2 documents separated by <|endoftext|> lines (one is held out for evaluation); found ${docs.length}`);
    this.sampleText = text;
    return this.dataInfo(name);
  }

  private dataInfo(name: string): { name: string; documents: number; tokens: number } {
    const docs = splitDocuments(this.sampleText, '<|endoftext|>');
    const tok = this.model?.tokenizer;
    return { name, documents: docs.length, tokens: tok ? docs.reduce((s, d) => s + tok.encode(d).length, 0) : 0 };
  }

  /** Data-free distillation (LLM-QAT): sample sequences from the teacher and train on them. */
  async teacherData(sequences: number, tokens: number, onProgress: (d: number, t: number) => void): Promise<{ name: string; documents: number; tokens: number }> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    const docs = await sampleTeacherDocs(this.gpu, m.config, m.weights, m.tokenizer, { sequences, tokens, seed: 1000, onProgress });
    this.sampleText = docs.join('\n<|endoftext|>\n');
    return this.dataInfo(`${sequences} sequences sampled from the teacher`);
  }

  /** Generate from the teacher, the PTQ model or the last distilled student, streaming tokens. */
  async generate(which: 'teacher' | 'ptq' | 'student', prompt: string, maxTokens: number, temperature: number, onText: (s: string) => void): Promise<{ tokens: number; tokensPerSec: number; available: boolean }> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    const src = which === 'teacher' ? { weights: m.weights, quantized: undefined } : which === 'ptq' ? (this.quantized ? { weights: m.weights, quantized: this.quantized } : null) : this.student;
    if (!src) return { tokens: 0, tokensPerSec: 0, available: false };
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
      return { tokens: out.length, tokensPerSec: out.length / ((performance.now() - t0) / 1000), available: true };
    } finally {
      model.free();
    }
  }

  /** Dropped files: an HF folder's files, or a llama2.c .bin (+ tokenizer.bin). */
  async loadFiles(files: File[], name?: string): Promise<ModelCard> {
    const byName = new Map(files.map((f) => [f.name, f]));
    const bin = files.find((f) => f.name.endsWith('.bin') && !/tok/i.test(f.name));
    if (bin && !byName.has('config.json')) {
      const { config, weights, version } = readLlama2cCheckpoint(new Uint8Array(await bin.arrayBuffer()), bin.name);
      const tokFile = files.find((f) => f !== bin && f.name.endsWith('.bin'));
      const tokenizer = tokFile ? new Llama2cTokenizer(new Uint8Array(await tokFile.arrayBuffer()), tokFile.name, config.vocabSize) : new ByteTokenizer();
      if (!tokFile && config.vocabSize < 259) throw new Error(`${bin.name}: no tokenizer.bin dropped with it (drop both files together)`);
      checkVocabularies(config, tokenizer, bin.name, tokFile?.name ?? 'byte tokenizer');
      this.model = { name: bin.name, format: `llama2.c v${version}`, config, weights, tokenizer, dtypes: [version === 2 ? 'Q8_0' : 'F32'] };
    } else {
      if (!byName.has('config.json')) throw new Error(`no config.json among the dropped files (${files.map((f) => f.name).join(', ')}); drop a whole Hugging Face model folder, or a llama2.c .bin with its tokenizer.bin`);
      const hf: HfFiles = {};
      for (const f of files) hf[f.name] = blobSource(f);
      const m = await loadHfModel(hf);
      const tokenizer = m.tokenizerJson ? parseTokenizerJson(m.tokenizerJson) : new ByteTokenizer();
      if (!m.tokenizerJson && m.config.vocabSize < 259) throw new Error('no tokenizer.json among the dropped files, and the model is too small for the byte tokenizer');
      checkVocabularies(m.config, tokenizer, 'config.json', m.tokenizerJson ? 'tokenizer.json' : 'byte tokenizer');
      this.model = { name: name ?? files.find((f) => f.name.endsWith('.safetensors'))?.name ?? 'model', format: m.quantized ? 'HF (Quench-quantized)' : 'Hugging Face', config: m.config, weights: m.weights, tokenizer, tokenizerJson: m.tokenizerJson ?? undefined, dtypes: m.dtypes };
    }
    this.quantized = null;
    this.student = null;
    this.students.clear();
    return this.card();
  }

  private evalSeqs(): number[][] {
    const m = this.model!;
    const docs = splitDocuments(this.sampleText, '<|endoftext|>');
    const held = docs.slice(Math.max(1, docs.length - this.heldOutDocs(docs.length)));
    return encodeDocuments(held, (s) => m.tokenizer.encode(s), Math.min(m.config.maxSeqLen, 256));
  }

  private trainDocs(): string[] {
    const docs = splitDocuments(this.sampleText, '<|endoftext|>');
    return docs.slice(0, Math.max(1, docs.length - this.heldOutDocs(docs.length)));
  }

  /** Documents at the end of the data kept for evaluation: a tenth, at least 2 and at most 20. */
  private heldOutDocs(n: number): number {
    return Math.min(20, Math.max(2, Math.round(n / 10)));
  }

  async ppl(quantized: QuantizedModel | null): Promise<number> {
    const m = this.model!;
    const model = LlamaModel.fromWeights(this.gpu, m.config, m.weights, { quantized: quantized ?? undefined });
    try {
      return (await perplexity(this.evalSeqs(), (ids) => sequenceNll(model, ids))).ppl;
    } finally {
      model.free();
    }
  }

  async quantize(ptq: PtqConfig, onProgress: (d: number, t: number) => void): Promise<QuantReport> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    const q = quantizeWeights(m.config, m.weights, ptq, onProgress);
    this.quantized = q;
    const pplBefore = await this.ppl(null);
    const pplAfter = await this.ppl(q);
    return { ptq, tensors: q.report, pplBefore, pplAfter, bytesBefore: q.report.reduce((s, r) => s + r.bytesFp32, 0), bytesAfter: q.report.reduce((s, r) => s + r.bytesPacked, 0) };
  }

  exportQuantized(format: 'safetensors' | 'onnx'): Record<string, Uint8Array> {
    const m = this.model, q = this.quantized;
    if (!m || !q) throw new Error('quantize the model first');
    if (format === 'onnx') return { 'model.onnx': exportOnnx(m.config, m.weights, q) };
    return writeQuantizedHfModel(m.config, m.weights, q, { tokenizerJson: this.tokenizerJsonOut() });
  }

  async train(spec: RunSpec, onStep: (m: StepMetrics) => void, shouldStop: () => boolean, shouldPause: () => boolean = () => false, resume?: TrainCheckpoint): Promise<TrainResult> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    const stream = tokenStream(this.trainDocs(), (s) => m.tokenizer.encode(s, { bos: true }));
    const seq = Math.min(spec.seq, m.config.maxSeqLen, Math.max(8, stream.length - 1));
    const d = new Distiller(this.gpu, m.config, m.weights, {
      ...DEFAULT_DISTILL, bits: spec.bits, group: spec.group, freeze: spec.freeze, steps: spec.steps, batch: spec.batch, seq, lr: spec.lr, seed: spec.seed,
      temperature: spec.temperature, loss: spec.loss, scales: spec.scales ?? 'minmax', scaleInit: spec.scaleInit ?? 'minmax', warmup: Math.max(1, Math.floor(spec.steps / 10)), metricsEvery: 1,
    }, stream);
    const t0 = performance.now();
    try {
      if (resume) d.restore(new Map(resume.tensors.map((t) => [t.name, t.data])), resume.step, resume.rngState);
      await d.snapshotCodes();
      while (d.step < spec.steps && !shouldStop()) {
        if (shouldPause()) {
          const tensors = (await d.checkpointTensors()).map((t) => ({ name: t.name, data: t.data }));
          return { summary: null, checkpoint: { step: d.step, rngState: d.rng.state, tensors } };
        }
        onStep(await d.trainStep());
      }
      const last = d.history.slice(-5);
      this.student = { label: spec.label, ...(await d.exportStudent(m.weights)) };
      this.students.set(spec.id, this.student);
      if (this.students.size > 16) this.students.delete(this.students.keys().next().value!);
      return {
        summary: {
          finalLoss: last.reduce((s, x) => s + x.loss, 0) / Math.max(1, last.length),
          finalKl: last.reduce((s, x) => s + x.losses.kl, 0) / Math.max(1, last.length),
          evalPpl: await d.evaluate(this.evalSeqs()),
          wallSeconds: (performance.now() - t0) / 1000,
        },
        checkpoint: null,
      };
    } finally {
      d.free();
    }
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
    const docs = this.trainDocs();
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
      while (p.step < spec.steps && !shouldStop()) {
        const s = await p.trainStep();
        avg = Number.isNaN(avg) ? s.loss : 0.9 * avg + 0.1 * s.loss;
        onStep({ step: s.step, loss: s.loss, lr: s.lr });
      }
      weights = await p.weights();
    } finally {
      p.free();
    }
    const seconds = (performance.now() - t0) / 1000;
    const name = `pretrained ${spec.config} (${p.step} steps)`;
    this.model = { name, format: 'pretrained here', config, weights, tokenizer, tokenizerJson, dtypes: ['F32'] };
    this.quantized = null;
    this.student = null;
    this.students.clear();
    const unigram = unigramPerplexity(stream, this.evalSeqs(), config.vocabSize);
    return { card: this.card(), steps: p.step, finalLoss: avg, evalPpl: await this.ppl(null), unigramPpl: unigram.ppl, seconds, tokensPerSec: (p.step * spec.batch * seq) / seconds };
  }

  /**
   * Zero-shot multiple-choice accuracy (acc, acc_norm, standard errors) of the teacher, the PTQ
   * model and the given runs' students on one task file, all choices of a document in one batch.
   */
  async accuracy(req: AccuracyRequest, onProgress: (done: number, total: number, label: string) => void): Promise<AccuracyResult> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    if (!TASKS.includes(req.task)) throw new Error(`unknown task ${JSON.stringify(req.task)} (one of ${TASKS.join(', ')})`);
    let docs = parseTask(req.task, req.docsText, req.labelsText, req.fileName);
    if (req.limit > 0) docs = docs.slice(0, req.limit);
    if (docs.length === 0) throw new Error(`${req.fileName}: no documents`);
    const rows: [string, LlamaWeights, QuantizedModel | undefined][] = [['FP', m.weights, undefined]];
    if (this.quantized) rows.push(['PTQ', m.weights, this.quantized]);
    for (const id of req.runIds) {
      const st = this.students.get(id);
      if (st) rows.push([id, st.weights, st.quantized]);
    }
    const results: Record<string, McResult> = {};
    for (const [row, weights, quantized] of rows) {
      const model = LlamaModel.fromWeights(this.gpu, m.config, weights, { quantized });
      try {
        results[row] = await evaluateTask(docs, (s) => m.tokenizer.encode(s, { bos: true }), (seqs) => tokenLogprobsBatch(model, seqs), (d, t) => onProgress(d, t, `${req.task}: ${row}`));
      } finally {
        model.free();
      }
    }
    return { task: req.task, file: req.fileName, n: docs.length, results };
  }

  /** The loaded model as HF files (config.json, model.safetensors, tokenizer.json). */
  exportModel(): Record<string, Uint8Array> {
    const m = this.model;
    if (!m) throw new Error('load a model first');
    return writeHfModel(m.config, m.weights, { tokenizerJson: this.tokenizerJsonOut() });
  }

  /** The loaded model's tokenizer as tokenizer.json text (converted from llama2.c's when needed). */
  private tokenizerJsonOut(): string | undefined {
    const m = this.model!;
    if (!m.tokenizerJson && m.tokenizer instanceof Llama2cTokenizer) return JSON.stringify(tokenizerJsonFromPieces(m.tokenizer.vocab, m.tokenizer.scores));
    return m.tokenizerJson;
  }
}

export { parseFreeze };
