// Structured pruning: a smaller LLaMA cut from the teacher. Whole layers go (chosen by measured
// importance on calibration text: the rise in loss when the layer is skipped, or the cosine between
// a layer's input and output; or named by the user), attention heads go by KV group (a KV head with
// its NH/NKV query heads, so GQA stays valid; the head size is kept, so a pruned model carries
// cfg.headDim), MLP channels go (ranked by activation magnitude × weight norm, or first-order Taylor
// |Σ w·∂L/∂w|). Importance is measured on the float64 reference model (ref/llama.ts), on the teacher
// as it is; the scores are returned for display.
import { headSize, validateConfig, type LlamaConfig, type LlamaLayerWeights, type LlamaWeights } from '../model/config';
import { refBackward, refForward, refLoss } from '../ref/llama';

export type LayerMetric = 'loss' | 'cosine';
export type ChannelMetric = 'magnitude' | 'taylor';

export interface PruneOptions {
  /** keep this many layers (the least important go) */
  layers?: number;
  /** drop exactly these layers (0-based); exclusive with `layers` */
  dropLayers?: number[];
  /** attention heads kept: a ratio in (0, 1] of the KV groups, or (> 1) a count of query heads */
  headsKeep?: number;
  /** MLP channels kept, a ratio in (0, 1] */
  mlpKeep?: number;
  /** round the kept MLP channel count to a multiple of this (default 1) */
  mlpMultiple?: number;
  layerMetric?: LayerMetric;
  channelMetric?: ChannelMetric;
}

export interface LayerImportance {
  layer: number;
  /** calibration CE with the layer skipped minus the full model's CE (larger = more important) */
  lossRise: number;
  /** mean cosine between the layer's input and output residual streams (near 1 = does little) */
  cosine: number;
}

export interface Importance {
  baseLoss: number;
  layers: LayerImportance[];
  /** [layer][kv group] */
  kvGroups: number[][];
  /** [layer][channel] */
  channels: Float64Array[];
  channelMetric: ChannelMetric;
  layerMetric: LayerMetric;
  calibrationTokens: number;
}

export interface PrunePlan {
  keepLayers: number[];
  /** [kept layer index][kept KV groups, ascending] */
  keepGroups: number[][];
  /** [kept layer index][kept channels, ascending] */
  keepChannels: number[][];
}

/** Calibration windows: B sequences of T tokens with next-token targets. */
export interface Calibration {
  tokens: number[]; // (B*T)
  targets: number[]; // (B*T)
  B: number;
  T: number;
}

/** B windows of T+1 tokens spread evenly over a token stream. */
export function calibrationFrom(stream: ArrayLike<number>, B: number, T: number): Calibration {
  if (stream.length < T + 1) throw new Error(`calibration: the text has ${stream.length} tokens, fewer than one window of ${T + 1}`);
  const tokens: number[] = [], targets: number[] = [];
  const span = stream.length - (T + 1);
  for (let b = 0; b < B; b++) {
    const o = B > 1 ? Math.floor((span * b) / (B - 1)) : 0;
    for (let t = 0; t < T; t++) {
      tokens.push(stream[o + t]);
      targets.push(stream[o + t + 1]);
    }
  }
  return { tokens, targets, B, T };
}

const removeLayer = (w: LlamaWeights, l: number): LlamaWeights => ({ ...w, layers: w.layers.filter((_, i) => i !== l) });

