// Hugging Face LLaMA layout: config.json + model.safetensors (or sharded model-0000k-of-0000n
// with model.safetensors.index.json) + tokenizer.json. Loading validates the architecture, every
// tensor's presence and shape against config.json, and finite values; errors name file and tensor.
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights } from '../model/config';
import { headSize, layerShapes, validateConfig } from '../model/config';
import { encodeFloats, readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorsHeader, type TensorToWrite } from './safetensors';
import type { ByteSource } from './source';
import { readText } from './source';

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
  if (index) {
    let j: { weight_map?: Record<string, string> };
    try {
      j = JSON.parse(await readText(index));
    } catch (e) {
      throw new Error(`model.safetensors.index.json: not valid JSON (${(e as Error).message})`);
    }
    names = [...new Set(Object.values(j.weight_map ?? {}))];
    for (const n of names) if (!files[n]) throw new Error(`model.safetensors.index.json names shard "${n}", which is missing`);
  } else {
    names = Object.keys(files).filter((n) => n.endsWith('.safetensors'));
    if (names.length === 0) throw new Error('no .safetensors file among the model files (expected model.safetensors)');
  }
  const sources = names.map((n) => files[n]);
  const headers = await Promise.all(sources.map((s) => readSafetensorsHeader(s)));
  return { sources, headers };
}

export interface HfModel {
  config: LlamaConfig;
  weights: LlamaWeights;
  tokenizerJson: string | null;
  dtypes: string[];
  quantization?: Record<string, unknown>;
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
  const expected = hfTensorShapes(config);
  // A tied model may still carry lm_head.weight; accept it when it equals the embedding shape.
  const missing = [...expected.keys()].filter((n) => !where.has(n));
  if (missing.length) throw new Error(`${headers.map((h) => h.file).join(', ')}: missing tensors ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} (config.json: ${config.nLayers} layers, tie_word_embeddings=${config.tiedEmbeddings})`);
  const isQuantAux = (n: string) => /\.(qweight|scales|qzeros|g_idx|codes|zeros)$/.test(n);
  const extra = [...where.keys()].filter((n) => !expected.has(n) && !(config.tiedEmbeddings && n === 'lm_head.weight') && !n.endsWith('rotary_emb.inv_freq') && !isQuantAux(n));
  if (extra.length) throw new Error(`${headers[where.get(extra[0])!].file}: unexpected tensors ${extra.slice(0, 5).join(', ')} (not part of a LLaMA model with this config.json)`);
  const dtypes = new Set<string>();
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
    for (const [k, n] of Object.entries(LAYER_NAMES)) lw[k as keyof LlamaLayerWeights] = await read(`model.layers.${l}.${n}`);
    layers.push(lw);
  }
  const weights: LlamaWeights = {
    tokEmbed: await read('model.embed_tokens.weight'),
    layers,
    finalNorm: await read('model.norm.weight'),
    lmHead: config.tiedEmbeddings ? null : await read('lm_head.weight'),
  };
  const tok = files['tokenizer.json'];
  return { config, weights, tokenizerJson: tok ? await readText(tok) : null, dtypes: [...dtypes], quantization };
}

/** The files of an HF model folder: config.json, model.safetensors, tokenizer.json (if given). */
export function writeHfModel(config: LlamaConfig, w: LlamaWeights, opts: { dtype?: 'F32' | 'F16' | 'BF16'; tokenizerJson?: string; metadata?: Record<string, string> } = {}): Record<string, Uint8Array> {
  const dtype = opts.dtype ?? 'F32';
  const tensors: TensorToWrite[] = [];
  const shapes = hfTensorShapes(config);
  const push = (name: string, data: Float32Array) => tensors.push({ name, dtype, shape: shapes.get(name)!, data: encodeFloats(data, dtype) });
  push('model.embed_tokens.weight', w.tokEmbed);
  w.layers.forEach((lw, l) => {
    for (const [k, n] of Object.entries(LAYER_NAMES)) push(`model.layers.${l}.${n}`, lw[k as keyof LlamaLayerWeights]);
  });
  push('model.norm.weight', w.finalNorm);
  if (!config.tiedEmbeddings && w.lmHead) push('lm_head.weight', w.lmHead);
  const files: Record<string, Uint8Array> = {
    'config.json': new TextEncoder().encode(hfConfigJson(config, { torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype] })),
    'model.safetensors': writeSafetensors(tensors, { format: 'pt', ...(opts.metadata ?? {}) }),
  };
  if (opts.tokenizerJson) files['tokenizer.json'] = new TextEncoder().encode(opts.tokenizerJson);
  void headSize;
  return files;
}
