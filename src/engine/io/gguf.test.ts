// GGUF writer + reader on tiny random models (no shared data, no GPU): round trips per tensor
// type, the header cross-checked by an independent parser (@huggingface/gguf), and malformed files
// (every one must give an Error naming the file, quickly: never a crash or a hang).
// llama.cpp itself checks the files in gguf-llama.test.ts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gguf } from '@huggingface/gguf';
import { randomWeights, tinyConfig, type LlamaConfig, type LlamaWeights } from '../model/config';
import { dequantizedWeights, quantizeWeights } from '../quant/ptq';
import { rng } from '../testing';
import { bytesSource } from './source';
import { concatParts, encodeF16, encodeQ8_0, exportGguf, ggufVocabFromTokenizerJson, writeGgufParts, type GgufKv } from './gguf-write';
import { dequantizeGgml, GGML_TYPE, loadGgufModel, readGgufHeader, roundF16, f32ToF16, f16ToF32 } from './gguf';
import { tokenizerJsonFromPieces, HfBpeTokenizer } from './hf-tokenizer';

// K multiple of 32 everywhere so every projection can keep its codes
const cfg: LlamaConfig = tinyConfig({ dim: 64, hiddenDim: 96, nHeads: 4, nKvHeads: 2, vocabSize: 40, tiedEmbeddings: false });

function vocab() {
  const pieces = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)].slice(0, 3 + 20);
  for (const p of ['\u2581', 'a', 'b', 'c', '\u2581a', 'ab', '\u2581ab', 'abc', '\u2581abc', 'ba', 'cab', 'bb', '\u2581b', 'cc', 'ca', 'bc', 'ac']) pieces.push(p);
  const json = tokenizerJsonFromPieces(pieces, Float32Array.from(pieces, (_, i) => -i));
  return { json, v: ggufVocabFromTokenizerJson(json) };
}

