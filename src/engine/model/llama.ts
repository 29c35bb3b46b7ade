// The LLaMA model on the GPU: forward for B×T tokens, the full backward to every weight (llm.c
// style, written out layer by layer in reverse), and a KV-cached decode path for generation.
// Per layer it keeps what distillation and the plots need: the residual stream (hidden states),
// the attention probabilities, the attention sub-layer output, and each projection's gradient.
import type { Gpu, Tensor } from '../gpu/runtime';
import { addForward } from '../ops/elementwise';
import { embeddingBackward, embeddingForward } from '../ops/embedding';
import { rmsnormBackward, rmsnormForward } from '../ops/rmsnorm';
import { swigluBackward, swigluForward } from '../ops/swiglu';
import { ropeQK, type RopeSpec } from '../ops/rope';
import { attentionBackward, attentionBackwardFlash, attentionForward } from '../ops/attention';
import { headSize, ropeOf, type LlamaConfig, type LlamaWeights, PROJECTIONS, type Projection } from './config';
import type { Linear } from './linear';
import { DenseLinear } from './dense';
import { VocabLinear, VocabTable } from './vocab';
import { HalfLinear } from './half';
import { PackedLinear, uploadPacked } from './packed';
import type { QuantizedModel } from '../quant/ptq';
import { dequantizeHost } from '../format/pack';

export interface LayerParams {
  attnNorm: Tensor; // (C)
  mlpNorm: Tensor; // (C)
  attnNormGrad: Tensor | null;
  mlpNormGrad: Tensor | null;
  proj: Record<Projection, Linear>;
}

/** Activations of one forward pass over B×T tokens; reused across steps of the same shape. */
export interface LayerActs {
  xn1: Tensor; // (B*T, C)    rmsnorm(x) before attention
  rstd1: Tensor; // (B*T)
  q: Tensor; // (B*T, NH*HS) after RoPE
  k: Tensor; // (B*T, NKV*HS) after RoPE
  v: Tensor; // (B*T, NKV*HS)
  probs: Tensor; // (B, NH, T, T) attention probabilities (withProbs; else [1])
  lse: Tensor; // (B, NH, T) flash attention's log-sum-exp per row (without probs; else [1])
  att: Tensor; // (B*T, NH*HS) attention output before Wo
  attnOut: Tensor; // (B*T, C)  Wo·att: the attention sub-layer output
  h: Tensor; // (B*T, C)      x + attnOut
  xn2: Tensor; // (B*T, C)
  rstd2: Tensor; // (B*T)
  gate: Tensor; // (B*T, H)
  up: Tensor; // (B*T, H)
  act: Tensor; // (B*T, H)    silu(gate)*up
  mlpOut: Tensor; // (B*T, C)
}

/** What a forward keeps per layer. 'all': every layer's activations (backward, per-layer losses
 *  read after the forward). 'residuals': the L+1 residual streams only, one set of layer
 *  activations shared by all layers (each layer's are recomputed from its input in the backward:
 *  one more forward, ~1/L of the memory). 'none': forward only, two ping-pong residual buffers and
 *  one shared layer (a teacher; per-layer values must be read between forwardLayer calls). */
export type ActStore = 'all' | 'residuals' | 'none';