/** Importance of every layer, KV group and MLP channel of the teacher on calibration text. */
export function measureImportance(cfg: LlamaConfig, w: LlamaWeights, calib: Calibration, o: { layerMetric?: LayerMetric; channelMetric?: ChannelMetric } = {}): Importance {
  const { B, T } = calib;
  const V = cfg.vocabSize, C = cfg.dim, H = cfg.hiddenDim, NH = cfg.nHeads, NKV = cfg.nKvHeads, HS = headSize(cfg), BT = B * T;
  const group = NH / NKV;
  const channelMetric = o.channelMetric ?? 'taylor';
  const f = refForward(cfg, w, calib.tokens, B, T);
  const base = refLoss(f.logits, calib.targets, V);
  const layers: LayerImportance[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    let lossRise = 0;
    if (cfg.nLayers > 1) {
      const fs = refForward({ ...cfg, nLayers: cfg.nLayers - 1 }, removeLayer(w, l), calib.tokens, B, T);
      lossRise = refLoss(fs.logits, calib.targets, V).loss - base.loss;
    }
    const x = f.layers[l].x, y = f.layers[l].out;
    let cos = 0;
    for (let r = 0; r < BT; r++) {
      let xy = 0, xx = 0, yy = 0;
      for (let i = 0; i < C; i++) {
        const a = x[r * C + i], b = y[r * C + i];
        xy += a * b;
        xx += a * a;
        yy += b * b;
      }
      cos += xy / Math.sqrt(Math.max(xx * yy, 1e-300));
    }
    layers.push({ layer: l, lossRise, cosine: cos / BT });
  }
  const kvGroups: number[][] = [];
  const channels: Float64Array[] = [];
  if (channelMetric === 'taylor') {
    const g = refBackward(cfg, w, null, null, null, f, base.dlogits);
    for (let l = 0; l < cfg.nLayers; l++) {
      const lw = w.layers[l], lg = g.layers[l];
      // |Σ w·∂L/∂w| over everything that belongs to the unit: the first-order change of the loss
      // when the unit is removed
      const ch = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        let s = 0;
        for (let i = 0; i < C; i++) s += lw.wGate[j * C + i] * lg.wGate[j * C + i] + lw.wUp[j * C + i] * lg.wUp[j * C + i] + lw.wDown[i * H + j] * lg.wDown[i * H + j];
        ch[j] = Math.abs(s);
      }
      channels.push(ch);
      const gr: number[] = [];
      for (let k = 0; k < NKV; k++) {
        let s = 0;
        for (let r = k * HS; r < (k + 1) * HS; r++) for (let i = 0; i < C; i++) s += lw.wk[r * C + i] * lg.wk[r * C + i] + lw.wv[r * C + i] * lg.wv[r * C + i];
        for (let h = k * group; h < (k + 1) * group; h++)
          for (let d = 0; d < HS; d++) {
            const r = h * HS + d;
            for (let i = 0; i < C; i++) s += lw.wq[r * C + i] * lg.wq[r * C + i] + lw.wo[i * NH * HS + r] * lg.wo[i * NH * HS + r];
          }
        gr.push(Math.abs(s));
      }
      kvGroups.push(gr);
    }
  } else {
    for (let l = 0; l < cfg.nLayers; l++) {
      const lw = w.layers[l], a = f.layers[l];
      // mean |activation| × the norm of the weights that read it (down's column; o's columns)
      const ch = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        let m = 0;
        for (let r = 0; r < BT; r++) m += Math.abs(a.act[r * H + j]);
        let n = 0;
        for (let i = 0; i < C; i++) n += lw.wDown[i * H + j] ** 2;
        ch[j] = (m / BT) * Math.sqrt(n);
      }
      channels.push(ch);
      const gr: number[] = [];
      for (let k = 0; k < NKV; k++) {
        let s = 0;
        for (let h = k * group; h < (k + 1) * group; h++) {
          let m = 0, n = 0;
          for (let r = 0; r < BT; r++) {
            let q = 0;
            for (let d = 0; d < HS; d++) q += a.att[r * NH * HS + h * HS + d] ** 2;
            m += Math.sqrt(q);
          }
          for (let i = 0; i < C; i++) for (let d = 0; d < HS; d++) n += lw.wo[i * NH * HS + h * HS + d] ** 2;
          s += (m / BT) * Math.sqrt(n);
        }
        gr.push(s);
      }
      kvGroups.push(gr);
    }
  }
  return { baseLoss: base.loss, layers, kvGroups, channels, channelMetric, layerMetric: o.layerMetric ?? 'loss', calibrationTokens: BT };
}

