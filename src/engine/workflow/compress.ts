// The compress job (the CLI's `quench compress`, callable by the studio's worker): a smaller
// student cut from the teacher, distilled, then quantized —
//   prune (layers / KV groups / MLP channels by measured importance, train/prune.ts)
//   → KD into the pruned student (KL·T² + CE [+ mapped hidden MSE], full precision, train/kd-student.ts)
//   → PTQ of the distilled student (clip search)
//   → KD-QAT (runTraining): the distilled FP student is the teacher of its own quantized copy (the
//     original teacher cannot be: its shape differs from the student's, and Quench's KD-QAT distils a
//     model into its own quantized graph)
// plus two CE-only baselines on KD's token budget (the same small shape from a random init, and from
// the pruned init; no teacher), every model evaluated by the workflow's one protocol.
// Training stages checkpoint through hooks (the same checkpoint format as KD-QAT) and resume exactly.
import type { Gpu } from '../gpu/runtime';
import { headSize, paramCount, PROJECTIONS, PROJECTION_KEY, type LlamaConfig, type LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { sequenceNlls } from '../model/runner';
import { perplexityBatched } from '../eval/perplexity';
import type { McResult } from '../eval/multiple-choice';
import { quantizeWeights, type QuantizedModel } from '../quant/ptq';
import { dequantizeHost, packedBytes, type Bits } from '../quant/pack';
import { calibrationFrom, checkPruneOptions, pruneModel, type Importance, type PruneOptions, type PrunePlan } from '../train/prune';
import { StudentDistiller, checkStudent, type StudentKdConfig } from '../train/kd-student';
import { pretrainInit } from '../train/pretrain';
import type { StepMetrics } from '../train/distill';
import { CHECKPOINT_FORMAT, verifyCheckpoint, type Checkpoint } from './checkpoint';
import { evalSequences, trainStream, type DataSplit, type EvalDescription } from './data';
import { modelFiles, tokenizerJsonOf } from './export';
import { runTraining, type Progress, type Teacher } from './run';
import { DEFAULT_RUN_SPEC, autoWarmup, makeRunSpec, type RunSpec } from './spec';

export interface KdSpec {
  steps: number;
  batch: number;
  seq: number;
  accum: number;
  lr: number;
  minLrRatio: number;
  warmup: number | 'auto';
  weightDecay: number;
  gradClip: number;
  temperature: number;
  loss: { kl: number; ce: number; hidden: number };
  seed: number;
}

export interface CompressSpec {
  prune: PruneOptions;
  /** calibration windows for the importance (from the training text) */
  calibration: { sequences: number; seq: number };
  kd: KdSpec;
  /** the KD-QAT stage's run spec (bits, group, steps, …); steps 0 skips the stage */
  qat: RunSpec;
  /** the two CE-only baselines on KD's token budget */
  baselines: boolean;
  /** the token embedding (and a tied classifier) packed at the PTQ stage, kept through KD-QAT;
   *  null = fp32. On a small model the embedding is a large share of the bytes (stories260K: 12.6%
   *  of the teacher, 66% of a 4-bit 3-layer student), so the 4-bit student's size hinges on it. */
  embedding: { bits: Bits; group: number } | null;
}

/** 8-bit, groups of 32: below 1% relative error on the tables measured here, a quarter of the bytes. */
export const DEFAULT_EMBEDDING: { bits: Bits; group: number } = { bits: 8, group: 32 };

/** KL + CE (the article's loss), lr 2e-3 (a pruned init recovers faster than KD-QAT's 5e-4 allows). */
export const DEFAULT_KD: KdSpec = { steps: 300, batch: 8, seq: 128, accum: 1, lr: 2e-3, minLrRatio: 0.1, warmup: 'auto', weightDecay: 0, gradClip: 1, temperature: 1, loss: { kl: 1, ce: 0.5, hidden: 0 }, seed: 1 };

export function makeCompressSpec(o: { prune?: PruneOptions; calibration?: Partial<CompressSpec['calibration']>; kd?: Partial<KdSpec>; qat?: Partial<RunSpec>; baselines?: boolean; embedding?: { bits: number; group?: number } | null }, where = 'compress spec'): CompressSpec {
  const kd: KdSpec = { ...DEFAULT_KD, ...Object.fromEntries(Object.entries(o.kd ?? {}).filter(([, v]) => v !== undefined)), loss: { ...DEFAULT_KD.loss, ...(o.kd?.loss ?? {}) } };
  // the KD settings go through the run-spec checks (and are stored as one in checkpoints)
  kdRunSpec(kd, `${where}: kd`);
  const qatSteps = o.qat?.steps ?? Math.max(1, Math.round(kd.steps / 2));
  const qat = qatSteps === 0 ? makeRunSpec({ ...defined(o.qat ?? {}), steps: 1 }, `${where}: qat`) : makeRunSpec({ seed: kd.seed, batch: kd.batch, seq: kd.seq, ...defined(o.qat ?? {}), steps: qatSteps }, `${where}: qat`);
  if (qatSteps === 0) qat.steps = 0;
  const calibration = { sequences: 8, seq: 128, ...(o.calibration ?? {}) };
  if (!Number.isInteger(calibration.sequences) || calibration.sequences < 1 || !Number.isInteger(calibration.seq) || calibration.seq < 2) throw new Error(`${where}: calibration needs ≥ 1 sequences of ≥ 2 tokens`);
  let embedding: CompressSpec['embedding'] = DEFAULT_EMBEDDING;
  if (o.embedding === null) embedding = null;
  else if (o.embedding !== undefined) {
    const { bits, group = DEFAULT_EMBEDDING.group } = o.embedding;
    if (![2, 3, 4, 8].includes(bits)) throw new Error(`${where}: embedding bits must be 2, 3, 4 or 8 (or none for fp32), not ${bits}`);
    if (!Number.isInteger(group) || group < 0) throw new Error(`${where}: embedding group must be a non-negative integer (0 = per row), not ${group}`);
    embedding = { bits: bits as Bits, group };
  }
  return { prune: o.prune ?? {}, calibration, kd, qat, baselines: o.baselines ?? true, embedding };
}

const defined = <T extends object>(x: T): Partial<T> => Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)) as Partial<T>;