export class Activations {
  readonly x: Tensor[]; // L+1 residual streams (B*T, C): x[0] embeddings, x[l+1] output of layer l ('none': two buffers alternate)
  readonly layers: LayerActs[]; // 'residuals' / 'none': L references to one shared LayerActs
  readonly xnf: Tensor; // (B*T, C)
  readonly rstdf: Tensor; // (B*T)
  readonly logits: Tensor; // (logitRows, V): all B*T rows, or a chunk of them (see logitsRows)
  readonly tokens: Tensor; // (B*T) u32
  /** rows of logits held at once: B*T, or fewer when only log-probs are needed (chunked) */
  readonly logitRows: number;
  readonly xnfRows: Tensor | null; // (logitRows, C) the final-norm rows of one chunk
  constructor(gpu: Gpu, readonly cfg: LlamaConfig, readonly B: number, readonly T: number, withProbs: boolean, logitRows = B * T, readonly store: ActStore = 'all') {
    const BT = B * T;
    const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V } = cfg;
    const HS = headSize(cfg);
    const t = (name: string, shape: number[]) => gpu.tensor(`acts.${name}`, shape);
    this.tokens = gpu.tensor('acts.tokens', [BT], 'u32');
    if (store === 'none') {
      const pp = [t('x0', [BT, C]), t('x1', [BT, C])];
      this.x = Array.from({ length: cfg.nLayers + 1 }, (_, l) => pp[l % 2]);
    } else this.x = Array.from({ length: cfg.nLayers + 1 }, (_, l) => t(`x${l}`, [BT, C]));
    const nSets = store === 'all' ? cfg.nLayers : 1;
    const sets: LayerActs[] = Array.from({ length: nSets }, (_, l) => ({
      xn1: t(`${l}.xn1`, [BT, C]),
      rstd1: t(`${l}.rstd1`, [BT]),
      q: t(`${l}.q`, [BT, NH * HS]),
      k: t(`${l}.k`, [BT, NKV * HS]),
      v: t(`${l}.v`, [BT, NKV * HS]),
      probs: t(`${l}.probs`, withProbs ? [B, NH, T, T] : [1]),
      lse: t(`${l}.lse`, withProbs ? [1] : [B, NH, T]),
      att: t(`${l}.att`, [BT, NH * HS]),
      attnOut: t(`${l}.attnOut`, [BT, C]),
      h: t(`${l}.h`, [BT, C]),
      xn2: t(`${l}.xn2`, [BT, C]),
      rstd2: t(`${l}.rstd2`, [BT]),
      gate: t(`${l}.gate`, [BT, H]),
      up: t(`${l}.up`, [BT, H]),
      act: t(`${l}.act`, [BT, H]),
      mlpOut: t(`${l}.mlpOut`, [BT, C]),
    }));
    this.layers = Array.from({ length: cfg.nLayers }, (_, l) => sets[store === 'all' ? l : 0]);
    this.xnf = t('xnf', [BT, C]);
    this.rstdf = t('rstdf', [BT]);
    this.logitRows = Math.max(1, Math.min(BT, Math.floor(logitRows)));
    this.logits = t('logits', [this.logitRows, V]);
    this.xnfRows = this.logitRows < BT ? t('xnfRows', [this.logitRows, C]) : null;
    this.withProbs = withProbs;
  }
  readonly withProbs: boolean;
  free(gpu: Gpu): void {
    const all = new Set<Tensor>([this.tokens, ...this.x, this.xnf, this.rstdf, this.logits]);
    if (this.xnfRows) all.add(this.xnfRows);
    for (const l of new Set(this.layers)) for (const t of Object.values(l)) all.add(t);
    for (const t of all) gpu.free(t);
  }
}

