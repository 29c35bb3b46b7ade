// KD-QAT: the FP teacher (forward only) distils into its quantized student (fp32 latents, packed
// low-bit forward, STE backward). Losses: KL(teacher‖student) on logits with temperature (×T²),
// next-token CE, attention-map KL (mean over query rows and heads, summed over layers),
// attention-output MSE and hidden-state MSE per layer. AdamW with warm-up + cosine decay, global
// norm clipping, gradient accumulation, a seed that fixes data order. Per-step metrics: loss
// components, lr, global grad norm, tokens/s; every `metricsEvery` steps: per layer × projection
// squared gradient norms, per-layer forward error against the teacher, code-flip fractions.
// Memory (train/memory.ts plans it): the logit losses run chunk by chunk of rows (no B·T·V
// logits), the teacher keeps one layer of activations (its forward is interleaved with the
// student's, layer by layer, so per-layer losses read both), the student's embedding is the
// teacher's buffer, frozen projections keep only their packed codes, one d(quantized weight)
// scratch serves every projection, and for large shapes the student's layer activations are
// recomputed in the backward and the teacher's projections are f16.
import type { AsyncRead, Gpu, Tensor } from '../gpu/runtime';
import { PROJECTIONS, headSize, type LlamaConfig, type LlamaWeights, type Projection } from '../model/config';
import { LlamaModel, type Activations } from '../model/llama';
import { DenseLinear } from '../model/dense';
import { QatLinear } from '../model/qat';
import { addForward } from '../ops/elementwise';
import { quantizePackMany } from '../ops/fakequant';
import { attnKlBackward, attnKlForward, mseBackward, mseForward } from '../ops/loss';
import { MultiAdamW, clipScale, sum, sumSquares, sumSquaresMany } from '../ops/optim';
import { getCode, quantizeHost, type Bits, type PackedWeight } from '../format/pack';
import { searchClip, type QuantizedModel } from '../quant/ptq';
import { sequenceNlls } from '../model/runner';
import { perplexityBatched } from '../eval/perplexity';
import { Rng, sampleBatch } from './data';
import type { FreezeMask } from './freeze';
import { LogitLoss } from './logit-loss';
import { adamCheckpointTensors, restoreAdamCheckpoint, type CheckpointTensor } from './adam-checkpoint';
import { StepQueue } from './step-queue';
import { gpuLimits, planDistillMemory, type DistillMemoryOptions, type MemoryPlan } from './memory';

export interface LossWeights {
  kl: number;
  ce: number;
  attnMap: number;
  attnOut: number;
  hidden: number;
}

export interface DistillConfig {
  bits: Bits;
  group: number;
  sym: boolean;
  clip: number; // min/max clip ratio of the student's scales
  /** 'minmax': scales follow the weights (min/max with clip, every step); 'learned': LSQ step
   *  sizes, initialised from min/max and trained with their own learning rate */
  scales: 'minmax' | 'learned';
  /** learning rate of learned scales, as a multiple of lr */
  scaleLrRatio: number;
  /** where frozen projections' scales and learned scales start: min/max (with clip), or the PTQ
   *  per-group clip search (minimum reconstruction error) */
  scaleInit: 'minmax' | 'search';
  freeze: FreezeMask;
  loss: LossWeights;
  temperature: number;
  steps: number;
  batch: number;
  seq: number;
  accum: number;
  lr: number;
  minLrRatio: number;
  warmup: number;
  weightDecay: number;
  gradClip: number;
  beta1: number;
  beta2: number;
  seed: number;
  metricsEvery: number;
  trainNorms: boolean;
  /** the paper's reference run: FP fine-tuning with the same recipe, no quantization */
  fpReference: boolean;
}

