// Hugging Face LLaMA layout: config.json + model.safetensors (or sharded model-0000k-of-0000n
// with model.safetensors.index.json) + tokenizer.json. Loading validates the architecture, every
// tensor's presence and shape against config.json, and finite values; errors name file and tensor.
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights } from '../model/config';
import { headSize, layerShapes, validateConfig } from '../model/config';
import { encodeFloats, readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorsHeader, type TensorToWrite } from './safetensors';
import type { ByteSource } from './source';
import { readText } from './source';
import { readTensorBytes } from './safetensors';
import { dequantizeHost, layoutOf, type Bits, type PackedWeight } from '../quant/pack';
import type { QuantizedModel } from '../quant/ptq';
import type { Projection } from '../model/config';

const LLAMA_ARCHS = ['LlamaForCausalLM', 'LLaMAForCausalLM', 'MistralForCausalLM'];

export function parseHfConfig(text: string, file = 'config.json'): LlamaConfig {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const archs = (j.architectures as string[] | undefined) ?? [];
  const modelType = j.model_type as string | undefined;
  if (!archs.some((a) => LLAMA_ARCHS.includes(a)) && modelType !== 'llama') {
    throw new Error(`${file}: not a LLaMA-family model: architectures ${JSON.stringify(archs)}${modelType ? `, model_type "${modelType}"` : ''} (Quench supports LlamaForCausalLM)`);
  }
  const need = (k: string): number => {
    const v = j[k];
    if (typeof v !== 'number') throw new Error(`${file}: missing or non-numeric "${k}"`);
    return v;
  };
  const heads = need('num_attention_heads');
  const cfg: LlamaConfig = {
    dim: need('hidden_size'),
    hiddenDim: need('intermediate_size'),
    nLayers: need('num_hidden_layers'),
    nHeads: heads,
    nKvHeads: typeof j.num_key_value_heads === 'number' ? j.num_key_value_heads : heads,
    vocabSize: need('vocab_size'),
    maxSeqLen: typeof j.max_position_embeddings === 'number' ? j.max_position_embeddings : 2048,
    normEps: typeof j.rms_norm_eps === 'number' ? j.rms_norm_eps : 1e-6,
    ropeTheta: typeof j.rope_theta === 'number' ? j.rope_theta : 10000,
    tiedEmbeddings: j.tie_word_embeddings === true,
  };
  if (j.rope_scaling) throw new Error(`${file}: rope_scaling ${JSON.stringify(j.rope_scaling)} is not supported yet`);
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw new Error(`${file}: hidden_act "${String(j.hidden_act)}" is not supported (LLaMA uses silu)`);
  if (j.attention_bias === true) throw new Error(`${file}: attention_bias=true (q/k/v/o biases) is not supported`);
  if (j.mlp_bias === true) throw new Error(`${file}: mlp_bias=true is not supported`);
  // Mistral: sliding-window attention equals full attention up to the window; cap the length there.
  if (typeof j.sliding_window === 'number' && j.sliding_window > 0) cfg.maxSeqLen = Math.min(cfg.maxSeqLen, j.sliding_window);
  if (typeof j.head_dim === 'number' && j.head_dim !== cfg.dim / cfg.nHeads) throw new Error(`${file}: head_dim ${j.head_dim} differs from hidden_size/num_attention_heads; not supported`);
  validateConfig(cfg, file);
  return cfg;
}

export function hfConfigJson(cfg: LlamaConfig, extra: Record<string, unknown> = {}): string {
  return JSON.stringify(
    {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: cfg.dim,
      intermediate_size: cfg.hiddenDim,
      num_hidden_layers: cfg.nLayers,
      num_attention_heads: cfg.nHeads,
      num_key_value_heads: cfg.nKvHeads,
      vocab_size: cfg.vocabSize,
      max_position_embeddings: cfg.maxSeqLen,
      rms_norm_eps: cfg.normEps,
      rope_theta: cfg.ropeTheta,
      tie_word_embeddings: cfg.tiedEmbeddings,
      hidden_act: 'silu',
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'float32',
      ...extra,
    },
    null,
    2,
  );
}