/** Scratch gradients of the activations for one B×T shape. */
class ActGrads {
  readonly dresid: [Tensor, Tensor]; // (B*T, C) ping-pong d(residual stream)
  readonly dxn: Tensor; // (B*T, C)
  readonly dtmp: Tensor; // (B*T, C)
  readonly dh: Tensor; // (B*T, C)
  readonly dact: Tensor; // (B*T, H)
  readonly dgate: Tensor; // (B*T, H)
  readonly dup: Tensor; // (B*T, H)
  readonly datt: Tensor; // (B*T, NH*HS)
  readonly dq: Tensor; // (B*T, NH*HS)
  readonly dk: Tensor; // (B*T, NKV*HS)
  readonly dv: Tensor; // (B*T, NKV*HS)
  readonly dscores: Tensor; // (B, NH, T, T) attention backward scratch; (B, NH, T) for the flash backward
  constructor(gpu: Gpu, cfg: LlamaConfig, B: number, T: number, withProbs: boolean) {
    const BT = B * T;
    const HS = headSize(cfg);
    const t = (name: string, shape: number[]) => gpu.tensor(`grads.${name}`, shape);
    this.dresid = [t('dresid0', [BT, cfg.dim]), t('dresid1', [BT, cfg.dim])];
    this.dxn = t('dxn', [BT, cfg.dim]);
    this.dtmp = t('dtmp', [BT, cfg.dim]);
    this.dh = t('dh', [BT, cfg.dim]);
    this.dact = t('dact', [BT, cfg.hiddenDim]);
    this.dgate = t('dgate', [BT, cfg.hiddenDim]);
    this.dup = t('dup', [BT, cfg.hiddenDim]);
    this.datt = t('datt', [BT, cfg.nHeads * HS]);
    this.dq = t('dq', [BT, cfg.nHeads * HS]);
    this.dk = t('dk', [BT, cfg.nKvHeads * HS]);
    this.dv = t('dv', [BT, cfg.nKvHeads * HS]);
    this.dscores = t('dscores', withProbs ? [B, cfg.nHeads, T, T] : [B, cfg.nHeads, T]);
  }
  free(gpu: Gpu): void {
    for (const t of [...this.dresid, this.dxn, this.dtmp, this.dh, this.dact, this.dgate, this.dup, this.datt, this.dq, this.dk, this.dv, this.dscores]) gpu.free(t);
  }
}

export interface BackwardExtra {
  dprobs?: (Tensor | null)[];
  dattnOut?: (Tensor | null)[];
  dhidden?: (Tensor | null)[];
}

export interface KvCache {
  k: Tensor[]; // per layer (maxT, NKV*HS)
  v: Tensor[];
  maxT: number;
}

export interface LlamaModelOptions {
  /** allocate weight gradients (fine-tuning, pretraining) */
  trainable?: boolean;
  label?: string;
  /** packed low-bit projections to use instead of the fp32 ones (inference) */
  quantized?: QuantizedModel;
  /** train the token embedding (and tied classifier); default = trainable */
  trainEmbeddings?: boolean;
  /** build each projection yourself (the QAT student) */
  makeProjection?: (layer: number, proj: Projection, w: Float32Array, N: number, K: number) => Linear;
  /** read the token embedding (and an untied classifier) from this model's buffers instead of
   *  uploading a copy (a frozen student embedding is the teacher's, bit for bit); not trained */
  shareEmbeddingWith?: LlamaModel;
  /** projections stored as f16 (forward only: a frozen teacher); those with K % 4 != 0 stay fp32 */
  halfProjections?: boolean;
}

export class LlamaModel {
  readonly cfg: LlamaConfig;
  readonly gpu: Gpu;
  readonly label: string;
  tokEmbed!: VocabTable; // (V, C) in chunks of rows under one binding (model/vocab.ts)
  tokEmbedGrad: VocabTable | null = null;
  lmHead!: VocabLinear; // (V, C): over tokEmbed itself when tied
  finalNorm!: Tensor; // (C)
  finalNormGrad: Tensor | null = null;
  layers: LayerParams[] = [];
  /** false: tokEmbed (and the classifier) belong to another model (shareEmbeddingWith) */
  ownsEmbedding = true;
  private actsCache = new Map<string, Activations>();
  private gradsCache = new Map<string, ActGrads>();
  /** theta and any rope_scaling: the kernels' table comes from ropeInvFreq */
  private readonly rope: RopeSpec;

  private constructor(gpu: Gpu, cfg: LlamaConfig, label: string) {
    this.gpu = gpu;
    this.cfg = cfg;
    this.label = label;
    this.rope = ropeOf(cfg);
  }