// The best recipe found on stories260K (README, "KD-QAT"): KL on the logits plus half-weight CE on
// the data, learned (LSQ) scales starting from the PTQ clip search, AdamW lr 5e-4.
export const DEFAULT_DISTILL: Omit<DistillConfig, 'freeze'> = {
  bits: 4, group: 32, sym: false, clip: 1, scales: 'learned', scaleLrRatio: 1, scaleInit: 'search', loss: { kl: 1, ce: 0.5, attnMap: 0, attnOut: 0, hidden: 0 }, temperature: 1,
  steps: 300, batch: 8, seq: 128, accum: 1, lr: 5e-4, minLrRatio: 0.1, warmup: 20, weightDecay: 0, gradClip: 1,
  beta1: 0.9, beta2: 0.95, seed: 1, metricsEvery: 10, trainNorms: true, fpReference: false,
};

export interface StepMetrics {
  step: number;
  lr: number;
  loss: number;
  losses: LossWeights; // unweighted components
  gradNorm: number;
  tokensPerSec: number;
  /** every metricsEvery steps: */
  gradSq?: Record<Projection, number>[]; // [layer][proj] squared Frobenius norm of the latent gradient
  hiddenRelErr?: number[]; // per layer ‖h_s − h_t‖² / ‖h_t‖²
  attnOutRelErr?: number[];
  codeFlips?: Partial<Record<Projection, number>>; // fraction of codes changed since the start
}

interface Param {
  name: string;
  param: Tensor;
  grad: Tensor;
  layer?: number;
  proj?: Projection;
  /** a learned scale tensor (its own learning rate, no weight decay, not in gradSq) */
  isScale?: boolean;
}

/** Scales and zeros of the PTQ clip search (per-group clip ratio of least reconstruction error). */
function searchedScales(w: Float32Array, N: number, K: number, dc: DistillConfig): { scales: Float32Array; zeros: Float32Array } {
  const p = quantizeHost(w, N, K, { bits: dc.bits, group: dc.group, sym: dc.sym }, searchClip(w, N, K, dc.bits, dc.group, dc.sym));
  return { scales: p.scales, zeros: p.zeros };
}

export function lrAt(step: number, c: Pick<DistillConfig, 'lr' | 'warmup' | 'steps' | 'minLrRatio'>): number {
  if (step < c.warmup) return (c.lr * (step + 1)) / c.warmup;
  const t = (step - c.warmup) / Math.max(1, c.steps - c.warmup);
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, t))));
}

const LOSS_SLOTS = ['kl', 'ce', 'attnMap', 'attnOut', 'hidden'] as const;

/** A submitted step waiting for its readback: losses, clip (scale, norm), on metrics steps the
 *  per-layer errors, per-tensor squared norms and the codes of `codes`. */
interface InFlightStep {
  step: number;
  lr: number;
  read: AsyncRead;
  startedAt: number;
  metricsNow: boolean;
  codes: [string, QatLinear, Projection][];
}

export class Distiller {
  readonly teacher: LlamaModel;
  readonly student: LlamaModel;
  readonly params: Param[] = [];
  readonly rng: Rng;
  step = 0;
  readonly history: StepMetrics[] = [];
  private readonly initialCodes = new Map<string, Uint32Array>();
  private readonly lossBuf: Tensor; // (5) summed losses of the last step
  private readonly metricBuf: Tensor; // (2·L) hidden / attnOut squared errors; (2·L) teacher norms
  private readonly sumsq: Tensor; // (nParams) per-parameter squared grad norms
  private readonly clipBuf: Tensor; // (2) clip scale, global norm
  /** AdamW over params (their m and v in its arenas), several tensors per dispatch */
  private readonly adam: MultiAdamW;
  private readonly scratch: Record<string, Tensor> = {};
  private readonly logitLoss: LogitLoss;
  private readonly dwq: Tensor | null; // (max N·K) d(quantized weight) scratch shared by the student's projections
  /** the memory choices this run made (logit rows, recompute, f16 teacher) and its estimate */
  readonly plan: MemoryPlan;
  private readonly queue: StepQueue<InFlightStep, StepMetrics>;
  private lastLanded: number | null = null;

