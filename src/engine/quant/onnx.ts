// ONNX export of the whole LLaMA graph in standard ops (opset 17), with the quantized projections
// as com.microsoft MatMulNBits (bits 4, block_size = group, uint8 zero points). The packed codes
// are copied as they are: our 4-bit layout is MatMulNBits' B (src/engine/quant/pack.ts).
// Input: input_ids int64 (B, T); output: logits float (B, T, V). With { kvCache: true } also
// attention_mask (B, P+T), position_ids (B, T) and past_key_values.N.key/value (B, NKV, P, HS) in,
// present.N.key/value (B, NKV, P+T, HS) out (onnxruntime-genai / transformers.js names). The
// causal mask is built from the shapes (Range + LessOrEqual, And the attention mask) and RoPE from
// the positions and HS/2 inverse frequencies: no (S, S) or (S, HS) initializers.
import { headSize, PROJECTIONS, PROJECTION_KEY, ropeOf, type LlamaConfig, type LlamaWeights } from '../model/config';
import { ropeInvFreq } from '../ref/rope';
import { toMatMulNBits } from './pack';
import type { QuantizedModel } from './ptq';
import { PbWriter } from './protobuf';

const FLOAT = 1, UINT8 = 2, INT64 = 7;

interface Init {
  name: string;
  dims: number[];
  type: number;
  raw: Uint8Array;
}

class Graph {
  nodes: PbWriter[] = [];
  inits: Init[] = [];
  private n = 0;
  tmp(prefix: string): string {
    return `${prefix}_${this.n++}`;
  }
  f32(name: string, dims: number[], data: Float32Array): string {
    this.inits.push({ name, dims, type: FLOAT, raw: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });
    return name;
  }
  u8(name: string, dims: number[], data: Uint8Array): string {
    this.inits.push({ name, dims, type: UINT8, raw: data.slice() });
    return name;
  }
  i64(name: string, values: number[]): string {
    const b = new BigInt64Array(values.map((v) => BigInt(v)));
    this.inits.push({ name, dims: [values.length], type: INT64, raw: new Uint8Array(b.buffer) });
    return name;
  }
  scalar(name: string, v: number): string {
    this.inits.push({ name, dims: [], type: FLOAT, raw: new Uint8Array(Float32Array.of(v).buffer) });
    return name;
  }
  node(op: string, inputs: string[], attrs: Record<string, number | number[] | string> = {}, domain = '', outName?: string): string {
    const out = outName ?? this.tmp(op.toLowerCase());
    const w = new PbWriter();
    for (const i of inputs) w.string(1, i);
    w.string(2, out).string(3, `${op}_${this.n++}`).string(4, op);
    if (domain) w.string(7, domain);
    for (const [k, v] of Object.entries(attrs)) {
      const a = new PbWriter().string(1, k);
      if (typeof v === 'string') a.bytes(4, new TextEncoder().encode(v)).int(20, 3);
      else if (Array.isArray(v)) {
        for (const x of v) a.int(8, x);
        a.int(20, 7);
      } else if (Number.isInteger(v) && !(k === 'epsilon' || k === 'alpha')) a.int(3, v).int(20, 2);
      else a.float(2, v).int(20, 1);
      w.message(5, a);
    }
    this.nodes.push(w);
    return out;
  }
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): PbWriter {
  const shape = new PbWriter();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new PbWriter().int(1, d) : new PbWriter().string(2, d));
  const tensor = new PbWriter().int(1, elemType).message(2, shape);
  return new PbWriter().string(1, name).message(2, new PbWriter().message(1, tensor));
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

export interface OnnxExportOptions {
  /** inputs attention_mask, position_ids, past_key_values.N.key/value (B, NKV, P, HS) and outputs
   *  present.N.key/value (B, NKV, P+T, HS): the layout onnxruntime-genai and transformers.js use
   *  for LlamaForCausalLM. Without it the graph is input_ids → logits (positions 0..T−1). */
  kvCache?: boolean;
}

