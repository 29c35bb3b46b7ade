// float64 CPU reference of the whole LLaMA model, self-contained (its own loops, no per-op refs),
// so that it is an independent check of the GPU model built from the per-op kernels:
//   refForward   logits and every activation the backward needs (per-layer captures)
//   refLoss      mean next-token cross-entropy (ignored targets: -1 or 0xffffffff) and dlogits
//   refBackward  gradients of any loss given d(loss)/d(logits) (+ optional mid-network loss
//                gradients) with respect to every weight, written out layer by layer in reverse
//                (llm.c style); also the gradients of each projection's output and of each
//                layer's input
//   distillation losses: logit KL(teacher‖student) with temperature (×T²), attention-map KL,
//                MSE (attention output / hidden state) and refDistillLoss composing them
//   refDecoder / refGenerateGreedy: KV-cached single-token decoding, greedy generation
// Conventions (src/engine/model/config.ts): rows are r = b*T + t; Linear weights (out, in) with
// y = x·Wᵀ; RoPE in the HF rotate_half convention (i pairs with i + HS/2, angle
// pos·invFreq[i], invFreq[i] = theta^(-2i/HS) rescaled by rope_scaling: ropeInvFreq of ref/rope.ts,
// the one definition of the frequencies); GQA head h reads KV head floor(h / (NH/NKV)); causal
// softmax attention scaled by 1/sqrt(HS); RMSNorm y = x / sqrt(mean(x²) + eps) * w; SwiGLU MLP
// down(silu(gate(x)) * up(x)); logits = lmHead·rmsnorm_final(x) (lmHead = tokEmbed when tied).
// Checked against central finite differences in llama.test.ts, and against llama2.c's golden
// greedy output of stories260K.
import { headSize, ropeOf, PROJECTION_KEY, PROJECTIONS, type LlamaConfig, type LlamaLayerWeights, type Projection } from '../model/config';
import { ropeInvFreq } from './rope';

type Arr = ArrayLike<number>;
/** A weight array: the loaders' Float32Array, or a Float64Array copy (finite differences). */
export type Num = Float32Array | Float64Array;
export type RefLayerWeights = { [K in keyof LlamaLayerWeights]: Num };
/** LlamaWeights with float32 or float64 arrays (LlamaWeights is assignable to it). */
export interface RefWeights {
  tokEmbed: Num; // (V, C)
  layers: RefLayerWeights[];
  finalNorm: Num; // (C)
  lmHead: Num | null; // (V, C); null when tied to tokEmbed
}

/** Targets equal to -1 (or 0xffffffff, the GPU's u32 spelling) are ignored by the losses. */
export const IGNORE = -1;
const ignored = (t: number) => t < 0 || t === 0xffffffff;

export interface RefLayerCapture {
  x: Float64Array; // (B*T, C) layer input (residual stream)
  rstd1: Float64Array; // (B*T) 1/sqrt(mean(x²)+eps) of the attention RMSNorm
  xn1: Float64Array; // (B*T, C) rmsnorm(x)·attnNorm
  qPre: Float64Array; // (B*T, NH*HS) xn1·Wqᵀ (before RoPE)
  kPre: Float64Array; // (B*T, NKV*HS) xn1·Wkᵀ (before RoPE)
  q: Float64Array; // (B*T, NH*HS) after RoPE
  k: Float64Array; // (B*T, NKV*HS) after RoPE
  v: Float64Array; // (B*T, NKV*HS)
  probs: Float64Array; // (B, NH, T, T) causal softmax, zeros above the diagonal
  att: Float64Array; // (B*T, NH*HS) probs·v, heads concatenated
  attnOut: Float64Array; // (B*T, C) att·Woᵀ: the attention sub-layer output (before the residual add)
  h: Float64Array; // (B*T, C) x + attnOut
  rstd2: Float64Array; // (B*T)
  xn2: Float64Array; // (B*T, C) rmsnorm(h)·mlpNorm
  gate: Float64Array; // (B*T, H)
  up: Float64Array; // (B*T, H)
  act: Float64Array; // (B*T, H) silu(gate)*up
  down: Float64Array; // (B*T, C) act·Wdownᵀ
  out: Float64Array; // (B*T, C) h + down: the hidden state after the layer
}

export interface RefForward {
  B: number;
  T: number;
  tokens: number[]; // (B*T)
  logits: Float64Array; // (B*T, V)
  layers: RefLayerCapture[];
  xL: Float64Array; // (B*T, C) output of the last layer
  rstdF: Float64Array; // (B*T)
  xnf: Float64Array; // (B*T, C) rmsnorm_final(xL)
}