  constructor(readonly gpu: Gpu, readonly cfg: LlamaConfig, weights: LlamaWeights, readonly dc: DistillConfig, readonly stream: Uint32Array, mem: DistillMemoryOptions = {}) {
    if (dc.freeze.length !== cfg.nLayers) throw new Error(`freeze mask has ${dc.freeze.length} layers, the model ${cfg.nLayers}`);
    this.queue = new StepQueue(gpu, (f, bufs) => this.land(f, bufs));
    this.rng = new Rng(dc.seed >>> 0);
    this.plan = planDistillMemory(cfg, dc, gpuLimits(gpu), mem);
    this.teacher = LlamaModel.fromWeights(gpu, cfg, weights, { label: 'teacher', halfProjections: this.plan.teacherHalf });
    let dwqElems = 0;
    if (!dc.fpReference) for (let l = 0; l < cfg.nLayers; l++) for (const p of PROJECTIONS) if (!dc.freeze[l][p]) dwqElems = Math.max(dwqElems, this.teacher.layers[l].proj[p].N * this.teacher.layers[l].proj[p].K);
    this.dwq = dwqElems > 0 ? gpu.tensor('student.dwq', [dwqElems]) : null;
    this.student = LlamaModel.fromWeights(gpu, cfg, weights, {
      label: 'student',
      trainable: dc.trainNorms,
      trainEmbeddings: false,
      shareEmbeddingWith: this.teacher,
      makeProjection: (l, p, w, N, K) =>
        dc.fpReference
          ? new DenseLinear(gpu, gpu.tensor(`student.layers.${l}.${p}.w`, [N, K], 'f32', w), N, K, !dc.freeze[l][p])
          : new QatLinear(gpu, `student.layers.${l}.${p}`, w, N, K, {
              bits: dc.bits, group: dc.group, sym: dc.sym, clip: dc.clip, frozen: dc.freeze[l][p], learnScales: dc.scales === 'learned',
              init: dc.scaleInit === 'search' && (dc.freeze[l][p] || dc.scales === 'learned') ? searchedScales(w, N, K, dc) : undefined,
              dwq: this.dwq ?? undefined,
            }),
    });
    this.logitLoss = new LogitLoss(gpu);
    const addParam = (name: string, param: Tensor, grad: Tensor | null, layer?: number, proj?: Projection, isScale = false) => {
      if (!grad) return;
      this.params.push({ name, param, grad, layer, proj, isScale });
    };
    this.student.layers.forEach((L, l) => {
      for (const p of PROJECTIONS) {
        const lin = L.proj[p];
        if (lin instanceof QatLinear) {
          if (lin.latent) addParam(`layers.${l}.${p}`, lin.latent, lin.grad, l, p);
          addParam(`layers.${l}.${p}.scales`, lin.packed.scales, lin.scaleGrad, l, p, true);
        }
        else if (lin instanceof DenseLinear) addParam(`layers.${l}.${p}`, lin.w, lin.grad, l, p);
      }
      addParam(`layers.${l}.attnNorm`, L.attnNorm, L.attnNormGrad, l);
      addParam(`layers.${l}.mlpNorm`, L.mlpNorm, L.mlpNormGrad, l);
    });
    addParam('finalNorm', this.student.finalNorm, this.student.finalNormGrad);
    this.adam = new MultiAdamW(gpu, 'distill', this.params);
    this.lossBuf = gpu.tensor('distill.losses', [LOSS_SLOTS.length]);
    this.metricBuf = gpu.tensor('distill.metrics', [4 * cfg.nLayers]);
    this.sumsq = gpu.tensor('distill.sumsq', [Math.max(1, this.params.length)]);
    this.clipBuf = gpu.tensor('distill.clip', [2]);
  }

  private t(name: string, shape: number[], dtype: 'f32' | 'u32' = 'f32'): Tensor {
    const key = `${name}:${shape.join('x')}:${dtype}`;
    return (this.scratch[key] ??= this.gpu.tensor(`distill.${name}`, shape, dtype));
  }

  /** Remember the starting codes, for code-flip fractions. */
  async snapshotCodes(): Promise<void> {
    for (const [name, p] of this.qatProjections()) this.initialCodes.set(name, (await this.gpu.read(p.packed.codes)) as Uint32Array);
  }

  private *qatProjections(): Generator<[string, QatLinear, Projection]> {
    for (let l = 0; l < this.cfg.nLayers; l++)
      for (const p of PROJECTIONS) {
        const lin = this.student.layers[l].proj[p];
        if (lin instanceof QatLinear) yield [`layers.${l}.${p}`, lin, p];
      }
  }