/** The KD settings as a RunSpec (checkpoints carry one; resume checks it). */
export function kdRunSpec(kd: KdSpec, where = 'kd'): RunSpec {
  return makeRunSpec({
    kind: 'fp-finetune', scheme: 'none', loss: { kl: kd.loss.kl, ce: kd.loss.ce, hidden: kd.loss.hidden, attnMap: 0, attnOut: 0 }, temperature: kd.temperature,
    steps: kd.steps, batch: kd.batch, seq: kd.seq, accum: kd.accum, lr: kd.lr, minLrRatio: kd.minLrRatio, warmup: kd.warmup, weightDecay: kd.weightDecay, gradClip: kd.gradClip, seed: kd.seed,
  }, where);
}

export type CompressStage = 'teacher' | 'pruned' | 'kd' | 'ptq' | 'kdqat' | 'ce-scratch' | 'ce-pruned';
export type TrainStage = 'kd' | 'kdqat' | 'ce-scratch' | 'ce-pruned';

export const STAGE_LABELS: Record<CompressStage, string> = {
  teacher: 'teacher (FP32)', pruned: 'pruned (no training)', kd: 'pruned + KD', ptq: 'pruned + KD + PTQ', kdqat: 'pruned + KD + KD-QAT',
  'ce-scratch': 'baseline: small shape from scratch, CE only', 'ce-pruned': 'baseline: pruned init, CE only',
};