  /** Upload fp32 weights. Projections are DenseLinear; the quantizer swaps in packed ones. */
  static fromWeights(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, opts: LlamaModelOptions = {}): LlamaModel {
    const m = new LlamaModel(gpu, cfg, opts.label ?? 'model');
    const tr = !!opts.trainable;
    const L = m.label;
    const { dim: C, vocabSize: V } = cfg;
    // a packed embedding runs as its dequantized values (a gather reads one row; the classifier's
    // matmul over it is the same numbers the shipped file holds)
    const emb = opts.quantized?.embedding ? dequantizeHost(opts.quantized.embedding) : w.tokEmbed;
    const trEmb = opts.trainEmbeddings ?? tr;
    const share = opts.shareEmbeddingWith;
    if (share) {
      if (trEmb) throw new Error('fromWeights: a shared embedding cannot be trained');
      m.tokEmbed = share.tokEmbed;
      m.ownsEmbedding = false;
      const head = share.lmHead;
      if (w.lmHead && head.w === share.tokEmbed) throw new Error('fromWeights: the model to share an untied classifier with has none');
      m.lmHead = new VocabLinear(gpu, w.lmHead ? head.w : m.tokEmbed, null, false, false);
    } else m.tokEmbed = new VocabTable(gpu, `${L}.tok_embeddings`, V, C, emb);
    if (trEmb) m.tokEmbedGrad = m.tokEmbed.like(gpu, `${L}.tok_embeddings.grad`);
    if (share) { /* classifier set above */ }
    else if (w.lmHead) {
      const head = new VocabTable(gpu, `${L}.lm_head`, V, C, w.lmHead);
      m.lmHead = new VocabLinear(gpu, head, trEmb ? head.like(gpu, `${L}.lm_head.grad`) : null, true, true);
    } else m.lmHead = new VocabLinear(gpu, m.tokEmbed, m.tokEmbedGrad, false, false);
    m.finalNorm = gpu.tensor(`${L}.norm`, [C], 'f32', w.finalNorm);
    if (tr) m.finalNormGrad = gpu.tensor(`${L}.norm.grad`, [C]);
    const HS = headSize(cfg);
    const shapes: Record<Projection, [number, number]> = {
      q: [cfg.nHeads * HS, C], k: [cfg.nKvHeads * HS, C], v: [cfg.nKvHeads * HS, C], o: [C, cfg.nHeads * HS],
      gate: [cfg.hiddenDim, C], up: [cfg.hiddenDim, C], down: [C, cfg.hiddenDim],
    };
    const key: Record<Projection, keyof LlamaWeights['layers'][number]> = { q: 'wq', k: 'wk', v: 'wv', o: 'wo', gate: 'wGate', up: 'wUp', down: 'wDown' };
    w.layers.forEach((lw, l) => {
      const proj = {} as Record<Projection, Linear>;
      for (const p of PROJECTIONS) {
        const [N, K] = shapes[p];
        const packed = opts.quantized?.packed[l]?.[p];
        if (opts.makeProjection) proj[p] = opts.makeProjection(l, p, lw[key[p]], N, K);
        else if (opts.halfProjections && !tr && HalfLinear.fits(K)) proj[p] = new HalfLinear(gpu, `${L}.layers.${l}.${p}_proj`, lw[key[p]], N, K);
        else if (packed) proj[p] = new PackedLinear(gpu, uploadPacked(gpu, `${L}.layers.${l}.${p}_proj`, packed));
        else proj[p] = new DenseLinear(gpu, gpu.tensor(`${L}.layers.${l}.${p}_proj`, [N, K], 'f32', lw[key[p]]), N, K, tr);
      }
      m.layers.push({
        attnNorm: gpu.tensor(`${L}.layers.${l}.attention_norm`, [C], 'f32', lw.attnNorm),
        mlpNorm: gpu.tensor(`${L}.layers.${l}.ffn_norm`, [C], 'f32', lw.mlpNorm),
        attnNormGrad: tr ? gpu.tensor(`${L}.layers.${l}.attention_norm.grad`, [C]) : null,
        mlpNormGrad: tr ? gpu.tensor(`${L}.layers.${l}.ffn_norm.grad`, [C]) : null,
        proj,
      });
    });
    return m;
  }

