// llama2.c checkpoints and tokenizer.bin.
// - version 0 (legacy): 7 × int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
//   vocab_size — negative means an unshared classifier — and seq_len), then float32 tensors:
//   token_embedding (V,C), rms_att (L,C), wq (L,C,C), wk (L,KV,C), wv (L,KV,C), wo (L,C,C),
//   rms_ffn (L,C), w1 (L,H,C) = gate, w2 (L,C,H) = down, w3 (L,H,C) = up, rms_final (C),
//   freq_cis_real/imag (seq_len·HS/2 each, skipped), then wcls (V,C) when unshared.
// - version 2 ("ak42", Q8_0): magic 0x616b3432, int32 version 2, the 7 ints, uint8
//   shared_classifier, int32 group_size, zero padding to 256 bytes; fp32 norms (all rms_att, all
//   rms_ffn, rms_final); then each Q8_0 tensor as int8 codes followed by fp32 per-group scales, in
//   the order token_embedding, wq, wk, wv, wo, w1, w2, w3, [wcls]. Dequantized to fp32 here.
// llama2.c rotates interleaved pairs (2i, 2i+1) in RoPE; the engine uses the HF rotate_half
// convention, so the rows of wq and wk are permuted per head as HF's convert_llama_weights_to_hf.py
// does: view (heads, HS/2, 2, C) → transpose(1, 2) → reshape. norm eps 1e-5, theta 10000.
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights } from '../model/config';
import { validateConfig } from '../model/config';
import { Llama2cTokenizer } from './tokenizer';
import { checkFinite, LIMITS } from './validate';

const MAGIC_V2 = 0x616b3432;

/** Permute the rows of a (heads·HS, C) projection from interleaved-pair RoPE to rotate_half. */
export function permuteInterleavedToHalf(w: Float32Array, heads: number, HS: number, C: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = HS / 2;
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let r = 0; r < 2; r++) {
        const src = (h * HS + 2 * i + r) * C; // interleaved row (i, r)
        const dst = (h * HS + r * half + i) * C; // rotate_half row
        out.set(w.subarray(src, src + C), dst);
      }
  return out;
}

/** Inverse of permuteInterleavedToHalf: rotate_half rows back to llama2.c's interleaved pairs. */
export function permuteHalfToInterleaved(w: Float32Array, heads: number, HS: number, C: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = HS / 2;
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let r = 0; r < 2; r++) {
        const src = (h * HS + r * half + i) * C;
        const dst = (h * HS + 2 * i + r) * C;
        out.set(w.subarray(src, src + C), dst);
      }
  return out;
}

export interface Llama2cModel {
  config: LlamaConfig;
  weights: LlamaWeights;
  version: 0 | 2;
  /** Q8_0 group size of a version 2 file */
  groupSize?: number;
}