/** Gradients of every weight (float64, same layouts as the weights). */
export interface RefGrads {
  tokEmbed: Float64Array; // (V, C): embedding + (when tied) classifier contributions
  lmHead: Float64Array | null; // (V, C); null when tied
  finalNorm: Float64Array; // (C)
  layers: Record<keyof LlamaLayerWeights, Float64Array>[];
  /** d loss / d (projection output), per layer: q, k before RoPE (B*T, NH*HS | NKV*HS), v, o
   *  (= d attnOut, (B*T, C)), gate, up (B*T, H), down (B*T, C). */
  outGrads: Record<Projection, Float64Array>[];
  /** d loss / d (layer input x), per layer, (B*T, C); dInput[0] is d loss / d embeddings. */
  dInput: Float64Array[];
  dlogits: Float64Array; // (B*T, V) the dlogits used
}

/** Extra loss gradients injected mid-network (same names and meaning as LlamaModel.backward). */
export interface RefExtraGrads {
  dprobs?: (Arr | null | undefined)[]; // per layer (B, NH, T, T): d loss / d attention probabilities
  dattnOut?: (Arr | null | undefined)[]; // per layer (B*T, C): d loss / d attnOut
  dhidden?: (Arr | null | undefined)[]; // per layer (B*T, C): d loss / d (output of layer l)
}

// ---------------------------------------------------------------------------------------------
// building blocks (float64 loops)

/** y (N, out) = x (N, in) · Wᵀ, W (out, in). */
function linear(x: Arr, W: Arr, N: number, nin: number, nout: number): Float64Array {
  const y = new Float64Array(N * nout);
  for (let n = 0; n < N; n++) {
    const xo = n * nin;
    for (let o = 0; o < nout; o++) {
      const wo = o * nin;
      let s = 0;
      for (let i = 0; i < nin; i++) s += x[xo + i] * W[wo + i];
      y[n * nout + o] = s;
    }
  }
  return y;
}

/** Backward of y = x·Wᵀ: dW (out, in) += dyᵀ·x (accumulate); dx (N, in) += dy·W (accumulate). */
function linearBackward(dy: Arr, x: Arr, W: Arr, N: number, nin: number, nout: number, dW: Float64Array, dx: Float64Array): void {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < nout; o++) {
      const g = dy[n * nout + o];
      if (g === 0) continue;
      const wo = o * nin;
      const xo = n * nin;
      for (let i = 0; i < nin; i++) {
        dW[wo + i] += g * x[xo + i];
        dx[xo + i] += g * W[wo + i];
      }
    }
  }
}

/** RMSNorm rows of x (N, C): y = x·rstd·w, rstd = 1/sqrt(mean(x²)+eps). */
function rmsnorm(x: Arr, w: Arr, N: number, C: number, eps: number): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += x[n * C + i] * x[n * C + i];
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[n] = r;
    for (let i = 0; i < C; i++) y[n * C + i] = x[n * C + i] * r * w[i];
  }
  return { y, rstd };
}

/** RMSNorm backward: dw += Σ_n dy·x·rstd (accumulate); dx += rstd·(dy·w) − rstd³·x·Σ(dy·w·x)/C
 *  (accumulate). */
function rmsnormBackward(dy: Arr, x: Arr, w: Arr, rstd: Arr, N: number, C: number, dw: Float64Array, dx: Float64Array): void {
  for (let n = 0; n < N; n++) {
    const r = rstd[n];
    let dot = 0;
    for (let i = 0; i < C; i++) dot += dy[n * C + i] * w[i] * x[n * C + i];
    const c = (r * r * r * dot) / C;
    for (let i = 0; i < C; i++) {
      const j = n * C + i;
      dw[i] += dy[j] * x[j] * r;
      dx[j] += r * dy[j] * w[i] - c * x[j];
    }
  }
}

/** RoPE angle tables for positions [pos0, pos0+T): cos/sin (T, HS/2); the inverse frequencies
 *  (theta, rope_scaling) from ropeInvFreq, the one definition the GPU table also uses. */
function ropeTables(T: number, HS: number, cfg: LlamaConfig, pos0 = 0): { cos: Float64Array; sin: Float64Array } {
  const half = HS / 2;
  const inv = ropeInvFreq(HS, ropeOf(cfg));
  const cos = new Float64Array(T * half);
  const sin = new Float64Array(T * half);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < half; i++) {
      const a = (pos0 + t) * inv[i];
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  return { cos, sin };
}