  /** Bytes the weights take on the GPU (packed projections count their packed size). */
  weightBytes(): number {
    let b = this.tokEmbed.bytes + this.finalNorm.bytes;
    if (this.lmHead.w !== this.tokEmbed) b += this.lmHead.bytes;
    for (const l of this.layers) {
      b += l.attnNorm.bytes + l.mlpNorm.bytes;
      for (const p of PROJECTIONS) b += l.proj[p].bytes;
    }
    return b;
  }

  /** All parameter gradients, for zeroing, norms and the optimizer. */
  gradTensors(): Tensor[] {
    const out: Tensor[] = [];
    const push = (t: Tensor | null) => t && !out.includes(t) && out.push(t);
    for (const t of this.tokEmbedGrad?.chunks ?? []) push(t);
    for (const t of this.lmHead.gradTable?.chunks ?? []) push(t);
    push(this.finalNormGrad);
    for (const l of this.layers) {
      push(l.attnNormGrad);
      push(l.mlpNormGrad);
      for (const p of PROJECTIONS) push(l.proj[p].grad);
    }
    return out;
  }

  zeroGrads(): void {
    for (const g of this.gradTensors()) this.gpu.zero(g);
  }

  /** Activations for B x T (cached by shape). `logitRows` < B*T: the classifier is not run by the
   *  forward; call logitsRows() for each chunk of rows (scoring long documents, large vocabularies). */
  activations(B: number, T: number, withProbs = true, logitRows = B * T, store: ActStore = 'all'): Activations {
    const key = `${B}x${T}:${withProbs}:${Math.min(B * T, logitRows)}:${store}`;
    let a = this.actsCache.get(key);
    if (a) {
      // most recently used last
      this.actsCache.delete(key);
      this.actsCache.set(key, a);
      return a;
    }
    // Evaluation visits many sequence lengths: keep only a few shapes alive.
    while (this.actsCache.size >= 4) {
      const [oldKey, old] = this.actsCache.entries().next().value as [string, Activations];
      old.free(this.gpu);
      this.actsCache.delete(oldKey);
    }
    a = new Activations(this.gpu, this.cfg, B, T, withProbs, logitRows, store);
    this.actsCache.set(key, a);
    return a;
  }

  private actGrads(B: number, T: number, withProbs: boolean): ActGrads {
    const key = `${B}x${T}:${withProbs}`;
    let g = this.gradsCache.get(key);
    if (!g) {
      g = new ActGrads(this.gpu, this.cfg, B, T, withProbs);
      this.gradsCache.set(key, g);
    }
    return g;
  }

  /** Drop cached activations (after a shape change, to give memory back). */
  releaseActivations(): void {
    for (const a of this.actsCache.values()) a.free(this.gpu);
    for (const g of this.gradsCache.values()) g.free(this.gpu);
    this.actsCache.clear();
    this.gradsCache.clear();
  }

  /** Forward over acts.tokens (already written); fills acts, logits at acts.logits (B*T, V). */
  forward(acts: Activations): void {
    this.run(acts, null, 0);
  }

  /**
   * The forward written out once for both uses: training/eval (no cache: keys are this pass's own,
   * positions from 0) and decoding (keys/values appended to the cache at pos0, queries attend to
   * the whole cache).
   */
  private run(acts: Activations, cache: KvCache | null, pos0: number): void {
    this.forwardStart(acts);
    for (let l = 0; l < this.cfg.nLayers; l++) this.layerForward(acts, l, cache, pos0);
    this.forwardFinish(acts);
  }

  /** The forward in pieces, for callers that read per-layer values between layers (a teacher with
   *  store 'none', layer-wise distillation losses): forwardStart, forwardLayer for l = 0..L-1,
   *  forwardFinish. `logits` false: skip the classifier (the caller runs logitsRows per chunk). */
  forwardStart(acts: Activations): void {
    embeddingForward(this.gpu, acts.x[0], acts.tokens, this.tokEmbed.chunks, acts.B * acts.T, this.cfg.dim);
  }
  forwardLayer(acts: Activations, l: number): void {
    this.layerForward(acts, l, null, 0);
  }
  forwardFinish(acts: Activations, logits = true): void {
    const BT = acts.B * acts.T;
    rmsnormForward(this.gpu, acts.xnf, acts.rstdf, acts.x[this.cfg.nLayers], this.finalNorm, BT, this.cfg.dim, this.cfg.normEps);
    if (logits && acts.logitRows === BT) this.lmHead.forward(acts.logits, acts.xnf, BT);
  }