export function exportOnnx(cfg: LlamaConfig, w: LlamaWeights, qm: QuantizedModel | null, opts: OnnxExportOptions = {}): Uint8Array {
  const g = new Graph();
  const { dim: C, nHeads: NH, nKvHeads: NKV, vocabSize: V, nLayers: L } = cfg;
  const HS = headSize(cfg);
  const half = HS / 2;
  const cache = !!opts.kvCache;
  // RoPE from the positions: angle = pos · invFreq[i], i < HS/2, repeated for both halves
  // (rotate_half form); only the HS/2 inverse frequencies are stored.
  const invFreq = new Float32Array(half);
  invFreq.set(ropeInvFreq(HS, ropeOf(cfg))); // theta and any rope_scaling, as the kernels
  g.f32('inv_freq', [half], invFreq);
  g.i64('zero1', [0]);
  g.i64('axis0', [0]);
  g.i64('axis1', [1]);
  g.i64('axis_last', [-1]);
  g.i64('axes12', [1, 2]);
  g.i64('half_start', [half]);
  g.i64('half_end', [HS]);
  g.i64('first_end', [half]);
  g.i64('axis3', [3]);
  g.i64('shape_q', [0, 0, NH, HS]);
  g.i64('shape_kv', [0, 0, NKV, HS]);
  g.i64('shape_bt_c', [0, 0, C]);
  g.i64('shape_rep', [1, 1, NH / NKV, 1, 1]);
  g.i64('shape_heads', [0, NH, -1, HS]);
  g.inits.push({ name: 'one_s', dims: [], type: INT64, raw: new Uint8Array(BigInt64Array.of(1n).buffer) });
  g.scalar('eps', cfg.normEps);
  g.scalar('attn_scale', 1 / Math.sqrt(HS));
  g.scalar('zero_f', 0);
  g.scalar('neg_big', -1e9);

  // T = new tokens, P = cached tokens (0 without a cache), positions P .. P+T-1 of the causal mask
  const Ts = g.node('Squeeze', [g.node('Shape', ['input_ids'], { start: 1, end: 2 }), 'axis0']);
  const Ps = cache ? g.node('Squeeze', [g.node('Shape', ['past_key_values.0.key'], { start: 2, end: 3 }), 'axis0']) : null;
  const total = Ps ? g.node('Add', [Ps, Ts]) : Ts;
  const zeroS = g.node('Sub', [Ts, Ts]);
  const kpos = g.node('Range', [zeroS, total, 'one_s']); // (P+T)
  const qpos = g.node('Range', [Ps ?? zeroS, total, 'one_s']); // (T)
  let allowed = g.node('LessOrEqual', [g.node('Unsqueeze', [kpos, 'axis0']), g.node('Unsqueeze', [qpos, 'axis1'])]); // (T, P+T) bool
  if (cache) allowed = g.node('And', [allowed, g.node('Unsqueeze', [g.node('Cast', ['attention_mask'], { to: 9 }), 'axes12'])]); // (B, 1, T, P+T)
  const maskT = g.node('Where', [allowed, 'zero_f', 'neg_big']);
  const pos = cache ? 'position_ids' : g.node('Unsqueeze', [qpos, 'axis0']); // (B or 1, T)
  const ang = g.node('Mul', [g.node('Unsqueeze', [g.node('Cast', [pos], { to: FLOAT }), 'axis_last']), 'inv_freq']); // (B, T, HS/2)
  const ang2 = g.node('Unsqueeze', [g.node('Concat', [ang, ang], { axis: -1 }), 'axis1']); // (B, 1, T, HS)
  const cosT = g.node('Cos', [ang2]);
  const sinT = g.node('Sin', [ang2]);

  const rms = (x: string, weight: string) => {
    const sq = g.node('Mul', [x, x]);
    const ms = g.node('ReduceMean', [sq], { axes: [-1], keepdims: 1 });
    const r = g.node('Reciprocal', [g.node('Sqrt', [g.node('Add', [ms, 'eps'])])]);
    return g.node('Mul', [g.node('Mul', [x, r]), weight]);
  };
  const rope = (x: string) => {
    const x1 = g.node('Slice', [x, 'zero1', 'first_end', 'axis3']);
    const x2 = g.node('Slice', [x, 'half_start', 'half_end', 'axis3']);
    const rot = g.node('Concat', [g.node('Neg', [x2]), x1], { axis: 3 });
    return g.node('Add', [g.node('Mul', [x, cosT]), g.node('Mul', [rot, sinT])]);
  };
  const linear = (x: string, l: number, p: (typeof PROJECTIONS)[number]) => {
    const packed = qm?.packed[l]?.[p];
    const W = w.layers[l][PROJECTION_KEY[p]];
    const K = p === 'down' ? cfg.hiddenDim : C;
    const N = W.length / K;
    const base = `layers.${l}.${p}_proj`;
    if (packed) {
      const m = toMatMulNBits(packed);
      g.u8(`${base}.B`, [N, packed.nBlocks, packed.group / 2], m.B);
      g.f32(`${base}.scales`, [N * packed.nBlocks], m.scales);
      g.u8(`${base}.zero_points`, [m.zeroPoints.length], m.zeroPoints);
      return g.node('MatMulNBits', [x, `${base}.B`, `${base}.scales`, `${base}.zero_points`], { K, N, bits: 4, block_size: packed.group }, 'com.microsoft');
    }
    g.f32(`${base}.weightT`, [K, N], transpose(W, N, K));
    return g.node('MatMul', [x, `${base}.weightT`]);
  };

  let x = g.node('Gather', [g.f32('embed_tokens', [V, C], w.tokEmbed), 'input_ids'], { axis: 0 });
  for (let l = 0; l < cfg.nLayers; l++) {
    const lw = w.layers[l];
    const xn = rms(x, g.f32(`layers.${l}.input_layernorm`, [C], lw.attnNorm));
    const heads = (t: string, shape: string) => g.node('Transpose', [g.node('Reshape', [t, shape])], { perm: [0, 2, 1, 3] });
    const q = rope(heads(linear(xn, l, 'q'), 'shape_q'));
    let k = rope(heads(linear(xn, l, 'k'), 'shape_kv'));
    let v = heads(linear(xn, l, 'v'), 'shape_kv');
    if (cache) {
      k = g.node('Concat', [`past_key_values.${l}.key`, k], { axis: 2 }, '', `present.${l}.key`);
      v = g.node('Concat', [`past_key_values.${l}.value`, v], { axis: 2 }, '', `present.${l}.value`);
    }
    if (NKV !== NH) {
      const rep = (t: string) => g.node('Reshape', [g.node('Expand', [g.node('Unsqueeze', [t, g.i64(g.tmp('ax'), [2])]), 'shape_rep']), 'shape_heads']);
      k = rep(k);
      v = rep(v);
    }
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, g.node('Transpose', [k], { perm: [0, 1, 3, 2] })]), 'attn_scale']), maskT]);
    const att = g.node('MatMul', [g.node('Softmax', [scores], { axis: -1 }), v]);
    const merged = g.node('Reshape', [g.node('Transpose', [att], { perm: [0, 2, 1, 3] }), 'shape_bt_c']);
    const h = g.node('Add', [x, linear(merged, l, 'o')]);
    const hn = rms(h, g.f32(`layers.${l}.post_attention_layernorm`, [C], lw.mlpNorm));
    const gate = linear(hn, l, 'gate');
    const act = g.node('Mul', [g.node('Mul', [gate, g.node('Sigmoid', [gate])]), linear(hn, l, 'up')]);
    x = g.node('Add', [h, linear(act, l, 'down')]);
  }
  const xf = rms(x, g.f32('norm', [C], w.finalNorm));
  g.f32('lm_headT', [C, V], transpose(w.lmHead ?? w.tokEmbed, V, C));
  g.node('MatMul', [xf, 'lm_headT'], {}, '', 'logits');

  const graph = new PbWriter();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, 'quench_llama');
  for (const t of g.inits) {
    const tp = new PbWriter();
    for (const d of t.dims) tp.int(1, d);
    tp.int(2, t.type).string(8, t.name).bytes(9, t.raw);
    graph.message(5, tp);
  }
  graph.message(11, valueInfo('input_ids', INT64, ['batch_size', 'sequence_length']));
  if (cache) {
    graph.message(11, valueInfo('attention_mask', INT64, ['batch_size', 'total_sequence_length']));
    graph.message(11, valueInfo('position_ids', INT64, ['batch_size', 'sequence_length']));
    for (let l = 0; l < L; l++) for (const kv of ['key', 'value']) graph.message(11, valueInfo(`past_key_values.${l}.${kv}`, FLOAT, ['batch_size', NKV, 'past_sequence_length', HS]));
  }
  graph.message(12, valueInfo('logits', FLOAT, ['batch_size', 'sequence_length', V]));
  if (cache) for (let l = 0; l < L; l++) for (const kv of ['key', 'value']) graph.message(12, valueInfo(`present.${l}.${kv}`, FLOAT, ['batch_size', NKV, 'total_sequence_length', HS]));
  const model = new PbWriter().int(1, 8).string(2, 'quench').string(3, '0.1.0');
  model.message(8, new PbWriter().string(1, '').int(2, 17));
  model.message(8, new PbWriter().string(1, 'com.microsoft').int(2, 1));
  model.message(7, graph);
  return model.finish();
}