/** Rotate x (B*T, nh*HS) in place-free fashion (rotate_half): (x1, x2) -> (x1 c − x2 s, x2 c + x1 s).
 *  inverse=true applies the transpose rotation (the backward: dx = Rᵀ dy). */
function rope(x: Arr, B: number, T: number, nh: number, HS: number, tab: { cos: Float64Array; sin: Float64Array }, inverse = false): Float64Array {
  const half = HS / 2;
  const y = new Float64Array(B * T * nh * HS);
  const sgn = inverse ? -1 : 1;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < nh; h++) {
        const o = ((b * T + t) * nh + h) * HS;
        for (let i = 0; i < half; i++) {
          const c = tab.cos[t * half + i];
          const s = sgn * tab.sin[t * half + i];
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          y[o + i] = x1 * c - x2 * s;
          y[o + i + half] = x2 * c + x1 * s;
        }
      }
  return y;
}

const sigmoid = (g: number) => 1 / (1 + Math.exp(-g));

// ---------------------------------------------------------------------------------------------
// forward

/** tokens as B sequences of T (number[][]), or flat (B*T) with B and T given. */
export function flattenTokens(tokens: number[] | number[][], B?: number, T?: number): { flat: number[]; B: number; T: number } {
  if (tokens.length > 0 && Array.isArray(tokens[0])) {
    const seqs = tokens as number[][];
    const t = seqs[0].length;
    if (seqs.some((s) => s.length !== t)) throw new Error('refForward: sequences must all have the same length');
    return { flat: seqs.flat(), B: seqs.length, T: t };
  }
  const flat = tokens as number[];
  const b = B ?? 1;
  const t = T ?? flat.length / b;
  if (b * t !== flat.length) throw new Error(`refForward: ${flat.length} tokens is not B=${b} × T=${t}`);
  return { flat, B: b, T: t };
}

/**
 * Forward pass of B sequences of T tokens (positions 0..T-1). `tokens` is number[][] (B sequences),
 * or flat number[] (B*T, row r = b*T + t) with B and T given.
 */
export function refForward(cfg: LlamaConfig, w: RefWeights, tokens: number[] | number[][], B?: number, T?: number): RefForward {
  const tk = flattenTokens(tokens, B, T);
  const nb = tk.B, nt = tk.T;
  const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V, normEps: eps } = cfg;
  const HS = headSize(cfg);
  const BT = nb * nt;
  const group = NH / NKV;
  const scale = 1 / Math.sqrt(HS);
  const tab = ropeTables(nt, HS, cfg);

  let x = new Float64Array(BT * C);
  tk.flat.forEach((id, r) => {
    if (!(id >= 0 && id < V)) throw new Error(`refForward: token ${id} outside the vocabulary (V=${V})`);
    for (let i = 0; i < C; i++) x[r * C + i] = w.tokEmbed[id * C + i];
  });

  const layers: RefLayerCapture[] = [];
  for (const lw of w.layers) {
    // attention sub-layer
    const n1 = rmsnorm(x, lw.attnNorm, BT, C, eps);
    const xn1 = n1.y;
    const qPre = linear(xn1, lw.wq, BT, C, NH * HS);
    const kPre = linear(xn1, lw.wk, BT, C, NKV * HS);
    const v = linear(xn1, lw.wv, BT, C, NKV * HS);
    const q = rope(qPre, nb, nt, NH, HS, tab);
    const k = rope(kPre, nb, nt, NKV, HS, tab);
    const probs = new Float64Array(nb * NH * nt * nt);
    const att = new Float64Array(BT * NH * HS);
    for (let b = 0; b < nb; b++)
      for (let h = 0; h < NH; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < nt; t++) {
          const qo = (b * nt + t) * NH * HS + h * HS;
          const po = ((b * NH + h) * nt + t) * nt;
          let mx = -Infinity;
          for (let j = 0; j <= t; j++) {
            const ko = (b * nt + j) * NKV * HS + kh * HS;
            let s = 0;
            for (let d = 0; d < HS; d++) s += q[qo + d] * k[ko + d];
            probs[po + j] = s * scale;
            if (probs[po + j] > mx) mx = probs[po + j];
          }
          let z = 0;
          for (let j = 0; j <= t; j++) z += probs[po + j] = Math.exp(probs[po + j] - mx);
          for (let j = 0; j <= t; j++) probs[po + j] /= z;
          for (let j = 0; j <= t; j++) {
            const vo = (b * nt + j) * NKV * HS + kh * HS;
            const p = probs[po + j];
            for (let d = 0; d < HS; d++) att[qo + d] += p * v[vo + d];
          }
        }
      }
    const attnOut = linear(att, lw.wo, BT, NH * HS, C);
    const h = new Float64Array(BT * C);
    for (let i = 0; i < h.length; i++) h[i] = x[i] + attnOut[i];
    // MLP sub-layer
    const n2 = rmsnorm(h, lw.mlpNorm, BT, C, eps);
    const xn2 = n2.y;
    const gate = linear(xn2, lw.wGate, BT, C, H);
    const up = linear(xn2, lw.wUp, BT, C, H);
    const act = new Float64Array(BT * H);
    for (let i = 0; i < act.length; i++) act[i] = gate[i] * sigmoid(gate[i]) * up[i];
    const down = linear(act, lw.wDown, BT, H, C);
    const out = new Float64Array(BT * C);
    for (let i = 0; i < out.length; i++) out[i] = h[i] + down[i];
    layers.push({ x, rstd1: n1.rstd, xn1, qPre, kPre, q, k, v, probs, att, attnOut, h, rstd2: n2.rstd, xn2, gate, up, act, down, out });
    x = out;
  }
  const nf = rmsnorm(x, w.finalNorm, BT, C, eps);
  const logits = linear(nf.y, w.lmHead ?? w.tokEmbed, BT, C, V);
  return { B: nb, T: nt, tokens: tk.flat, logits, layers, xL: x, rstdF: nf.rstd, xnf: nf.y };
}

