// A quantized folder round-trips: the studio loads its own export back with identical logits.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../model/config';
import { LlamaModel } from '../model/llama';
import { dequantizedWeights, quantizeWeights } from '../quant/ptq';
import { dequantizeHost } from '../format/pack';
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
  it('a packed token embedding (8- and 4-bit) round-trips, is smaller, and runs as its dequantized values', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ dim: 40, hiddenDim: 44, vocabSize: 37 });
    const w = randomWeights(cfg, 3, 0.5);
    const tokens = new Uint32Array([1, 5, 9, 2, 33, 7, 36]);
    const logits = async (m: LlamaModel) => {
      const acts = m.activations(1, tokens.length, false);
      gpu.write(acts.tokens, tokens);
      m.forward(acts);
      return gpu.readF32(acts.logits);
    };
    const plain = writeQuantizedHfModel(cfg, w, quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false }));
    for (const bits of [8, 4] as const) {
      const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false, embedding: { bits, group: 16 } });
      expect(qm.embedding?.N).toBe(37);
      const files = writeQuantizedHfModel(cfg, w, qm);
      // codes + per-group scales/zeros replace 4 bytes a value (8-bit, groups of 16: 63 of 160 bytes a row)
      expect(files['model.safetensors'].byteLength).toBeLessThan(plain['model.safetensors'].byteLength - 37 * 40 * 4 * 0.5);
      const back = await loadHfModel(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, bytesSource(k, v)])));
      expect([...back.quantized!.embedding!.codes]).toEqual([...qm.embedding!.codes]);
      // the loaded weights hold the dequantized embedding: exactly what the codes say
      const deq = dequantizeHost(qm.embedding!);
      expect([...back.weights.tokEmbed]).toEqual([...deq]);
      const err = Math.max(...w.tokEmbed.map((v, i) => Math.abs(v - deq[i])));
      expect(err).toBeGreaterThan(0); // really quantized
      expect(err).toBeLessThan(bits === 8 ? 0.01 : 0.2);
      // the model from the original weights + qm equals the model from the loaded folder, and both
      // equal a dense model whose embedding is the dequantized table
      const a = LlamaModel.fromWeights(gpu, cfg, w, { quantized: qm });
      const b = LlamaModel.fromWeights(gpu, back.config, back.weights, { quantized: back.quantized });
      const c = LlamaModel.fromWeights(gpu, cfg, { ...dequantizedWeights(w, qm) }, { quantized: { ...qm, embedding: undefined } });
      const la = await logits(a);
      expect([...(await logits(b))]).toEqual([...la]);
      expect([...(await logits(c))]).toEqual([...la]);
      a.free();
      b.free();
      c.free();
    }
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