  requantize(): void {
    const jobs = [];
    for (const [, q] of this.qatProjections()) {
      const job = q.requantizeJob();
      if (job) jobs.push(job);
    }
    quantizePackMany(this.gpu, jobs);
  }

  /** One optimizer step (accum micro-batches), waited for: submitStep + drain. Returns its metrics. */
  async trainStep(): Promise<StepMetrics> {
    await this.submitStep();
    await this.drain();
    return this.history[this.history.length - 1];
  }

  /**
   * Record and submit one optimizer step without waiting on the GPU: its losses and gradient norm
   * (and, on metrics steps, the detailed metrics) are copied into a staging buffer and read back
   * asynchronously. Returns the metrics of earlier steps that have landed since the last call, in
   * step order (often none); they are also appended to `history`. At most `maxInFlight` steps run
   * ahead of the last landed one: past that the call waits for the oldest (a throttle wait, as a
   * full launch queue would make a CUDA loop wait). Throws on the first step whose loss is not
   * finite (seen up to maxInFlight steps late; `drain()` before a checkpoint makes it exact).
   */
  async submitStep(): Promise<StepMetrics[]> {
    return this.queue.push(this.recordStep());
  }

  /** Wait for every step in flight; returns their metrics in step order (also in `history`). */
  async drain(): Promise<StepMetrics[]> {
    return this.queue.drain();
  }

  /** Steps submitted whose metrics have not landed yet. */
  get pendingSteps(): number {
    return this.queue.pending;
  }

  /** steps that may be submitted ahead of the last one whose metrics have landed (default 2) */
  get maxInFlight(): number {
    return this.queue.maxInFlight;
  }

  set maxInFlight(n: number) {
    this.queue.maxInFlight = n;
  }