  private layerForward(acts: Activations, l: number, cache: KvCache | null, pos0: number): void {
    const { gpu, cfg } = this;
    const { B, T } = acts;
    const BT = B * T;
    const { hiddenDim: H, nHeads: NH, nKvHeads: NKV } = cfg;
    const HS = headSize(cfg);
    const rowBytes = NKV * HS * 4;
    const L = this.layers[l];
    const a = acts.layers[l];
    const x = acts.x[l];
    rmsnormForward(gpu, a.xn1, a.rstd1, x, L.attnNorm, BT, cfg.dim, cfg.normEps);
    L.proj.q.forward(a.q, a.xn1, BT);
    L.proj.k.forward(a.k, a.xn1, BT);
    L.proj.v.forward(a.v, a.xn1, BT);
    ropeQK(gpu, a.q, a.k, B, T, NH, NKV, HS, this.rope, pos0, 1);
    if (cache) {
      gpu.copy(a.k, cache.k[l], T * rowBytes, 0, pos0 * rowBytes);
      gpu.copy(a.v, cache.v[l], T * rowBytes, 0, pos0 * rowBytes);
      attentionForward(gpu, { out: a.att, q: a.q, k: cache.k[l], v: cache.v[l], B: 1, Tq: T, Tk: pos0 + T, TkMax: cache.maxT, NH, NKV, HS, pos0 });
    } else {
      // without probabilities: the flash kernels (no T×T matrix; lse saved for the flash backward)
      const p = acts.withProbs ? { probs: a.probs } : { lse: a.lse };
      attentionForward(gpu, { out: a.att, ...p, q: a.q, k: a.k, v: a.v, B, Tq: T, Tk: T, TkMax: T, NH, NKV, HS, pos0: 0 });
    }
    L.proj.o.forward(a.attnOut, a.att, BT);
    // h = x + attnOut, then its norm, in one pass
    rmsnormForward(gpu, a.xn2, a.rstd2, x, L.mlpNorm, BT, cfg.dim, cfg.normEps, { residual: { add: a.attnOut, sum: a.h } });
    L.proj.gate.forward(a.gate, a.xn2, BT);
    L.proj.up.forward(a.up, a.xn2, BT);
    swigluForward(gpu, a.act, a.gate, a.up, BT * H);
    L.proj.down.forward(a.mlpOut, a.act, BT);
    addForward(gpu, acts.x[l + 1], a.h, a.mlpOut);
  }

  /** The classifier on rows [r0, r0+n) of the last forward's final norm: logits into rows 0..n-1 of
   *  acts.logits (n <= acts.logitRows). */
  logitsRows(acts: Activations, r0: number, n: number): void {
    const BT = acts.B * acts.T, C = this.cfg.dim;
    if (!(n >= 1 && n <= acts.logitRows && r0 >= 0 && r0 + n <= BT)) throw new Error(`logitsRows: rows ${r0}..${r0 + n} do not fit ${acts.logitRows} logit rows of ${BT}`);
    const xr = acts.xnfRows;
    if (!xr) {
      if (r0 !== 0) throw new Error('logitsRows: activations hold every row; read acts.logits');
      this.lmHead.forward(acts.logits, acts.xnf, n);
      return;
    }
    this.gpu.copy(acts.xnf, xr, n * C * 4, r0 * C * 4, 0);
    this.lmHead.forward(acts.logits, xr, n);
  }

