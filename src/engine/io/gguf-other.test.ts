// GGUF files that another tool wrote: llama.cpp's own quantizer (llama_model_quantize, what the
// llama-quantize tool runs) and ggml's own block codecs, called through ctypes (ggml-ctypes.py) on
// the shared libraries inside node-llama-cpp 3.21.1. Debian has no python3-gguf and nothing here
// builds llama.cpp's tools; these libraries are llama.cpp's code as llama.cpp runs it.
//
// 1. ggml's codecs: random rows (with outliers and an all-zero row) quantized by
//    ggml_quantize_chunk to every type Quench reads; Quench's dequantizeGgml equals ggml's to_float
//    (dequantize_row_*) bit for bit.
// 2. llama.cpp quantizes the stories260K F32 GGUF to Q8_0, Q4_0, Q4_1, F16 and Q4_K_M
//    (64-value rows cannot hold a 256-value K-quant block, so Q4_K_M falls back to Q5_0 / Q8_0 / F16
//    by llama.cpp's own rules); a random-weights LLaMA with 256-wide rows gets real Q4_K / Q5_K /
//    Q6_K tensors from Q4_K_M and Q5_K_M. Quench imports each file; its next-token log-probs on a
//    128-token text agree with llama.cpp's on the same file, and its greedy 64 tokens from BOS equal
//    llama.cpp's up to the first near-tie. Tolerances as gguf-llama.test.ts: max |Δ log p| 0.3, mean
//    0.03 for quantized files (llama.cpp quantizes the activations of quantized matmuls to 8 bits;
//    Quench does not), 1e-2 for F16 (fp16 activations). The control shows the weights themselves
//    agree: the weights Quench imported, written back as F32, make llama.cpp agree with Quench to 1e-4.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from './data';
import { readLlama2cCheckpoint } from './llama2c';
import { Llama2cTokenizer } from './tokenizer';
import { bytesSource } from './source';
import { concatParts, exportGguf, ggufVocabFromLlama2c } from './gguf-write';
import { dequantizeGgml, GGML_TYPE, loadGgufModel } from './gguf';
import { randomWeights, type LlamaConfig, type LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { generate, tokenLogprobs } from '../model/runner';
import { randn, testGpu } from '../testing';
import type { Llama } from 'node-llama-cpp';

const LIBDIR = join(__dirname, '../../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64');
const PY = ['/usr/bin/python3', 'python3'].find((p) => {
  try {
    execFileSync(p, ['-c', 'import ctypes'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});
const HAVE = !!PY && existsSync(join(LIBDIR, 'libllama.v0.4.0.so'));
if (!HAVE) console.warn(`gguf-other.test.ts: skipped (needs python3 and node-llama-cpp's linux-x64 libraries at ${LIBDIR})`);
if (!hasSharedData) console.warn(SKIP_MESSAGE);
const SCRIPT = join(__dirname, 'ggml-ctypes.py');
const py = (...args: string[]) => execFileSync(PY!, [SCRIPT, LIBDIR, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe.skipIf(!HAVE)('ggml\'s own block codecs', () => {
  it('Quench dequantizes every type it reads exactly as ggml\'s dequantize_row_* does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'quench-ggml-'));
    const n = 512, rows = 6;
    const x = randn(n * rows, 7);
    for (let i = 0; i < n; i++) x[n + i] *= 40; // a row of large values
    x.fill(0, 2 * n, 3 * n); // an all-zero row
    for (let i = 3 * n; i < 4 * n; i += 37) x[i] = 25; // outliers in a row of small values
    for (let i = 4 * n; i < 5 * n; i++) x[i] = Math.abs(x[i]) * 1e-3; // one-signed, tiny
    writeFileSync(join(dir, 'x.f32'), new Uint8Array(x.buffer));
    const lines: string[] = [];
    for (const name of ['F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K'] as const) {
      const t = GGML_TYPE[name];
      py('codec', String(t), String(n), String(rows), join(dir, 'x.f32'), join(dir, `${name}.bin`), join(dir, `${name}.f32`));
      const blocks = new Uint8Array(readFileSync(join(dir, `${name}.bin`)));
      const theirs = new Float32Array(new Uint8Array(readFileSync(join(dir, `${name}.f32`))).buffer);
      const ours = dequantizeGgml(t, blocks, n * rows);
      let bad = 0, first = '';
      for (let i = 0; i < ours.length; i++)
        if (ours[i] !== theirs[i]) {
          if (!bad) first = `[${i}] Quench ${ours[i]}, ggml ${theirs[i]}`;
          bad++;
        }
      expect(bad, `${name}: ${bad} of ${ours.length} values differ from ggml's, first ${first}`).toBe(0);
      let err = 0;
      for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(ours[i] - x[i]));
      lines.push(`  ${name.padEnd(4)} ${blocks.length} B, bit-exact with ggml (max |x − dequant| ${err.toExponential(2)})`);
    }
    console.log(`ggml codecs (ggml_quantize_chunk → to_float) vs Quench's dequantizeGgml, ${rows} rows of ${n}:\n${lines.join('\n')}`);
  });
});

describe.skipIf(!HAVE || !hasSharedData)('GGUF files written by llama.cpp\'s quantizer: Quench imports them and agrees with llama.cpp', () => {
  let llama: Llama;
  let tok: Llama2cTokenizer;
  let dir: string;
  let text: number[];
  const figures: string[] = [];

  beforeAll(async () => {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1 });
    tok = new Llama2cTokenizer(readFileSync(sharedPath('models/stories260K/tok512.bin')), 'tok512.bin', 512);
    dir = mkdtempSync(join(tmpdir(), 'quench-gguf-other-'));
    const story = readFileSync(sharedPath('text/tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').map((s) => s.trim()).filter((s) => s.length > 800)[0];
    text = tok.encode(story).slice(0, 128);
  });
  afterAll(async () => {
    console.log(`GGUF written by llama.cpp's quantizer, imported by Quench, vs llama.cpp (128-token text, 64 greedy tokens):\n${figures.join('\n')}`);
    await llama?.dispose();
  });

  async function runCpp(file: string) {
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
      return { greedy, lp: text.slice(1).map((t, i) => Math.log(res[i]!.next.probabilities!.get(t as never)!)) };
    } finally {
      await ctx.dispose();
      await model.dispose();
    }
  }

  /** Quench on what it imports: greedy, log-probs, and each greedy step's top-2 margin. */
  async function runOurs(file: string) {
    const m = await loadGgufModel(bytesSource(file, new Uint8Array(readFileSync(file))));
    const model = LlamaModel.fromWeights(await testGpu(), m.config, m.weights);
    try {
      const greedy = await generate(model, [tok.bosId], { maxTokens: 64, temperature: 0 });
      const lp = Array.from(await tokenLogprobs(model, text));
      // margins along Quench's own greedy path (one forward over BOS + the first 63 tokens)
      const seq = [tok.bosId, ...greedy.slice(0, 63)], V = m.config.vocabSize;
      const acts = model.activations(1, seq.length, false);
      model.gpu.write(acts.tokens, Uint32Array.from(seq));
      model.forward(acts);
      const logits = new Float32Array(await model.gpu.readBytes(acts.logits.buffer, seq.length * V * 4, 0)); // (T, V) f32
      const margins = seq.map((_, t) => {
        const row = [...logits.subarray(t * V, (t + 1) * V)].sort((a, b) => b - a);
        return row[0] - row[1];
      });
      return { m, greedy, lp, margins };
    } finally {
      model.free();
    }
  }

  const diff = (a: number[], b: number[]) => {
    let max = 0, sum = 0;
    a.forEach((x, i) => {
      const d = Math.abs(x - b[i]);
      max = Math.max(max, d);
      sum += d;
    });
    return { max, mean: sum / a.length };
  };

  function writeF32(name: string, cfg: LlamaConfig, w: LlamaWeights): string {
    const file = join(dir, name);
    writeFileSync(file, concatParts(exportGguf(cfg, w, { vocab: ggufVocabFromLlama2c(tok), floatType: 'F32' }).parts));
    return file;
  }

  async function check(label: string, src: string, ftype: [string, number], tol: { max: number; mean: number }) {
    const file = join(dir, `${label}-${ftype[0]}.gguf`);
    py('quantize', src, file, String(ftype[1]));
    const ours = await runOurs(file);
    const cpp = await runCpp(file);
    const d = diff(cpp.lp, ours.lp);
    expect(d.max).toBeLessThan(tol.max);
    expect(d.mean).toBeLessThan(tol.mean);
    // free greedy: equal up to the first position where Quench's top two are within 0.3 nats (the
    // activation rounding can turn such a near-tie); a quantized file with no near-tie must match all 64
    const firstDiff = cpp.greedy.findIndex((t, i) => t !== ours.greedy[i]);
    const agree = firstDiff < 0 ? 64 : firstDiff;
    const firstTie = ours.margins.findIndex((x) => x < 0.3);
    if (firstDiff >= 0) expect(ours.margins[firstDiff]).toBeLessThan(0.3);
    // the control: the imported weights as F32 — no activation rounding left, only summation order
    const ctl = await runCpp(writeF32(`${label}-${ftype[0]}-as-f32.gguf`, ours.m.config, ours.m.weights));
    const d2 = diff(ctl.lp, ours.lp);
    expect(d2.max).toBeLessThan(1e-4);
    expect(ctl.greedy).toEqual(ours.greedy);
    const types = [...ours.m.header.tensors.values()].reduce<Record<string, number>>((a, t) => ((a[t.typeName] = (a[t.typeName] ?? 0) + 1), a), {});
    figures.push(`  ${label} ${ftype[0].padEnd(6)} ${JSON.stringify(types)}: max |Δ log p| ${d.max.toExponential(2)} mean ${d.mean.toExponential(2)}; greedy equal for ${agree}/64${firstDiff >= 0 ? ` (parted at position ${firstDiff}, Quench's top-2 margin there ${ours.margins[firstDiff].toFixed(3)})` : ''} (first near-tie < 0.3 at ${firstTie < 0 ? 'none' : firstTie}); imported weights as F32: ${d2.max.toExponential(2)}, greedy 64/64`);
    return types;
  }

  const Q = { max: 0.3, mean: 0.03 };
  for (const [ft, tol] of [[['Q8_0', 7], Q], [['Q4_0', 2], Q], [['Q4_1', 3], Q], [['F16', 1], { max: 1e-2, mean: 2e-3 }], [['Q4_K_M', 15], Q]] as [[string, number], typeof Q][]) {
    it(`stories260K F32 → llama.cpp ${ft[0]} → Quench import: log-probs and greedy agree with llama.cpp`, async () => {
      const m = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
      const src = join(dir, 'stories260K-f32.gguf');
      if (!existsSync(src)) writeF32('stories260K-f32.gguf', m.config, m.weights);
      const types = await check('stories260K', src, ft, tol);
      const main = ft[0] === 'Q4_K_M' ? 'Q5_0' : ft[0];
      expect(types[main]).toBeGreaterThan(0);
    });
  }

  it('a LLaMA with 256-wide rows (random weights) → llama.cpp Q4_K_M and Q5_K_M → real Q4_K / Q5_K / Q6_K tensors: Quench agrees with llama.cpp', async () => {
    const cfg: LlamaConfig = { dim: 256, hiddenDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 512, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false };
    const src = writeF32('k256-f32.gguf', cfg, randomWeights(cfg, 5, 0.08));
    const k4 = await check('random 256-wide', src, ['Q4_K_M', 15], Q);
    expect(k4.Q4_K).toBeGreaterThan(0);
    expect(k4.Q6_K).toBeGreaterThan(0);
    const k5 = await check('random 256-wide', src, ['Q5_K_M', 17], Q);
    expect(k5.Q5_K).toBeGreaterThan(0);
  });
});