// ---------------------------------------------------------------------------------------------
// losses (each returns the scalar and its gradient with respect to its first input)

/** Log-softmax of one row. */
function logSoftmax(z: Arr, o: number, V: number, temp = 1): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, z[o + i] / temp);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(z[o + i] / temp - mx);
  const lse = mx + Math.log(s);
  const out = new Float64Array(V);
  for (let i = 0; i < V; i++) out[i] = z[o + i] / temp - lse;
  return out;
}

/**
 * Mean next-token cross-entropy over rows whose target is not ignored (-1 or 0xffffffff), and
 * dlogits = (softmax − onehot)/n on those rows, 0 elsewhere. targets (B*T) flat or (B)(T).
 * With no counted row the loss is 0 and dlogits 0.
 */
export function refLoss(logits: Arr, targets: number[] | number[][], V: number): { loss: number; dlogits: Float64Array; count: number } {
  const tg = targets.length > 0 && Array.isArray(targets[0]) ? (targets as number[][]).flat() : (targets as number[]);
  const rows = logits.length / V;
  if (tg.length !== rows) throw new Error(`refLoss: ${tg.length} targets for ${rows} rows`);
  const n = tg.filter((t) => !ignored(t)).length;
  const dlogits = new Float64Array(logits.length);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const t = tg[r];
    if (ignored(t)) continue;
    if (!(t < V)) throw new Error(`refLoss: target ${t} outside the vocabulary (V=${V})`);
    const lp = logSoftmax(logits, r * V, V);
    loss -= lp[t];
    for (let i = 0; i < V; i++) dlogits[r * V + i] = (Math.exp(lp[i]) - (i === t ? 1 : 0)) / n;
  }
  return { loss: n > 0 ? loss / n : 0, dlogits, count: n };
}

/**
 * Logit distillation: temp² · mean over rows of KL(softmax(teacher/temp) ‖ softmax(student/temp)).
 * d/d student = temp · (p_student − p_teacher) / rows.
 */
export function refKlLoss(student: Arr, teacher: Arr, V: number, temp = 1): { loss: number; dlogits: Float64Array } {
  const rows = student.length / V;
  if (teacher.length !== student.length) throw new Error('refKlLoss: teacher and student logits differ in size');
  const d = new Float64Array(student.length);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const ls = logSoftmax(student, r * V, V, temp);
    const lt = logSoftmax(teacher, r * V, V, temp);
    for (let i = 0; i < V; i++) {
      const pt = Math.exp(lt[i]);
      loss += pt * (lt[i] - ls[i]);
      d[r * V + i] = (temp * (Math.exp(ls[i]) - pt)) / rows;
    }
  }
  return { loss: (temp * temp * loss) / rows, dlogits: d };
}

/**
 * Attention-map loss of one layer (Kim et al. 2022): KL(teacher ‖ student) of the attention rows,
 * mean over the B·NH·T query rows. probs (B, NH, T, T) causal. d/d student probs = −p_t/p_s / rows
 * (0 where the teacher is 0).
 */