  private recordStep(): InFlightStep {
    const { gpu, cfg, dc } = this;
    const t0 = performance.now();
    const B = dc.batch, T = dc.seq, BT = B * T, V = cfg.vocabSize, C = cfg.dim, L = cfg.nLayers, NH = cfg.nHeads;
    const withProbs = dc.loss.attnMap > 0;
    const R = this.plan.logitRows;
    const ta = this.teacher.activations(B, T, withProbs, R, 'none'); // forward only: one layer kept
    const sa = this.student.activations(B, T, withProbs, R, this.plan.recompute ? 'residuals' : 'all'); // without probs: flash attention
    const rows = this.t('rows', [Math.max(BT, B * NH * T)]);
    const targets = this.t('targets', [BT], 'u32');
    const dxnf = this.t('dxnf', [BT, C]); // (B*T, C) d loss / d student final-norm output
    const logitSums = this.t('logitsums', [2]); // Σ per-row KL, Σ per-row CE of one micro-batch
    const dprobs = withProbs ? Array.from({ length: L }, (_, l) => this.t(`dprobs${l}`, [B, NH, T, T])) : [];
    const dattn = dc.loss.attnOut > 0 ? Array.from({ length: L }, (_, l) => this.t(`dattn${l}`, [BT, C])) : [];
    const dhid = dc.loss.hidden > 0 ? Array.from({ length: L }, (_, l) => this.t(`dhid${l}`, [BT, C])) : [];
    const metricsNow = dc.metricsEvery > 0 && (this.step % dc.metricsEvery === 0 || this.step === dc.steps - 1);
    this.requantize();
    this.student.zeroGrads();
    for (const p of this.params) if (p.isScale) gpu.zero(p.grad);
    gpu.zero(this.lossBuf);
    const losses = this.t('lossacc', [LOSS_SLOTS.length]);
    gpu.zero(losses);
    for (let micro = 0; micro < dc.accum; micro++) {
      const { inputs, targets: tg } = sampleBatch(this.stream, B, T, this.rng);
      gpu.write(ta.tokens, inputs);
      gpu.write(sa.tokens, inputs);
      gpu.write(targets, tg);
      const a = 1 / dc.accum;
      // teacher and student forward interleaved layer by layer: the per-layer losses and metrics
      // read both models' layer l before the next layer overwrites the teacher's
      this.teacher.forwardStart(ta);
      this.student.forwardStart(sa);
      for (let l = 0; l < L; l++) {
        this.teacher.forwardLayer(ta, l);
        this.student.forwardLayer(sa, l);
        if (withProbs) {
          const n = B * NH * T;
          attnKlForward(gpu, rows, sa.layers[l].probs, ta.layers[l].probs, n, T);
          sum(gpu, this.t('tmp1', [1]), 0, rows, n);
          this.accumSlot(losses, 2, this.t('tmp1', [1]));
          attnKlBackward(gpu, dprobs[l], sa.layers[l].probs, ta.layers[l].probs, n, T, (dc.loss.attnMap * a) / n);
        }
        if (dc.loss.attnOut > 0) {
          mseForward(gpu, rows, sa.layers[l].attnOut, ta.layers[l].attnOut, BT, C);
          sum(gpu, this.t('tmp1', [1]), 0, rows, BT);
          this.accumSlot(losses, 3, this.t('tmp1', [1]));
          mseBackward(gpu, dattn[l], sa.layers[l].attnOut, ta.layers[l].attnOut, BT, C, (dc.loss.attnOut * a) / BT);
        }
        if (dc.loss.hidden > 0) {
          mseForward(gpu, rows, sa.x[l + 1], ta.x[l + 1], BT, C);
          sum(gpu, this.t('tmp1', [1]), 0, rows, BT);
          this.accumSlot(losses, 4, this.t('tmp1', [1]));
          mseBackward(gpu, dhid[l], sa.x[l + 1], ta.x[l + 1], BT, C, (dc.loss.hidden * a) / BT);
        }
        if (metricsNow && micro === dc.accum - 1) this.layerMetrics(ta, sa, l);
      }
      this.teacher.forwardFinish(ta, false);
      this.student.forwardFinish(sa, false);
      // logits: KL with temperature and/or CE, chunk by chunk of rows, back into d(final norm)
      this.logitLoss.run({
        student: this.student, sa, teacher: dc.loss.kl > 0 ? this.teacher : undefined, ta: dc.loss.kl > 0 ? ta : undefined, targets, temperature: dc.temperature,
        klScale: (dc.loss.kl * a) / BT, ceScale: (dc.loss.ce * a) / BT, out: logitSums, klIndex: 0, ceIndex: 1, dxnf,
      });
      if (dc.loss.kl > 0) this.accumSlot(losses, 0, logitSums, 0);
      if (dc.loss.ce > 0) this.accumSlot(losses, 1, logitSums, 1);
      this.student.backwardFromNorm(sa, dxnf, { dprobs: withProbs ? dprobs : undefined, dattnOut: dattn.length ? dattn : undefined, dhidden: dhid.length ? dhid : undefined });
    }
    // gradient norms, clipping, AdamW
    sumSquaresMany(gpu, this.sumsq, 0, this.params.map((p) => p.grad)); // 15 tensors per partial dispatch, one finish pass for all
    clipScale(gpu, this.clipBuf, this.sumsq, this.params.length, dc.gradClip);
    const lr = lrAt(this.step, dc);
    const h = { lr, beta1: dc.beta1, beta2: dc.beta2, eps: 1e-8, weightDecay: dc.weightDecay };
    const hScale = { ...h, lr: lr * dc.scaleLrRatio, weightDecay: 0 };
    this.adam.step(this.clipBuf, this.step + 1, (i) => (this.params[i].isScale ? hScale : h)); // a few tensors per dispatch
    // the step's scalars, and on metrics steps the per-layer errors, per-tensor grad norms and the
    // codes (for code flips), leave in one async readback: nothing here waits on the GPU
    const parts: { t: Tensor }[] = [{ t: losses }, { t: this.clipBuf }];
    const codes: [string, QatLinear, Projection][] = [];
    if (metricsNow) {
      parts.push({ t: this.metricBuf }, { t: this.sumsq });
      if (this.initialCodes.size) for (const e of this.qatProjections()) if (!e[1].frozen) { codes.push(e); parts.push({ t: e[1].packed.codes }); }
    }
    const entry = { step: this.step, lr, read: gpu.readAsync(parts), startedAt: t0, metricsNow, codes };
    this.step++;
    return entry;
  }

