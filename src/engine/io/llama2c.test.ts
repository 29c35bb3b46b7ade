// llama2.c checkpoints: the real stories260K files (v0 fp32 and the v2 Q8_0 export), hand-made
// fixtures through our writer (tied and untied, v0 and v2), the RoPE row permutation checked
// against its meaning, and size validation.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig, type LlamaConfig, type LlamaLayerWeights, type LlamaWeights } from '../model/config';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from './data';
import { permuteHalfToInterleaved, permuteInterleavedToHalf, readLlama2cCheckpoint, readLlama2cTokenizer, writeLlama2cCheckpoint, writeLlama2cTokenizer } from './llama2c';
import { fileSource } from './node-source';
import { readAll } from './source';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

const LAYER_KEYS: (keyof LlamaLayerWeights)[] = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'mlpNorm', 'wGate', 'wUp', 'wDown'];
function allTensors(w: LlamaWeights): [string, Float32Array][] {
  const out: [string, Float32Array][] = [['tokEmbed', w.tokEmbed]];
  w.layers.forEach((l, i) => LAYER_KEYS.forEach((k) => out.push([`layers.${i}.${k}`, l[k]])));
  out.push(['finalNorm', w.finalNorm]);
  if (w.lmHead) out.push(['lmHead', w.lmHead]);
  return out;
}

describe.skipIf(!hasSharedData)('stories260K llama2.c files', () => {
  const v0bytes = () => readFileSync(sharedPath('models/stories260K/stories260K.bin'));
  const v2bytes = () => readFileSync(sharedPath('models/stories260K/stories260K_q80.bin'));
  const want: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, maxSeqLen: 512, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };

  it('v0 header and weights', () => {
    const m = readLlama2cCheckpoint(v0bytes(), 'stories260K.bin');
    expect(m.version).toBe(0);
    expect(m.config).toEqual(want);
    expect(m.weights.lmHead).toBeNull();
    expect(m.weights.layers[4].wk.length).toBe(32 * 64);
    expect(m.weights.layers[0].wDown.length).toBe(64 * 172);
    for (const [n, t] of allTensors(m.weights)) for (const x of t) if (!Number.isFinite(x)) throw new Error(`${n} not finite`);
  });

  it('v2 Q8_0 dequantizes close to the fp32 weights (|err| <= max|w|/254 per tensor, norms exact)', () => {
    const a = readLlama2cCheckpoint(v0bytes(), 'stories260K.bin');
    const b = readLlama2cCheckpoint(v2bytes(), 'stories260K_q80.bin');
    expect(b.version).toBe(2);
    expect(b.groupSize).toBe(32);
    expect(b.config).toEqual(want);
    const ta = allTensors(a.weights), tb = allTensors(b.weights);
    expect(tb.map((t) => t[0])).toEqual(ta.map((t) => t[0]));
    let worstRel = 0;
    for (let k = 0; k < ta.length; k++) {
      const [name, x] = ta[k];
      const y = tb[k][1];
      expect(y.length, name).toBe(x.length);
      if (/Norm/.test(name)) {
        expect([...y], name).toEqual([...x]); // norms are stored in fp32
        continue;
      }
      let maxAbs = 0, maxErr = 0, se = 0, sx = 0;
      for (let i = 0; i < x.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(x[i]));
        maxErr = Math.max(maxErr, Math.abs(y[i] - x[i]));
        se += (y[i] - x[i]) ** 2;
        sx += x[i] ** 2;
      }
      // Q8_0: scale = max|group| / 127 <= max|tensor| / 127, rounding error <= scale / 2.
      expect(maxErr, name).toBeLessThanOrEqual((maxAbs / 254) * (1 + 1e-5));
      worstRel = Math.max(worstRel, Math.sqrt(se / sx));
    }
    expect(worstRel).toBeLessThan(0.01);
    expect(worstRel).toBeGreaterThan(0); // it really is quantized
  });

  it('our writer reproduces stories260K.bin (freq_cis tables within 1e-4) and the Q8_0 file exactly', () => {
    const bytes = v0bytes();
    const m = readLlama2cCheckpoint(bytes, 'stories260K.bin');
    const out = writeLlama2cCheckpoint(m.config, m.weights);
    expect(out.length).toBe(bytes.length);
    const C = 64, L = 5, H = 172, V = 512, KV = 32, T = 512, HS = 8;
    const freqStart = 28 + 4 * (V * C + L * C + 2 * L * C * C + 2 * L * KV * C + L * C + 3 * L * H * C + C);
    const freqEnd = freqStart + 4 * T * HS;
    expect(Buffer.from(out.subarray(0, freqStart)).equals(bytes.subarray(0, freqStart))).toBe(true);
    const fa = new Float32Array(out.slice(freqStart, freqEnd).buffer), fb = new Float32Array(Uint8Array.prototype.slice.call(bytes, freqStart, freqEnd).buffer); // (Buffer.slice is a view)
    let worst = 0;
    for (let i = 0; i < fa.length; i++) worst = Math.max(worst, Math.abs(fa[i] - fb[i]));
    expect(worst).toBeLessThan(1e-4);
    const q = v2bytes();
    const mq = readLlama2cCheckpoint(q, 'stories260K_q80.bin');
    const outq = writeLlama2cCheckpoint(mq.config, mq.weights, { version: 2, groupSize: 32 });
    expect(outq.length).toBe(q.length);
    expect(Buffer.from(outq).equals(q)).toBe(true);
  });

  it('tok512.bin', () => {
    const tok = readLlama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', 512);
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.vocab[3]).toBe('<0x00>');
    expect(tok.vocab[258]).toBe('<0xFF>');
    const back = writeLlama2cTokenizer(tok.vocab, tok.scores);
    expect(Buffer.from(back).equals(readFileSync(sharedPath('models/stories260K/tok512.bin')))).toBe(true);
    expect(() => readLlama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', 32000)).toThrow(/tok512\.bin: has 512 tokens, the model needs 32000/);
  });
});