export function refAttnKlLoss(student: Arr, teacher: Arr, T: number): { loss: number; dprobs: Float64Array } {
  const rows = student.length / T;
  const d = new Float64Array(student.length);
  let loss = 0;
  for (let i = 0; i < student.length; i++) {
    const pt = teacher[i];
    if (pt <= 0) continue;
    loss += pt * (Math.log(pt) - Math.log(student[i]));
    d[i] = -pt / student[i] / rows;
  }
  return { loss: loss / rows, dprobs: d };
}

/** Mean squared error over all elements, and d/d a = 2(a − b)/n. */
export function refMseLoss(a: Arr, b: Arr): { loss: number; d: Float64Array } {
  const n = a.length;
  const d = new Float64Array(n);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const e = a[i] - b[i];
    loss += e * e;
    d[i] = (2 * e) / n;
  }
  return { loss: loss / n, d };
}

// ---------------------------------------------------------------------------------------------
// backward

/**
 * Gradients with respect to every weight of the loss whose d(loss)/d(logits) is `dlogits`
 * (B*T, V), plus the optional mid-network gradients in `extra`. `f` is refForward's result for
 * the same weights and tokens (`tokens`, B, T are accepted for compatibility and must match f).
 * Gradients are fresh arrays (internally: parameter gradients accumulate, activation gradients
 * assign, as in the GPU kernels).
 */
