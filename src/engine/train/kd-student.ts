// Distillation into a student of another shape (full precision): the teacher (forward only) and a
// smaller LLaMA with the same vocabulary. Loss = kl·T²·KL(teacher‖student) (temperature T) + ce·CE
// on the data + hidden·Σ MSE(student layer i output, teacher layer map[i] output) where the widths
// match. AdamW with warm-up + cosine (lrAt), global-norm clipping, accumulation, a seed that fixes
// the data order; the metrics are KD-QAT's StepMetrics; checkpointTensors/restore resume exactly.
// With kl = hidden = 0 it is CE-only training of the same model and recipe (no teacher forward):
// the compress pipeline's baselines.
import type { AsyncRead, Gpu, Tensor } from '../gpu/runtime';
import { PROJECTIONS, type LlamaConfig, type LlamaWeights } from '../model/config';
import { LlamaModel, type Activations } from '../model/llama';
import { DenseLinear } from '../model/dense';
import { addForward } from '../ops/elementwise';
import { crossEntropyBackward, crossEntropyForward, klBackward, klForward, mseBackward, mseForward } from '../ops/loss';
import { MultiAdamW, clipScale, sum, sumSquaresMany } from '../ops/optim';
import { Rng, sampleBatch } from './data';
import { lrAt, type LossWeights, type StepMetrics } from './distill';
import { adamCheckpointTensors, restoreAdamCheckpoint, type CheckpointTensor } from './adam-checkpoint';
import { StepQueue } from './step-queue';

export interface StudentKdConfig {
  loss: { kl: number; ce: number; hidden: number };
  temperature: number;
  /** student layer i's output is matched to teacher layer layerMap[i]'s (hidden MSE) */
  layerMap?: number[];
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
  /** train the token embedding (and the classifier); default true */
  trainEmbeddings?: boolean;
}

interface Param {
  name: string;
  param: Tensor;
  grad: Tensor;
}

/** The student must be able to learn from the teacher: same vocabulary, widths where hidden states are matched. */
export function checkStudent(teacher: LlamaConfig, student: LlamaConfig, kc: Pick<StudentKdConfig, 'loss' | 'layerMap'>): void {
  if (teacher.vocabSize !== student.vocabSize) throw new Error(`the student's vocabulary (${student.vocabSize} tokens) differs from the teacher's (${teacher.vocabSize}); distillation compares next-token distributions, so both need the same tokenizer`);
  if (kc.loss.hidden > 0) {
    if (teacher.dim !== student.dim) throw new Error(`hidden-state MSE needs the same width: the student's dim is ${student.dim}, the teacher's ${teacher.dim}`);
    const map = kc.layerMap;
    if (!map || map.length !== student.nLayers) throw new Error(`hidden-state MSE needs a layer map with one teacher layer per student layer (${student.nLayers})`);
    const bad = map.filter((t) => !Number.isInteger(t) || t < 0 || t >= teacher.nLayers);
    if (bad.length) throw new Error(`layer map: teacher layer(s) ${bad.join(', ')} out of range 0..${teacher.nLayers - 1}`);
  }
}

export class StudentDistiller {
  readonly teacher: LlamaModel | null;
  readonly student: LlamaModel;
  readonly params: Param[] = [];
  readonly rng: Rng;
  step = 0;
  readonly history: StepMetrics[] = [];
  /** steps submitted, their readback (loss sums, clip) not landed yet */
  private readonly queue: StepQueue<{ step: number; lr: number; startedAt: number; read: AsyncRead }, StepMetrics>;
  private lastLanded: number | null = null;
  private readonly scratch = new Map<string, Tensor>();
  /** AdamW over params (their m and v in its arenas), several tensors per dispatch */
  private readonly adam: MultiAdamW;

  constructor(readonly gpu: Gpu, readonly tcfg: LlamaConfig, tw: LlamaWeights | null, readonly cfg: LlamaConfig, sw: LlamaWeights, readonly kc: StudentKdConfig, readonly stream: Uint32Array) {
    checkStudent(tcfg, cfg, kc);
    this.queue = new StepQueue(gpu, (f, bufs) => this.land(f, bufs));
    const needTeacher = kc.loss.kl > 0 || kc.loss.hidden > 0;
    if (needTeacher && !tw) throw new Error('StudentDistiller: KL and hidden-state losses need the teacher weights');
    if (!(kc.loss.kl > 0 || kc.loss.ce > 0 || kc.loss.hidden > 0)) throw new Error('StudentDistiller: every loss weight is 0');
    this.rng = new Rng(kc.seed >>> 0);
    this.teacher = needTeacher ? LlamaModel.fromWeights(gpu, tcfg, tw!, { label: 'kd.teacher' }) : null;
    this.student = LlamaModel.fromWeights(gpu, cfg, sw, { label: 'kd.student', trainable: true, trainEmbeddings: kc.trainEmbeddings ?? true });
    const s = this.student;
    const add = (name: string, param: Tensor, grad: Tensor | null) => {
      if (grad) this.params.push({ name, param, grad });
    };
    // the embedding (and an untied classifier) in chunks of rows: one AdamW parameter per chunk
    const one = s.tokEmbed.chunks.length === 1;
    s.tokEmbed.chunks.forEach((t, k) => add(one ? 'tokEmbed' : `tokEmbed.${k}`, t, s.tokEmbedGrad?.chunks[k] ?? null));
    if (s.lmHead.w !== s.tokEmbed) s.lmHead.w.chunks.forEach((t, k) => add(one ? 'lmHead' : `lmHead.${k}`, t, s.lmHead.gradTable?.chunks[k] ?? null));
    add('finalNorm', s.finalNorm, s.finalNormGrad);
    s.layers.forEach((L, l) => {
      add(`layers.${l}.attnNorm`, L.attnNorm, L.attnNormGrad);
      add(`layers.${l}.mlpNorm`, L.mlpNorm, L.mlpNormGrad);
      for (const p of PROJECTIONS) {
        const lin = L.proj[p] as DenseLinear;
        add(`layers.${l}.${p}`, lin.w, lin.grad);
      }
    });
    this.adam = new MultiAdamW(gpu, 'kd', this.params);
  }