export function readLlama2cCheckpoint(bytes: Uint8Array, name = 'checkpoint'): Llama2cModel {
  if (bytes.byteLength < 28) throw new Error(`${name}: file is ${bytes.byteLength} bytes, too short for a llama2.c header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, true);
  if (magic === MAGIC_V2) return readV2(bytes, dv, name);
  const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = h;
  const plausible = dim > 0 && dim <= LIMITS.dim && hiddenDim > 0 && hiddenDim <= LIMITS.hiddenDim && nLayers > 0 && nLayers <= LIMITS.nLayers && nHeads > 0 && nHeads <= dim && nKvHeads > 0 && nKvHeads <= nHeads && vocabRaw !== 0 && Math.abs(vocabRaw) <= LIMITS.vocabSize && seqLen > 0 && seqLen <= LIMITS.maxSeqLen;
  if (!plausible) throw new Error(`${name}: not a llama2.c checkpoint (its header reads dim=${dim} hidden=${hiddenDim} layers=${nLayers} heads=${nHeads} kv_heads=${nKvHeads} vocab=${vocabRaw} seq_len=${seqLen}); expected a llama2.c .bin, an HF folder or a .safetensors file`);
  const config = makeConfig(name, dim, hiddenDim, nLayers, nHeads, nKvHeads, Math.abs(vocabRaw), seqLen, vocabRaw > 0);
  const HS = dim / nHeads;
  const kv = nKvHeads * HS;
  const L = nLayers, C = dim, H = hiddenDim, V = config.vocabSize;
  const floats = V * C + L * C + L * C * C + 2 * L * kv * C + L * C * C + L * C + 3 * L * H * C + C + seqLen * HS + (config.tiedEmbeddings ? 0 : V * C);
  const expected = 28 + floats * 4;
  if (bytes.byteLength !== expected) {
    throw new Error(`${name}: llama2.c v0 header says dim=${dim} hidden=${hiddenDim} layers=${nLayers} heads=${nHeads} kv=${nKvHeads} vocab=${vocabRaw} seq_len=${seqLen}, which needs ${expected} bytes, but the file has ${bytes.byteLength} (truncated, or not a llama2.c checkpoint)`);
  }
  // Copy into an aligned buffer once; tensors are views of it.
  const all = new Float32Array(floats);
  new Uint8Array(all.buffer).set(bytes.subarray(28, 28 + floats * 4));
  let off = 0;
  const take = (n: number) => {
    const t = all.subarray(off, off + n);
    off += n;
    return t;
  };
  const per = (n: number) => Array.from({ length: L }, () => take(n));
  const perLayer = (what: string, n: number): [string, number][] => Array.from({ length: L }, (_, l) => [`${what} (layer ${l})`, n]);
  const tokEmbed = take(V * C);
  const rmsAtt = per(C), wq = per(C * C), wk = per(kv * C), wv = per(kv * C), wo = per(C * C);
  const rmsFfn = per(C), w1 = per(H * C), w2 = per(C * H), w3 = per(H * C);
  const finalNorm = take(C);
  take(seqLen * HS); // freq_cis_real + freq_cis_imag (seq_len·HS/2 each)
  const lmHead = config.tiedEmbeddings ? null : take(V * C);
  // every float, freq_cis included, must be finite; name the tensor (and layer) at the first bad one
  const segs: [string, number][] = [['token_embedding_table', V * C], ...perLayer('rms_att_weight', C), ...perLayer('wq', C * C), ...perLayer('wk', kv * C), ...perLayer('wv', kv * C), ...perLayer('wo', C * C), ...perLayer('rms_ffn_weight', C), ...perLayer('w1', H * C), ...perLayer('w2', C * H), ...perLayer('w3', H * C), ['rms_final_weight', C], ['freq_cis', seqLen * HS], ['wcls', config.tiedEmbeddings ? 0 : V * C]];
  let at = 0;
  for (const [what, n] of segs) {
    checkFinite(all.subarray(at, at + n), name, `tensor ${what}`);
    at += n;
  }
  return { config, weights: assemble(config, tokEmbed, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, finalNorm, lmHead), version: 0 };
}

function readV2(bytes: Uint8Array, dv: DataView, name: string): Llama2cModel {
  if (bytes.byteLength < 256) throw new Error(`${name}: llama2.c "ak42" file of ${bytes.byteLength} bytes is shorter than its 256-byte header (truncated)`);
  const version = dv.getInt32(4, true);
  if (version !== 2) throw new Error(`${name}: llama2.c "ak42" file of version ${version}; only version 2 (Q8_0) is supported (version 1 is fp32: re-export with legacy_export or version 2)`);
  const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(8 + 4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = h;
  const shared = bytes[36] !== 0;
  const gs = dv.getInt32(37, true);
  // limits first: nothing below is computed from a header field that was not checked
  const fields: [string, number, number][] = [['dim', dim, LIMITS.dim], ['hidden_dim', hiddenDim, LIMITS.hiddenDim], ['n_layers', nLayers, LIMITS.nLayers], ['n_heads', nHeads, LIMITS.nHeads], ['n_kv_heads', nKvHeads, LIMITS.nHeads], ['vocab_size', vocab, LIMITS.vocabSize], ['seq_len', seqLen, LIMITS.maxSeqLen]];
  for (const [k, v, max] of fields) if (!(v > 0 && v <= max)) throw new Error(`${name}: llama2.c v2 header field ${k} is ${v}, outside 1..${max}`);
  if (!(gs > 0)) throw new Error(`${name}: Q8_0 group size ${gs} must be positive`);
  const config = makeConfig(name, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen, shared);
  const HS = dim / nHeads, kv = nKvHeads * HS, L = nLayers, C = dim, H = hiddenDim, V = vocab;
  // Exact size: header, fp32 norms, then per Q8_0 tensor n int8 codes + n/gs fp32 scales.
  const qTensors: [string, number, number][] = [['token_embedding_table', V * C, 1], ['wq', C * C, L], ['wk', kv * C, L], ['wv', kv * C, L], ['wo', C * C, L], ['w1', H * C, L], ['w2', C * H, L], ['w3', H * C, L], ...(shared ? [] : [['wcls', V * C, 1] as [string, number, number]])];
  for (const [, n] of qTensors) if (n % gs !== 0) throw new Error(`${name}: a tensor of ${n} elements is not a multiple of the Q8_0 group size ${gs}`);
  const expected = 256 + (2 * L * C + C) * 4 + qTensors.reduce((s, [, n, count]) => s + count * (n + (n / gs) * 4), 0);
  if (bytes.byteLength !== expected) {
    throw new Error(`${name}: llama2.c v2 (Q8_0) header says dim=${dim} hidden=${hiddenDim} layers=${nLayers} heads=${nHeads} kv=${nKvHeads} vocab=${vocab} seq_len=${seqLen} shared_classifier=${shared ? 1 : 0} group_size=${gs}, which needs ${expected} bytes, but the file has ${bytes.byteLength} (${bytes.byteLength < expected ? 'truncated' : 'trailing bytes'})`);
  }
  let off = 256;
  const f32 = (n: number, what: string) => {
    const t = new Float32Array(n);
    new Uint8Array(t.buffer).set(bytes.subarray(off, off + n * 4));
    off += n * 4;
    checkFinite(t, name, what);
    return t;
  };
  const q80 = (n: number, what: string) => {
    const q = new Int8Array(bytes.buffer, bytes.byteOffset + off, n);
    off += n;
    const s = f32(n / gs, `Q8_0 scales of ${what}`);
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) t[i] = q[i] * s[Math.floor(i / gs)];
    checkFinite(t, name, what); // finite scales can still overflow float32 times a code
    return t;
  };
  const per = (fn: (n: number, what: string) => Float32Array, n: number, what: string) => Array.from({ length: L }, (_, l) => fn(n, `tensor ${what} (layer ${l})`));
  const rmsAtt = per(f32, C, 'rms_att_weight'), rmsFfn = per(f32, C, 'rms_ffn_weight');
  const finalNorm = f32(C, 'tensor rms_final_weight');
  const tokEmbed = q80(V * C, 'tensor token_embedding_table');
  const wq = per(q80, C * C, 'wq'), wk = per(q80, kv * C, 'wk'), wv = per(q80, kv * C, 'wv'), wo = per(q80, C * C, 'wo');
  const w1 = per(q80, H * C, 'w1'), w2 = per(q80, C * H, 'w2'), w3 = per(q80, H * C, 'w3');
  const lmHead = shared ? null : q80(V * C, 'tensor wcls');
  return { config, weights: assemble(config, tokEmbed, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, finalNorm, lmHead), version: 2, groupSize: gs };
}

function makeConfig(name: string, dim: number, hiddenDim: number, nLayers: number, nHeads: number, nKvHeads: number, vocab: number, seqLen: number, tied: boolean): LlamaConfig {
  const config: LlamaConfig = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: vocab, maxSeqLen: seqLen, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: tied };
  validateConfig(config, `${name} (llama2.c header)`);
  return config;
}

function assemble(cfg: LlamaConfig, tokEmbed: Float32Array, rmsAtt: Float32Array[], wq: Float32Array[], wk: Float32Array[], wv: Float32Array[], wo: Float32Array[], rmsFfn: Float32Array[], w1: Float32Array[], w2: Float32Array[], w3: Float32Array[], finalNorm: Float32Array, lmHead: Float32Array | null): LlamaWeights {
  const HS = cfg.dim / cfg.nHeads;
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    layers.push({
      attnNorm: rmsAtt[l],
      wq: permuteInterleavedToHalf(wq[l], cfg.nHeads, HS, cfg.dim),
      wk: permuteInterleavedToHalf(wk[l], cfg.nKvHeads, HS, cfg.dim),
      wv: wv[l],
      wo: wo[l],
      mlpNorm: rmsFfn[l],
      wGate: w1[l],
      wUp: w3[l],
      wDown: w2[l],
    });
  }
  return { tokEmbed, layers, finalNorm, lmHead };
}

/** llama2.c tokenizer.bin (int32 max_token_length, then per token: float32 score, int32 length,
 *  bytes). Reads every token to the end of the file, or exactly `vocabSize` when given (as run.c,
 *  which takes the count from the model). */
export function readLlama2cTokenizer(bytes: Uint8Array, name = 'tokenizer.bin', vocabSize?: number): Llama2cTokenizer {
  return new Llama2cTokenizer(bytes, name, vocabSize);
}

/** llama2.c tokenizer.bin bytes from pieces (as llama2.c stores them: ' ' for '▁') and scores. */
export function writeLlama2cTokenizer(pieces: string[], scores: ArrayLike<number>): Uint8Array {
  const enc = new TextEncoder();
  const raw = pieces.map((p) => enc.encode(p));
  const out = new Uint8Array(4 + raw.reduce((s, b) => s + 8 + b.length, 0));
  const dv = new DataView(out.buffer);
  dv.setInt32(0, raw.reduce((m, b) => Math.max(m, b.length), 0), true);
  let off = 4;
  raw.forEach((b, i) => {
    dv.setFloat32(off, scores[i], true);
    dv.setInt32(off + 4, b.length, true);
    out.set(b, off + 8);
    off += 8 + b.length;
  });
  return out;
}

/** Serialise a model as a llama2.c checkpoint: version 0 (legacy fp32, what run.c reads) or
 *  version 2 (Q8_0 with `groupSize`, what runq.c reads; quantized as export.py's quantize_q80:
 *  scale = max|w| / 127 per group, code = round(w / scale)). wq and wk are permuted back to the
 *  interleaved RoPE layout; version 0 also carries llama2.c's freq_cis tables for maxSeqLen. */
export function writeLlama2cCheckpoint(config: LlamaConfig, w: LlamaWeights, opts: { version?: 0 | 2; groupSize?: number } = {}): Uint8Array {
  validateConfig(config, 'writeLlama2cCheckpoint');
  const { dim: C, hiddenDim: H, nLayers: L, nHeads, nKvHeads, vocabSize: V, maxSeqLen: T } = config;
  const HS = C / nHeads;
  if (config.normEps !== 1e-5 || config.ropeTheta !== 10000) {
    // llama2.c hard-codes both; a different model would silently run wrong there.
    throw new Error(`writeLlama2cCheckpoint: llama2.c hard-codes norm eps 1e-5 and rope theta 10000; this model has eps ${config.normEps}, theta ${config.ropeTheta}`);
  }
  if (config.ropeScaling) throw new Error(`writeLlama2cCheckpoint: llama2.c has no RoPE scaling; this model has rope_scaling of type "${config.ropeScaling.type}"`);
  const tied = config.tiedEmbeddings || w.lmHead === null;
  const wq = w.layers.map((l) => permuteHalfToInterleaved(l.wq, nHeads, HS, C));
  const wk = w.layers.map((l) => permuteHalfToInterleaved(l.wk, nKvHeads, HS, C));
  const g = (k: keyof LlamaLayerWeights) => w.layers.map((l) => l[k]);
  const parts: Uint8Array[] = [];
  const f32 = (a: Float32Array) => parts.push(new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
  const hdr = (n: number) => {
    const b = new Uint8Array(n);
    parts.push(b);
    return new DataView(b.buffer);
  };
  if ((opts.version ?? 0) === 0) {
    const dv = hdr(28);
    [C, H, L, nHeads, nKvHeads, tied ? V : -V, T].forEach((v, i) => dv.setInt32(4 * i, v, true));
    f32(w.tokEmbed);
    for (const t of [g('attnNorm'), wq, wk, g('wv'), g('wo'), g('mlpNorm'), g('wGate'), g('wDown'), g('wUp')]) t.forEach(f32);
    f32(w.finalNorm);
    const half = HS / 2;
    const cos = new Float32Array(T * half), sin = new Float32Array(T * half);
    for (let t = 0; t < T; t++)
      for (let i = 0; i < half; i++) {
        const a = t * Math.fround(1 / Math.pow(10000, (2 * i) / HS));
        cos[t * half + i] = Math.cos(a);
        sin[t * half + i] = Math.sin(a);
      }
    f32(cos);
    f32(sin);
    if (!tied) f32(w.lmHead!);
  } else {
    let gs = opts.groupSize ?? 64;
    while (C % gs !== 0) gs = Math.floor(gs / 2); // as export.py
    const dv = hdr(256);
    dv.setUint32(0, MAGIC_V2, true);
    dv.setInt32(4, 2, true);
    [C, H, L, nHeads, nKvHeads, V, T].forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
    dv.setUint8(36, tied ? 1 : 0);
    dv.setInt32(37, gs, true);
    for (const t of [g('attnNorm'), g('mlpNorm')]) t.forEach(f32);
    f32(w.finalNorm);
    const q80 = (a: Float32Array) => {
      if (a.length % gs !== 0) throw new Error(`writeLlama2cCheckpoint: a tensor of ${a.length} elements is not a multiple of the group size ${gs}`);
      const codes = new Int8Array(a.length), scales = new Float32Array(a.length / gs);
      for (let b = 0; b < scales.length; b++) {
        let m = 0;
        for (let i = b * gs; i < (b + 1) * gs; i++) m = Math.max(m, Math.abs(a[i]));
        const s = Math.fround(m / 127);
        scales[b] = s;
        for (let i = b * gs; i < (b + 1) * gs; i++) codes[i] = s > 0 ? roundHalfEven(Math.fround(a[i] / s)) : 0;
      }
      parts.push(new Uint8Array(codes.buffer));
      f32(scales);
    };
    q80(w.tokEmbed);
    for (const t of [wq, wk, g('wv'), g('wo'), g('wGate'), g('wDown'), g('wUp')]) t.forEach(q80);
    if (!tied) q80(w.lmHead!);
  }
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
