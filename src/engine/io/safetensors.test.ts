// Hostile and broken safetensors / HF model folders: each failure names the file and the problem.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../model/config';
import { hfConfigJson, loadHfModel, writeHfModel, type HfFiles } from './hf';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, encodeFloats } from './safetensors';
import { bytesSource } from './source';

function raw(header: unknown, dataLen: number, headerLenOverride?: number): Uint8Array {
  const hb = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + hb.length + dataLen);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLenOverride ?? hb.length), true);
  out.set(hb, 8);
  return out;
}
const hdr = (bytes: Uint8Array) => readSafetensorsHeader(bytesSource('model.safetensors', bytes));

describe('safetensors reader validation', () => {
  it('round-trips F32, F16 and BF16', async () => {
    const x = Float32Array.from([0, 1, -2.5, 3.14159, 1e-3, 65504, -1e-8]);
    const bytes = writeSafetensors([
      { name: 'a', dtype: 'F32', shape: [7], data: x },
      { name: 'b', dtype: 'F16', shape: [7], data: encodeFloats(x, 'F16') },
      { name: 'c', dtype: 'BF16', shape: [7], data: encodeFloats(x, 'BF16') },
    ], { format: 'pt' });
    expect((8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))) % 8).toBe(0);
    const src = bytesSource('m.safetensors', bytes);
    const h = await readSafetensorsHeader(src);
    expect(h.metadata.format).toBe('pt');
    expect([...(await readTensorF32(src, h, 'a'))]).toEqual([...x]);
    const f16 = await readTensorF32(src, h, 'b');
    const bf16 = await readTensorF32(src, h, 'c');
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs(f16[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11 + 6e-8);
      expect(Math.abs(bf16[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -8);
    }
  });
  it('truncated: shorter than the header length', async () => {
    await expect(hdr(new Uint8Array(5))).rejects.toThrow(/model\.safetensors: 5 bytes is too short/);
    const good = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
    await expect(hdr(good.subarray(0, good.length - 3))).rejects.toThrow(/model\.safetensors: tensors need 16 bytes of data but the file has 13: truncated/);
    await expect(hdr(good.subarray(0, 20))).rejects.toThrow(/model\.safetensors: header length \d+ runs past the end of the file/);
  });
  it('oversized header length', async () => {
    await expect(hdr(raw('{}', 0, 2 ** 40))).rejects.toThrow(/model\.safetensors: header length 1099511627776 is larger than the 100 MB limit/);
  });
  it('header not JSON, or not an object', async () => {
    await expect(hdr(raw('{"a": [1, 2', 0))).rejects.toThrow(/model\.safetensors: header is not valid JSON/);
    await expect(hdr(raw('[1,2]', 0))).rejects.toThrow(/model\.safetensors: header is not a JSON object/);
  });
  it('unknown dtype', async () => {
    await expect(hdr(raw({ w: { dtype: 'F8_E9', shape: [1], data_offsets: [0, 1] } }, 1))).rejects.toThrow(/model\.safetensors: tensor "w" has unknown dtype "F8_E9"/);
  });
  it('byte length disagrees with dtype × shape', async () => {
    await expect(hdr(raw({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 20))).rejects.toThrow(/tensor "w" \(F32 \[2, 3\]\) should take 24 bytes but its data_offsets \[0, 20\] span 20/);
  });
  it('overlapping tensors and holes', async () => {
    const h = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    await expect(hdr(raw(h, 12))).rejects.toThrow(/model\.safetensors: tensor "b" \[4, 12\) overlaps tensor "a"/);
    const g = { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
    await expect(hdr(raw(g, 12))).rejects.toThrow(/gap in the data section before tensor "b"/);
  });
});

describe('HF model folder validation', () => {
  const cfg = tinyConfig();
  const files = (over: Record<string, Uint8Array> = {}): HfFiles => {
    const f = { ...writeHfModel(cfg, randomWeights(cfg, 1)), ...over };
    return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, bytesSource(k, v)]));
  };
  it('loads a valid folder with identical weights', async () => {
    const w = randomWeights(cfg, 1);
    const m = await loadHfModel(files());
    expect(m.config).toEqual(cfg);
    expect([...m.weights.layers[1].wk]).toEqual([...w.layers[1].wk]);
  });
  it('a missing tensor is named', async () => {
    const w = randomWeights(cfg, 1);
    const all = writeHfModel(cfg, w);
    const src = bytesSource('model.safetensors', all['model.safetensors']);
    const h = await readSafetensorsHeader(src);
    const kept = [...h.tensors.values()].filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight');
    const bytes = writeSafetensors(await Promise.all(kept.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await readTensorF32(src, h, t.name) }))));
    await expect(loadHfModel(files({ 'model.safetensors': bytes }))).rejects.toThrow(/model\.safetensors: missing tensors model\.layers\.1\.mlp\.up_proj\.weight/);
  });
  it('shapes that disagree with config.json', async () => {
    const bad = new TextEncoder().encode(hfConfigJson({ ...cfg, hiddenDim: 32 }));
    await expect(loadHfModel(files({ 'config.json': bad }))).rejects.toThrow(/model\.safetensors: tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[24, 16\] but config\.json implies \[32, 16\]/);
  });
  it('a non-LLaMA architecture says what it is', async () => {
    const gpt2 = new TextEncoder().encode(JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 16 }));
    await expect(loadHfModel(files({ 'config.json': gpt2 }))).rejects.toThrow(/config\.json: not a LLaMA-family model: architectures \["GPT2LMHeadModel"\], model_type "gpt2"/);
  });
  it('NaN weights are reported by tensor', async () => {
    const w = randomWeights(cfg, 1);
    w.layers[0].wv[5] = NaN;
    const f = Object.fromEntries(Object.entries(writeHfModel(cfg, w)).map(([k, v]) => [k, bytesSource(k, v)]));
    await expect(loadHfModel(f)).rejects.toThrow(/model\.safetensors: tensor "model\.layers\.0\.self_attn\.v_proj\.weight" has a non-finite value \(NaN\) at index 5/);
  });
  it('config.json missing', async () => {
    const f = files();
    delete f['config.json'];
    await expect(loadHfModel(f)).rejects.toThrow(/config\.json is missing/);
  });
});