export interface CompressRow {
  stage: CompressStage;
  label: string;
  layers: number;
  heads: number;
  kvHeads: number;
  hiddenDim: number;
  params: number;
  /** bytes as shipped: fp32 tensors, packed projections (codes + fp32 scales/zeros) */
  bytes: number;
  /** teacher bytes / these bytes */
  compression: number;
  bits: number | null;
  /** the packed token embedding's bits (null: fp32) */
  embedBits: number | null;
  ppl: number;
  /** ppl / the teacher's */
  pplRatio: number;
  steps: number | null;
  /** training tokens this row's model saw after pruning (cumulative over its stages) */
  trainTokens: number;
  wallSeconds: number | null;
  /** zero-shot accuracy per task, when the hooks score tasks (`quench compress --tasks`) */
  accuracy?: Record<string, McResult>;
}

export interface CompressHooks {
  log?(s: string): void;
  onProgress?(p: Progress): void;
  onStep?(stage: TrainStage, m: StepMetrics): void | Promise<void>;
  shouldStop?(): boolean;
  /** every checkpointEvery steps and at each training stage's end */
  onCheckpoint?(stage: TrainStage, c: Checkpoint): void | Promise<void>;
  checkpointEvery?: number;
  /** each stage's model as a model folder's files (config.json, model.safetensors, tokenizer.json) */
  onModel?(stage: Exclude<CompressStage, 'teacher'>, files: Record<string, Uint8Array>): void | Promise<void>;
  /** checkpoints to resume training stages from (verified first) */
  resume?: Partial<Record<TrainStage, Checkpoint>>;
  tokenizerJson?: string;
  /** zero-shot accuracy of each stage's model (as `quench compare --tasks`) */
  accuracy?: (label: string, model: LlamaModel) => Promise<Record<string, McResult> | undefined>;
}

export interface CompressResult {
  status: 'done' | 'stopped';
  rows: CompressRow[];
  importance: Importance | null;
  plan: PrunePlan;
  student: LlamaConfig;
  data: EvalDescription;
  /** the 4-bit student after KD-QAT (or PTQ when qat.steps = 0) */
  final: { config: LlamaConfig; weights: LlamaWeights; quantized: QuantizedModel } | null;
}

/** Bytes of a model as shipped: fp32 embeddings, norms and unquantized projections; packed ones as packed. */
export function modelBytes(cfg: LlamaConfig, w: LlamaWeights, q: QuantizedModel | null): number {
  let b = (q?.embedding ? packedBytes(q.embedding) : w.tokEmbed.length * 4) + ((w.lmHead?.length ?? 0) + w.finalNorm.length) * 4;
  w.layers.forEach((lw, l) => {
    b += (lw.attnNorm.length + lw.mlpNorm.length) * 4;
    for (const p of PROJECTIONS) {
      const pw = q?.packed[l]?.[p];
      b += pw ? packedBytes(pw) : lw[PROJECTION_KEY[p]].length * 4;
    }
  });
  void cfg;
  return b;
}

/** A model folder's files; a head-pruned model's config.json carries head_dim. */
export function compressModelFiles(cfg: LlamaConfig, w: LlamaWeights, q: QuantizedModel | null, tokenizerJson?: string): Record<string, Uint8Array> {
  const files = modelFiles(cfg, w, q, tokenizerJson);
  if (cfg.headDim !== undefined && files['config.json']) {
    const j = JSON.parse(new TextDecoder().decode(files['config.json']));
    j.head_dim = headSize(cfg);
    files['config.json'] = new TextEncoder().encode(JSON.stringify(j, null, 2));
  }
  return files;
}

function kdConfigOf(kd: KdSpec, seq: number, layerMap: number[]): StudentKdConfig {
  return { ...kd, seq, warmup: kd.warmup === 'auto' ? autoWarmup(kd.steps) : kd.warmup, layerMap, beta1: DEFAULT_RUN_SPEC.beta1, beta2: DEFAULT_RUN_SPEC.beta2 };
}

