// float64 CPU reference of the whole LLaMA model: forward (logits, per-layer captures), mean
// next-token cross-entropy, and the backward to every weight, written out in reverse, composed of
// the per-op references (each checked against finite differences in its own test). The whole
// backward is checked against finite differences in llama.test.ts; the GPU model against this.
import { headSize, type LlamaConfig, type LlamaWeights, PROJECTIONS, PROJECTION_KEY } from '../model/config';
import { matmulBackwardInputRef, matmulBackwardWeightRef, matmulForwardRef } from './matmul';
import { rmsnormBackwardRef, rmsnormForwardRef } from './rmsnorm';
import { ropeRef } from './rope';
import { attentionBackwardRef, attentionForwardRef } from './attention';
import { swigluBackwardRef, swigluForwardRef } from './swiglu';
import { embeddingBackwardRef, embeddingForwardRef } from './embedding';
import { crossEntropyRef } from './loss';

type A = ArrayLike<number>;

export interface RefLayerCapture {
  x: Float64Array; // input residual (B*T, C)
  xn1: Float64Array;
  q: Float64Array; // after RoPE
  k: Float64Array;
  v: Float64Array;
  probs: Float64Array; // (B, NH, T, T)
  att: Float64Array;
  attnOut: Float64Array; // Wo·att
  h: Float64Array;
  xn2: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  act: Float64Array;
  out: Float64Array; // hidden state after the layer (B*T, C)
}

export interface RefForward {
  logits: Float64Array; // (B*T, V)
  layers: RefLayerCapture[];
  xL: Float64Array;
  xnf: Float64Array;
}

const add = (a: A, b: A) => Float64Array.from({ length: a.length }, (_, i) => a[i] + b[i]);

export function refForward(cfg: LlamaConfig, w: LlamaWeights, tokens: number[], B: number, T: number): RefForward {
  const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V } = cfg;
  const HS = headSize(cfg);
  const BT = B * T;
  let x = embeddingForwardRef(tokens, w.tokEmbed, C);
  const layers: RefLayerCapture[] = [];
  for (const lw of w.layers) {
    const xn1 = rmsnormForwardRef(x, lw.attnNorm, BT, C, cfg.normEps).y;
    const q = ropeRef(matmulForwardRef(xn1, lw.wq, BT, C, NH * HS), B, T, NH, HS, cfg.ropeTheta, 0);
    const k = ropeRef(matmulForwardRef(xn1, lw.wk, BT, C, NKV * HS), B, T, NKV, HS, cfg.ropeTheta, 0);
    const v = matmulForwardRef(xn1, lw.wv, BT, C, NKV * HS);
    const { out: att, probs } = attentionForwardRef(q, k, v, { B, T, NH, NKV, HS });
    const attnOut = matmulForwardRef(att, lw.wo, BT, NH * HS, C);
    const h = add(x, attnOut);
    const xn2 = rmsnormForwardRef(h, lw.mlpNorm, BT, C, cfg.normEps).y;
    const gate = matmulForwardRef(xn2, lw.wGate, BT, C, H);
    const up = matmulForwardRef(xn2, lw.wUp, BT, C, H);
    const act = swigluForwardRef(gate, up);
    const out = add(h, matmulForwardRef(act, lw.wDown, BT, H, C));
    layers.push({ x, xn1, q, k, v, probs, att, attnOut, h, xn2, gate, up, act, out });
    x = out;
  }
  const xnf = rmsnormForwardRef(x, w.finalNorm, BT, C, cfg.normEps).y;
  const logits = matmulForwardRef(xnf, w.lmHead ?? w.tokEmbed, BT, C, V);
  return { logits, layers, xL: x, xnf };
}

/** Mean CE over rows whose target is not IGNORE (0xffffffff); also dlogits. */
export function refLoss(logits: A, targets: number[], V: number): { loss: number; dlogits: Float64Array } {
  const rows = targets.length;
  const n = targets.filter((t) => t !== 0xffffffff).length;
  const { losses, dz } = crossEntropyRef(logits, targets, rows, V, 1 / n);
  let s = 0;
  for (const l of losses) s += l;
  return { loss: s / n, dlogits: dz };
}

export type RefGrads = {
  tokEmbed: Float64Array;
  lmHead: Float64Array | null;
  finalNorm: Float64Array;
  layers: Record<'attnNorm' | 'mlpNorm' | 'wq' | 'wk' | 'wv' | 'wo' | 'wGate' | 'wUp' | 'wDown', Float64Array>[];
};

