// Hugging Face LLaMA layout: config.json + model.safetensors (or sharded model-0000k-of-0000n
// with model.safetensors.index.json) + tokenizer.json. Loading validates the architecture, every
// tensor's presence and shape against config.json, and finite values; errors name file and tensor.
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights, RopeScaling } from '../model/config';
import { headSize, layerShapes, validateConfig } from '../model/config';
import { encodeFloats, readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorsHeader, type TensorToWrite } from './safetensors';
import type { ByteSource } from './source';
import { readText } from './source';
import { readTensorBytes } from './safetensors';
import { dequantizeHost, layoutOf, type Bits, type PackedWeight } from '../quant/pack';
import type { QuantizedModel } from '../quant/ptq';
import type { Projection } from '../model/config';
import { z } from 'zod';
import { LIMITS, maxOf, own, ownMap, parseJsonObject, parseWith, posFinite, posInt, show } from './validate';

const LLAMA_ARCHS = ['LlamaForCausalLM', 'LLaMAForCausalLM', 'MistralForCausalLM'];

const ArchSchema = z.looseObject({ architectures: z.array(z.string()).nullish(), model_type: z.string().nullish() });

/** config.json of a LLaMA-family model: required dimensions within LIMITS, optional fields typed
 *  (null means "not set", as transformers' None); anything else passes through. */
const HfConfigSchema = z.looseObject({
  hidden_size: posInt(LIMITS.dim),
  intermediate_size: posInt(LIMITS.hiddenDim),
  num_hidden_layers: posInt(LIMITS.nLayers),
  num_attention_heads: posInt(LIMITS.nHeads),
  num_key_value_heads: posInt(LIMITS.nHeads).nullish(),
  vocab_size: posInt(LIMITS.vocabSize),
  max_position_embeddings: posInt(LIMITS.maxSeqLen).nullish(),
  rms_norm_eps: posFinite.max(1).nullish(),
  rope_theta: posFinite.nullish(),
  tie_word_embeddings: z.boolean().nullish(),
  rope_scaling: z.unknown().optional(),
  hidden_act: z.string().nullish(),
  attention_bias: z.boolean().nullish(),
  mlp_bias: z.boolean().nullish(),
  sliding_window: z.number().int().min(0).nullish(),
  head_dim: posInt(LIMITS.dim).nullish(),
  quantization_config: z.looseObject({}).nullish(),
});

/** rope_scaling of config.json as transformers reads it ("rope_type", or the older "type");
 *  null, absent or "default" = plain RoPE. linear and llama3 are supported, others refused by name. */