  /** A landed step's readback into its metrics (the StepQueue calls it in step order); throws
   *  on a non-finite loss, and the queue then drops the steps submitted after it. */
  private land(f: InFlightStep, bufs: ArrayBuffer[]): StepMetrics {
    const { cfg, dc } = this;
    const now = performance.now();
    const B = dc.batch, T = dc.seq, BT = B * T, L = cfg.nLayers, NH = cfg.nHeads;
    const lossVals = new Float32Array(bufs[0]);
    const clip = new Float32Array(bufs[1]);
    const comp = {} as LossWeights;
    const denom = [BT, BT, B * NH * T * L, BT * L, BT * L];
    LOSS_SLOTS.forEach((k, i) => (comp[k] = lossVals[i] / denom[i] / dc.accum));
    comp.attnMap *= L; // mean over rows and heads, summed over layers
    comp.attnOut *= L;
    comp.hidden *= L;
    const loss = LOSS_SLOTS.reduce((s, k) => s + dc.loss[k] * comp[k], 0);
    // throughput from the GPU's pace: the time since the previous step landed (or this one started)
    const since = Math.max(f.startedAt, this.lastLanded ?? 0);
    this.lastLanded = now;
    const m: StepMetrics = { step: f.step, lr: f.lr, loss, losses: comp, gradNorm: clip[1], tokensPerSec: (BT * dc.accum) / (Math.max(now - since, 1e-3) / 1000) };
    if (!Number.isFinite(loss)) {
      // the queue discards the later steps: they trained on top of a broken one
      throw new Error(`loss became ${loss} at step ${f.step} (components ${JSON.stringify(comp)}); stopping — lower the learning rate`);
    }
    if (f.metricsNow) Object.assign(m, this.detailedMetrics(new Float32Array(bufs[2]), new Float32Array(bufs[3]), f.codes, bufs.slice(4)));
    this.history.push(m);
    return m;
  }

  private accumSlot(losses: Tensor, slot: number, src: Tensor, srcIndex = 0): void {
    // losses[slot] += src[srcIndex]  (tiny: one-element add through the elementwise kernel)
    const tmp = this.t('slot', [1]);
    const one = this.t('slot1', [1]);
    this.gpu.copy(losses, tmp, 4, slot * 4, 0);
    this.gpu.copy(src, one, 4, srcIndex * 4, 0);
    addForward(this.gpu, this.t('slot2', [1]), tmp, one);
    this.gpu.copy(this.t('slot2', [1]), losses, 4, 0, slot * 4);
  }

  /** Layer l's forward error against the teacher into metricBuf (during the interleaved forward). */
  private layerMetrics(ta: Activations, sa: Activations, l: number): void {
    const { gpu, cfg } = this;
    const L = cfg.nLayers, BT = ta.B * ta.T, C = cfg.dim;
    const rows = this.t('rows2', [BT]);
    mseForward(gpu, rows, sa.x[l + 1], ta.x[l + 1], BT, C);
    sum(gpu, this.metricBuf, l, rows, BT);
    sumSquares(gpu, this.metricBuf, 2 * L + l, ta.x[l + 1], BT * C);
    mseForward(gpu, rows, sa.layers[l].attnOut, ta.layers[l].attnOut, BT, C);
    sum(gpu, this.metricBuf, L + l, rows, BT);
    sumSquares(gpu, this.metricBuf, 3 * L + l, ta.layers[l].attnOut, BT * C);
  }