async function load(bytes: Uint8Array, name = 'm.gguf') {
  return loadGgufModel(bytesSource(name, bytes));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function allTensors(w: LlamaWeights): Float32Array[] {
  return [w.tokEmbed, ...w.layers.flatMap((l) => [l.attnNorm, l.wq, l.wk, l.wv, l.wo, l.mlpNorm, l.wGate, l.wUp, l.wDown]), w.finalNorm, ...(w.lmHead ? [w.lmHead] : [])];
}

describe('GGUF round trip', () => {
  const w = randomWeights(cfg, 7, 0.5);
  it('fp16 conversion rounds to nearest even, subnormals and overflow included', () => {
    for (const x of [0, 1, -2.5, 65504, 1e-7, 6.1e-5, 3.0517578125e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11]) {
      const h = f32ToF16(x);
      expect(Math.abs(f16ToF32(h) - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
    }
    expect(f16ToF32(f32ToF16(1 + 2 ** -11))).toBe(1); // tie → even
    expect(f16ToF32(f32ToF16(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(f16ToF32(f32ToF16(70000))).toBe(Infinity);
  });

  it('F32 is exact (q/k permuted to llama.cpp RoPE rows and back), F16 rounds each value', async () => {
    const { v, json } = vocab();
    const b32 = concatParts(exportGguf(cfg, w, { floatType: 'F32', vocab: v }).parts);
    const m = await load(b32);
    expect(m.config).toEqual({ ...cfg, normEps: Math.fround(cfg.normEps) });
    allTensors(m.weights).forEach((t, i) => expect(maxDiff(t, allTensors(w)[i])).toBe(0));
    expect(m.dtypes).toEqual(['F32']);
    // the tokenizer survives: same encoding as the tokenizer.json it came from
    const ours = new HfBpeTokenizer(json), back = new HfBpeTokenizer(JSON.parse(m.tokenizerJson!));
    for (const s of ['abc cab', ' a bb  cc', 'zz\u00e9!']) expect(back.encode(s)).toEqual(ours.encode(s));
    const m16 = await load(concatParts(exportGguf(cfg, w, { floatType: 'F16', vocab: v }).parts));
    allTensors(m16.weights).forEach((t, i) => {
      const src = allTensors(w)[i];
      expect(maxDiff(t, src.length === cfg.dim ? src : Float32Array.from(src, roundF16))).toBe(0); // norms stay F32
    });
  });

  for (const [type, bits, sym, group] of [['Q4_1', 4, false, 32], ['Q4_0', 4, true, 32], ['Q8_0', 8, true, 32], ['Q4_1', 4, false, 64], ['Q8_0', 8, false, 32]] as const) {
    it(`${bits}-bit ${sym ? 'sym' : 'asym'} group ${group} → ${type}: codes kept, only fp16 scales differ, as measured`, async () => {
      const qm = quantizeWeights(cfg, w, { bits, group, sym, clipSearch: false });
      const dq = dequantizedWeights(w, qm);
      const g = exportGguf(cfg, dq, { quantized: qm });
      expect(g.report.projectionTypes).toEqual({ [type]: cfg.nLayers * 7 });
      const m = await load(concatParts(g.parts));
      expect(m.dtypes.sort()).toEqual(['F16', 'F32', type].sort());
      let max = 0, sum = 0, n = 0;
      m.weights.layers.forEach((l, li) => {
        for (const k of ['wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'] as const) {
          const ref = dq.layers[li][k];
          for (let i = 0; i < ref.length; i++) {
            const d = Math.abs(l[k][i] - ref[i]);
            max = Math.max(max, d);
            sum += d;
            n++;
          }
          // fp16 scales: at most a few fp16 ulps of the block's largest value
          let amax = 0;
          for (const x of ref) amax = Math.max(amax, Math.abs(x));
          expect(maxDiff(l[k], ref)).toBeLessThanOrEqual(amax * (bits === 8 && !sym ? 1 / 127 : 2 ** -9));
        }
      });
      expect(max).toBeCloseTo(g.report.packed!.maxAbsError, 6);
      expect(sum / n).toBeCloseTo(g.report.packed!.meanAbsError, 6);
      expect(max).toBeGreaterThan(0);
      // the file says so too
      const h = await readGgufHeader(bytesSource('m.gguf', concatParts(g.parts)));
      expect(h.metadata.get('quench.export.scale_rounding.max_abs_error')).toBeCloseTo(g.report.packed!.maxAbsError, 6);
    });
  }

  it('rows not a multiple of 32 and 3-bit projections fall back to F16 of our dequantized values', async () => {
    const c2 = tinyConfig({ dim: 64, hiddenDim: 100, nHeads: 4, nKvHeads: 4, vocabSize: 30, tiedEmbeddings: true });
    const w2 = randomWeights(c2, 3);
    const qm = quantizeWeights(c2, w2, { bits: 4, group: 32, sym: false, clipSearch: false });
    const dq = dequantizedWeights(w2, qm);
    const g = exportGguf(c2, dq, { quantized: qm });
    expect(g.report.projectionTypes).toEqual({ Q4_1: 12, F16: 2 }); // down has K = 100
    const m = await load(concatParts(g.parts));
    expect(m.config.tiedEmbeddings).toBe(true);
    expect(maxDiff(m.weights.layers[1].wDown, Float32Array.from(dq.layers[1].wDown, roundF16))).toBe(0);
    const q3 = quantizeWeights(c2, w2, { bits: 3, group: 32, sym: false, clipSearch: false });
    expect(exportGguf(c2, dequantizedWeights(w2, q3), { quantized: q3 }).report.projectionTypes).toEqual({ F16: 14 });
  });

  it('Q8_0 encoder is ggml\'s reference quantizer; its dequantization is within half a step', () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * (i < 32 ? 1 : 1e-3));
    const back = dequantizeGgml(GGML_TYPE.Q8_0, encodeQ8_0(x), 64);
    for (let i = 0; i < 64; i++) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual((i < 32 ? 1 : 1e-3) / 127 / 2 * 1.01 + 1e-7);
  });

  it('K-quant dequantizers follow ggml\'s formulas (hand-built blocks)', () => {
    // Q6_K: d = 1, scales[s] = s + 1, every 6-bit code 33 (ql low nibbles 1, high bits 2) → (33 − 32)·scale
    const q6 = new Uint8Array(210);
    q6.fill(0x11, 0, 128); // ql: low and high nibble 1
    q6.fill(0xaa, 128, 192); // qh: each 2-bit field 2 → +32
    for (let s = 0; s < 16; s++) q6[192 + s] = s + 1;
    new DataView(q6.buffer).setUint16(208, f32ToF16(1), true);
    const y6 = dequantizeGgml(GGML_TYPE.Q6_K, q6, 256);
    // value index → scale index: half h (128 values), l (0..31), quarter r: is = h*8 + (l>>4) + 2r
    for (let i = 0; i < 256; i++) {
      const h = i >> 7, r = (i & 127) >> 5, l = i & 31;
      expect(y6[i]).toBe(h * 8 + (l >> 4) + 2 * r + 1);
    }
    // Q4_K: d = 2, dmin = 1; sub-block scales 1..8 and mins 0 in the 6-bit packing (j < 4 direct)
    const q4 = new Uint8Array(144);
    const dv = new DataView(q4.buffer);
    dv.setUint16(0, f32ToF16(2), true);
    dv.setUint16(2, f32ToF16(1), true);
    const sc = [1, 2, 3, 4, 5, 6, 7, 8], mn = [1, 0, 0, 0, 0, 0, 0, 3];
    for (let j = 0; j < 4; j++) {
      q4[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
      q4[4 + j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
      q4[4 + j + 8] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
    }
    q4.fill(0x53, 16); // low nibble 3, high 5
    const y4 = dequantizeGgml(GGML_TYPE.Q4_K, q4, 256);
    for (let i = 0; i < 256; i++) {
      const sub = i >> 5; // sub-blocks alternate low (even) / high (odd) nibbles
      expect(y4[i]).toBe(2 * sc[sub] * (sub % 2 ? 5 : 3) - mn[sub]);
    }
  });

  it('the header agrees with @huggingface/gguf\'s parser', async () => {
    const { v } = vocab();
    const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false });
    const bytes = concatParts(exportGguf(cfg, dequantizedWeights(w, qm), { quantized: qm, vocab: v }).parts);
    const dir = mkdtempSync(join(tmpdir(), 'gguf-'));
    writeFileSync(join(dir, 'm.gguf'), bytes);
    const theirs = await gguf(join(dir, 'm.gguf'), { allowLocalFile: true });
    const ours = await readGgufHeader(bytesSource('m.gguf', bytes));
    expect(theirs.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype, Number(t.offset)])).toEqual([...ours.tensors.values()].map((t) => [t.name, t.dims, t.type, t.offset]));
    const md = theirs.metadata as unknown as Record<string, unknown>;
    for (const [k, val] of ours.metadata) {
      if (k === 'tokenizer.ggml.scores' || typeof val === 'number') expect(md[k], k).toEqual(typeof val === 'number' ? val : (val as number[]).map(Number));
      else expect(md[k], k).toEqual(val);
    }
    expect(md.version).toBe(3);
  });
});

// ---- malformed files ----

function tinyFile(extraKv: GgufKv[] = []): Uint8Array {
  const kv: GgufKv[] = [{ key: 'general.architecture', type: 'string', value: 'llama' }, ...extraKv];
  return concatParts(writeGgufParts(kv, [
    { name: 'a.weight', dims: [32, 2], type: GGML_TYPE.F16, data: encodeF16(new Float32Array(64).fill(0.5)) },
    { name: 'b.weight', dims: [32], type: GGML_TYPE.F32, data: new Uint8Array(128) },
  ]).parts);
}

/** byte offset of the u32 type field of tensor `name` in the header */
function typeFieldOf(bytes: Uint8Array, name: string, nDims: number): number {
  const needle = new TextEncoder().encode(name);
  for (let i = 0; i < bytes.length; i++) if (needle.every((c, k) => bytes[i + k] === c)) return i + needle.length + 4 + 8 * nDims;
  throw new Error('not found');
}

describe('malformed GGUF', () => {
  const ok = tinyFile();
  const expectBad = async (bytes: Uint8Array, re: RegExp) => {
    await expect(readGgufHeader(bytesSource('bad.gguf', bytes))).rejects.toThrow(re);
    await expect(readGgufHeader(bytesSource('bad.gguf', bytes))).rejects.toThrow(/^bad\.gguf: /);
  };
  const patch = (at: number, f: (dv: DataView) => void, from = ok) => {
    const b = from.slice();
    f(new DataView(b.buffer, at));
    return b;
  };

  it('the unpatched file reads', async () => {
    const h = await readGgufHeader(bytesSource('ok.gguf', ok));
    expect([...h.tensors.keys()]).toEqual(['a.weight', 'b.weight']);
  });
  it('empty, and truncated anywhere', async () => {
    await expectBad(new Uint8Array(0), /shorter than the 24-byte GGUF header/);

    for (let cut = 24; cut < ok.length; cut += 7) await expectBad(ok.slice(0, cut), /truncated|cannot fit|claims|impossible|runs past the end of the file/);
  });
  it('bad magic, versions 1 / 99, big-endian', async () => {
    await expectBad(patch(0, (d) => d.setUint32(0, 0x4c4c4747, true)), /bad magic "GGLL"/);
    await expectBad(patch(4, (d) => d.setUint32(0, 1, true)), /version 1/);
    await expectBad(patch(4, (d) => d.setUint32(0, 99, true)), /unsupported GGUF version 99/);
    await expectBad(patch(4, (d) => d.setUint32(0, 3, false)), /big-endian/);
  });
  it('absurd counts and lengths are refused before allocating', async () => {
    await expectBad(patch(8, (d) => d.setBigUint64(0, 1n << 40n, true)), /tensor_count 1099511627776 is impossible/);
    await expectBad(patch(16, (d) => d.setBigUint64(0, 1n << 40n, true)), /metadata_kv_count \d+ is impossible/);
    await expectBad(patch(24, (d) => d.setBigUint64(0, 1n << 50n, true)), /claims \d+ bytes/);
    await expectBad(patch(8, (d) => d.setBigUint64(0, 0xffffffffffffffffn, true)), /beyond any file size/);
    const arr = tinyFile([{ key: 'x', type: 'array', itemType: 'u32', value: [1, 2, 3] }]);
    const at = typeFieldOf(arr, 'x', 0) + 4; // key "x", u32 type 9, u32 item type, then the u64 length
    await expectBad(patch(at, (d) => d.setBigUint64(0, 1n << 40n, true), arr), /array of \d+ items cannot fit/);
    await expectBad(patch(at - 4, (d) => d.setUint32(0, 77, true), arr), /unknown array item type 77/);
  });
  it('unknown and unsupported tensor types', async () => {
    const t = typeFieldOf(ok, 'a.weight', 2);
    await expectBad(patch(t, (d) => d.setUint32(0, 99, true)), /"a\.weight" has ggml type unknown type 99/);
    await expectBad(patch(t, (d) => d.setUint32(0, 20, true)), /ggml type IQ4_NL, which Quench does not read/);
    await expectBad(patch(t - 16, (d) => d.setBigUint64(0, 16n, true), patch(t, (d) => d.setUint32(0, GGML_TYPE.Q8_0, true))), /"a\.weight" rows of 16 values are not a whole number of Q8_0 blocks \(32\)/);
  });
  it('offsets past the end, misaligned or overlapping; bad dims', async () => {
    const t = typeFieldOf(ok, 'b.weight', 1);
    await expectBad(patch(t + 4, (d) => d.setBigUint64(0, 1n << 20n, true)), /"b\.weight" .* runs past the end of the file/);
    await expectBad(patch(t + 4, (d) => d.setBigUint64(0, 8n, true)), /offset 8 is not a multiple of the alignment 32/);
    await expectBad(patch(t + 4, (d) => d.setBigUint64(0, 64n, true)), /overlaps "a\.weight"/);
    const a = typeFieldOf(ok, 'a.weight', 2);
    await expectBad(patch(a - 20, (d) => d.setUint32(0, 7, true)), /7 dimensions/);
    await expectBad(patch(a - 8, (d) => d.setBigUint64(0, 0n, true)), /zero dimension/);
    await expectBad(patch(a - 8, (d) => d.setBigUint64(0, 1n << 40n, true)), /runs past the end|absurd/);
  });
  it('a llama file with a missing tensor, or a gpt2 vocabulary without merges or with an unknown pre-tokenizer, is refused by name', async () => {
    const b = concatParts(exportGguf(cfg, randomWeights(cfg, 1), {}).parts);
    const h = await readGgufHeader(bytesSource('m.gguf', b));
    expect(h.tensors.size).toBe(3 + 9 * cfg.nLayers);
    const noArch = tinyFile().slice();
    await expect(loadGgufModel(bytesSource('t.gguf', noArch))).rejects.toThrow(/t\.gguf: .*no 2-D tensor "token_embd.weight"|t\.gguf: metadata/);
    const gpt2 = concatParts(writeGgufParts([{ key: 'general.architecture', type: 'string', value: 'llama' }, { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' }], []).parts);
    const { ggufTokenizerJson } = await import('./gguf');
    expect(() => ggufTokenizerJson({ file: 'g.gguf', metadata: new Map<string, unknown>([['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.tokens', ['a', 'b']]]) } as never)).toThrow(/g\.gguf: tokenizer.ggml.model is "gpt2" but tokenizer.ggml.merges is missing/);
    expect(() => ggufTokenizerJson({ file: 'g.gguf', metadata: new Map<string, unknown>([['tokenizer.ggml.model', 'gpt2'], ['tokenizer.ggml.tokens', ['a', 'b']], ['tokenizer.ggml.merges', ['a b']], ['tokenizer.ggml.pre', 'deepseek-llm']]) } as never)).toThrow(/g\.gguf: tokenizer.ggml.pre "deepseek-llm" is a byte-level pre-tokenizer Quench does not know/);
    expect(() => ggufTokenizerJson({ file: 'g.gguf', metadata: new Map<string, unknown>([['tokenizer.ggml.model', 'bert']]) } as never)).toThrow(/g\.gguf: tokenizer.ggml.model "bert" is not supported/);
    await expect(loadGgufModel(bytesSource('g.gguf', gpt2))).rejects.toThrow(/^g\.gguf: /);
  });
  it('random corruption: every outcome is a clean Error or a model, quickly', async () => {
    const r = rng(5);
    const b = concatParts(exportGguf(cfg, randomWeights(cfg, 1), { floatType: 'F16', vocab: vocab().v }).parts);
    const t0 = Date.now();
    let errors = 0;
    for (let k = 0; k < 300; k++) {
      const c = b.slice(0, k % 3 === 0 ? Math.floor(r() * b.length) : b.length);
      for (let j = 0; j < 4; j++) c[Math.floor(r() * Math.min(c.length, 4000))] = Math.floor(r() * 256);
      try {
        await loadGgufModel(bytesSource('fuzz.gguf', c));
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).message).toMatch(/^fuzz\.gguf: /);
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(100);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});