/** A one-node model Y (M, N) = A (M, K) · dequant(B)ᵀ with com.microsoft MatMulNBits, for benchmarks. */
export function exportMatMulNBitsOnly(packed: import('./pack').PackedWeight, M: number): Uint8Array {
  const g = new Graph();
  const m = toMatMulNBits(packed);
  g.u8('B', [packed.N, packed.nBlocks, packed.group / 2], m.B);
  g.f32('scales', [packed.N * packed.nBlocks], m.scales);
  g.u8('zero_points', [m.zeroPoints.length], m.zeroPoints);
  g.node('MatMulNBits', ['A', 'B', 'scales', 'zero_points'], { K: packed.K, N: packed.N, bits: 4, block_size: packed.group }, 'com.microsoft', 'Y');
  const graph = new PbWriter();
  for (const n of g.nodes) graph.message(1, n);
  graph.string(2, 'matmulnbits');
  for (const t of g.inits) {
    const tp = new PbWriter();
    for (const d of t.dims) tp.int(1, d);
    tp.int(2, t.type).string(8, t.name).bytes(9, t.raw);
    graph.message(5, tp);
  }
  graph.message(11, valueInfo('A', FLOAT, [M, packed.K]));
  graph.message(12, valueInfo('Y', FLOAT, [M, packed.N]));
  const model = new PbWriter().int(1, 8).string(2, 'quench');
  model.message(8, new PbWriter().string(1, '').int(2, 17));
  model.message(8, new PbWriter().string(1, 'com.microsoft').int(2, 1));
  model.message(7, graph);
  return model.finish();
}
