// Hostile and broken safetensors / HF model folders: each failure names the file and the problem.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../model/config';
import { hfConfigJson, loadHfModel, writeHfModel, type HfFiles } from './hf';
import { DTYPE_BYTES, readSafetensorsHeader, readTensor, readTensorBytes, readTensorF32, writeSafetensors, writeSafetensorsParts, encodeFloats } from './safetensors';
import { blobSource, bytesSource } from './source';
import { fileSource } from './node-source';

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
    await expect(hdr(raw('[1,2]', 0))).rejects.toThrow(/model\.safetensors: header does not start with '\{'/);
    await expect(hdr(raw('{"w": 3}', 0))).rejects.toThrow(/model\.safetensors: tensor "w" has no description object/);
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

describe('safetensors: more of the reference rules, dtypes, writer layout, byte sources', () => {
  it('header bytes that are not UTF-8, metadata that is not a string map, shapes that overflow', async () => {
    const bad = raw('{}', 0);
    bad[9] = 0xff;
    await expect(hdr(bad)).rejects.toThrow(/model\.safetensors: header is not valid UTF-8/);
    await expect(hdr(raw({ __metadata__: { a: 1 } }, 0))).rejects.toThrow(/model\.safetensors: __metadata__ must map strings to strings/);
    await expect(hdr(raw({ __metadata__: ['x'] }, 0))).rejects.toThrow(/__metadata__ must map strings to strings/);
    await expect(hdr(raw({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 20], data_offsets: [0, 4] } }, 4))).rejects.toThrow(/model\.safetensors: tensor "w" shape \[1099511627776, 1048576\] overflows/);
    await expect(hdr(raw({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 4] } }, 4))).rejects.toThrow(/tensor "w" has an invalid shape \[2,-1\]/);
    await expect(hdr(raw({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4))).rejects.toThrow(/tensor "w" has invalid data_offsets \[4,0\]/);
    await expect(hdr(raw({ w: { dtype: 'F4', shape: [2], data_offsets: [0, 1] } }, 1))).rejects.toThrow(/tensor "w" has sub-byte dtype F4/);
    await expect(hdr(raw({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8))).rejects.toThrow(/model\.safetensors: 4 bytes after the last tensor belong to no tensor/);
  });

  it('scalars and empty tensors; integer tensors read raw; float reads refuse them by name', async () => {
    const bytes = writeSafetensors([
      { name: 'scalar', dtype: 'F32', shape: [], data: Float32Array.of(2.5) },
      { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
      { name: 'codes', dtype: 'U32', shape: [2], data: Uint32Array.of(0xdeadbeef, 7) },
      { name: 'zeros', dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
      { name: 'idx', dtype: 'I32', shape: [1], data: Int32Array.of(-5) },
    ]);
    const src = bytesSource('q.safetensors', bytes);
    const h = await readSafetensorsHeader(src);
    expect([...(await readTensor(src, h, 'scalar'))]).toEqual([2.5]);
    expect((await readTensorF32(src, h, 'empty')).length).toBe(0);
    expect([...new Uint32Array((await readTensorBytes(src, h, 'codes')).buffer)]).toEqual([0xdeadbeef, 7]);
    expect([...(await readTensorBytes(src, h, 'zeros'))]).toEqual([1, 2, 3]);
    expect([...new Int32Array((await readTensorBytes(src, h, 'idx')).buffer)]).toEqual([-5]);
    await expect(readTensorF32(src, h, 'codes')).rejects.toThrow(/q\.safetensors: tensor "codes" is U32, expected a float dtype/);
    await expect(readTensorF32(src, h, 'nope')).rejects.toThrow(/q\.safetensors: no tensor named "nope"/);
  });

  it('F16 / BF16 / F8 conversions at the edges', async () => {
    const x = Float32Array.of(Infinity, -Infinity, NaN, 65504, 65520, 2 ** -24, 2 ** -25, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, 1 + 2 ** -11, 1 + 3 * 2 ** -11);
    const f16 = new Uint16Array(encodeFloats(x, 'F16').buffer);
    expect([...f16].map((v) => v.toString(16))).toEqual(['7c00', 'fc00', '7e00', '7bff', '7c00', '1', '0', '3c04', '3c0c', '8000', '3c00', '3c02']); // last two: ties to even
    const bf16 = new Uint16Array(encodeFloats(x, 'BF16').buffer);
    expect(bf16[2] & 0x7fff).toBeGreaterThan(0x7f80); // NaN stays NaN
    expect(bf16[7].toString(16)).toBe('3f80'); // 1 + 2^-8 ties to even -> 1
    expect(bf16[8].toString(16)).toBe('3f82'); // 1 + 3·2^-8 ties to even -> 1 + 2^-6
    const f8 = Uint8Array.of(0x38, 0xb8, 0x7e, 0x7f, 0x01, 0x3c, 0x7b);
    const bytes = writeSafetensors([
      { name: 'e4m3', dtype: 'F8_E4M3', shape: [7], data: f8 },
      { name: 'e5m2', dtype: 'F8_E5M2', shape: [7], data: f8 },
    ]);
    const src = bytesSource('f8.safetensors', bytes);
    const h = await readSafetensorsHeader(src);
    expect([...(await readTensorF32(src, h, 'e4m3'))]).toEqual([1, -1, 448, NaN, 2 ** -9, 1.5, 352]);
    expect([...(await readTensorF32(src, h, 'e5m2'))]).toEqual([0.5, -0.5, NaN, NaN, 2 ** -16, 1, 57344]);
  });

  it('writer: sorted by dtype size then name (every tensor aligned), header padded with spaces to 8', async () => {
    const bytes = writeSafetensors(
      [
        { name: 'z_u8', dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
        { name: 'b_f16', dtype: 'F16', shape: [1], data: encodeFloats(Float32Array.of(1), 'F16') },
        { name: 'a_f32', dtype: 'F32', shape: [1], data: Float32Array.of(1) },
        { name: 'c_f32', dtype: 'F32', shape: [1], data: Float32Array.of(2) },
      ],
      { who: 'test' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text.trimEnd().endsWith('}')).toBe(true);
    expect(/^ *$/.test(text.slice(text.trimEnd().length))).toBe(true);
    const h = await readSafetensorsHeader(bytesSource('w.safetensors', bytes));
    const order = [...h.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => t.name);
    expect(order).toEqual(['a_f32', 'c_f32', 'b_f16', 'z_u8']);
    for (const t of h.tensors.values()) expect((h.dataStart + t.begin) % DTYPE_BYTES[t.dtype]).toBe(0);
    const kept = await readSafetensorsHeader(bytesSource('k', writeSafetensors([{ name: 'z', dtype: 'U8', shape: [1], data: Uint8Array.of(1) }, { name: 'a', dtype: 'U8', shape: [1], data: Uint8Array.of(2) }], undefined, { sort: false })));
    expect(kept.tensors.get('z')!.begin).toBe(0);
    expect(() => writeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(2) }])).toThrow(/tensor "w" has 8 bytes, F32 \[3\] needs 12/);
    expect(() => writeSafetensors([{ name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array(1) }, { name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array(1) }])).toThrow(/tensor "w" given twice/);
    const { parts, size } = writeSafetensorsParts([{ name: 'a', dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }]);
    expect(parts.reduce((s, p) => s + p.length, 0)).toBe(size);
  });

  it('reads through a Node file handle and through a Blob, in slices', async () => {
    const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const bytes = writeSafetensors([{ name: 'x', dtype: 'BF16', shape: [10, 100], data: encodeFloats(x, 'BF16') }, { name: 'y', dtype: 'F32', shape: [1000], data: x }]);
    const dir = mkdtempSync(join(tmpdir(), 'quench-st-'));
    try {
      const path = join(dir, 'model.safetensors');
      writeFileSync(path, bytes);
      const fsrc = await fileSource(path);
      const bsrc = blobSource(new Blob([bytes]), 'model.safetensors');
      for (const src of [fsrc, bsrc]) {
        expect(src.name).toBe('model.safetensors');
        expect(src.size).toBe(bytes.length);
        const h = await readSafetensorsHeader(src);
        expect([...(await readTensorF32(src, h, 'y'))]).toEqual([...x]);
        const xb = await readTensorF32(src, h, 'x');
        for (let i = 0; i < 1000; i++) expect(Math.abs(xb[i] - x[i])).toBeLessThanOrEqual(2 ** -8 * Math.abs(x[i]));
        await expect(src.read(bytes.length - 2, 4)).rejects.toThrow(/model\.safetensors: read of 4 bytes at \d+ is past the end/);
      }
      await fsrc.close?.();
      // a truncated file on disk is caught before any tensor is read
      writeFileSync(path, bytes.subarray(0, bytes.length - 10));
      const cut = await fileSource(path);
      await expect(readSafetensorsHeader(cut)).rejects.toThrow(/model\.safetensors: tensors need 6000 bytes of data but the file has 5990: truncated/);
      await cut.close?.();
      await expect(fileSource(join(dir, 'absent.safetensors'))).rejects.toThrow(/absent\.safetensors: no such file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
