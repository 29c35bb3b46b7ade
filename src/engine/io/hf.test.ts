// HF LLaMA folders: config.json parsing and defaults, sharded checkpoints with an index, tied
// embeddings, dtypes, and broken folders (each error names the file and the problem). The basic
// hostile-file cases are in safetensors.test.ts.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig } from '../model/config';
import { hfConfigJson, loadHfModel, parseHfConfig, writeHfModel, type HfFiles } from './hf';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from './safetensors';
import { bytesSource } from './source';

const enc = (o: unknown) => new TextEncoder().encode(typeof o === 'string' ? o : JSON.stringify(o));
const asSources = (f: Record<string, Uint8Array>): HfFiles => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, bytesSource(k, v)]));

describe('config.json', () => {
  const base = { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 11 };
  it('defaults as transformers LlamaConfig: kv heads = heads, eps 1e-6, theta 1e4, 2048 positions, untied', () => {
    expect(parseHfConfig(JSON.stringify(base))).toEqual({ dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 11, maxSeqLen: 2048, normEps: 1e-6, ropeTheta: 10000, tiedEmbeddings: false });
    const full = parseHfConfig(JSON.stringify({ ...base, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 5e5, max_position_embeddings: 64, tie_word_embeddings: true }));
    expect(full).toEqual({ dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 11, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 5e5, tiedEmbeddings: true });
    // Mistral without a sliding window (null, or one no shorter than the context) is a LLaMA
    const mistral = { ...base, architectures: ['MistralForCausalLM'], model_type: 'mistral', max_position_embeddings: 32768 };
    expect(parseHfConfig(JSON.stringify({ ...mistral, sliding_window: null })).maxSeqLen).toBe(32768);
    expect(parseHfConfig(JSON.stringify({ ...mistral, sliding_window: 32768 })).maxSeqLen).toBe(32768);
    expect(parseHfConfig(JSON.stringify({ ...base, architectures: undefined, model_type: 'mistral' })).dim).toBe(16);
    // hfConfigJson writes what parseHfConfig reads
    const cfg = tinyConfig({ tiedEmbeddings: true, ropeTheta: 1e6 });
    expect(parseHfConfig(hfConfigJson(cfg))).toEqual(cfg);
  });
  it('rope_scaling llama3 (Llama-3.2-1B\'s config.json) and linear are read, written back, and "default" is plain RoPE', () => {
    // the fields of meta-llama/Llama-3.2-1B's config.json that Quench reads
    const llama32 = {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8,
      head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true, hidden_act: 'silu',
      attention_bias: false, mlp_bias: false, pretraining_tp: 1, torch_dtype: 'bfloat16', bos_token_id: 128000, eos_token_id: 128001,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    };
    const c = parseHfConfig(JSON.stringify(llama32));
    expect(c).toEqual({ dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, vocabSize: 128256, maxSeqLen: 131072, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true, ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } });
    expect(parseHfConfig(hfConfigJson(c))).toEqual(c);
    // the older spelling "type" (transformers < 4.43)
    const lin = parseHfConfig(JSON.stringify({ ...base, rope_scaling: { type: 'linear', factor: 2 } }));
    expect(lin.ropeScaling).toEqual({ type: 'linear', factor: 2 });
    expect(parseHfConfig(hfConfigJson(lin))).toEqual(lin);
    expect(parseHfConfig(JSON.stringify({ ...base, rope_scaling: { rope_type: 'default' } })).ropeScaling).toBeUndefined();
    expect(parseHfConfig(JSON.stringify({ ...base, rope_scaling: null })).ropeScaling).toBeUndefined();
  });
  it('an explicit head_dim (a head size other than hidden/heads) round-trips and runs as the float64 reference', async () => {
    const cfg: LlamaConfig = { ...tinyConfig({ dim: 32, nHeads: 4, nKvHeads: 2, vocabSize: 29, maxSeqLen: 16 }), headDim: 12 };
    expect(parseHfConfig(hfConfigJson(cfg))).toEqual(cfg);
    const w = randomWeights(cfg, 4, 0.5);
    const m = await loadHfModel(asSources(writeHfModel(cfg, w)));
    expect(m.config.headDim).toBe(12);
    expect(m.weights.layers[0].wq.length).toBe(4 * 12 * 32);
    const { refForward } = await import('../ref/llama');
    const { LlamaModel } = await import('../model/llama');
    const { testGpu, expectClose } = await import('../testing');
    const gpu = await testGpu();
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
    const tokens = [1, 5, 9, 3, 7, 2, 11];
    const acts = model.activations(1, tokens.length, false);
    gpu.write(acts.tokens, new Uint32Array(tokens));
    model.forward(acts);
    expectClose('logits', await gpu.readF32(acts.logits), refForward(cfg, w, tokens).logits, { atol: 1e-4, rtol: 1e-4 });
    model.free();
  });
  it('says what is wrong, naming the file', () => {
    const bad = (o: object) => () => parseHfConfig(JSON.stringify({ ...base, ...o }), 'my/config.json');
    expect(bad({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' })).toThrow(/my\/config\.json: not a LLaMA-family model: architectures \["GPT2LMHeadModel"\], model_type "gpt2"/);
    expect(bad({ hidden_act: 'gelu' })).toThrow(/my\/config\.json: hidden_act "gelu" is not supported/);
    expect(bad({ attention_bias: true })).toThrow(/my\/config\.json: attention_bias=true .* is not supported/);
    expect(bad({ mlp_bias: true })).toThrow(/my\/config\.json: mlp_bias=true .* is not supported/);
    expect(parseHfConfig(JSON.stringify({ ...base, attention_bias: false, mlp_bias: false })).dim).toBe(16);
    // other architectures, by name
    for (const [arch, mt] of [['Qwen2ForCausalLM', 'qwen2'], ['GemmaForCausalLM', 'gemma'], ['Phi3ForCausalLM', 'phi3'], ['MixtralForCausalLM', 'mixtral']])
      expect(bad({ architectures: [arch], model_type: mt })).toThrow(new RegExp(`my/config\\.json: not a LLaMA-family model: architectures \\["${arch}"\\], model_type "${mt}" \\(Quench supports LlamaForCausalLM`));
    // a sliding window shorter than the context
    expect(bad({ architectures: ['MistralForCausalLM'], model_type: 'mistral', max_position_embeddings: 32768, sliding_window: 4096 })).toThrow(/my\/config\.json: sliding_window 4096 is shorter than max_position_embeddings 32768: sliding-window attention is not supported/);
    // rope_scaling: other types by name, missing or bad fields by name
    expect(bad({ rope_scaling: { rope_type: 'dynamic', factor: 2 } })).toThrow(/my\/config\.json: rope_scaling type "dynamic" is not supported \(Quench supports "linear" and "llama3"\)/);
    expect(bad({ rope_scaling: { type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type "yarn" is not supported/);
    expect(bad({ rope_scaling: { factor: 4 } })).toThrow(/my\/config\.json: "rope_scaling" has no "rope_type"/);
    expect(bad({ rope_scaling: 'llama3' })).toThrow(/my\/config\.json: "rope_scaling" must be an object or null/);
    expect(bad({ rope_scaling: { rope_type: 'linear' } })).toThrow(/my\/config\.json: rope_scaling of type "linear" needs "factor"/);
    expect(bad({ rope_scaling: { rope_type: 'linear', factor: 0.5 } })).toThrow(/rope_scaling "factor" must be a number >= 1, got 0\.5/);
    const l3 = { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    expect(bad({ rope_scaling: { ...l3, high_freq_factor: 1 } })).toThrow(/my\/config\.json: rope_scaling \(llama3\) "high_freq_factor" \(1\) must be greater than "low_freq_factor" \(1\)/);
    expect(bad({ rope_scaling: { ...l3, original_max_position_embeddings: undefined } })).toThrow(/rope_scaling of type "llama3" needs "original_max_position_embeddings"/);
    expect(bad({ rope_scaling: { ...l3, original_max_position_embeddings: 81.5 } })).toThrow(/"original_max_position_embeddings" must be an integer/);
    expect(bad({ rope_scaling: { ...l3, factor: 'big' } })).toThrow(/rope_scaling "factor" must be a number >= 1, got "big"/);
    expect(bad({ hidden_size: undefined })).toThrow(/my\/config\.json: missing "hidden_size"/);
    expect(bad({ num_attention_heads: 5 })).toThrow(/my\/config\.json: dim 16 is not divisible by nHeads 5/);
    expect(bad({ num_key_value_heads: 3 })).toThrow(/nHeads 4 is not divisible by nKvHeads 3/);
    expect(() => parseHfConfig('{"hidden_size": ', 'c.json')).toThrow(/c\.json: not valid JSON/);
  });
});

describe('HF folders', () => {
  const cfg: LlamaConfig = tinyConfig();
  const w = randomWeights(cfg, 11);

  it('sharded: model-0000k-of-0000n.safetensors + index load the same weights as one file', async () => {
    const files = writeHfModel(cfg, w, { maxShardBytes: 4096 });
    const shards = Object.keys(files).filter((k) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(k));
    expect(shards.length).toBeGreaterThan(2);
    expect(files['model.safetensors']).toBeUndefined();
    const index = JSON.parse(new TextDecoder().decode(files['model.safetensors.index.json']));
    expect(index.metadata.total_size).toBe(shards.reduce((s, k) => s + files[k].length, 0) - shards.reduce((s, k) => s + 8 + Number(new DataView(files[k].buffer).getBigUint64(0, true)), 0));
    const m = await loadHfModel(asSources(files));
    const one = await loadHfModel(asSources(writeHfModel(cfg, w)));
    expect(m.config).toEqual(cfg);
    expect(m.weights).toEqual(one.weights);
    expect([...m.weights.layers[1].wDown]).toEqual([...w.layers[1].wDown]);
    expect([...m.weights.lmHead!]).toEqual([...w.lmHead!]);
  });

  it('sharded folders with a missing shard, or an index that disagrees with the shards', async () => {
    const files = writeHfModel(cfg, w, { maxShardBytes: 4096 });
    const shards = Object.keys(files).filter((k) => k.endsWith('.safetensors')).sort();
    const missing = { ...files };
    delete missing[shards[1]];
    await expect(loadHfModel(asSources(missing))).rejects.toThrow(new RegExp(`model\\.safetensors\\.index\\.json names shard "${shards[1]}", which is missing`));
    const index = JSON.parse(new TextDecoder().decode(files['model.safetensors.index.json']));
    index.weight_map['model.norm.weight'] = shards[0];
    const wrong = { ...files, 'model.safetensors.index.json': enc(index) };
    await expect(loadHfModel(asSources(wrong))).rejects.toThrow(/model\.safetensors\.index\.json: tensor "model\.norm\.weight" should be in model-00001-of-\d{5}\.safetensors, which does not have it/);
    await expect(loadHfModel(asSources({ ...files, 'model.safetensors.index.json': enc('{"weight_map": ') }))).rejects.toThrow(/model\.safetensors\.index\.json: not valid JSON/);
  });

  it('tied embeddings: no lm_head.weight written or needed; an extra one is tolerated', async () => {
    const c = { ...cfg, tiedEmbeddings: true };
    const wt = randomWeights(c, 12);
    const files = writeHfModel(c, wt, { dtype: 'BF16' });
    const h = await readSafetensorsHeader(bytesSource('model.safetensors', files['model.safetensors']));
    expect(h.tensors.has('lm_head.weight')).toBe(false);
    const m = await loadHfModel(asSources(files));
    expect(m.config.tiedEmbeddings).toBe(true);
    expect(m.weights.lmHead).toBeNull();
    expect(m.dtypes).toEqual(['BF16']);
    for (let i = 0; i < wt.tokEmbed.length; i++) expect(Math.abs(m.weights.tokEmbed[i] - wt.tokEmbed[i])).toBeLessThanOrEqual(2 ** -8 * Math.abs(wt.tokEmbed[i]));
  });

  it('truncated weights, extra tensors, wrong dtype sizes and Inf values are named', async () => {
    const files = writeHfModel(cfg, w);
    const st = files['model.safetensors'];
    await expect(loadHfModel(asSources({ ...files, 'model.safetensors': st.subarray(0, st.length - 100) }))).rejects.toThrow(/model\.safetensors: tensors need \d+ bytes of data but the file has \d+: truncated/);
    // an extra tensor (a bias LLaMA does not have)
    const src = bytesSource('model.safetensors', st);
    const h = await readSafetensorsHeader(src);
    const all = await Promise.all([...h.tensors.values()].map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorF32(src, h, t.name) })));
    const extra = writeSafetensors([...all, { name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [16], data: new Float32Array(16) }]);
    await expect(loadHfModel(asSources({ ...files, 'model.safetensors': extra }))).rejects.toThrow(/model\.safetensors: bias tensors model\.layers\.0\.self_attn\.q_proj\.bias are not supported/);
    const extra2 = writeSafetensors([...all, { name: 'model.layers.0.mlp.gate_proj.bias', dtype: 'F32', shape: [24], data: new Float32Array(24) }, { name: 'model.layers.1.self_attn.o_proj.bias', dtype: 'F32', shape: [16], data: new Float32Array(16) }]);
    await expect(loadHfModel(asSources({ ...files, 'model.safetensors': extra2 }))).rejects.toThrow(/model\.safetensors: bias tensors model\.layers\.0\.mlp\.gate_proj\.bias, model\.layers\.1\.self_attn\.o_proj\.bias are not supported .*attention_bias \/ mlp_bias/);
    const extra3 = writeSafetensors([...all, { name: 'model.layers.0.self_attn.q_norm.weight', dtype: 'F32', shape: [16], data: new Float32Array(16) }]);
    await expect(loadHfModel(asSources({ ...files, 'model.safetensors': extra3 }))).rejects.toThrow(/model\.safetensors: unexpected tensors model\.layers\.0\.self_attn\.q_norm\.weight/);
    // a value too large for F16 becomes Inf: reported by tensor and index
    const big = randomWeights(cfg, 11);
    big.finalNorm[3] = 1e6;
    await expect(loadHfModel(asSources(writeHfModel(cfg, big, { dtype: 'F16' })))).rejects.toThrow(/model\.safetensors: tensor "model\.norm\.weight" has a non-finite value \(Infinity\) at index 3/);
    // no weights at all
    await expect(loadHfModel(asSources({ 'config.json': files['config.json'] }))).rejects.toThrow(/no \.safetensors file among the model files/);
    // the writer checks sizes against the config too
    expect(() => writeHfModel({ ...cfg, dim: 32, nHeads: 4 }, w)).toThrow(/writeHfModel: "model\.embed_tokens\.weight" has 176 values, config implies \[11, 32\]/);
  });

  it('a tokenizer.json travels with the folder', async () => {
    const files = writeHfModel(cfg, w, { tokenizerJson: '{"model": {"type": "BPE"}}' });
    expect((await loadHfModel(asSources(files))).tokenizerJson).toBe('{"model": {"type": "BPE"}}');
  });
});