function parseRopeScaling(v: unknown, file: string): RopeScaling | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}: "rope_scaling" must be an object or null, got ${show(v)}`);
  const o = v as Record<string, unknown>;
  const type = own(o, 'rope_type') ?? own(o, 'type');
  if (type === undefined) throw new Error(`${file}: "rope_scaling" has no "rope_type" (or "type"): ${show(v)}`);
  if (type === 'default') return undefined;
  const num = (k: string, min: number, strict = false): number => {
    const x = own(o, k);
    if (x === undefined) throw new Error(`${file}: rope_scaling of type "${String(type)}" needs "${k}"`);
    if (typeof x !== 'number' || !Number.isFinite(x) || (strict ? x <= min : x < min)) throw new Error(`${file}: rope_scaling "${k}" must be a number ${strict ? '>' : '>='} ${min}, got ${show(x)}`);
    return x;
  };
  if (type === 'linear') return { type: 'linear', factor: num('factor', 1) };
  if (type === 'llama3') {
    const lowFreqFactor = num('low_freq_factor', 0, true), highFreqFactor = num('high_freq_factor', 0, true);
    if (!(highFreqFactor > lowFreqFactor)) throw new Error(`${file}: rope_scaling (llama3) "high_freq_factor" (${highFreqFactor}) must be greater than "low_freq_factor" (${lowFreqFactor})`);
    const orig = num('original_max_position_embeddings', 1);
    if (!Number.isInteger(orig)) throw new Error(`${file}: rope_scaling "original_max_position_embeddings" must be an integer, got ${show(orig)}`);
    return { type: 'llama3', factor: num('factor', 1), lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: orig };
  }
  throw new Error(`${file}: rope_scaling type ${show(type)} is not supported (Quench supports "linear" and "llama3")`);
}

/** rope_scaling as transformers' config.json writes it. */
function ropeScalingJson(r: RopeScaling): Record<string, unknown> {
  return r.type === 'linear'
    ? { rope_type: 'linear', factor: r.factor }
    : { rope_type: 'llama3', factor: r.factor, low_freq_factor: r.lowFreqFactor, high_freq_factor: r.highFreqFactor, original_max_position_embeddings: r.originalMaxPositionEmbeddings };
}

export function parseHfConfig(text: string, file = 'config.json'): LlamaConfig {
  const raw = parseJsonObject(text, file);
  const { architectures, model_type: modelType } = parseWith(ArchSchema, raw, file);
  const archs = architectures ?? [];
  const known = archs.length > 0 ? archs.some((a) => LLAMA_ARCHS.includes(a)) : modelType === 'llama' || modelType === 'mistral';
  if (!known && modelType !== 'llama') {
    throw new Error(`${file}: not a LLaMA-family model: architectures ${JSON.stringify(archs)}${modelType ? `, model_type "${modelType}"` : ''} (Quench supports ${LLAMA_ARCHS.join(', ')})`);
  }
  const j = parseWith(HfConfigSchema, raw, file);
  const heads = j.num_attention_heads;
  const cfg: LlamaConfig = {
    dim: j.hidden_size,
    hiddenDim: j.intermediate_size,
    nLayers: j.num_hidden_layers,
    nHeads: heads,
    nKvHeads: j.num_key_value_heads ?? heads,
    vocabSize: j.vocab_size,
    maxSeqLen: j.max_position_embeddings ?? 2048,
    normEps: j.rms_norm_eps ?? 1e-6,
    ropeTheta: j.rope_theta ?? 10000,
    tiedEmbeddings: j.tie_word_embeddings === true,
  };
  const scaling = parseRopeScaling(j.rope_scaling, file);
  if (scaling) cfg.ropeScaling = scaling;
  if (j.hidden_act !== undefined && j.hidden_act !== null && j.hidden_act !== 'silu') throw new Error(`${file}: hidden_act "${j.hidden_act}" is not supported (LLaMA uses silu)`);
  if (j.attention_bias === true) throw new Error(`${file}: attention_bias=true (biases on q/k/v/o_proj) is not supported; Quench's LLaMA has no projection biases`);
  if (j.mlp_bias === true) throw new Error(`${file}: mlp_bias=true (biases on gate/up/down_proj) is not supported; Quench's LLaMA has no projection biases`);
  // Mistral: a sliding window shorter than the context is a different attention; a window at least
  // as long as max_position_embeddings never slides, so the model is a LLaMA.
  if (typeof j.sliding_window === 'number' && j.sliding_window < cfg.maxSeqLen) {
    throw new Error(`${file}: sliding_window ${j.sliding_window} is shorter than max_position_embeddings ${cfg.maxSeqLen}: sliding-window attention is not supported (null, or a window >= max_position_embeddings, is full attention)`);
  }
  // an explicit head size (Gemma-style configs, head-pruned students): q/k/v/o are (NH·head_dim) wide
  if (typeof j.head_dim === 'number' && j.head_dim !== cfg.dim / cfg.nHeads) cfg.headDim = j.head_dim;
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
      ...(cfg.headDim !== undefined && cfg.headDim !== cfg.dim / cfg.nHeads ? { head_dim: cfg.headDim } : {}),
      ...(cfg.ropeScaling ? { rope_scaling: ropeScalingJson(cfg.ropeScaling) } : {}),
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

const INDEX = 'model.safetensors.index.json';
const IndexSchema = z.looseObject({ metadata: z.looseObject({}).nullish(), weight_map: z.record(z.string(), z.string().min(1)) });

/** Own-property lookup in the dropped files (a shard named "toString" is just a missing file). */
const fileOf = (files: HfFiles, name: string): ByteSource | undefined => own(files, name);