describe('llama2.c fixtures', () => {
  const cfg = tinyConfig(); // C=16, H=24, L=2, NH=4, NKV=2, V=11, eps 1e-5, theta 1e4, untied
  const same = (a: LlamaWeights, b: LlamaWeights) => {
    const ta = allTensors(a), tb = allTensors(b);
    expect(tb.map((t) => t[0])).toEqual(ta.map((t) => t[0]));
    for (let k = 0; k < ta.length; k++) expect([...tb[k][1]], ta[k][0]).toEqual([...ta[k][1]]);
  };

  it('v0 round trip, untied and tied, through a file in the temp folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quench-llama2c-'));
    try {
      for (const tied of [false, true]) {
        const c = { ...cfg, tiedEmbeddings: tied };
        const w = randomWeights(c, 3);
        const bytes = writeLlama2cCheckpoint(c, w);
        // header: vocab_size negative when the classifier is separate
        expect(new DataView(bytes.buffer).getInt32(20, true)).toBe(tied ? 11 : -11);
        const path = join(dir, `m${tied}.bin`);
        writeFileSync(path, bytes);
        const src = await fileSource(path);
        const m = readLlama2cCheckpoint(await readAll(src), src.name);
        await src.close?.();
        expect(m.config).toEqual(c);
        same(w, m.weights);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('v2 round trip: Q8_0 error within half a step; untied classifier; ragged group sizes halve as export.py does', () => {
    const w = randomWeights(cfg, 4);
    const bytes = writeLlama2cCheckpoint(cfg, w, { version: 2, groupSize: 8 });
    const m = readLlama2cCheckpoint(bytes, 'tiny_q80.bin');
    expect(m.version).toBe(2);
    expect(m.groupSize).toBe(8);
    expect(m.config).toEqual(cfg);
    expect(m.weights.lmHead).not.toBeNull();
    const ta = allTensors(w), tb = allTensors(m.weights);
    for (let k = 0; k < ta.length; k++) {
      const [name, x] = ta[k];
      const y = tb[k][1];
      // per group of 8 along the stored (interleaved) rows; both sides went through the same
      // row permutation, which moves whole rows of C=16, so groups stay groups.
      for (let g = 0; g < x.length; g += 8) {
        let m8 = 0;
        for (let i = g; i < g + 8; i++) m8 = Math.max(m8, Math.abs(x[i]));
        for (let i = g; i < g + 8; i++) {
          const tol = /Norm/.test(name) ? 0 : (m8 / 254) * (1 + 1e-5);
          if (Math.abs(y[i] - x[i]) > tol) throw new Error(`${name}[${i}]: ${y[i]} vs ${x[i]}, tol ${tol}`);
        }
      }
    }
    // group size 64 does not divide C=16: export.py halves it until it does (-> 16)
    expect(readLlama2cCheckpoint(writeLlama2cCheckpoint(cfg, w, { version: 2, groupSize: 64 }), 'x').groupSize).toBe(16);
  });

  it('the wq/wk row permutation turns interleaved-pair RoPE into rotate_half RoPE (same q·k)', () => {
    const HS = 8, NH = 2, C = 6, half = HS / 2, theta = 10000;
    let s = 7;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const Wq = Float32Array.from({ length: NH * HS * C }, rnd), Wk = Float32Array.from({ length: NH * HS * C }, rnd);
    const x1 = Array.from({ length: C }, rnd), x2 = Array.from({ length: C }, rnd);
    const mv = (W: Float32Array, x: number[]) => Array.from({ length: NH * HS }, (_, r) => x.reduce((a, xi, c) => a + W[r * C + c] * xi, 0));
    const ang = (pos: number, i: number) => pos * Math.pow(theta, (-2 * i) / HS);
    const ropeInterleaved = (v: number[], pos: number) => {
      const o = v.slice();
      for (let h = 0; h < NH; h++)
        for (let i = 0; i < half; i++) {
          const a = v[h * HS + 2 * i], b = v[h * HS + 2 * i + 1], t = ang(pos, i);
          o[h * HS + 2 * i] = a * Math.cos(t) - b * Math.sin(t);
          o[h * HS + 2 * i + 1] = a * Math.sin(t) + b * Math.cos(t);
        }
      return o;
    };
    const ropeHalf = (v: number[], pos: number) => {
      const o = v.slice();
      for (let h = 0; h < NH; h++)
        for (let i = 0; i < half; i++) {
          const a = v[h * HS + i], b = v[h * HS + i + half], t = ang(pos, i);
          o[h * HS + i] = a * Math.cos(t) - b * Math.sin(t);
          o[h * HS + i + half] = a * Math.sin(t) + b * Math.cos(t);
        }
      return o;
    };
    const Pq = permuteInterleavedToHalf(Wq, NH, HS, C), Pk = permuteInterleavedToHalf(Wk, NH, HS, C);
    expect([...permuteHalfToInterleaved(Pq, NH, HS, C)]).toEqual([...Wq]);
    for (const [p1, p2] of [[0, 0], [3, 1], [17, 5], [100, 99]]) {
      const qa = ropeInterleaved(mv(Wq, x1), p1), ka = ropeInterleaved(mv(Wk, x2), p2);
      const qb = ropeHalf(mv(Pq, x1), p1), kb = ropeHalf(mv(Pk, x2), p2);
      for (let h = 0; h < NH; h++) {
        let da = 0, db = 0;
        for (let d = 0; d < HS; d++) {
          da += qa[h * HS + d] * ka[h * HS + d];
          db += qb[h * HS + d] * kb[h * HS + d];
        }
        expect(Math.abs(da - db)).toBeLessThan(1e-9 * (1 + Math.abs(da)));
      }
      // and element-wise: rotate_half element (r, i) is interleaved element (i, r)
      for (let h = 0; h < NH; h++) for (let i = 0; i < half; i++) for (let r = 0; r < 2; r++) expect(qb[h * HS + r * half + i]).toBeCloseTo(qa[h * HS + 2 * i + r], 12);
    }
    // the permutation is not the identity (a test with it removed would fail)
    expect([...Pq]).not.toEqual([...Wq]);
  });

  it('size validation names the file and the problem', () => {
    const w = randomWeights(cfg, 5);
    const v0 = writeLlama2cCheckpoint(cfg, w);
    expect(() => readLlama2cCheckpoint(v0.subarray(0, v0.length - 4), 'cut.bin')).toThrow(/cut\.bin: llama2\.c v0 header says dim=16 hidden=24 layers=2 heads=4 kv=2 vocab=-11 seq_len=32, which needs \d+ bytes, but the file has \d+ \(truncated/);
    const longer = new Uint8Array(v0.length + 8);
    longer.set(v0);
    expect(() => readLlama2cCheckpoint(longer, 'long.bin')).toThrow(/long\.bin: llama2\.c v0 header .* but the file has/);
    expect(() => readLlama2cCheckpoint(new Uint8Array(10), 'tiny.bin')).toThrow(/tiny\.bin: file is 10 bytes, too short/);
    const junk = new TextEncoder().encode('{"architectures": ["LlamaForCausalLM"], "hidden_size": 16}');
    expect(() => readLlama2cCheckpoint(junk, 'config.json')).toThrow(/config\.json: not a llama2\.c checkpoint/);
    const v2 = writeLlama2cCheckpoint(cfg, w, { version: 2, groupSize: 8 });
    expect(() => readLlama2cCheckpoint(v2.subarray(0, v2.length - 1), 'q.bin')).toThrow(/q\.bin: llama2\.c v2 \(Q8_0\) header says .* group_size=8, which needs \d+ bytes, but the file has \d+ \(truncated\)/);
    expect(() => readLlama2cCheckpoint(v2.subarray(0, 100), 'q.bin')).toThrow(/q\.bin: .*shorter than its 256-byte header/);
    const v1 = v2.slice();
    new DataView(v1.buffer).setInt32(4, 1, true);
    expect(() => readLlama2cCheckpoint(v1, 'v1.bin')).toThrow(/v1\.bin: llama2\.c "ak42" file of version 1/);
    const badGroup = v2.slice();
    new DataView(badGroup.buffer).setInt32(37, 5, true);
    expect(() => readLlama2cCheckpoint(badGroup, 'g.bin')).toThrow(/g\.bin: a tensor of \d+ elements is not a multiple of the Q8_0 group size 5/);
    expect(() => writeLlama2cCheckpoint({ ...cfg, normEps: 1e-6 }, w)).toThrow(/hard-codes norm eps 1e-5/);
  });
});