  private t(name: string, shape: number[], dtype: 'f32' | 'u32' = 'f32'): Tensor {
    const key = `${name}:${shape.join('x')}:${dtype}`;
    let x = this.scratch.get(key);
    if (!x) this.scratch.set(key, (x = this.gpu.tensor(`kd.${name}`, shape, dtype)));
    return x;
  }

  /**
   * One micro-batch: forwards, the losses' per-component sums into sums[slot0..slot0+3) (kl, ce,
   * hidden; sums over rows), and the backward with the loss scaled by `scale` (gradients
   * accumulate: zero them first). Returns the student's activations.
   */
  microStep(inputs: Uint32Array, targets: Uint32Array, B: number, T: number, scale: number, sums: Tensor, slot0: number): Activations {
    const { gpu, kc, cfg } = this;
    const BT = B * T, V = cfg.vocabSize, C = cfg.dim, L = cfg.nLayers;
    const sa = this.student.activations(B, T, false); // no attention-map loss here: flash attention, no T×T probabilities
    const ta = this.teacher ? this.teacher.activations(B, T, false) : null;
    const rows = this.t('rows', [BT]);
    const tg = this.t('targets', [BT], 'u32');
    const d1 = this.t('d1', [BT, V]), d2 = this.t('d2', [BT, V]), dl = this.t('dl', [BT, V]);
    gpu.write(sa.tokens, inputs);
    gpu.write(tg, targets);
    if (ta) {
      gpu.write(ta.tokens, inputs);
      this.teacher!.forward(ta);
    }
    this.student.forward(sa);
    let have: Tensor | null = null;
    const addD = (src: Tensor) => {
      if (!have) {
        gpu.copy(src, dl);
        have = dl;
      } else {
        addForward(gpu, d2, dl, src);
        gpu.copy(d2, dl);
      }
    };
    if (kc.loss.kl > 0) {
      klForward(gpu, rows, sa.logits, ta!.logits, BT, V, kc.temperature);
      sum(gpu, sums, slot0, rows, BT);
      klBackward(gpu, d1, sa.logits, ta!.logits, BT, V, kc.temperature, (kc.loss.kl * scale) / BT);
      addD(d1);
    }
    if (kc.loss.ce > 0) {
      crossEntropyForward(gpu, rows, sa.logits, tg, BT, V);
      sum(gpu, sums, slot0 + 1, rows, BT);
      crossEntropyBackward(gpu, d1, sa.logits, tg, BT, V, (kc.loss.ce * scale) / BT);
      addD(d1);
    }
    if (!have) gpu.zero(dl);
    let dhid: Tensor[] | undefined;
    if (kc.loss.hidden > 0) {
      dhid = [];
      const acc = this.t('hidacc', [L]);
      for (let l = 0; l < L; l++) {
        const tl = kc.layerMap![l];
        const dh = this.t(`dhid${l}`, [BT, C]);
        mseForward(gpu, rows, sa.x[l + 1], ta!.x[tl + 1], BT, C);
        sum(gpu, acc, l, rows, BT);
        mseBackward(gpu, dh, sa.x[l + 1], ta!.x[tl + 1], BT, C, (kc.loss.hidden * scale) / BT);
        dhid.push(dh);
      }
      sum(gpu, sums, slot0 + 2, acc, L);
    }
    this.student.backward(sa, dl, { dhidden: dhid });
    return sa;
  }

  /** One optimizer step (accum micro-batches), waited for: submitStep + drain. */
  async trainStep(): Promise<StepMetrics> {
    await this.submitStep();
    await this.drain();
    return this.history[this.history.length - 1];
  }