/** Which safetensors files hold the weights, and the tensor → file map. */
async function weightFiles(files: HfFiles): Promise<{ sources: ByteSource[]; headers: SafetensorsHeader[] }> {
  const index = fileOf(files, INDEX);
  let names: string[];
  let weightMap: Map<string, string> | null = null;
  if (index) {
    const raw = parseJsonObject(await readText(index), INDEX);
    parseWith(IndexSchema, raw, INDEX);
    // the entries of the parsed JSON itself: zod's record drops a "__proto__" key
    weightMap = ownMap(raw.weight_map as Record<string, string>);
    if (weightMap.size === 0) throw new Error(`${INDEX}: "weight_map" is empty`);
    names = [...new Set(weightMap.values())];
    for (const n of names) {
      if (!n.endsWith('.safetensors')) throw new Error(`${INDEX}: weight_map names shard "${n}", which is not a .safetensors file`);
      if (!fileOf(files, n)) throw new Error(`${INDEX} names shard "${n}", which is missing`);
    }
  } else {
    names = Object.keys(files).filter((n) => n.endsWith('.safetensors'));
    if (names.length === 0) throw new Error('no .safetensors file among the model files (expected model.safetensors)');
  }
  const sources = names.map((n) => fileOf(files, n)!);
  const headers = await Promise.all(sources.map((s) => readSafetensorsHeader(s)));
  if (weightMap) {
    for (const [t, shard] of weightMap) {
      const i = names.indexOf(shard);
      if (!headers[i].tensors.has(t)) throw new Error(`${INDEX}: tensor "${t}" should be in ${shard}, which does not have it`);
    }
    headers.forEach((h, i) => {
      for (const t of h.tensors.keys()) if (weightMap!.get(t) !== names[i]) throw new Error(`${h.file}: tensor "${t}" is not in ${INDEX}'s weight_map (or is mapped to ${weightMap!.get(t)})`);
    });
  }
  return { sources, headers };
}

export interface HfModel {
  config: LlamaConfig;
  weights: LlamaWeights;
  tokenizerJson: string | null;
  /** the files beside tokenizer.json that name BOS/EOS (text), for parseTokenizerJson */
  tokenizerExtras: { tokenizerConfig: string | null; generationConfig: string | null; config: string };
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
  /** the token embedding packed too (same layout, N = vocab, K = hidden), absent = fp32 */
  embedding?: { bits: Bits; group_size: number };
  format: string;
}

const PROJECTIONS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
const QuantConfigSchema = z.looseObject({
  quantization_config: z
    .looseObject({
      quant_method: z.literal('quench'),
      bits: z.union([z.literal(2), z.literal(3), z.literal(4), z.literal(8)]),
      group_size: z.number().int().min(0).max(LIMITS.hiddenDim),
      sym: z.boolean(),
      clip_search: z.boolean().optional(),
      modules: z.array(z.enum(PROJECTIONS)).min(1),
      embedding: z.strictObject({ bits: z.union([z.literal(2), z.literal(3), z.literal(4), z.literal(8)]), group_size: z.number().int().min(0).max(LIMITS.hiddenDim) }).optional(),
      format: z.string().optional(),
    })
    .nullish(),
});

/** A lower bound on the bytes the weights of `config` take (1 byte per float parameter, the
 *  fewest any dtype takes; bits/8 per packed one), to refuse absurd configs before allocating. */
function minWeightBytes(config: LlamaConfig, packedBits: number, packed: ReadonlySet<string>, embedBits = 8): number {
  const s = layerShapes(config);
  let perLayer = 0;
  for (const [k, sh] of Object.entries(s)) {
    const n = sh.reduce((a, b) => a * b, 1);
    perLayer += PROJ_OF[k] && packed.has(PROJ_OF[k]) ? (n * packedBits) / 8 : n;
  }
  return config.nLayers * perLayer + (config.vocabSize * config.dim * embedBits) / 8 + (config.tiedEmbeddings ? 0 : config.vocabSize * config.dim) + config.dim;
}

/** Reading progress of a folder: bytes of tensor data read so far, of all the shards hold. */
export type LoadProgress = (bytesRead: number, bytesTotal: number, tensor: string) => void;