/** The number of KV groups a --heads-keep value keeps, with clear errors. */
export function keptKvGroups(cfg: LlamaConfig, headsKeep: number | undefined): number {
  const NH = cfg.nHeads, NKV = cfg.nKvHeads, group = NH / NKV;
  if (headsKeep === undefined) return NKV;
  if (!Number.isFinite(headsKeep) || headsKeep <= 0) throw new Error(`--heads-keep must be a ratio in (0, 1] or a count of query heads, got ${headsKeep}`);
  const heads = headsKeep <= 1 ? headsKeep * NH : headsKeep;
  if (headsKeep > 1 && !Number.isInteger(headsKeep)) throw new Error(`--heads-keep ${headsKeep}: a count of heads must be an integer (or give a ratio ≤ 1)`);
  if (heads > NH) throw new Error(`--heads-keep ${headsKeep}: the teacher has only ${NH} attention heads; cannot keep ${heads}`);
  const g = heads / group;
  if (Math.abs(g - Math.round(g)) > 1e-9 || Math.round(g) < 1)
    throw new Error(`--heads-keep ${headsKeep} keeps ${+heads.toFixed(3)} of ${NH} query heads, which breaks GQA: heads go by KV group (${NKV} KV heads, each shared by ${group} query heads), so keep a multiple of ${group} heads (${Array.from({ length: NKV }, (_, i) => (i + 1) * group).join(', ')}) or a ratio that is a multiple of 1/${NKV}`);
  return Math.round(g);
}

function topK(scores: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[b] - scores[a] || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/** Every option checked against the teacher's shape, before anything is measured. */
export function checkPruneOptions(cfg: LlamaConfig, o: PruneOptions): void {
  const L = cfg.nLayers;
  if (o.layers !== undefined && o.dropLayers !== undefined) throw new Error('give --layers N or --drop-layers LIST, not both');
  if (o.dropLayers !== undefined) {
    const bad = o.dropLayers.filter((l) => !Number.isInteger(l) || l < 0 || l >= L);
    if (bad.length) throw new Error(`--drop-layers ${o.dropLayers.join(',')}: layer${bad.length > 1 ? 's' : ''} ${bad.join(', ')} out of range; the teacher has layers 0..${L - 1}`);
    if (new Set(o.dropLayers).size !== o.dropLayers.length) throw new Error(`--drop-layers ${o.dropLayers.join(',')}: a layer is named twice`);
    if (o.dropLayers.length >= L) throw new Error(`--drop-layers ${o.dropLayers.join(',')} drops every layer of the teacher (${L}); keep at least one`);
  }
  if (o.layers !== undefined && (!Number.isInteger(o.layers) || o.layers < 1 || o.layers > L)) throw new Error(`--layers ${o.layers}: must be an integer in 1..${L} (the teacher has ${L} layers)`);
  keptKvGroups(cfg, o.headsKeep);
  if (o.mlpKeep !== undefined && (!Number.isFinite(o.mlpKeep) || o.mlpKeep <= 0 || o.mlpKeep > 1)) throw new Error(`--mlp-keep must be a ratio in (0, 1], got ${o.mlpKeep}`);
}

/** Does this pruning need measured importance (anything chosen rather than named)? */
export function needsImportance(cfg: LlamaConfig, o: PruneOptions): boolean {
  return (o.layers !== undefined && o.layers < cfg.nLayers) || keptKvGroups(cfg, o.headsKeep) < cfg.nKvHeads || (o.mlpKeep !== undefined && o.mlpKeep < 1);
}

/** Which layers, KV groups and channels survive, from the importance and the options. */
export function planPrune(cfg: LlamaConfig, imp: Importance | null, o: PruneOptions): PrunePlan {
  checkPruneOptions(cfg, o);
  const L = cfg.nLayers, H = cfg.hiddenDim;
  if (needsImportance(cfg, o) && !imp) throw new Error('planPrune: choosing layers, heads or channels needs measured importance');
  let keepLayers = Array.from({ length: L }, (_, i) => i);
  if (o.dropLayers !== undefined) keepLayers = keepLayers.filter((l) => !o.dropLayers!.includes(l));
  else if (o.layers !== undefined && o.layers < L) {
    const score = imp!.layers.map((x) => ((o.layerMetric ?? imp!.layerMetric) === 'cosine' ? 1 - x.cosine : x.lossRise));
    keepLayers = topK(score, o.layers);
  }
  const nGroups = keptKvGroups(cfg, o.headsKeep);
  let nCh = H;
  if (o.mlpKeep !== undefined) {
    const m = o.mlpMultiple ?? 1;
    nCh = Math.min(H, Math.max(m, Math.round((H * o.mlpKeep) / m) * m));
  }
  const all = (n: number) => Array.from({ length: n }, (_, i) => i);
  return {
    keepLayers,
    keepGroups: keepLayers.map((l) => (nGroups < cfg.nKvHeads ? topK(imp!.kvGroups[l], nGroups) : all(cfg.nKvHeads))),
    keepChannels: keepLayers.map((l) => (nCh < H ? topK(imp!.channels[l], nCh) : all(H))),
  };
}

/** rows of a (rows, cols) row-major matrix */
function takeRows(a: Float32Array, cols: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => out.set(a.subarray(r * cols, (r + 1) * cols), i * cols));
  return out;
}
/** columns of a (rows, cols) row-major matrix */
function takeCols(a: Float32Array, rows: number, cols: number, keep: number[]): Float32Array {
  const out = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) keep.forEach((c, i) => (out[r * keep.length + i] = a[r * cols + c]));
  return out;
}