  /** Backward of the classifier for logit rows [r0, r0+n) (after logitsRows(acts, r0, n)):
   *  d(lm_head) += dlogitsᵀ·xnf rows (when trained), and rows r0..r0+n-1 of dxnf (B*T, C) =
   *  dlogits·W (assigns). dlogits (n, V) f32. Chunk by chunk, then backwardFromNorm(acts, dxnf). */
  classifierBackwardRows(acts: Activations, dlogits: Tensor, r0: number, n: number, dxnf: Tensor): void {
    const C = this.cfg.dim;
    const xr = acts.xnfRows;
    if (!xr) {
      if (r0 !== 0) throw new Error('classifierBackwardRows: activations hold every row; use one chunk of all rows');
      this.lmHead.backwardWeight(dlogits, acts.xnf, n);
      this.lmHead.backwardInput(dxnf, dlogits, n, false);
      return;
    }
    this.lmHead.backwardWeight(dlogits, xr, n);
    // xr is no longer needed for this chunk (its weight gradient is recorded above): reuse it for dx
    this.lmHead.backwardInput(xr, dlogits, n, false);
    this.gpu.copy(xr, dxnf, n * C * 4, 0, r0 * C * 4);
  }

  /**
   * Backward from dlogits (B*T, V) through the whole model. Parameter gradients accumulate (+=):
   * call zeroGrads() first. `dprobsExtra[l]` (B, NH, T, T) adds an attention-map loss gradient;
   * `dattnOutExtra[l]` and `dhiddenExtra[l]` (B*T, C) add attention-output and hidden-state loss
   * gradients (hidden l = output of layer l). Frozen projections (no grad) skip their weight gradient.
   */
  backward(acts: Activations, dlogits: Tensor, extra: BackwardExtra = {}): void {
    const BT = acts.B * acts.T;
    const g = this.actGrads(acts.B, acts.T, acts.withProbs);
    this.lmHead.backwardWeight(dlogits, acts.xnf, BT);
    this.lmHead.backwardInput(g.dxn, dlogits, BT, false);
    this.backwardFromNorm(acts, g.dxn, extra);
  }