  private detailedMetrics(mb: Float32Array, sq: Float32Array, codes: [string, QatLinear, Projection][], codeBytes: ArrayBuffer[]): Partial<StepMetrics> {
    const { cfg } = this;
    const L = cfg.nLayers, C = cfg.dim;
    const gradSq = Array.from({ length: L }, () => Object.fromEntries(PROJECTIONS.map((p) => [p, 0])) as Record<Projection, number>);
    this.params.forEach((p, i) => {
      if (p.layer !== undefined && p.proj && !p.isScale) gradSq[p.layer][p.proj] = sq[i];
    });
    // mse rows are Σ/C, so Σ rows · C = Σ squared error
    const hiddenRelErr = Array.from({ length: L }, (_, l) => (mb[l] * C) / Math.max(mb[2 * L + l], 1e-30));
    const attnOutRelErr = Array.from({ length: L }, (_, l) => (mb[L + l] * C) / Math.max(mb[3 * L + l], 1e-30));
    const codeFlips: Partial<Record<Projection, number>> = {};
    if (codes.length) {
      const changed: Partial<Record<Projection, [number, number]>> = {};
      codes.forEach(([name, q, p], i) => {
        const now = new Uint32Array(codeBytes[i]);
        const before = this.initialCodes.get(name)!;
        const lay = { ...q.packed.layout, codes: now };
        const lay0 = { ...q.packed.layout, codes: before };
        let c = 0;
        for (let n = 0; n < lay.N; n++) for (let k = 0; k < lay.K; k++) if (getCode(lay, n, k) !== getCode(lay0, n, k)) c++;
        const acc = changed[p] ?? [0, 0];
        changed[p] = [acc[0] + c, acc[1] + lay.N * lay.K];
      });
      for (const [p, [c, n]] of Object.entries(changed) as [Projection, [number, number]][]) codeFlips[p] = c / n;
    }
    return { gradSq, hiddenRelErr, attnOutRelErr, codeFlips };
  }

  /** Held-out perplexity of the student as it would ship (packed weights from the latents now). */
  async evaluate(seqs: number[][]): Promise<number> {
    this.requantize();
    return (await perplexityBatched(seqs, (s) => sequenceNlls(this.student, s))).ppl;
  }

  /** The student as a quantized model: packed projections read back, norms updated. */
  async exportStudent(base: LlamaWeights): Promise<{ weights: LlamaWeights; quantized: QuantizedModel }> {
    this.requantize();
    const { gpu, cfg, dc } = this;
    const packed: Partial<Record<Projection, PackedWeight>>[] = [];
    const layers = [];
    for (let l = 0; l < cfg.nLayers; l++) {
      const L = this.student.layers[l];
      const entry: Partial<Record<Projection, PackedWeight>> = {};
      for (const p of PROJECTIONS) {
        const q = L.proj[p];
        if (q instanceof QatLinear) entry[p] = { ...q.packed.layout, codes: (await gpu.read(q.packed.codes)) as Uint32Array, scales: await gpu.readF32(q.packed.scales), zeros: await gpu.readF32(q.packed.zeros) };
      }
      packed.push(entry);
      layers.push({ ...base.layers[l], attnNorm: await gpu.readF32(L.attnNorm), mlpNorm: await gpu.readF32(L.mlpNorm) });
    }
    const weights: LlamaWeights = { ...base, layers, finalNorm: await gpu.readF32(this.student.finalNorm) };
    return { weights, quantized: { config: cfg, ptq: { bits: dc.bits, group: dc.group, sym: dc.sym, clipSearch: false }, packed, report: [] } };
  }

  /** Everything needed to resume: parameters, optimizer state, step, RNG state. */
  async checkpointTensors(): Promise<CheckpointTensor[]> {
    return adamCheckpointTensors(this.gpu, this.params, this.adam);
  }

  restore(tensors: Map<string, Float32Array>, step: number, rngState: number): void {
    restoreAdamCheckpoint(this.gpu, this.params, this.adam, tensors);
    // frozen projections were quantized once from the teacher's weights at construction, as in the original run
    this.step = step;
    this.rng.state = rngState >>> 0;
  }

  free(): void {
    this.teacher.free();
    this.student.free();
    this.adam.free();
    for (const t of Object.values(this.scratch)) this.gpu.free(t);
    this.logitLoss.free();
    this.gpu.free(this.dwq);
    for (const t of [this.lossBuf, this.metricBuf, this.sumsq, this.clipBuf]) this.gpu.free(t);
  }
}

export function headSizeOf(cfg: LlamaConfig): number {
  return headSize(cfg);
}