export async function loadHfModel(files: HfFiles, opts: { onProgress?: LoadProgress } = {}): Promise<HfModel> {
  const cfgSrc = fileOf(files, 'config.json');
  if (!cfgSrc) throw new Error('config.json is missing from the model files');
  const cfgText = await readText(cfgSrc);
  const config = parseHfConfig(cfgText, cfgSrc.name);
  const cfgRaw = parseJsonObject(cfgText, cfgSrc.name);
  const rawQ = cfgRaw.quantization_config as Record<string, unknown> | null | undefined;
  if (rawQ && typeof rawQ === 'object' && rawQ.quant_method !== undefined && rawQ.quant_method !== 'quench') throw new Error(`${cfgSrc.name}: quantization_config with quant_method ${show(rawQ.quant_method)} is not supported (Quench reads its own "quench" packing)`);
  const qc = (parseWith(QuantConfigSchema, cfgRaw, cfgSrc.name).quantization_config ?? undefined) as QuenchQuantConfig | undefined;
  const quantization = rawQ ?? undefined;
  const { sources, headers } = await weightFiles(files);
  const held = headers.reduce((s, h) => s + maxOf([...h.tensors.values()].map((t) => t.end), 0), 0);
  const need = minWeightBytes(config, qc?.bits ?? 8, new Set(qc?.modules ?? []), qc?.embedding?.bits ?? 8);
  if (need > held) throw new Error(`${cfgSrc.name}: the model it describes (hidden_size ${config.dim}, ${config.nLayers} layers, vocab_size ${config.vocabSize}) needs at least ${need} bytes of weights, but ${headers.map((h) => h.file).join(', ')} hold ${held}`);
  const where = new Map<string, number>();
  headers.forEach((h, i) => {
    for (const n of h.tensors.keys()) {
      if (where.has(n)) throw new Error(`tensor "${n}" appears in both ${headers[where.get(n)!].file} and ${h.file}`);
      where.set(n, i);
    }
  });
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
    if (qc.embedding) {
      const L = layoutOf(config.vocabSize, config.dim, qc.embedding.bits, qc.embedding.group_size);
      const base = 'model.embed_tokens';
      expected.delete(`${base}.weight`);
      expected.set(`${base}.qweight`, [L.N, L.wordsPerRow]);
      expected.set(`${base}.scales`, [L.N, L.nBlocks]);
      expected.set(`${base}.zeros`, [L.N, L.nBlocks]);
      packedShapes.set(`${base}.weight`, { layout: L, base });
    }
  }
  // A tied model may still carry lm_head.weight; accept it when it equals the embedding shape.
  const missing = [...expected.keys()].filter((n) => !where.has(n));
  if (missing.length && fileOf(files, INDEX)) throw new Error(`${INDEX}: weight_map has no shard holding tensors ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} (config.json: ${config.nLayers} layers, tie_word_embeddings=${config.tiedEmbeddings})`);
  if (missing.length) throw new Error(`${headers.map((h) => h.file).join(', ')}: missing tensors ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} (config.json: ${config.nLayers} layers, tie_word_embeddings=${config.tiedEmbeddings})`);
  const extra = [...where.keys()].filter((n) => !expected.has(n) && !(config.tiedEmbeddings && n === 'lm_head.weight') && !n.endsWith('rotary_emb.inv_freq'));
  const biases = extra.filter((n) => n.endsWith('.bias'));
  if (biases.length) throw new Error(`${headers[where.get(biases[0])!].file}: bias tensors ${biases.slice(0, 5).join(', ')}${biases.length > 5 ? ` and ${biases.length - 5} more` : ''} are not supported (Quench's LLaMA has no projection or norm biases; config.json attention_bias / mlp_bias)`);
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
  // every shape against config.json before any tensor is read
  for (const name of expected.keys()) checkShape(name);
  const packedOut: Partial<Record<Projection, PackedWeight>>[] = Array.from({ length: config.nLayers }, () => ({}));
  let embeddingPacked: PackedWeight | undefined;
  // progress by tensor (each is read as one slice and converted once: no second copy of the folder)
  let bytesRead = 0;
  const advance = (info: { begin: number; end: number }, name: string) => {
    bytesRead += info.end - info.begin;
    opts.onProgress?.(bytesRead, held, name);
  };
  const readPacked = async (name: string, layer: number, proj: Projection | 'embedding'): Promise<Float32Array> => {
    const { layout: L, base } = packedShapes.get(name)!;
    const q = checkShape(`${base}.qweight`), sc = checkShape(`${base}.scales`), z = checkShape(`${base}.zeros`);
    if (q.info.dtype !== 'U32' && q.info.dtype !== 'I32') throw new Error(`${q.h.file}: tensor "${base}.qweight" must be U32, is ${q.info.dtype}`);
    if (z.info.dtype !== 'U8') throw new Error(`${z.h.file}: tensor "${base}.zeros" must be U8, is ${z.info.dtype}`);
    const qb = await readTensorBytes(q.src, q.h, `${base}.qweight`);
    advance(q.info, `${base}.qweight`);
    const codes = new Uint32Array(qb.buffer, qb.byteOffset, qb.byteLength / 4);
    const scales = await readTensorF32(sc.src, sc.h, `${base}.scales`);
    advance(sc.info, `${base}.scales`);
    for (let k = 0; k < scales.length; k++) if (!Number.isFinite(scales[k]) || scales[k] <= 0) throw new Error(`${sc.h.file}: tensor "${base}.scales" has an invalid scale (${scales[k]}) at index ${k}`);
    const zeros = Float32Array.from(await readTensorBytes(z.src, z.h, `${base}.zeros`));
    advance(z.info, `${base}.zeros`);
    for (let k = 0; k < zeros.length; k++) if (zeros[k] > L.qmax) throw new Error(`${z.h.file}: tensor "${base}.zeros" has zero point ${zeros[k]} above ${L.qmax} at index ${k}`);
    dtypes.add(`${L.bits}-bit`);
    const pw: PackedWeight = { ...L, codes, scales, zeros };
    if (proj === 'embedding') embeddingPacked = pw;
    else packedOut[layer][proj] = pw;
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
    advance(info, name);
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
    tokEmbed: packedShapes.has('model.embed_tokens.weight') ? await readPacked('model.embed_tokens.weight', -1, 'embedding') : await read('model.embed_tokens.weight'),
    layers,
    finalNorm: await read('model.norm.weight'),
    lmHead: config.tiedEmbeddings ? null : await read('lm_head.weight'),
  };
  const tok = fileOf(files, 'tokenizer.json');
  const quantized: QuantizedModel | undefined = qc
    ? {
        config, ptq: { bits: qc.bits, group: qc.group_size, sym: qc.sym, clipSearch: qc.clip_search ?? false, projections: qc.modules, ...(qc.embedding ? { embedding: { bits: qc.embedding.bits, group: qc.embedding.group_size } } : {}) },
        packed: packedOut, report: [], ...(embeddingPacked ? { embedding: embeddingPacked } : {}),
      }
    : undefined;
  const text = async (n: string) => {
    const f = fileOf(files, n);
    return f ? await readText(f) : null;
  };
  const tokenizerExtras = { tokenizerConfig: await text('tokenizer_config.json'), generationConfig: await text('generation_config.json'), config: cfgText };
  return { config, weights, tokenizerJson: tok ? await readText(tok) : null, tokenizerExtras, dtypes: [...dtypes], quantization, quantized };
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
  const pushPacked = (base: string, pw: PackedWeight) => {
    tensors.push({ name: `${base}.qweight`, dtype: 'U32', shape: [pw.N, pw.wordsPerRow], data: pw.codes });
    tensors.push({ name: `${base}.scales`, dtype: 'F32', shape: [pw.N, pw.nBlocks], data: pw.scales });
    tensors.push({ name: `${base}.zeros`, dtype: 'U8', shape: [pw.N, pw.nBlocks], data: Uint8Array.from(pw.zeros) });
  };
  if (qm.embedding) pushPacked('model.embed_tokens', qm.embedding);
  else push('model.embed_tokens.weight', w.tokEmbed);
  w.layers.forEach((lw, l) => {
    for (const [k, n] of Object.entries(LAYER_NAMES)) {
      const proj = PROJ_OF[k];
      const pw = proj ? qm.packed[l][proj] : undefined;
      if (pw) pushPacked(`model.layers.${l}.${n.slice(0, -'.weight'.length)}`, pw);
      else push(`model.layers.${l}.${n}`, lw[k as keyof LlamaLayerWeights]);
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
    ...(qm.embedding ? { embedding: { bits: qm.embedding.bits, group_size: qm.embedding.group } } : {}),
    format: 'per output row, groups of group_size input columns (ragged last group padded with the zero point); qweight u32 (N, ceil(nBlocks*group/floor(32/bits))) with code j at bit (j % floor(32/bits))*bits of word j / floor(32/bits); w = (code - zero) * scale; scales f32 (N, nBlocks); zeros u8 (N, nBlocks). For bits=4 and K % group == 0, qweight is the transpose of AutoGPTQ qweight (which packs along K per output column) and byte-identical to onnxruntime MatMulNBits B.',
  };
  const files: Record<string, Uint8Array> = {
    'config.json': new TextEncoder().encode(hfConfigJson(config, { quantization_config: q })),
    'model.safetensors': writeSafetensors(tensors, { format: 'pt', quantizer: 'quench' }),
  };
  if (opts.tokenizerJson) files['tokenizer.json'] = new TextEncoder().encode(opts.tokenizerJson);
  return files;
}
