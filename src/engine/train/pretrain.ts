// Pretraining from random initialisation: the same LLaMA forward/backward, next-token
// cross-entropy, AdamW with warm-up + cosine, global-norm clipping, seeded data order. The loss
// runs chunk by chunk of logit rows (train/logit-loss.ts): never B·T·V logits in one binding.
import type { AsyncRead, Gpu, Tensor } from '../gpu/runtime';
import { randomWeights, type LlamaConfig, type LlamaWeights, PROJECTIONS } from '../model/config';
import { LlamaModel } from '../model/llama';
import { DenseLinear } from '../model/dense';
import { MultiAdamW, clipScale, sumSquaresMany } from '../ops/optim';
import { Rng, sampleBatch } from './data';
import { lrAt } from './distill';
import { LogitLoss, logitChunkRows } from './logit-loss';
import { StepQueue } from './step-queue';

export const PRETRAIN_CONFIGS: Record<string, Omit<LlamaConfig, 'vocabSize'>> = {
  // the previous bundled teacher: 0.25M parameters with a 1024 vocabulary; trained long (4000 steps
  // of 16 x 128) it beat the larger 'default' shape on every count
  tiny: { dim: 64, hiddenDim: 172, nLayers: 4, nHeads: 8, nKvHeads: 4, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  // the bundled default teacher (public/models/default): 0.15M parameters with a 1024 vocabulary,
  // trained 8000 steps of 16 x 128 (~109 tokens per parameter: long enough to be fragile to PTQ)
  micro: { dim: 48, hiddenDim: 128, nLayers: 4, nHeads: 6, nKvHeads: 3, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  // the previous default teacher's shape: about 0.5M parameters with a 1024 vocabulary (380 steps
  // of 8 x 128 in 51 min on 2 loaded CPU cores)
  default: { dim: 96, hiddenDim: 256, nLayers: 4, nHeads: 6, nKvHeads: 2, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  // the first default teacher's shape (1.05M parameters with a 2048 vocabulary)
  mini: { dim: 128, hiddenDim: 384, nLayers: 4, nHeads: 4, nKvHeads: 2, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  small: { dim: 192, hiddenDim: 512, nLayers: 6, nHeads: 6, nKvHeads: 2, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
};

/** GPT-2-style initialisation for training from scratch: N(0, 0.02) for embeddings and
 *  projections, the residual-writing ones (o, down) scaled by 1/sqrt(2 x layers), norms at 1; the
 *  first logits are then near uniform (loss ~ ln V). */
export function pretrainInit(cfg: LlamaConfig, seed: number): LlamaWeights {
  const w = randomWeights(cfg, seed, 1);
  const rng = new Rng(seed ^ 0x5eed);
  const normal = (a: Float32Array, sd: number) => {
    for (let i = 0; i < a.length; i++) a[i] = sd * Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-12))) * Math.cos(2 * Math.PI * rng.next());
  };
  normal(w.tokEmbed, 0.02);
  if (w.lmHead) normal(w.lmHead, 0.02);
  w.finalNorm.fill(1);
  const resid = 0.02 / Math.sqrt(2 * cfg.nLayers);
  for (const L of w.layers) {
    L.attnNorm.fill(1);
    L.mlpNorm.fill(1);
    for (const k of ['wq', 'wk', 'wv', 'wGate', 'wUp'] as const) normal(L[k], 0.02);
    normal(L.wo, resid);
    normal(L.wDown, resid);
  }
  return w;
}

export interface PretrainConfig {
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  warmup: number;
  minLrRatio: number;
  weightDecay: number;
  gradClip: number;
  seed: number;
}

/** A pretraining schedule with the project's defaults: warm-up min(100, steps/10), cosine to 10%,
 *  weight decay 0.1, global-norm clip 1 (CLI, studio and the default model all use these). */
export function pretrainConfigOf(p: Pick<PretrainConfig, 'steps' | 'batch' | 'seq' | 'lr' | 'seed'>): PretrainConfig {
  return { warmup: Math.min(100, Math.floor(p.steps / 10)), minLrRatio: 0.1, weightDecay: 0.1, gradClip: 1, ...p };
}

/** One pretraining step's figures. */
export interface PretrainStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
}

export class Pretrainer {
  readonly model: LlamaModel;
  private readonly params: { param: Tensor; grad: Tensor }[] = [];
  /** AdamW over params (their m and v in its arenas), several tensors per dispatch */
  private readonly adam: MultiAdamW;
  private readonly rng: Rng;
  private readonly sumsq: Tensor;
  private readonly clip: Tensor;
  private readonly out: Tensor;
  private readonly logitLoss: LogitLoss;
  step = 0;
  /** steps submitted, their readback (loss, clip) not landed yet */
  private readonly queue: StepQueue<{ step: number; lr: number; read: AsyncRead }, PretrainStep>;
  private targets: Tensor | null = null;
  private dxnf: Tensor | null = null;
  /** logitRows: rows per logits chunk (default: logitChunkRows) */
  constructor(readonly gpu: Gpu, readonly cfg: LlamaConfig, readonly pc: PretrainConfig, readonly stream: Uint32Array, init?: LlamaWeights, private readonly logitRows?: number) {
    this.logitLoss = new LogitLoss(gpu);
    this.queue = new StepQueue(gpu, (f, bufs) => this.land(f, bufs));
    this.rng = new Rng(pc.seed);
    this.model = LlamaModel.fromWeights(gpu, cfg, init ?? pretrainInit(cfg, pc.seed), { trainable: true, label: 'pretrain' });
    const add = (param: Tensor, grad: Tensor | null) => grad && this.params.push({ param, grad });
    // the embedding (and an untied classifier) in chunks of rows: one AdamW parameter per chunk
    this.model.tokEmbed.chunks.forEach((t, k) => add(t, this.model.tokEmbedGrad?.chunks[k] ?? null));
    if (this.model.lmHead.w !== this.model.tokEmbed) this.model.lmHead.w.chunks.forEach((t, k) => add(t, this.model.lmHead.gradTable?.chunks[k] ?? null));
    add(this.model.finalNorm, this.model.finalNormGrad);
    for (const L of this.model.layers) {
      add(L.attnNorm, L.attnNormGrad);
      add(L.mlpNorm, L.mlpNormGrad);
      for (const p of PROJECTIONS) {
        const lin = L.proj[p] as DenseLinear;
        add(lin.w, lin.grad);
      }
    }
    this.adam = new MultiAdamW(gpu, 'pretrain', this.params);
    this.sumsq = gpu.tensor('pretrain.sumsq', [this.params.length]);
    this.clip = gpu.tensor('pretrain.clip', [2]);
    this.out = gpu.tensor('pretrain.loss', [2]);
  }

  /** One step, waited for (submitStep + drain): its loss and gradient norm. */
  async trainStep(): Promise<PretrainStep> {
    await this.submitStep();
    const ms = await this.drain();
    return ms[ms.length - 1];
  }

  /**
   * Record and submit one step without waiting on the GPU; its loss and gradient norm are read back
   * asynchronously. Returns the steps that have landed since the last call, in order (often none).
   * At most `maxInFlight` steps run ahead of the last landed one (past that: a throttle wait for
   * the oldest). Throws on the first non-finite loss (seen up to maxInFlight steps late).
   */
  async submitStep(): Promise<PretrainStep[]> {
    const { gpu, cfg, pc } = this;
    const B = pc.batch, T = pc.seq, BT = B * T, V = cfg.vocabSize;
    const R = this.logitRows ?? logitChunkRows(gpu, BT, V);
    const acts = this.model.activations(B, T, false, R); // flash attention: no probabilities needed
    const { inputs, targets } = sampleBatch(this.stream, B, T, this.rng);
    // kept across steps: a step in flight may still read them
    const tt = (this.targets ??= gpu.tensor('pretrain.targets', [BT], 'u32'));
    const dxnf = (this.dxnf ??= gpu.tensor('pretrain.dxnf', [BT, cfg.dim])); // (B*T, C)
    gpu.write(tt, targets);
    gpu.write(acts.tokens, inputs);
    this.model.zeroGrads();
    this.model.forwardStart(acts);
    for (let l = 0; l < cfg.nLayers; l++) this.model.forwardLayer(acts, l);
    this.model.forwardFinish(acts, false);
    this.logitLoss.run({ student: this.model, sa: acts, targets: tt, temperature: 1, klScale: 0, ceScale: 1 / BT, out: this.out, klIndex: 0, ceIndex: 1, dxnf });
    this.model.backwardFromNorm(acts, dxnf);
    sumSquaresMany(gpu, this.sumsq, 0, this.params.map((x) => x.grad)); // one finish pass for all
    clipScale(gpu, this.clip, this.sumsq, this.params.length, pc.gradClip);
    const lr = lrAt(this.step, pc);
    this.adam.step(this.clip, this.step + 1, { lr, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: pc.weightDecay });
    return this.queue.push({ step: this.step++, lr, read: gpu.readAsync([{ t: this.out }, { t: this.clip }]) });
  }

  /** Wait for every step in flight; their points in order. */
  async drain(): Promise<PretrainStep[]> {
    return this.queue.drain();
  }

  /** Steps submitted whose loss has not landed yet. */
  get pendingSteps(): number {
    return this.queue.pending;
  }

  /** steps that may be submitted ahead of the last one whose loss has landed (default 2) */
  get maxInFlight(): number {
    return this.queue.maxInFlight;
  }

  set maxInFlight(n: number) {
    this.queue.maxInFlight = n;
  }

  /** A landed step's loss and clip (the StepQueue calls it in step order); throws on a non-finite
   *  loss, and the queue then drops the steps submitted after it. */
  private land(f: { step: number; lr: number }, [lossB, clipB]: ArrayBuffer[]): PretrainStep {
    const BT = this.pc.batch * this.pc.seq;
    const loss = new Float32Array(lossB)[1] / BT;
    const gradNorm = new Float32Array(clipB)[1];
    if (!Number.isFinite(loss)) {
      throw new Error(`loss became ${loss} at step ${f.step}; lower the learning rate`);
    }
    return { step: f.step, loss, lr: f.lr, gradNorm };
  }

  /** The trained weights, read back. */
  async weights(): Promise<LlamaWeights> {
    const g = this.gpu;
    const m = this.model;
    const layers = [];
    for (const L of m.layers) {
      const r = async (p: (typeof PROJECTIONS)[number]) => g.readF32((L.proj[p] as DenseLinear).w);
      layers.push({ attnNorm: await g.readF32(L.attnNorm), mlpNorm: await g.readF32(L.mlpNorm), wq: await r('q'), wk: await r('k'), wv: await r('v'), wo: await r('o'), wGate: await r('gate'), wUp: await r('up'), wDown: await r('down') });
    }
    return { tokEmbed: await m.tokEmbed.read(g), layers, finalNorm: await g.readF32(m.finalNorm), lmHead: m.lmHead.w === m.tokEmbed ? null : await m.lmHead.w.read(g) };
  }

  free(): void {
    this.model.free();
    this.adam.free();
    for (const t of [this.sumsq, this.clip, this.out, this.targets, this.dxnf]) this.gpu.free(t);
    this.logitLoss.free();
  }
}