export function refBackward(cfg: LlamaConfig, w: RefWeights, tokens: number[] | number[][] | null, B: number | null, T: number | null, f: RefForward, dlogits: Arr, extra: RefExtraGrads = {}): RefGrads {
  const nb = f.B, nt = f.T;
  if ((B != null && B !== nb) || (T != null && T !== nt)) throw new Error(`refBackward: B, T = ${B}, ${T} but the forward ran ${nb}, ${nt}`);
  if (tokens) {
    const flat = flattenTokens(tokens, nb, nt).flat;
    if (flat.some((t, i) => t !== f.tokens[i])) throw new Error('refBackward: tokens differ from the forward pass');
  }
  const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V } = cfg;
  const HS = headSize(cfg);
  const BT = nb * nt;
  const group = NH / NKV;
  const scale = 1 / Math.sqrt(HS);
  const tab = ropeTables(nt, HS, cfg);
  const head = w.lmHead ?? w.tokEmbed;
  const dl = Float64Array.from(dlogits);

  // classifier and final norm
  const dHead = new Float64Array(V * C);
  const dxnf = new Float64Array(BT * C);
  linearBackward(dl, f.xnf, head, BT, C, V, dHead, dxnf);
  const dFinalNorm = new Float64Array(C);
  let dres = new Float64Array(BT * C); // d loss / d (output of the current layer)
  rmsnormBackward(dxnf, f.xL, w.finalNorm, f.rstdF, BT, C, dFinalNorm, dres);

  const layers: RefGrads['layers'] = new Array(cfg.nLayers);
  const outGrads: RefGrads['outGrads'] = new Array(cfg.nLayers);
  const dInput: Float64Array[] = new Array(cfg.nLayers);
  for (let l = cfg.nLayers - 1; l >= 0; l--) {
    const lw = w.layers[l];
    const a = f.layers[l];
    const g = {
      attnNorm: new Float64Array(C), wq: new Float64Array(NH * HS * C), wk: new Float64Array(NKV * HS * C), wv: new Float64Array(NKV * HS * C),
      wo: new Float64Array(C * NH * HS), mlpNorm: new Float64Array(C), wGate: new Float64Array(H * C), wUp: new Float64Array(H * C), wDown: new Float64Array(C * H),
    };
    const eh = extra.dhidden?.[l];
    if (eh) for (let i = 0; i < dres.length; i++) dres[i] += eh[i];

    // out = h + down(act): d down = dres
    const ddown = dres;
    const dact = new Float64Array(BT * H);
    linearBackward(ddown, a.act, lw.wDown, BT, H, C, g.wDown, dact);
    // act = silu(gate) * up
    const dgate = new Float64Array(BT * H);
    const dup = new Float64Array(BT * H);
    for (let i = 0; i < BT * H; i++) {
      const x = a.gate[i];
      const s = sigmoid(x);
      dup[i] = dact[i] * x * s;
      dgate[i] = dact[i] * a.up[i] * s * (1 + x * (1 - s));
    }
    const dxn2 = new Float64Array(BT * C);
    linearBackward(dgate, a.xn2, lw.wGate, BT, C, H, g.wGate, dxn2);
    linearBackward(dup, a.xn2, lw.wUp, BT, C, H, g.wUp, dxn2);
    // xn2 = rmsnorm(h); h also feeds the residual
    const dh = Float64Array.from(dres);
    rmsnormBackward(dxn2, a.h, lw.mlpNorm, a.rstd2, BT, C, g.mlpNorm, dh);

    // h = x + attnOut
    const dattnOut = Float64Array.from(dh);
    const ea = extra.dattnOut?.[l];
    if (ea) for (let i = 0; i < dattnOut.length; i++) dattnOut[i] += ea[i];
    const datt = new Float64Array(BT * NH * HS);
    linearBackward(dattnOut, a.att, lw.wo, BT, NH * HS, C, g.wo, datt);
    // attention: att = probs·v, probs = softmax(q·kᵀ·scale) (causal)
    const dq = new Float64Array(BT * NH * HS); // w.r.t. q after RoPE
    const dk = new Float64Array(BT * NKV * HS);
    const dv = new Float64Array(BT * NKV * HS);
    const ep = extra.dprobs?.[l];
    const dp = new Float64Array(nt);
    for (let b = 0; b < nb; b++)
      for (let h = 0; h < NH; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < nt; t++) {
          const qo = (b * nt + t) * NH * HS + h * HS;
          const po = ((b * NH + h) * nt + t) * nt;
          let sum = 0;
          for (let j = 0; j <= t; j++) {
            const vo = (b * nt + j) * NKV * HS + kh * HS;
            const p = a.probs[po + j];
            let s = 0;
            for (let d = 0; d < HS; d++) {
              s += datt[qo + d] * a.v[vo + d];
              dv[vo + d] += p * datt[qo + d];
            }
            dp[j] = s + (ep ? ep[po + j] : 0);
            sum += p * dp[j];
          }
          for (let j = 0; j <= t; j++) {
            const ds = a.probs[po + j] * (dp[j] - sum) * scale; // d loss / d (q·k)
            const ko = (b * nt + j) * NKV * HS + kh * HS;
            for (let d = 0; d < HS; d++) {
              dq[qo + d] += ds * a.k[ko + d];
              dk[ko + d] += ds * a.q[qo + d];
            }
          }
        }
      }
    const dqPre = rope(dq, nb, nt, NH, HS, tab, true);
    const dkPre = rope(dk, nb, nt, NKV, HS, tab, true);
    const dxn1 = new Float64Array(BT * C);
    linearBackward(dqPre, a.xn1, lw.wq, BT, C, NH * HS, g.wq, dxn1);
    linearBackward(dkPre, a.xn1, lw.wk, BT, C, NKV * HS, g.wk, dxn1);
    linearBackward(dv, a.xn1, lw.wv, BT, C, NKV * HS, g.wv, dxn1);
    // xn1 = rmsnorm(x); x also feeds the residual
    const dx = Float64Array.from(dh);
    rmsnormBackward(dxn1, a.x, lw.attnNorm, a.rstd1, BT, C, g.attnNorm, dx);

    layers[l] = g;
    outGrads[l] = { q: dqPre, k: dkPre, v: dv, o: dattnOut, gate: dgate, up: dup, down: Float64Array.from(ddown) };
    dInput[l] = dx;
    dres = dx;
  }
  // embedding: row r of x0 is tokEmbed[tokens[r]]
  const dEmbed = w.lmHead ? new Float64Array(V * C) : dHead; // tied: accumulate into the classifier's gradient
  f.tokens.forEach((id, r) => {
    for (let i = 0; i < C; i++) dEmbed[id * C + i] += dres[r * C + i];
  });
  return { tokEmbed: dEmbed, lmHead: w.lmHead ? dHead : null, finalNorm: dFinalNorm, layers, outGrads, dInput, dlogits: dl };
}

// ---------------------------------------------------------------------------------------------
// distillation: the whole loss and its gradients

export interface RefLossWeights {
  kl: number; // KL(teacher‖student) on logits, ×temp²
  ce: number; // next-token cross-entropy
  attnMap: number; // attention-map KL, mean over rows and heads, summed over layers
  attnOut: number; // attention-output MSE, summed over layers
  hidden: number; // hidden-state (layer output) MSE, summed over layers
}

/**
 * Weighted distillation loss of a student forward `s` against a teacher forward `t` (same tokens),
 * with its components and the gradients of every student weight. Targets as in refLoss (needed
 * when weights.ce > 0).
 */