  /** The backward from d(final-norm output) dxnf (B*T, C) (see classifierBackwardRows); with
   *  store 'residuals' each layer's activations are recomputed from its input first. */
  backwardFromNorm(acts: Activations, dxnf: Tensor, extra: BackwardExtra = {}): void {
    const { gpu, cfg } = this;
    const { B, T } = acts;
    const BT = B * T;
    const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V } = cfg;
    const HS = headSize(cfg);
    if (acts.store === 'none') throw new Error('backward: these activations were kept for a forward only (store "none")');
    const g = this.actGrads(B, T, acts.withProbs);
    let cur = 0; // g.dresid[cur] holds d x[l+1]
    rmsnormBackward(gpu, g.dresid[cur], this.finalNormGrad, dxnf, acts.x[cfg.nLayers], this.finalNorm, acts.rstdf, BT, C);
    for (let l = cfg.nLayers - 1; l >= 0; l--) {
      const L = this.layers[l];
      const a = acts.layers[l];
      if (acts.store === 'residuals') this.layerForward(acts, l, null, 0); // x[l+1] is rewritten with the same values
      const dres = g.dresid[cur];
      const dh1 = extra.dhidden?.[l];
      if (dh1) addForward(gpu, g.dtmp, dres, dh1), gpu.copy(g.dtmp, dres);
      // x[l+1] = h + mlpOut
      L.proj.down.backwardWeight(dres, a.act, BT);
      L.proj.down.backwardInput(g.dact, dres, BT, false);
      swigluBackward(gpu, g.dgate, g.dup, g.dact, a.gate, a.up, BT * H);
      L.proj.gate.backwardWeight(g.dgate, a.xn2, BT);
      L.proj.up.backwardWeight(g.dup, a.xn2, BT);
      L.proj.gate.backwardInput(g.dxn, g.dgate, BT, false);
      L.proj.up.backwardInput(g.dxn, g.dup, BT, true);
      rmsnormBackward(gpu, g.dh, L.mlpNormGrad, g.dxn, a.h, L.mlpNorm, a.rstd2, BT, C, { addTo: dres }); // d h
      // h = x[l] + attnOut
      let dAttnOut = g.dh;
      const dao = extra.dattnOut?.[l];
      if (dao) {
        addForward(gpu, g.dtmp, g.dh, dao);
        dAttnOut = g.dtmp;
      }
      L.proj.o.backwardWeight(dAttnOut, a.att, BT);
      L.proj.o.backwardInput(g.datt, dAttnOut, BT, false);
      if (acts.withProbs) attentionBackward(gpu, { dq: g.dq, dk: g.dk, dv: g.dv, dscores: g.dscores, dout: g.datt, q: a.q, k: a.k, v: a.v, probs: a.probs, dprobsExtra: extra.dprobs?.[l] ?? undefined, B, T, NH, NKV, HS });
      else if (extra.dprobs?.[l]) throw new Error('backward: an attention-map gradient needs activations with probabilities');
      // flash backward from the saved lse (g.dscores serves as its (B, NH, T) row scratch)
      else attentionBackwardFlash(gpu, { dq: g.dq, dk: g.dk, dv: g.dv, drow: g.dscores, dout: g.datt, q: a.q, k: a.k, v: a.v, out: a.att, lse: a.lse, B, T, NH, NKV, HS });
      ropeQK(gpu, g.dq, g.dk, B, T, NH, NKV, HS, this.rope, 0, -1);
      L.proj.q.backwardWeight(g.dq, a.xn1, BT);
      L.proj.k.backwardWeight(g.dk, a.xn1, BT);
      L.proj.v.backwardWeight(g.dv, a.xn1, BT);
      L.proj.q.backwardInput(g.dxn, g.dq, BT, false);
      L.proj.k.backwardInput(g.dxn, g.dk, BT, true);
      L.proj.v.backwardInput(g.dxn, g.dv, BT, true);
      rmsnormBackward(gpu, g.dresid[1 - cur], L.attnNormGrad, g.dxn, acts.x[l], L.attnNorm, a.rstd1, BT, C, { addTo: g.dh }); // d x[l]
      cur = 1 - cur;
    }
    if (this.tokEmbedGrad) embeddingBackward(gpu, this.tokEmbedGrad.chunks, g.dresid[cur], acts.tokens, BT, V, C);
  }

  // ------------------------------------------------------------------ decoding with a KV cache

  createKvCache(maxT = this.cfg.maxSeqLen): KvCache {
    const HS = headSize(this.cfg);
    const n = this.cfg.nKvHeads * HS;
    return {
      k: this.layers.map((_, l) => this.gpu.tensor(`kv.${l}.k`, [maxT, n])),
      v: this.layers.map((_, l) => this.gpu.tensor(`kv.${l}.v`, [maxT, n])),
      maxT,
    };
  }

  freeKvCache(c: KvCache): void {
    for (const t of [...c.k, ...c.v]) this.gpu.free(t);
  }

  /**
   * Forward T new tokens of one sequence at positions pos0..pos0+T-1, attending to the cache, and
   * append their keys/values to it. Logits land in acts.logits (T, V).
   */
  forwardCached(acts: Activations, cache: KvCache, pos0: number): void {
    if (acts.B !== 1) throw new Error('forwardCached: batch size must be 1');
    if (pos0 + acts.T > cache.maxT) throw new Error(`sequence of ${pos0 + acts.T} tokens exceeds the KV cache (${cache.maxT}); the model's maximum is ${this.cfg.maxSeqLen}`);
    this.run(acts, cache, pos0);
  }

  free(): void {
    this.releaseActivations();
    const { gpu } = this;
    if (this.ownsEmbedding) this.tokEmbed.free(gpu);
    this.tokEmbedGrad?.free(gpu);
    this.lmHead.free(gpu);
    gpu.free(this.finalNorm);
    gpu.free(this.finalNormGrad);
    for (const l of this.layers) {
      for (const t of [l.attnNorm, l.mlpNorm, l.attnNormGrad, l.mlpNormGrad]) gpu.free(t);
      for (const p of PROJECTIONS) l.proj[p].free(gpu);
    }
  }
}