const LAYER_NAMES: Record<keyof LlamaLayerWeights, string> = {
  attnNorm: 'input_layernorm.weight',
  wq: 'self_attn.q_proj.weight',
  wk: 'self_attn.k_proj.weight',
  wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight',
  mlpNorm: 'post_attention_layernorm.weight',
  wGate: 'mlp.gate_proj.weight',
  wUp: 'mlp.up_proj.weight',
  wDown: 'mlp.down_proj.weight',
};

/** Every HF tensor name with its expected shape. */
export function hfTensorShapes(cfg: LlamaConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [cfg.vocabSize, cfg.dim]);
  const shapes = layerShapes(cfg);
  for (let l = 0; l < cfg.nLayers; l++) for (const [k, n] of Object.entries(LAYER_NAMES)) m.set(`model.layers.${l}.${n}`, shapes[k as keyof LlamaLayerWeights]);
  m.set('model.norm.weight', [cfg.dim]);
  if (!cfg.tiedEmbeddings) m.set('lm_head.weight', [cfg.vocabSize, cfg.dim]);
  return m;
}

export interface HfFiles {
  /** by file name: config.json, *.safetensors, model.safetensors.index.json, tokenizer.json ... */
  [name: string]: ByteSource;
}

/** Which safetensors files hold the weights, and the tensor → file map. */
async function weightFiles(files: HfFiles): Promise<{ sources: ByteSource[]; headers: SafetensorsHeader[] }> {
  const index = files['model.safetensors.index.json'];
  let names: string[];
  let weightMap: Record<string, string> | null = null;
  if (index) {
    let j: { weight_map?: Record<string, string> };
    try {
      j = JSON.parse(await readText(index));
    } catch (e) {
      throw new Error(`model.safetensors.index.json: not valid JSON (${(e as Error).message})`);
    }
    if (typeof j.weight_map !== 'object' || j.weight_map === null) throw new Error('model.safetensors.index.json: no "weight_map" object');
    weightMap = j.weight_map;
    names = [...new Set(Object.values(weightMap))];
    for (const n of names) if (!files[n]) throw new Error(`model.safetensors.index.json names shard "${n}", which is missing`);
  } else {
    names = Object.keys(files).filter((n) => n.endsWith('.safetensors'));
    if (names.length === 0) throw new Error('no .safetensors file among the model files (expected model.safetensors)');
  }
  const sources = names.map((n) => files[n]);
  const headers = await Promise.all(sources.map((s) => readSafetensorsHeader(s)));
  if (weightMap) {
    for (const [t, shard] of Object.entries(weightMap)) {
      const i = names.indexOf(shard);
      if (!headers[i].tensors.has(t)) throw new Error(`model.safetensors.index.json: tensor "${t}" should be in ${shard}, which does not have it`);
    }
    headers.forEach((h, i) => {
      for (const t of h.tensors.keys()) if (weightMap![t] !== names[i]) throw new Error(`${h.file}: tensor "${t}" is not in model.safetensors.index.json's weight_map (or is mapped to ${weightMap![t]})`);
    });
  }
  return { sources, headers };
}

export interface HfModel {
  config: LlamaConfig;
  weights: LlamaWeights;
  tokenizerJson: string | null;
  dtypes: string[];
  quantization?: Record<string, unknown>;
  /** packed projections of a Quench-quantized folder (weights then hold their dequantized values) */
  quantized?: QuantizedModel;
}

const PROJ_OF: Record<string, Projection> = { wq: 'q', wk: 'k', wv: 'v', wo: 'o', wGate: 'gate', wUp: 'up', wDown: 'down' };

/** quantization_config of a Quench-quantized folder: packing described in src/engine/quant/pack.ts. */
export interface QuenchQuantConfig {
  quant_method: 'quench';
  bits: Bits;
  group_size: number; // 0 = per channel
  sym: boolean;
  clip_search: boolean;
  modules: Projection[];
  format: string;
}