export function refDistillLoss(cfg: LlamaConfig, student: RefWeights, s: RefForward, t: RefForward, weights: Partial<RefLossWeights>, opts: { temperature?: number; targets?: number[] | number[][] } = {}): { loss: number; components: RefLossWeights; grads: RefGrads } {
  const wts: RefLossWeights = { kl: 0, ce: 0, attnMap: 0, attnOut: 0, hidden: 0, ...weights };
  const V = cfg.vocabSize;
  const comp: RefLossWeights = { kl: 0, ce: 0, attnMap: 0, attnOut: 0, hidden: 0 };
  const dlogits = new Float64Array(s.logits.length);
  const addTo = (dst: Float64Array, src: Arr, k: number) => {
    for (let i = 0; i < dst.length; i++) dst[i] += k * src[i];
  };
  if (wts.kl) {
    const r = refKlLoss(s.logits, t.logits, V, opts.temperature ?? 1);
    comp.kl = r.loss;
    addTo(dlogits, r.dlogits, wts.kl);
  }
  if (wts.ce) {
    if (!opts.targets) throw new Error('refDistillLoss: ce needs targets');
    const r = refLoss(s.logits, opts.targets, V);
    comp.ce = r.loss;
    addTo(dlogits, r.dlogits, wts.ce);
  }
  const L = cfg.nLayers;
  const extra: Required<RefExtraGrads> = { dprobs: new Array(L).fill(null), dattnOut: new Array(L).fill(null), dhidden: new Array(L).fill(null) };
  for (let l = 0; l < L; l++) {
    if (wts.attnMap) {
      const r = refAttnKlLoss(s.layers[l].probs, t.layers[l].probs, s.T);
      comp.attnMap += r.loss;
      extra.dprobs[l] = r.dprobs.map((x) => x * wts.attnMap);
    }
    if (wts.attnOut) {
      const r = refMseLoss(s.layers[l].attnOut, t.layers[l].attnOut);
      comp.attnOut += r.loss;
      extra.dattnOut[l] = r.d.map((x) => x * wts.attnOut);
    }
    if (wts.hidden) {
      const r = refMseLoss(s.layers[l].out, t.layers[l].out);
      comp.hidden += r.loss;
      extra.dhidden[l] = r.d.map((x) => x * wts.hidden);
    }
  }
  const loss = (Object.keys(wts) as (keyof RefLossWeights)[]).reduce((a, k) => a + wts[k] * comp[k], 0);
  return { loss, components: comp, grads: refBackward(cfg, student, null, null, null, s, dlogits, extra) };
}

// ---------------------------------------------------------------------------------------------
// KV-cached decoding and greedy generation

export interface RefDecoder {
  /** Logits (V) of the next token after feeding `token` at position `pos` (0, 1, 2, … in order). */
  step(token: number, pos: number): Float64Array;
}

/** A single-sequence decoder with a KV cache (up to cfg.maxSeqLen positions). */
export function refDecoder(cfg: LlamaConfig, w: RefWeights): RefDecoder {
  const { dim: C, hiddenDim: H, nHeads: NH, nKvHeads: NKV, vocabSize: V, normEps: eps, maxSeqLen: S } = cfg;
  const HS = headSize(cfg);
  const KV = NKV * HS;
  const group = NH / NKV;
  const scale = 1 / Math.sqrt(HS);
  const kc = w.layers.map(() => new Float64Array(S * KV)); // (S, NKV*HS) after RoPE
  const vc = w.layers.map(() => new Float64Array(S * KV));
  let next = 0;
  return {
    step(token: number, pos: number): Float64Array {
      if (pos !== next) throw new Error(`refDecoder: expected position ${next}, got ${pos}`);
      if (pos >= S) throw new Error(`refDecoder: position ${pos} past maxSeqLen ${S}`);
      if (!(token >= 0 && token < V)) throw new Error(`refDecoder: token ${token} outside the vocabulary`);
      next++;
      const tab = ropeTables(1, HS, cfg, pos);
      let x = Float64Array.from(w.tokEmbed.subarray(token * C, token * C + C));
      w.layers.forEach((lw, l) => {
        const xn = rmsnorm(x, lw.attnNorm, 1, C, eps).y;
        const q = rope(linear(xn, lw.wq, 1, C, NH * HS), 1, 1, NH, HS, tab);
        kc[l].set(rope(linear(xn, lw.wk, 1, C, KV), 1, 1, NKV, HS, tab), pos * KV);
        vc[l].set(linear(xn, lw.wv, 1, C, KV), pos * KV);
        const att = new Float64Array(NH * HS);
        const sc = new Float64Array(pos + 1);
        for (let h = 0; h < NH; h++) {
          const kh = Math.floor(h / group);
          let mx = -Infinity;
          for (let j = 0; j <= pos; j++) {
            let s = 0;
            for (let d = 0; d < HS; d++) s += q[h * HS + d] * kc[l][j * KV + kh * HS + d];
            sc[j] = s * scale;
            mx = Math.max(mx, sc[j]);
          }
          let z = 0;
          for (let j = 0; j <= pos; j++) z += sc[j] = Math.exp(sc[j] - mx);
          for (let j = 0; j <= pos; j++) for (let d = 0; d < HS; d++) att[h * HS + d] += (sc[j] / z) * vc[l][j * KV + kh * HS + d];
        }
        const o = linear(att, lw.wo, 1, NH * HS, C);
        const hh = x.map((v, i) => v + o[i]);
        const xn2 = rmsnorm(hh, lw.mlpNorm, 1, C, eps).y;
        const gate = linear(xn2, lw.wGate, 1, C, H);
        const up = linear(xn2, lw.wUp, 1, C, H);
        const act = gate.map((g, i) => g * sigmoid(g) * up[i]);
        const down = linear(act, lw.wDown, 1, H, C);
        x = hh.map((v, i) => v + down[i]);
      });
      const xn = rmsnorm(x, w.finalNorm, 1, C, eps).y;
      return linear(xn, w.lmHead ?? w.tokEmbed, 1, C, V);
    },
  };
}