  /**
   * Record and submit one optimizer step without waiting on the GPU: its loss sums and gradient
   * norm leave in one async readback. Returns the steps whose metrics have landed since the last
   * call, in order (also appended to `history`); at most `maxInFlight` steps run ahead (past that,
   * a throttle wait for the oldest). drain() before checkpoints and at the end.
   */
  async submitStep(): Promise<StepMetrics[]> {
    const { gpu, kc } = this;
    const B = kc.batch, T = kc.seq;
    const t0 = performance.now();
    const sums = this.t('sums', [3 * kc.accum]);
    gpu.zero(sums);
    this.student.zeroGrads();
    for (let micro = 0; micro < kc.accum; micro++) {
      const { inputs, targets } = sampleBatch(this.stream, B, T, this.rng);
      this.microStep(inputs, targets, B, T, 1 / kc.accum, sums, 3 * micro);
    }
    const sumsq = this.t('sumsq', [this.params.length]);
    const clip = this.t('clip', [2]);
    sumSquaresMany(gpu, sumsq, 0, this.params.map((p) => p.grad)); // one finish pass for all
    clipScale(gpu, clip, sumsq, this.params.length, kc.gradClip);
    const lr = lrAt(this.step, kc);
    this.adam.step(clip, this.step + 1, { lr, beta1: kc.beta1, beta2: kc.beta2, eps: 1e-8, weightDecay: kc.weightDecay });
    return this.queue.push({ step: this.step++, lr, startedAt: t0, read: gpu.readAsync([{ t: sums }, { t: clip }]) });
  }

  /** Wait for every step in flight; their metrics in order (also in `history`). */
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

  /** A landed step's loss sums and clip into its metrics (the StepQueue calls it in step order);
   *  throws on a non-finite loss, and the queue then drops the steps submitted after it. */
  private land(f: { step: number; lr: number; startedAt: number }, [sb, cb]: ArrayBuffer[]): StepMetrics {
    const { kc } = this;
    const BT = kc.batch * kc.seq;
    const sv = new Float32Array(sb), cv = new Float32Array(cb);
    const comp: LossWeights = { kl: 0, ce: 0, attnMap: 0, attnOut: 0, hidden: 0 };
    for (let m = 0; m < kc.accum; m++) {
      comp.kl += sv[3 * m] / BT / kc.accum;
      comp.ce += sv[3 * m + 1] / BT / kc.accum;
      comp.hidden += sv[3 * m + 2] / BT / kc.accum; // Σ over layers of the per-layer MSE (rows are Σ/C)
    }
    const loss = kc.loss.kl * comp.kl + kc.loss.ce * comp.ce + kc.loss.hidden * comp.hidden;
    // throughput from the GPU's pace: the time since the previous step landed (or this one started)
    const now = performance.now();
    const since = Math.max(f.startedAt, this.lastLanded ?? 0);
    this.lastLanded = now;
    const m: StepMetrics = { step: f.step, lr: f.lr, loss, losses: comp, gradNorm: cv[1], tokensPerSec: (BT * kc.accum) / (Math.max(now - since, 1e-3) / 1000) };
    if (!Number.isFinite(loss)) {
      // the queue discards the later steps: they trained on top of a broken one
      throw new Error(`student loss became ${loss} at step ${f.step} (components ${JSON.stringify(comp)}); stopping — lower the learning rate`);
    }
    this.history.push(m);
    return m;
  }

  /** The student's weights now. */
  async weights(): Promise<LlamaWeights> {
    const g = this.gpu, s = this.student;
    const layers = [];
    for (const L of s.layers) {
      const r = (p: (typeof PROJECTIONS)[number]) => g.readF32((L.proj[p] as DenseLinear).w);
      layers.push({ attnNorm: await g.readF32(L.attnNorm), mlpNorm: await g.readF32(L.mlpNorm), wq: await r('q'), wk: await r('k'), wv: await r('v'), wo: await r('o'), wGate: await r('gate'), wUp: await r('up'), wDown: await r('down') });
    }
    return { tokEmbed: await s.tokEmbed.read(g), layers, finalNorm: await g.readF32(s.finalNorm), lmHead: s.lmHead.w === s.tokEmbed ? null : await s.lmHead.w.read(g) };
  }

  /** Parameters and Adam moments, named `<param>.param|adam_m|adam_v` (the checkpoint format's). */
  async checkpointTensors(): Promise<CheckpointTensor[]> {
    return adamCheckpointTensors(this.gpu, this.params, this.adam);
  }

  /** name → shape of every checkpoint tensor (to verify a checkpoint before restoring it). */
  checkpointShapes(): Map<string, number[]> {
    return new Map(this.params.flatMap((p) => ['param', 'adam_m', 'adam_v'].map((s) => [`${p.name}.${s}`, [...p.param.shape]] as [string, number[]])));
  }

  restore(tensors: Map<string, Float32Array>, step: number, rngState: number, history: StepMetrics[] = []): void {
    restoreAdamCheckpoint(this.gpu, this.params, this.adam, tensors);
    this.step = step;
    this.rng.state = rngState >>> 0;
    this.history.length = 0;
    this.history.push(...history);
  }

  free(): void {
    this.teacher?.free();
    this.student.free();
    this.adam.free();
    for (const t of this.scratch.values()) this.gpu.free(t);
  }
}