export async function loadHfModel(files: HfFiles): Promise<HfModel> {
  const cfgSrc = files['config.json'];
  if (!cfgSrc) throw new Error('config.json is missing from the model files');
  const cfgText = await readText(cfgSrc);
  const config = parseHfConfig(cfgText, cfgSrc.name);
  const quantization = (JSON.parse(cfgText) as { quantization_config?: Record<string, unknown> }).quantization_config;
  const { sources, headers } = await weightFiles(files);
  const where = new Map<string, number>();
  headers.forEach((h, i) => {
    for (const n of h.tensors.keys()) {
      if (where.has(n)) throw new Error(`tensor "${n}" appears in both ${headers[where.get(n)!].file} and ${h.file}`);
      where.set(n, i);
    }
  });
  const qc = quantization?.quant_method === 'quench' ? (quantization as unknown as QuenchQuantConfig) : undefined;
  if (quantization && !qc) throw new Error(`${cfgSrc.name}: quantization_config with quant_method "${String(quantization.quant_method)}" is not supported (Quench reads its own "quench" packing)`);
  const expected = hfTensorShapes(config);
  const packedShapes = new Map<string, { layout: ReturnType<typeof layoutOf>; base: string }>();
  if (qc) {
    for (const [name, shape] of [...expected]) {
      const m = /^model\.layers\.\d+\.(?:self_attn|mlp)\.(\w+)_proj\.weight$/.exec(name);
      if (!m || !qc.modules.includes(m[1] as Projection)) continue;
      const L = layoutOf(shape[0], shape[1], qc.bits, qc.group_size);
      const base = name.slice(0, -'.weight'.length);
      expected.delete(name);
      expected.set(`${base}.qweight`, [L.N, L.wordsPerRow]);
      expected.set(`${base}.scales`, [L.N, L.nBlocks]);
      expected.set(`${base}.zeros`, [L.N, L.nBlocks]);
      packedShapes.set(name, { layout: L, base });
    }
  }
  // A tied model may still carry lm_head.weight; accept it when it equals the embedding shape.
  const missing = [...expected.keys()].filter((n) => !where.has(n));
  if (missing.length) throw new Error(`${headers.map((h) => h.file).join(', ')}: missing tensors ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} (config.json: ${config.nLayers} layers, tie_word_embeddings=${config.tiedEmbeddings})`);
  const extra = [...where.keys()].filter((n) => !expected.has(n) && !(config.tiedEmbeddings && n === 'lm_head.weight') && !n.endsWith('rotary_emb.inv_freq'));
  if (extra.length) throw new Error(`${headers[where.get(extra[0])!].file}: unexpected tensors ${extra.slice(0, 5).join(', ')} (not part of a LLaMA model with this config.json)`);
  const dtypes = new Set<string>();
  const checkShape = (name: string) => {
    const h = headers[where.get(name)!];
    const info = h.tensors.get(name)!;
    const want = expected.get(name)!;
    if (info.shape.length !== want.length || info.shape.some((d, k) => d !== want[k])) {
      throw new Error(`${h.file}: tensor "${name}" has shape [${info.shape.join(', ')}] but config.json implies [${want.join(', ')}]`);
    }
    return { h, info, src: sources[where.get(name)!] };
  };
  const packedOut: Partial<Record<Projection, PackedWeight>>[] = Array.from({ length: config.nLayers }, () => ({}));
  const readPacked = async (name: string, layer: number, proj: Projection): Promise<Float32Array> => {
    const { layout: L, base } = packedShapes.get(name)!;
    const q = checkShape(`${base}.qweight`), sc = checkShape(`${base}.scales`), z = checkShape(`${base}.zeros`);
    if (q.info.dtype !== 'U32' && q.info.dtype !== 'I32') throw new Error(`${q.h.file}: tensor "${base}.qweight" must be U32, is ${q.info.dtype}`);
    if (z.info.dtype !== 'U8') throw new Error(`${z.h.file}: tensor "${base}.zeros" must be U8, is ${z.info.dtype}`);
    const qb = await readTensorBytes(q.src, q.h, `${base}.qweight`);
    const codes = new Uint32Array(qb.buffer, qb.byteOffset, qb.byteLength / 4);
    const scales = await readTensorF32(sc.src, sc.h, `${base}.scales`);
    for (let k = 0; k < scales.length; k++) if (!Number.isFinite(scales[k]) || scales[k] <= 0) throw new Error(`${sc.h.file}: tensor "${base}.scales" has an invalid scale (${scales[k]}) at index ${k}`);
    const zeros = Float32Array.from(await readTensorBytes(z.src, z.h, `${base}.zeros`));
    for (let k = 0; k < zeros.length; k++) if (zeros[k] > L.qmax) throw new Error(`${z.h.file}: tensor "${base}.zeros" has zero point ${zeros[k]} above ${L.qmax} at index ${k}`);
    dtypes.add(`${qc!.bits}-bit`);
    const pw: PackedWeight = { ...L, codes, scales, zeros };
    packedOut[layer][proj] = pw;
    return dequantizeHost(pw);
  };
  const read = async (name: string): Promise<Float32Array> => {
    const i = where.get(name)!;
    const h = headers[i];
    const info = h.tensors.get(name)!;
    const want = expected.get(name)!;
    if (info.shape.length !== want.length || info.shape.some((d, k) => d !== want[k])) {
      throw new Error(`${h.file}: tensor "${name}" has shape [${info.shape.join(', ')}] but config.json implies [${want.join(', ')}]`);
    }
    dtypes.add(info.dtype);
    const t = await readTensorF32(sources[i], h, name);
    for (let k = 0; k < t.length; k++) if (!Number.isFinite(t[k])) throw new Error(`${h.file}: tensor "${name}" has a non-finite value (${t[k]}) at index ${k}`);
    return t;
  };
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const lw = {} as LlamaLayerWeights;
    for (const [k, n] of Object.entries(LAYER_NAMES)) {
      const name = `model.layers.${l}.${n}`;
      lw[k as keyof LlamaLayerWeights] = packedShapes.has(name) ? await readPacked(name, l, PROJ_OF[k]) : await read(name);
    }
    layers.push(lw);
  }
  const weights: LlamaWeights = {
    tokEmbed: await read('model.embed_tokens.weight'),
    layers,
    finalNorm: await read('model.norm.weight'),
    lmHead: config.tiedEmbeddings ? null : await read('lm_head.weight'),
  };
  const tok = files['tokenizer.json'];
  const quantized: QuantizedModel | undefined = qc
    ? { config, ptq: { bits: qc.bits, group: qc.group_size, sym: qc.sym, clipSearch: qc.clip_search, projections: qc.modules }, packed: packedOut, report: [] }
    : undefined;
  return { config, weights, tokenizerJson: tok ? await readText(tok) : null, dtypes: [...dtypes], quantization, quantized };
}