export async function runCompress(gpu: Gpu, teacher: Teacher, spec: CompressSpec, split: DataSplit, hooks: CompressHooks = {}): Promise<CompressResult> {
  const log = hooks.log ?? (() => {});
  const tcfg = teacher.config;
  checkPruneOptions(tcfg, spec.prune);
  const tok = teacher.tokenizer;
  if (tok.vocabSize !== undefined && tok.vocabSize > tcfg.vocabSize) throw new Error(`the tokenizer has ${tok.vocabSize} tokens, the teacher's vocabulary ${tcfg.vocabSize}`);
  const stream = trainStream(split.train, tok);
  const evalSeqs = evalSequences(split.evalDocs, tok, tcfg.maxSeqLen, split.description);
  const seq = Math.min(spec.kd.seq, tcfg.maxSeqLen, Math.max(8, stream.length - 1));
  if (stream.length < seq + 1) throw new Error(`the training text has ${stream.length} tokens, fewer than one sequence of ${seq + 1}`);
  const rows: CompressRow[] = [];
  type Scores = { ppl: number; accuracy?: Record<string, McResult> };
  const withModel = async <T>(cfg: LlamaConfig, w: LlamaWeights, quantized: QuantizedModel | undefined, f: (m: LlamaModel) => Promise<T>): Promise<T> => {
    const model = LlamaModel.fromWeights(gpu, cfg, w, { quantized });
    try {
      return await f(model);
    } finally {
      model.free();
    }
  };
  // held-out perplexity by the workflow's protocol, and zero-shot accuracy when the hooks score tasks
  const evaluate = (label: string, cfg: LlamaConfig, w: LlamaWeights, quantized?: QuantizedModel): Promise<Scores> =>
    withModel(cfg, w, quantized, async (model) => ({
      ppl: (await perplexityBatched(evalSeqs, (s, p) => sequenceNlls(model, s, { onProgress: p }), (done, total) => hooks.onProgress?.({ phase: 'eval', label: `evaluating ${label}`, done, total, etaSeconds: null }))).ppl,
      accuracy: await hooks.accuracy?.(label, model),
    }));
  const teacherBytes = modelBytes(tcfg, teacher.weights, null);
  let teacherPpl = NaN;
  const addRow = (stage: CompressStage, cfg: LlamaConfig, w: LlamaWeights, q: QuantizedModel | null, { ppl, accuracy }: Scores, extra: Partial<CompressRow> = {}) => {
    const bytes = modelBytes(cfg, w, q);
    const r: CompressRow = {
      stage, label: STAGE_LABELS[stage], layers: cfg.nLayers, heads: cfg.nHeads, kvHeads: cfg.nKvHeads, hiddenDim: cfg.hiddenDim, params: paramCount(cfg), bytes,
      compression: teacherBytes / bytes, bits: q ? q.ptq.bits : null, embedBits: q?.embedding?.bits ?? null, ppl, pplRatio: ppl / teacherPpl, steps: null, trainTokens: 0, wallSeconds: null, ...extra,
      ...(accuracy ? { accuracy } : {}),
    };
    rows.push(r);
    log(`${r.label}: ${r.params} params, ${(r.bytes / 1e3).toFixed(1)} kB (${r.compression.toFixed(2)}× smaller), ppl ${ppl.toFixed(4)} (${r.pplRatio.toFixed(3)}× the teacher's)`);
  };
  const tj = tokenizerJsonOf(tok, hooks.tokenizerJson);
  const emit = async (stage: Exclude<CompressStage, 'teacher'>, cfg: LlamaConfig, w: LlamaWeights, q: QuantizedModel | null) => hooks.onModel?.(stage, compressModelFiles(cfg, w, q, tj));

  const teacherScores = await evaluate('the teacher', tcfg, teacher.weights);
  teacherPpl = teacherScores.ppl;
  addRow('teacher', tcfg, teacher.weights, null, teacherScores);

  // 1. prune
  const calib = calibrationFrom(stream, spec.calibration.sequences, Math.min(spec.calibration.seq, tcfg.maxSeqLen, stream.length - 1));
  hooks.onProgress?.({ phase: 'train', label: 'measuring importance (layers, heads, channels) on calibration text', done: 0, total: 1, etaSeconds: null });
  // MLP channels in multiples of the quantization group (when the MLP holds two groups or more):
  // down's rows then pack without padding, which would otherwise cost bytes and buy nothing
  const g = spec.qat.group;
  const mlpMultiple = spec.prune.mlpMultiple ?? (g > 0 && 2 * g <= tcfg.hiddenDim ? g : 8);
  const pruned = pruneModel(tcfg, teacher.weights, calib, { ...spec.prune, mlpMultiple });
  const scfg = pruned.config;
  checkStudent(tcfg, scfg, { loss: spec.kd.loss, layerMap: pruned.plan.keepLayers });
  log(`pruned: layers kept ${pruned.plan.keepLayers.join(',')} of ${tcfg.nLayers}; ${scfg.nKvHeads}/${tcfg.nKvHeads} KV groups (${scfg.nHeads}/${tcfg.nHeads} heads); ${scfg.hiddenDim}/${tcfg.hiddenDim} MLP channels${spec.prune.mlpKeep !== undefined && spec.prune.mlpKeep < 1 ? ` (--mlp-keep ${spec.prune.mlpKeep} rounded to a multiple of ${mlpMultiple})` : ''}`);
  addRow('pruned', scfg, pruned.weights, null, await evaluate('the pruned model', scfg, pruned.weights));
  await emit('pruned', scfg, pruned.weights, null);

  const budget = spec.kd.steps * spec.kd.batch * seq * spec.kd.accum;
  let stopped = false;
  // a training stage of the student shape (KD or CE-only), resumable
  const trainSmall = async (stage: TrainStage, init: LlamaWeights, loss: KdSpec['loss']): Promise<{ weights: LlamaWeights; wall: number } | null> => {
    const kd = { ...spec.kd, loss };
    const rs = kdRunSpec(kd, stage);
    const d = new StudentDistiller(gpu, tcfg, loss.kl > 0 || loss.hidden > 0 ? teacher.weights : null, scfg, init, kdConfigOf(kd, seq, pruned.plan.keepLayers), stream);
    try {
      const resume = hooks.resume?.[stage];
      if (resume) {
        verifyCheckpoint(resume, rs, d.checkpointShapes(), `${stage} checkpoint`);
        d.restore(new Map(resume.tensors.map((t) => [t.name, t.data])), resume.meta.step, resume.meta.rngState, resume.meta.history);
        log(`${stage}: resumed at step ${resume.meta.step}`);
      }
      // steps are submitted without waiting (their metrics land a step or two later): drained
      // before every checkpoint and at the end
      const land = async (ms: StepMetrics[]) => {
        for (const m of ms) {
          if (!Number.isFinite(m.loss) || !Number.isFinite(m.gradNorm)) {
            await d.drain().catch(() => []);
            throw new Error(`${stage} step ${m.step}: the loss (${m.loss}) or gradient norm (${m.gradNorm}) is not finite; lower the learning rate`);
          }
          await hooks.onStep?.(stage, m);
        }
      };
      const ckpt = async (): Promise<Checkpoint> => {
        await land(await d.drain());
        return { meta: { format: CHECKPOINT_FORMAT, version: 1, step: d.step, rngState: d.rng.state, spec: rs, history: [...d.history] }, tensors: await d.checkpointTensors() };
      };
      const t0 = performance.now(), s0 = d.step, every = hooks.checkpointEvery ?? 0;
      while (d.step < kd.steps) {
        if (hooks.shouldStop?.()) {
          stopped = true;
          await hooks.onCheckpoint?.(stage, await ckpt());
          return null;
        }
        await land(await d.submitStep());
        const el = (performance.now() - t0) / 1000;
        hooks.onProgress?.({ phase: 'train', label: `${STAGE_LABELS[stage]}`, done: d.step, total: kd.steps, etaSeconds: d.step > s0 ? (el / (d.step - s0)) * (kd.steps - d.step) : null });
        if (every > 0 && d.step % every === 0 && d.step < kd.steps) await hooks.onCheckpoint?.(stage, await ckpt());
      }
      await hooks.onCheckpoint?.(stage, await ckpt());
      return { weights: await d.weights(), wall: (performance.now() - t0) / 1000 };
    } finally {
      d.free();
    }
  };
  const result = (final: CompressResult['final']): CompressResult => ({ status: stopped ? 'stopped' : 'done', rows, importance: pruned.importance, plan: pruned.plan, student: scfg, data: split.description, final });

  // 2. KD into the pruned student
  const kdOut = await trainSmall('kd', pruned.weights, spec.kd.loss);
  if (!kdOut) return result(null);
  addRow('kd', scfg, kdOut.weights, null, await evaluate('pruned + KD', scfg, kdOut.weights), { steps: spec.kd.steps, trainTokens: budget, wallSeconds: +kdOut.wall.toFixed(1) });
  await emit('kd', scfg, kdOut.weights, null);

  // 3. PTQ of the distilled student
  const q = spec.qat;
  const ptq = quantizeWeights(scfg, kdOut.weights, { bits: q.bits, group: q.group, sym: q.sym, clipSearch: true, ...(spec.embedding ? { embedding: spec.embedding } : {}) });
  // from here on the weights carry the embedding the shipped file holds (its dequantized codes)
  const kdW: LlamaWeights = ptq.embedding ? { ...kdOut.weights, tokEmbed: dequantizeHost(ptq.embedding) } : kdOut.weights;
  if (ptq.embedding) log(`embedding: ${ptq.embedding.bits}-bit, groups of ${ptq.embedding.group} (${(packedBytes(ptq.embedding) / 1e3).toFixed(1)} kB instead of ${((kdOut.weights.tokEmbed.length * 4) / 1e3).toFixed(1)} kB)`);
  addRow('ptq', scfg, kdW, ptq, await evaluate('pruned + KD + PTQ', scfg, kdW, ptq), { trainTokens: budget });
  await emit('ptq', scfg, kdW, ptq);
  let final: CompressResult['final'] = { config: scfg, weights: kdW, quantized: ptq };

  // 4. KD-QAT: the distilled FP student teaches its own quantized copy. With a packed embedding the
  // teacher runs it too: KD-QAT never trains the embedding, so the student keeps exactly those codes
  // and learns its projections around them.
  if (q.steps > 0) {
    const small: Teacher = { name: 'pruned + KD student', config: scfg, weights: kdW, tokenizer: tok };
    const r = await runTraining(gpu, small, q, stream, evalSeqs, {
      onStep: (m) => hooks.onStep?.('kdqat', m), onProgress: hooks.onProgress, shouldStop: hooks.shouldStop,
      onCheckpoint: async (c) => hooks.onCheckpoint?.('kdqat', c), checkpointEvery: hooks.checkpointEvery, resumeFrom: 'kdqat checkpoint',
    }, hooks.resume?.kdqat);
    if (r.status !== 'done' || !r.student || !r.summary) {
      stopped = true;
      return result(final);
    }
    const qatTokens = q.steps * q.batch * Math.min(q.seq, scfg.maxSeqLen) * q.accum;
    const sq: QuantizedModel = ptq.embedding ? { ...r.student.quantized, ptq: { ...r.student.quantized.ptq, embedding: spec.embedding! }, embedding: ptq.embedding } : r.student.quantized;
    const sw: LlamaWeights = ptq.embedding ? { ...r.student.weights, tokEmbed: kdW.tokEmbed } : r.student.weights;
    // runTraining measured its perplexity; only the accuracy is left to score
    const accuracy = hooks.accuracy ? await withModel(scfg, sw, sq, (m) => hooks.accuracy!('pruned + KD + KD-QAT', m)) : undefined;
    addRow('kdqat', scfg, sw, sq, { ppl: r.summary.evalPpl, accuracy }, { steps: q.steps, trainTokens: budget + qatTokens, wallSeconds: r.summary.wallSeconds });
    await emit('kdqat', scfg, sw, sq);
    final = { config: scfg, weights: sw, quantized: sq };
  }

  // 5. CE-only baselines on KD's token budget (same recipe, no teacher)
  if (spec.baselines) {
    const ce = { kl: 0, ce: 1, hidden: 0 };
    for (const [stage, init] of [['ce-scratch', pretrainInit(scfg, spec.kd.seed)], ['ce-pruned', pruned.weights]] as const) {
      const out = await trainSmall(stage, init, ce);
      if (!out) return result(final);
      addRow(stage, scfg, out.weights, null, await evaluate(STAGE_LABELS[stage], scfg, out.weights), { steps: spec.kd.steps, trainTokens: budget, wallSeconds: +out.wall.toFixed(1) });
      await emit(stage, scfg, out.weights, null);
    }
  }
  return result(final);
}

