// llama.cpp itself (node-llama-cpp 3.21.1, CPU) runs Quench's GGUF exports of stories260K, and
// Quench's GGUF import agrees with it.
//
// The student: stories260K quantized by PTQ (quantizeWeights, w4g32) and written as a
// Quench-quantized folder (writeQuantizedHfModel), then loaded back with loadModelFromPath — the
// same layout and path as a distill run's DIR/student (a KD-QAT run would only change the codes,
// and take minutes here). Asymmetric → Q4_1, symmetric → Q4_0; also 8-bit symmetric → Q8_0 and the
// FP model as F32 and F16.
//
// For every file: llama.cpp's greedy 64-token continuation from BOS equals Quench's (generate,
// temperature 0) on the weights Quench's importer dequantizes from that same file, and the
// per-position next-token log-probabilities on a 128-token text agree within the tolerance below.
//
// Tolerances (max |Δ log p| over the 127 predicted positions; measured here in brackets):
//   F32   1e-4   [5e-6]    same weights, fp32 arithmetic on both sides: only summation order.
//   F16   1e-2   [2.4e-3]  llama.cpp's F16 matmul converts the activations to fp16 (2^-11 relative
//                          rounding per value), Quench keeps them in fp32.
//   Q8_0, Q4_0, Q4_1  0.3 (mean 0.03)  [0.06-0.14, mean 0.010-0.015]  llama.cpp's CPU dot
//                          products with quantized weights quantize the activations too (to Q8_0 /
//                          Q8_1: int8 per 32 values, up to 1/254 of the block's largest value),
//                          in every projection of all 5 layers; Quench multiplies fp32 activations
//                          by the same dequantized weights. The test shows the gap is llama.cpp's
//                          activation rounding and not a weight difference: llama.cpp on an F32
//                          GGUF of exactly the weights Quench imported agrees with Quench to 1e-4.
// The KV cache is F32 in llama.cpp here (its default is F16, which adds up to ~6e-3).
//
// The KD-QAT student (4 distillation steps, w4g32 asymmetric → Q4_1). It was once seen to agree
// with llama.cpp's free greedy run for only 33 of 64 tokens. Not an export bug: the file holds the
// student's codes exactly (every nibble; d = f16(scale), m = f16(−zero·d); zero points are integers
// in 0..15, as PTQ's), what Quench imports differs from the student's dequantized weights only by
// that fp16 rounding (checked per value against its bound), and the same weights as an F32 GGUF
// give 64 of 64 in llama.cpp. The divergence was a near-tie: at position 33 Quench's top two tokens
// are 0.028 nats apart (llama.cpp here: 0.031, same order), the smallest margin of the 64, while the
// two engines' margins differ by up to 0.135 nats at other positions (llama.cpp's 8-bit activations
// in the Q4_1 dot products). That rounding depends on the CPU kernel ggml picks for the host:
// llama.cpp's margin at position 33 measured 0.031 (AMX), 0.030 (AVX-512 / AVX2 builds), 0.023
// (sandybridge, sse42), 0.002 (generic x64), 0.024 with an F16 KV cache — so a tie of this size can
// go either way (none flipped it on this student; the 33/64 run was not reproduced). The test checks
// greedy under teacher forcing (on Quench's greedy tokens, llama.cpp's argmax after the same prefix
// must be Quench's wherever Quench's top-2 margin is at least NEAR_TIE), that the margins agree
// within NEAR_TIE everywhere, and the free greedy run up to its first near-tie (if they part, it is
// at a position with margin < NEAR_TIE and llama.cpp took Quench's runner-up). Measured here:
// near-ties at positions 20, 33, 38, 42, 52; free greedy 64 of 64 on this host.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from './data';
import { permuteInterleavedToHalf, readLlama2cCheckpoint } from './llama2c';
import { Llama2cTokenizer } from './tokenizer';
import { writeQuantizedHfModel } from './hf';
import { tokenizerJsonFromPieces } from './hf-tokenizer';
import { loadModelFromPath } from './load-node';
import { bytesSource } from './source';
import { concatParts, exportGguf, ggufVocabFromLlama2c, type GgufExportOptions } from './gguf-write';
import { f16ToF32, loadGgufModel, readGgufHeader, roundF16 } from './gguf';
import { dequantizeHost, getCode, type PackedWeight } from '../quant/pack';
import { quantizeWeights, type PtqConfig } from '../quant/ptq';
import { LlamaModel } from '../model/llama';
import { generate, tokenLogprobs } from '../model/runner';
import { testGpu } from '../testing';
import type { Llama, LlamaModel as CppModel } from 'node-llama-cpp';
import type { LlamaConfig, LlamaLayerWeights, LlamaWeights } from '../model/config';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