/** Gradients of the loss whose dlogits is given, with respect to every weight. */
export function refBackward(cfg: LlamaConfig, w: LlamaWeights, tokens: number[], B: number, T: number, f: RefForward, dlogits: A): RefGrads {
  const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V } = cfg;
  const HS = headSize(cfg);
  const BT = B * T;
  const head = w.lmHead ?? w.tokEmbed;
  const dHead = matmulBackwardWeightRef(dlogits, f.xnf, BT, C, V);
  const dxnf = matmulBackwardInputRef(dlogits, head, BT, C, V);
  const fn = rmsnormBackwardRef(dxnf, f.xL, w.finalNorm, BT, C, cfg.normEps);
  let dres = fn.dx;
  const layers: RefGrads['layers'] = new Array(cfg.nLayers);
  for (let l = cfg.nLayers - 1; l >= 0; l--) {
    const lw = w.layers[l];
    const a = f.layers[l];
    const wDown = matmulBackwardWeightRef(dres, a.act, BT, H, C);
    const dact = matmulBackwardInputRef(dres, lw.wDown, BT, H, C);
    const { dgate, dup } = swigluBackwardRef(dact, a.gate, a.up);
    const wGate = matmulBackwardWeightRef(dgate, a.xn2, BT, C, H);
    const wUp = matmulBackwardWeightRef(dup, a.xn2, BT, C, H);
    const dxn2 = add(matmulBackwardInputRef(dgate, lw.wGate, BT, C, H), matmulBackwardInputRef(dup, lw.wUp, BT, C, H));
    const n2 = rmsnormBackwardRef(dxn2, a.h, lw.mlpNorm, BT, C, cfg.normEps);
    const dh = add(n2.dx, dres);
    const wo = matmulBackwardWeightRef(dh, a.att, BT, NH * HS, C);
    const datt = matmulBackwardInputRef(dh, lw.wo, BT, NH * HS, C);
    // attentionBackwardRef recomputes probs from q, k (post-RoPE) and v.
    const g = attentionBackwardRef(datt, a.q, a.k, a.v, { B, T, NH, NKV, HS });
    const dq = ropeRef(g.dq, B, T, NH, HS, cfg.ropeTheta, 0, true);
    const dk = ropeRef(g.dk, B, T, NKV, HS, cfg.ropeTheta, 0, true);
    const wq = matmulBackwardWeightRef(dq, a.xn1, BT, C, NH * HS);
    const wk = matmulBackwardWeightRef(dk, a.xn1, BT, C, NKV * HS);
    const wv = matmulBackwardWeightRef(g.dv, a.xn1, BT, C, NKV * HS);
    let dxn1 = matmulBackwardInputRef(dq, lw.wq, BT, C, NH * HS);
    dxn1 = add(dxn1, matmulBackwardInputRef(dk, lw.wk, BT, C, NKV * HS));
    dxn1 = add(dxn1, matmulBackwardInputRef(g.dv, lw.wv, BT, C, NKV * HS));
    const n1 = rmsnormBackwardRef(dxn1, a.x, lw.attnNorm, BT, C, cfg.normEps);
    dres = add(n1.dx, dh);
    layers[l] = { attnNorm: n1.dw, mlpNorm: n2.dw, wq, wk, wv, wo, wGate, wUp, wDown };
  }
  const tokEmbed = embeddingBackwardRef(dres, tokens, V, C);
  if (!w.lmHead) for (let i = 0; i < tokEmbed.length; i++) tokEmbed[i] += dHead[i];
  return { tokEmbed, lmHead: w.lmHead ? dHead : null, finalNorm: fn.dw, layers };
}

/** Every weight tensor of a model by a stable name, for tests (refs into w, not copies). */
export function namedWeights(w: LlamaWeights): [string, Float32Array | Float64Array][] {
  const out: [string, Float32Array | Float64Array][] = [['tokEmbed', w.tokEmbed], ['finalNorm', w.finalNorm]];
  if (w.lmHead) out.push(['lmHead', w.lmHead]);
  w.layers.forEach((lw, l) => {
    out.push([`layers.${l}.attnNorm`, lw.attnNorm], [`layers.${l}.mlpNorm`, lw.mlpNorm]);
    for (const p of PROJECTIONS) out.push([`layers.${l}.${PROJECTION_KEY[p]}`, lw[PROJECTION_KEY[p]]]);
  });
  return out;
}

export function namedGrads(g: RefGrads): Map<string, Float64Array> {
  const m = new Map<string, Float64Array>([['tokEmbed', g.tokEmbed], ['finalNorm', g.finalNorm]]);
  if (g.lmHead) m.set('lmHead', g.lmHead);
  g.layers.forEach((lg, l) => {
    for (const [k, v] of Object.entries(lg)) m.set(`layers.${l}.${k}`, v);
  });
  return m;
}