export const COMPRESS_COLUMNS = ['stage', 'layers', 'heads', 'kv heads', 'hidden', 'params', 'bytes', 'x smaller', 'bits', 'embedding', 'eval ppl', 'ppl / teacher', 'steps', 'train tokens', 'wall s'] as const;

export function compressCells(r: CompressRow): string[] {
  return [r.label, String(r.layers), String(r.heads), String(r.kvHeads), String(r.hiddenDim), String(r.params), String(r.bytes), r.compression.toFixed(2), r.bits === null ? 'fp32' : String(r.bits), r.embedBits == null ? 'fp32' : `${r.embedBits}-bit`, r.ppl.toFixed(4), r.pplRatio.toFixed(3), r.steps === null ? '' : String(r.steps), String(r.trainTokens), r.wallSeconds === null ? '' : r.wallSeconds.toFixed(1)];
}

/** The tasks any row was scored on, and each row's accuracy cells (acc, acc_norm) for them. */
export function accuracyColumns(rows: CompressRow[]): { header: string[]; cells: (r: CompressRow) => string[] } {
  const tasks = [...new Set(rows.flatMap((r) => Object.keys(r.accuracy ?? {})))];
  return {
    header: tasks.flatMap((t) => [`${t} acc`, `${t} acc_norm`]),
    cells: (r) => tasks.flatMap((t) => {
      const a = r.accuracy?.[t];
      return a ? [a.acc.toFixed(4), a.acc_norm.toFixed(4)] : ['', ''];
    }),
  };
}