/** The files of an HF model folder: config.json, model.safetensors (or, with maxShardBytes,
 *  model-0000k-of-0000n.safetensors + model.safetensors.index.json as transformers'
 *  save_pretrained writes them), tokenizer.json (if given). */
export function writeHfModel(config: LlamaConfig, w: LlamaWeights, opts: { dtype?: 'F32' | 'F16' | 'BF16'; tokenizerJson?: string; metadata?: Record<string, string>; maxShardBytes?: number } = {}): Record<string, Uint8Array> {
  const dtype = opts.dtype ?? 'F32';
  const tensors: TensorToWrite[] = [];
  const shapes = hfTensorShapes(config);
  const push = (name: string, data: Float32Array) => {
    const shape = shapes.get(name)!;
    if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`writeHfModel: "${name}" has ${data.length} values, config implies [${shape.join(', ')}]`);
    tensors.push({ name, dtype, shape, data: encodeFloats(data, dtype) });
  };
  push('model.embed_tokens.weight', w.tokEmbed);
  w.layers.forEach((lw, l) => {
    for (const [k, n] of Object.entries(LAYER_NAMES)) push(`model.layers.${l}.${n}`, lw[k as keyof LlamaLayerWeights]);
  });
  push('model.norm.weight', w.finalNorm);
  if (!config.tiedEmbeddings) {
    if (!w.lmHead) throw new Error('writeHfModel: the config has untied embeddings but the weights have no lmHead');
    push('lm_head.weight', w.lmHead);
  }
  const files: Record<string, Uint8Array> = {
    'config.json': new TextEncoder().encode(hfConfigJson(config, { torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype] })),
  };
  const meta = { format: 'pt', ...(opts.metadata ?? {}) };
  const total = tensors.reduce((s, t) => s + t.data.byteLength, 0);
  if (!opts.maxShardBytes || total <= opts.maxShardBytes) files['model.safetensors'] = writeSafetensors(tensors, meta);
  else {
    // greedy in tensor order, as transformers' shard_checkpoint: a tensor larger than the limit gets its own shard
    const shards: TensorToWrite[][] = [[]];
    let cur = 0;
    for (const t of tensors) {
      if (cur + t.data.byteLength > opts.maxShardBytes && shards.at(-1)!.length > 0) {
        shards.push([]);
        cur = 0;
      }
      shards.at(-1)!.push(t);
      cur += t.data.byteLength;
    }
    const pad = (k: number) => String(k).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    shards.forEach((sh, k) => {
      const name = `model-${pad(k + 1)}-of-${pad(shards.length)}.safetensors`;
      files[name] = writeSafetensors(sh, meta);
      for (const t of sh) weightMap[t.name] = name;
    });
    files['model.safetensors.index.json'] = new TextEncoder().encode(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  if (opts.tokenizerJson) files['tokenizer.json'] = new TextEncoder().encode(opts.tokenizerJson);
  void headSize;
  return files;
}

/** A Quench-quantized HF folder: packed projections (qweight U32, scales F32, zeros U8), the rest F32. */
export function writeQuantizedHfModel(config: LlamaConfig, w: LlamaWeights, qm: QuantizedModel, opts: { tokenizerJson?: string } = {}): Record<string, Uint8Array> {
  const shapes = hfTensorShapes(config);
  const tensors: TensorToWrite[] = [];
  const modules = qm.ptq.projections ?? (['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as Projection[]);
  const push = (name: string, data: Float32Array) => tensors.push({ name, dtype: 'F32', shape: shapes.get(name)!, data });
  push('model.embed_tokens.weight', w.tokEmbed);
  w.layers.forEach((lw, l) => {
    for (const [k, n] of Object.entries(LAYER_NAMES)) {
      const proj = PROJ_OF[k];
      const pw = proj ? qm.packed[l][proj] : undefined;
      if (pw) {
        const base = `model.layers.${l}.${n.slice(0, -'.weight'.length)}`;
        tensors.push({ name: `${base}.qweight`, dtype: 'U32', shape: [pw.N, pw.wordsPerRow], data: pw.codes });
        tensors.push({ name: `${base}.scales`, dtype: 'F32', shape: [pw.N, pw.nBlocks], data: pw.scales });
        tensors.push({ name: `${base}.zeros`, dtype: 'U8', shape: [pw.N, pw.nBlocks], data: Uint8Array.from(pw.zeros) });
      } else push(`model.layers.${l}.${n}`, lw[k as keyof LlamaLayerWeights]);
    }
  });
  push('model.norm.weight', w.finalNorm);
  if (!config.tiedEmbeddings && w.lmHead) push('lm_head.weight', w.lmHead);
  const q: QuenchQuantConfig = {
    quant_method: 'quench',
    bits: qm.ptq.bits,
    group_size: qm.ptq.group,
    sym: qm.ptq.sym,
    clip_search: qm.ptq.clipSearch,
    modules,
    format: 'per output row, groups of group_size input columns (ragged last group padded with the zero point); qweight u32 (N, ceil(nBlocks*group/floor(32/bits))) with code j at bit (j % floor(32/bits))*bits of word j / floor(32/bits); w = (code - zero) * scale; scales f32 (N, nBlocks); zeros u8 (N, nBlocks). For bits=4 and K % group == 0, qweight is the transpose of AutoGPTQ qweight (which packs along K per output column) and byte-identical to onnxruntime MatMulNBits B.',
  };
  const files: Record<string, Uint8Array> = {
    'config.json': new TextEncoder().encode(hfConfigJson(config, { quantization_config: q })),
    'model.safetensors': writeSafetensors(tensors, { format: 'pt', quantizer: 'quench' }),
  };
  if (opts.tokenizerJson) files['tokenizer.json'] = new TextEncoder().encode(opts.tokenizerJson);
  return files;
}