/** The pruned model: the plan's layers, KV groups (with their query heads) and MLP channels. */
export function applyPrune(cfg: LlamaConfig, w: LlamaWeights, plan: PrunePlan): { config: LlamaConfig; weights: LlamaWeights } {
  const NH = cfg.nHeads, NKV = cfg.nKvHeads, HS = headSize(cfg), C = cfg.dim, H = cfg.hiddenDim, group = NH / NKV;
  const nG = plan.keepGroups[0]?.length ?? NKV;
  const nCh = plan.keepChannels[0]?.length ?? H;
  if (plan.keepGroups.some((g) => g.length !== nG) || plan.keepChannels.some((c) => c.length !== nCh)) throw new Error('applyPrune: every kept layer must keep the same number of KV groups and of channels');
  const layers: LlamaLayerWeights[] = plan.keepLayers.map((l, i) => {
    const lw = w.layers[l];
    const groups = plan.keepGroups[i];
    const kvRows = groups.flatMap((g) => Array.from({ length: HS }, (_, d) => g * HS + d));
    const qRows = groups.flatMap((g) => Array.from({ length: group * HS }, (_, d) => g * group * HS + d));
    const ch = plan.keepChannels[i];
    return {
      attnNorm: lw.attnNorm.slice(), mlpNorm: lw.mlpNorm.slice(),
      wq: takeRows(lw.wq, C, qRows), wk: takeRows(lw.wk, C, kvRows), wv: takeRows(lw.wv, C, kvRows), wo: takeCols(lw.wo, C, NH * HS, qRows),
      wGate: takeRows(lw.wGate, C, ch), wUp: takeRows(lw.wUp, C, ch), wDown: takeCols(lw.wDown, C, H, ch),
    };
  });
  const config: LlamaConfig = { ...cfg, nLayers: plan.keepLayers.length, nHeads: nG * group, nKvHeads: nG, hiddenDim: nCh };
  delete config.headDim;
  if (config.dim / config.nHeads !== HS) config.headDim = HS;
  validateConfig(config, 'pruned model');
  return { config, weights: { tokEmbed: w.tokEmbed.slice(), layers, finalNorm: w.finalNorm.slice(), lmHead: w.lmHead ? w.lmHead.slice() : null } };
}

export interface PruneResult {
  config: LlamaConfig;
  weights: LlamaWeights;
  plan: PrunePlan;
  importance: Importance | null;
}

/** Measure (when needed), plan and cut. Options are checked before anything is measured. */
export function pruneModel(cfg: LlamaConfig, w: LlamaWeights, calib: Calibration | null, o: PruneOptions): PruneResult {
  checkPruneOptions(cfg, o);
  const importance = calib ? measureImportance(cfg, w, calib, o) : null;
  const plan = planPrune(cfg, importance, o);
  return { ...applyPrune(cfg, w, plan), plan, importance };
}
