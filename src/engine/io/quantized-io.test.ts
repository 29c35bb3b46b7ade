// A quantized folder round-trips: the studio loads its own export back with identical logits.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../model/config';
import { LlamaModel } from '../model/llama';
import { quantizeWeights } from '../quant/ptq';
import { loadHfModel, writeQuantizedHfModel } from './hf';
import { bytesSource } from './source';
import { testGpu } from '../testing';

describe('quantized safetensors export', () => {
  it('loads back with identical codes and identical logits', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 32, hiddenDim: 44, vocabSize: 40 });
    const w = randomWeights(cfg, 2, 0.5);
    const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: true });
    const files = writeQuantizedHfModel(cfg, w, qm);
    const back = await loadHfModel(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, bytesSource(k, v)])));
    expect(back.quantized?.ptq.bits).toBe(4);
    expect([...back.quantized!.packed[1].down!.codes]).toEqual([...qm.packed[1].down!.codes]);
    const tokens = new Uint32Array([1, 5, 9, 2, 33, 7]);
    const logits = async (m: LlamaModel) => {
      const acts = m.activations(1, tokens.length, false);
      gpu.write(acts.tokens, tokens);
      m.forward(acts);
      return gpu.readF32(acts.logits);
    };
    const a = LlamaModel.fromWeights(gpu, cfg, w, { quantized: qm });
    const b = LlamaModel.fromWeights(gpu, back.config, back.weights, { quantized: back.quantized });
    expect([...(await logits(b))]).toEqual([...(await logits(a))]);
    a.free();
    b.free();
  });
  it('rejects a foreign quantization method and corrupt zero points clearly', async () => {
    const cfg = tinyConfig({ dim: 32, hiddenDim: 44, vocabSize: 40 });
    const w = randomWeights(cfg, 2, 0.5);
    const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false });
    const files = writeQuantizedHfModel(cfg, w, qm);
    const cfgJson = JSON.parse(new TextDecoder().decode(files['config.json']));
    cfgJson.quantization_config.quant_method = 'awq';
    const f2 = { ...files, 'config.json': new TextEncoder().encode(JSON.stringify(cfgJson)) };
    await expect(loadHfModel(Object.fromEntries(Object.entries(f2).map(([k, v]) => [k, bytesSource(k, v)])))).rejects.toThrow(/config\.json: quantization_config with quant_method "awq" is not supported/);
  });
});