export function compressCsv(rows: CompressRow[]): string {
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const acc = accuracyColumns(rows);
  return [[...COMPRESS_COLUMNS, ...acc.header].join(','), ...rows.map((r) => [r.stage, ...compressCells(r).slice(1), ...acc.cells(r)].map(q).join(','))].join('\n') + '\n';
}

export function compressTable(rows: CompressRow[]): string {
  const acc = accuracyColumns(rows);
  const lines = [[...COMPRESS_COLUMNS, ...acc.header], ...rows.map((r) => [...compressCells(r), ...acc.cells(r)])];
  return ['| ' + lines[0].join(' | ') + ' |', '|' + lines[0].map(() => '---').join('|') + '|', ...lines.slice(1).map((l) => '| ' + l.join(' | ') + ' |')].join('\n');
}

/** The verdicts the issue asks for, from a finished table. */
export function compressVerdict(rows: CompressRow[]): { finalStage: CompressStage | null; compression: number | null; pplRatio: number | null; smallerBy7: boolean | null; within125: boolean | null; kdBeatsBaselines: boolean | null } {
  const by = (s: CompressStage) => rows.find((r) => r.stage === s);
  const f = by('kdqat') ?? by('ptq') ?? null;
  const kd = by('kd'), a = by('ce-scratch'), b = by('ce-pruned');
  return {
    finalStage: f?.stage ?? null, compression: f?.compression ?? null, pplRatio: f?.pplRatio ?? null,
    smallerBy7: f ? f.compression >= 7 : null, within125: f ? f.pplRatio <= 1.25 : null,
    kdBeatsBaselines: kd && a && b ? kd.ppl < a.ppl && kd.ppl < b.ppl : null,
  };
}