const S = 'models/stories260K';
/** Top-2 log-prob margin (nats) below which the two engines may pick different tokens: twice the
 *  largest difference between Quench's and llama.cpp's margins measured here (0.135, on the same
 *  prefix, over 64 positions of the distilled Q4_1 student), from llama.cpp's 8-bit activations. */
const NEAR_TIE = 0.3;

describe.skipIf(!hasSharedData)('llama.cpp runs Quench GGUF exports of stories260K', () => {
  let llama: Llama;
  let cfg: LlamaConfig, w: LlamaWeights, tok: Llama2cTokenizer;
  let dir: string;
  let text: number[];
  const figures: string[] = [];

  beforeAll(async () => {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    // maxThreads 1: on this shared 2-core machine more threads spin and are ~1000x slower
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1 });
    const m = readLlama2cCheckpoint(readFileSync(sharedPath(S, 'stories260K.bin')), 'stories260K.bin');
    ({ config: cfg, weights: w } = m);
    tok = new Llama2cTokenizer(readFileSync(sharedPath(S, 'tok512.bin')), 'tok512.bin', cfg.vocabSize);
    dir = mkdtempSync(join(tmpdir(), 'quench-gguf-'));
    const story = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').map((s) => s.trim()).filter((s) => s.length > 800)[0];
    text = tok.encode(story).slice(0, 128);
    expect(text.length).toBe(128);
  });
  afterAll(async () => {
    console.log(`GGUF vs llama.cpp (stories260K, 128-token text, 64 greedy tokens):\n${figures.join('\n')}`);
    await llama?.dispose();
  });

  /** llama.cpp: greedy continuation from BOS and log p(text[i+1] | text[..i]). */
  async function runCpp(file: string, forced?: number[]): Promise<{ greedy: number[]; lp: number[]; model: CppModel; forced?: Float64Array[] }> {
    const model = await llama.loadModel({ modelPath: file });
    const ctx = await model.createContext({ contextSize: 256, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
    try {
      const seq = ctx.getSequence();
      const greedy: number[] = [];
      for await (const t of seq.evaluate([tok.bosId] as never, { temperature: 0 })) {
        greedy.push(t as number);
        if (greedy.length >= 64) break;
      }
      await seq.clearHistory();
      const res = await seq.controlledEvaluate(text.map((t) => [t, { generateNext: { probabilities: true } }] as never));
      const lp = text.slice(1).map((t, i) => Math.log(res[i]!.next.probabilities!.get(t as never)!));
      let forcedLp: Float64Array[] | undefined;
      if (forced) {
        // the next-token log-probabilities after each prefix of `forced` (teacher forcing)
        await seq.clearHistory();
        const fr = await seq.controlledEvaluate(forced.map((t) => [t, { generateNext: { probabilities: true } }] as never));
        forcedLp = forced.map((_, i) => {
          const row = new Float64Array(cfg.vocabSize).fill(-Infinity);
          for (const [t, p] of fr[i]!.next.probabilities! as Map<number, number>) row[t] = Math.log(p);
          return row;
        });
      }
      return { greedy, lp, model, forced: forcedLp };
    } finally {
      await ctx.dispose();
    }
  }

  /** Quench on the weights its importer reads from the file. */
  async function runOurs(bytes: Uint8Array, name: string) {
    const m = await loadGgufModel(bytesSource(name, bytes));
    const model = LlamaModel.fromWeights(await testGpu(), m.config, m.weights);
    try {
      const greedy = await generate(model, [tok.bosId], { maxTokens: 64, temperature: 0 });
      const lp = Array.from(await tokenLogprobs(model, text));
      return { greedy, lp, m };
    } finally {
      model.free();
    }
  }

  /** Quench's next-token log-softmax after every prefix of `tokens` (one forward, B = 1). */
  async function fullLogprobs(model: LlamaModel, tokens: number[]): Promise<Float64Array[]> {
    const V = model.cfg.vocabSize, T = tokens.length;
    const acts = model.activations(1, T, false);
    model.gpu.write(acts.tokens, Uint32Array.from(tokens));
    model.forward(acts);
    const logits = new Float32Array(await model.gpu.readBytes(acts.logits.buffer, T * V * 4, 0)); // (T, V) f32
    return tokens.map((_, t) => {
      const row = logits.subarray(t * V, (t + 1) * V);
      let mx = -Infinity, s = 0;
      for (const v of row) mx = Math.max(mx, v);
      for (const v of row) s += Math.exp(v - mx);
      return Float64Array.from(row, (v) => v - mx - Math.log(s));
    });
  }

  /** argmax, runner-up and the log-prob margin between them */
  const top2 = (z: ArrayLike<number>) => {
    let a = 0, b = -1;
    for (let i = 1; i < z.length; i++) {
      if (z[i] > z[a]) [a, b] = [i, a];
      else if (b < 0 || z[i] > z[b]) b = i;
    }
    return { a, b, margin: z[a] - z[b] };
  };

  const diff = (a: number[], b: number[]) => {
    let max = 0, sum = 0;
    a.forEach((x, i) => {
      const d = Math.abs(x - b[i]);
      max = Math.max(max, d);
      sum += d;
    });
    return { max, mean: sum / a.length };
  };

  function write(name: string, cfgW: LlamaWeights, o: GgufExportOptions): { file: string; bytes: Uint8Array; report: ReturnType<typeof exportGguf>['report'] } {
    const g = exportGguf(cfg, cfgW, { vocab: ggufVocabFromLlama2c(tok), ...o });
    const bytes = concatParts(g.parts);
    const file = join(dir, `${name}.gguf`);
    writeFileSync(file, bytes);
    return { file, bytes, report: g.report };
  }

  /** A Quench-quantized folder (the layout of a distill run's DIR/student), loaded back. */
  async function student(q: PtqConfig) {
    const qm = quantizeWeights(cfg, w, q);
    const folder = join(dir, `student-${q.bits}-${q.sym ? 'sym' : 'asym'}`);
    const files = writeQuantizedHfModel(cfg, w, qm, { tokenizerJson: JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores)) });
    execFileSync('mkdir', ['-p', folder]);
    for (const [n, b] of Object.entries(files)) writeFileSync(join(folder, n), b);
    const m = await loadModelFromPath(folder);
    expect(m.quantized).toBeDefined();
    return m;
  }

  for (const [label, type, q, tol] of [
    ['w4g32 asymmetric student', 'Q4_1', { bits: 4, group: 32, sym: false, clipSearch: false }, { max: 0.3, mean: 0.03 }],
    ['w4g32 symmetric student', 'Q4_0', { bits: 4, group: 32, sym: true, clipSearch: false }, { max: 0.3, mean: 0.03 }],
    ['w8g32 symmetric student', 'Q8_0', { bits: 8, group: 32, sym: true, clipSearch: false }, { max: 0.3, mean: 0.03 }],
    ['FP model', 'F32', null, { max: 1e-4, mean: 2e-5 }],
    ['FP model', 'F16', null, { max: 1e-2, mean: 2e-3 }],
  ] as const) {
    it(`${label} → ${type}: same greedy 64 tokens, log-probs within ${tol.max}`, async () => {
      let f: ReturnType<typeof write>;
      if (q) {
        const m = await student(q);
        f = write(type, m.weights, { quantized: m.quantized });
        expect(f.report.projectionTypes).toEqual({ [type]: 30, F16: 5 }); // ffn_down rows are 172 values: F16
      } else f = write(type, w, { floatType: type as 'F32' | 'F16' });
      const cpp = await runCpp(f.file);
      const ours = await runOurs(f.bytes, `${type}.gguf`);
      expect(ours.m.dtypes).toContain(type);
      // llama.cpp's own tokenizer, from the GGUF vocabulary, tokenizes like Quench's
      const story = tok.decode(text);
      expect(cpp.model.tokenize(story)).toEqual(tok.encode(story).slice(1));
      expect(cpp.greedy).toEqual(ours.greedy);
      const d = diff(cpp.lp, ours.lp);
      expect(d.max).toBeLessThan(tol.max);
      expect(d.mean).toBeLessThan(tol.mean);
      let line = `  ${type.padEnd(4)} ${(f.bytes.length / 1e3).toFixed(0).padStart(5)} kB  greedy equal  max |Δ log p| ${d.max.toExponential(2)}  mean ${d.mean.toExponential(2)}`;
      if (q) {
        // the control: the weights Quench imported, as an F32 GGUF — llama.cpp now agrees to 1e-4
        const ctl = write(`${type}-as-f32`, ours.m.weights, { floatType: 'F32' });
        const c2 = await runCpp(ctl.file);
        const d2 = diff(c2.lp, ours.lp);
        expect(d2.max).toBeLessThan(1e-4);
        expect(c2.greedy).toEqual(ours.greedy);
        await c2.model.dispose();
        const h = await readGgufHeader(bytesSource(type, f.bytes));
        const rounding = h.metadata.get('quench.export.scale_rounding.max_abs_error') as number;
        expect(rounding).toBeCloseTo(f.report.packed!.maxAbsError, 6);
        expect(rounding).toBeLessThan(2e-3);
        line += `  (same weights as F32: ${d2.max.toExponential(2)}); fp16 scale rounding max |Δw| ${rounding.toExponential(2)}, mean ${f.report.packed!.meanAbsError.toExponential(2)}`;
      }
      await cpp.model.dispose();
      figures.push(line);
    });
  }

  it('a student distilled by KD-QAT (the workflow\'s run loop, w4g32) → Q4_1: codes written exactly; llama.cpp agrees (teacher-forced argmax, free greedy up to near-ties, log-probs; exactly on the same weights as F32)', async () => {
    const { runTraining } = await import('../workflow/run');
    const { makeRunSpec } = await import('../workflow/spec');
    const docs = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').map((x) => x.trim()).filter(Boolean).slice(0, 40);
    const stream = Uint32Array.from(docs.flatMap((d) => tok.encode(d)));
    const spec = makeRunSpec({ bits: 4, group: 32, steps: 4, batch: 2, seq: 32, scheme: 'none' }, 'test');
    const r = await runTraining(await testGpu(), { name: 'stories260K', config: cfg, weights: w, tokenizer: tok }, spec, stream, [text]);
    const st = r.student!;
    // really distilled: its codes and scales are not plain PTQ's
    const ptq = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false });
    expect(st.quantized.packed[0].v!.codes.some((c, i) => c !== ptq.packed[0].v!.codes[i])).toBe(true);
    const f = write('distilled-Q4_1', st.weights, { quantized: st.quantized });
    expect(f.report.projectionTypes).toEqual({ Q4_1: 30, F16: 5 });

    // 1. the file holds the student's codes exactly: every nibble is its code, d = f16(scale),
    //    m = f16(−zero·d) (rows of attn_q / attn_k back in HF order), and nothing else differs
    const h = await readGgufHeader(bytesSource('distilled.gguf', f.bytes));
    const HS = cfg.dim / cfg.nHeads;
    let blocks = 0;
    st.quantized.packed.forEach((lp, l) => {
      for (const [proj, p] of Object.entries(lp) as [string, PackedWeight | undefined][]) {
        if (!p || p.K % 32) continue;
        const name = `blk.${l}.${({ q: 'attn_q', k: 'attn_k', v: 'attn_v', o: 'attn_output', gate: 'ffn_gate', up: 'ffn_up', down: 'ffn_down' } as Record<string, string>)[proj]}.weight`;
        const t = h.tensors.get(name)!;
        expect(t.typeName).toBe('Q4_1');
        const raw = f.bytes.subarray(h.dataStart + t.offset, h.dataStart + t.offset + t.nbytes);
        const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const nb = p.K / 32;
        let codes: Float32Array = new Float32Array(p.N * p.K), d: Float32Array = new Float32Array(p.N * nb), m: Float32Array = new Float32Array(p.N * nb);
        for (let n = 0; n < p.N; n++)
          for (let b = 0; b < nb; b++) {
            const o = (n * nb + b) * 20;
            d[n * nb + b] = f16ToF32(dv.getUint16(o, true));
            m[n * nb + b] = f16ToF32(dv.getUint16(o + 2, true));
            for (let j = 0; j < 16; j++) {
              codes[n * p.K + b * 32 + j] = raw[o + 4 + j] & 15;
              codes[n * p.K + b * 32 + j + 16] = raw[o + 4 + j] >> 4;
            }
          }
        const heads = proj === 'q' ? cfg.nHeads : proj === 'k' ? cfg.nKvHeads : 0;
        if (heads) [codes, d, m] = [permuteInterleavedToHalf(codes, heads, HS, p.K), permuteInterleavedToHalf(d, heads, HS, nb), permuteInterleavedToHalf(m, heads, HS, nb)];
        for (let n = 0; n < p.N; n++) {
          for (let k = 0; k < p.K; k++) if (codes[n * p.K + k] !== getCode(p, n, k)) throw new Error(`${name} row ${n} col ${k}: code ${codes[n * p.K + k]} in the file, ${getCode(p, n, k)} in the student`);
          for (let b = 0; b < nb; b++) {
            const g = Math.floor((b * 32) / p.group);
            const sc = p.scales[n * p.nBlocks + g], z = p.zeros[n * p.nBlocks + g];
            expect(Number.isInteger(z) && z >= 0 && z <= 15).toBe(true);
            expect(d[n * nb + b]).toBe(roundF16(sc));
            expect(m[n * nb + b]).toBe(roundF16(-z * roundF16(sc)));
            blocks++;
          }
        }
      }
    });
    expect(blocks).toBe([...h.tensors.values()].filter((t) => t.typeName === 'Q4_1').reduce((a, t) => a + t.nbytes / 20, 0));
    // and what Quench imports from the file is the student's dequantized weights up to that fp16
    // rounding only: |Δw| ≤ |q − zero|·|f16(s) − s| + |f16(m) − m| per value (+ f32 rounding)
    const ours = await runOurs(f.bytes, 'distilled.gguf');
    st.quantized.packed.forEach((lp, l) => {
      for (const [proj, p] of Object.entries(lp) as [string, PackedWeight | undefined][]) {
        if (!p || p.K % 32) continue;
        const key = ({ q: 'wq', k: 'wk', v: 'wv', o: 'wo', gate: 'wGate', up: 'wUp', down: 'wDown' } as Record<string, keyof LlamaLayerWeights>)[proj];
        const got = ours.m.weights.layers[l][key], want = dequantizeHost(p);
        for (let n = 0; n < p.N; n++)
          for (let k = 0; k < p.K; k++) {
            const g = Math.floor(k / p.group), sc = p.scales[n * p.nBlocks + g], z = p.zeros[n * p.nBlocks + g], d16 = roundF16(sc);
            const bound = Math.abs(getCode(p, n, k) - z) * Math.abs(d16 - sc) + Math.abs(roundF16(-z * d16) + z * d16) + 4e-7 * (Math.abs(want[n * p.K + k]) + Math.abs(z * sc));
            const e = Math.abs(got[n * p.K + k] - want[n * p.K + k]);
            if (e > bound) throw new Error(`${key} layer ${l} [${n}, ${k}]: imported ${got[n * p.K + k]}, student ${want[n * p.K + k]}: |Δ| ${e} > the fp16 rounding bound ${bound}`);
          }
      }
    });

    // 2. llama.cpp on the file, free greedy and teacher-forced on Quench's greedy tokens
    const forced = [tok.bosId, ...ours.greedy.slice(0, 63)];
    const cpp = await runCpp(f.file, forced);
    const model = LlamaModel.fromWeights(await testGpu(), ours.m.config, ours.m.weights);
    const oursLp = await fullLogprobs(model, forced);
    model.free();
    let worstDm = 0, minMargin = Infinity, minAt = -1;
    const nearTies: string[] = [];
    forced.forEach((_, p) => {
      const q = top2(oursLp[p]);
      expect(q.a).toBe(ours.greedy[p]); // Quench's greedy is its own argmax
      const cm = cpp.forced![p][q.a] - cpp.forced![p][q.b];
      worstDm = Math.max(worstDm, Math.abs(cm - q.margin));
      if (q.margin < minMargin) [minMargin, minAt] = [q.margin, p];
      if (q.margin < NEAR_TIE) nearTies.push(`${p}: ${q.margin.toFixed(3)}`);
      // teacher-forced: same prefix → same argmax, except where Quench's top two are within NEAR_TIE
      if (q.margin >= NEAR_TIE) expect(top2(cpp.forced![p]).a).toBe(q.a);
    });
    // the top-two margin itself agrees within NEAR_TIE at every position (measured 0.135)
    expect(worstDm).toBeLessThan(NEAR_TIE);
    // free greedy: equal until the first position where Quench's margin is below NEAR_TIE; if they
    // part there, llama.cpp took Quench's runner-up
    const firstDiff = cpp.greedy.findIndex((t, i) => t !== ours.greedy[i]);
    const agree = firstDiff < 0 ? 64 : firstDiff;
    if (firstDiff >= 0) {
      const q = top2(oursLp[firstDiff]);
      expect(q.margin).toBeLessThan(NEAR_TIE);
      expect(cpp.greedy[firstDiff]).toBe(q.b);
    }
    const dlp = diff(cpp.lp, ours.lp);
    expect(dlp.max).toBeLessThan(0.3);
    expect(dlp.mean).toBeLessThan(0.03);
    // the control: the same format-rounded weights as F32 (llama.cpp's activation rounding gone)
    const ctl = write('distilled-as-f32', ours.m.weights, { floatType: 'F32' });
    const c2 = await runCpp(ctl.file);
    expect(c2.greedy).toEqual(ours.greedy);
    expect(diff(c2.lp, ours.lp).max).toBeLessThan(1e-4);
    await c2.model.dispose();
    figures.push(`  distilled Q4_1 (4 KD-QAT steps): ${blocks} blocks hold the student's codes exactly; free greedy equal for ${agree} of 64 (64 of 64 on the same weights as F32); teacher-forced argmax equal where Quench's top-2 margin ≥ ${NEAR_TIE} (max |Δ margin| ${worstDm.toFixed(3)}; smallest margin ${minMargin.toFixed(4)} at position ${minAt}; near-ties ${nearTies.join(', ') || 'none'})  max |Δ log p| ${dlp.max.toExponential(2)}  mean ${dlp.mean.toExponential(2)}`);
    await cpp.model.dispose();
  });

  it('quench export writes a GGUF of a quantized folder that llama.cpp loads and Quench reads back', async () => {
    const m = await student({ bits: 4, group: 32, sym: false, clipSearch: false });
    const out = join(dir, 'cli');
    const repo = join(__dirname, '../../..');
    const stdout = execFileSync(process.execPath, [join(repo, 'bin/quench.mjs'), 'export', '--model', m.path, '--format', 'gguf', '--out', out], { encoding: 'utf8', env: { ...process.env, QUENCH_PROGRESS: '0' } });
    expect(stdout).toMatch(/30x Q4_1, 5x F16/);
    expect(stdout).toMatch(/fp16 scale rounding over 30 projections .* max \|dw\| \d/);
    const back = await loadModelFromPath(join(out, 'model.gguf'));
    expect(back.format).toBe('gguf');
    expect(back.tokenizer!.encode('Once upon a time')).toEqual(tok.encode('Once upon a time'));
    const cpp = await runCpp(join(out, 'model.gguf'));
    expect(cpp.greedy.length).toBe(64);
    await cpp.model.dispose();
  });
});