describe('sharded HF checkpoints and GPU limits', () => {
  it('loads model-0000k-of-0000n shards through model.safetensors.index.json, and names a missing shard', async () => {
    const cfg = tinyConfig();
    const w = randomWeights(cfg, 8);
    const one = writeHfModel(cfg, w);
    const src = bytesSource('model.safetensors', one['model.safetensors']);
    const h = await readSafetensorsHeader(src);
    const names = [...h.tensors.keys()];
    const half = Math.ceil(names.length / 2);
    const shardOf = async (ns: string[]) => writeSafetensors(await Promise.all(ns.map(async (n) => ({ name: n, dtype: 'F32' as const, shape: h.tensors.get(n)!.shape, data: await readTensorF32(src, h, n) }))));
    const s1 = 'model-00001-of-00002.safetensors', s2 = 'model-00002-of-00002.safetensors';
    const index = { metadata: {}, weight_map: Object.fromEntries(names.map((n, i) => [n, i < half ? s1 : s2])) };
    const files: HfFiles = {
      'config.json': bytesSource('config.json', one['config.json']),
      'model.safetensors.index.json': bytesSource('model.safetensors.index.json', new TextEncoder().encode(JSON.stringify(index))),
      [s1]: bytesSource(s1, await shardOf(names.slice(0, half))),
      [s2]: bytesSource(s2, await shardOf(names.slice(half))),
    };
    const m = await loadHfModel(files);
    expect([...m.weights.layers[1].wDown]).toEqual([...w.layers[1].wDown]);
    delete files[s2];
    await expect(loadHfModel(files)).rejects.toThrow(/model\.safetensors\.index\.json names shard "model-00002-of-00002\.safetensors", which is missing/);
  });
  it('a tensor larger than the storage binding limit is refused with its name, not a crash', async () => {
    const { testGpu } = await import('../testing');
    const gpu = await testGpu();
    const limit = gpu.device.limits.maxStorageBufferBindingSize;
    expect(() => gpu.tensor('model.embed_tokens', [Math.ceil(limit / 4) + 16])).toThrow(/tensor "model\.embed_tokens" .* needs \d+ bytes, more than this adapter's maxStorageBufferBindingSize/);
    expect(gpu.liveBytes).toBe(0);
  });
});