/** Index of the largest value (the first one on ties, as llama2.c's argmax). */
export function argmax(a: Arr): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/**
 * Greedy decoding as llama2.c's generate(): feed the prompt, then up to `steps` new tokens
 * (total positions ≤ prompt.length − 1 + steps, as `run -n` counts them when the prompt is one
 * token), stopping before emitting `stopToken` (llama2.c stops on BOS = 1). Returns the generated
 * tokens, without the prompt.
 */
export function refGenerateGreedy(cfg: LlamaConfig, w: RefWeights, prompt: number[], steps: number, opts: { stopToken?: number } = {}): number[] {
  if (prompt.length === 0) throw new Error('refGenerateGreedy: empty prompt');
  const dec = refDecoder(cfg, w);
  let logits: Float64Array = new Float64Array(0);
  prompt.forEach((t, pos) => (logits = dec.step(t, pos)));
  const out: number[] = [];
  let pos = prompt.length;
  while (out.length < steps) {
    const nextTok = argmax(logits);
    if (nextTok === opts.stopToken) break;
    out.push(nextTok);
    if (out.length === steps || pos >= cfg.maxSeqLen) break;
    logits = dec.step(nextTok, pos++);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// naming helpers for tests

/** Every weight tensor of a model by a stable name (`tokEmbed`, `finalNorm`, `lmHead`,
 *  `layers.<l>.<key>`), references into w, not copies. */
export function namedWeights(w: RefWeights): [string, Num][] {
  const out: [string, Num][] = [['tokEmbed', w.tokEmbed], ['finalNorm', w.finalNorm]];
  if (w.lmHead) out.push(['lmHead', w.lmHead]);
  w.layers.forEach((lw, l) => {
    out.push([`layers.${l}.attnNorm`, lw.attnNorm], [`layers.${l}.mlpNorm`, lw.mlpNorm]);
    for (const p of PROJECTIONS) out.push([`layers.${l}.${PROJECTION_KEY[p]}`, lw[PROJECTION_KEY[p]]]);
  });
  return out;
}

/** The weight gradients by the same names as namedWeights. */
export function namedGrads(g: RefGrads): Map<string, Float64Array> {
  const m = new Map<string, Float64Array>([['tokEmbed', g.tokEmbed], ['finalNorm', g.finalNorm]]);
  if (g.lmHead) m.set('lmHead', g.lmHead);
  g.layers.forEach((lg, l) => {
    for (const [k, v] of Object.entries(lg)) m.set(`layers.${l}.${k}`, v);
  });
  return m;
}

/** A float64 copy of the weights (for finite differences not limited by float32). */
export function toF64Weights(w: RefWeights): RefWeights {
  const c = (a: Num) => Float64Array.from(a);
  return {
    tokEmbed: c(w.tokEmbed),
    finalNorm: c(w.finalNorm),
    lmHead: w.lmHead ? c(w.lmHead) : null,
    layers: w.layers.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, c(v)])) as RefLayerWeights),
  };
}
