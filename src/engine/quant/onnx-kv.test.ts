// ONNX export with a KV cache (input_ids, attention_mask, position_ids, past_key_values.N.* →
// logits, present.N.*) run by onnxruntime-node (CPU): decoding token by token through the cache
// equals the uncached forward, both equal the float64 reference on the dequantized weights, the
// causal mask comes from the shapes (no mask initializer), and on stories260K the 4-bit export is
// smaller than the FP32 model and greedy-decodes as Quench does.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { randomWeights, tinyConfig, type LlamaConfig } from '../model/config';
import { refForward } from '../ref/llama';
import { expectClose, testGpu } from '../testing';
import { dequantizedWeights, quantizeWeights, type QuantizedModel } from './ptq';
import { exportOnnx } from './onnx';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../io/data';
import { readLlama2cCheckpoint } from '../io/llama2c';
import { writeHfModel } from '../io/hf';
import { LlamaModel } from '../model/llama';
import { generate } from '../model/runner';

const i64 = (xs: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs.map(BigInt)), dims);

/** Greedy / scoring helper over a cached session: feeds `tokens` after the cache, returns logits. */
async function step(s: ort.InferenceSession, cfg: LlamaConfig, past: Record<string, ort.Tensor> | null, tokens: number[], start: number) {
  const HS = cfg.dim / cfg.nHeads;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: i64(tokens, [1, tokens.length]),
    attention_mask: i64(new Array(start + tokens.length).fill(1), [1, start + tokens.length]),
    position_ids: i64(tokens.map((_, i) => start + i), [1, tokens.length]),
  };
  for (let l = 0; l < cfg.nLayers; l++)
    for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = past?.[`present.${l}.${kv}`] ?? new ort.Tensor('float32', new Float32Array(0), [1, cfg.nKvHeads, 0, HS]);
  const out = await s.run(feeds);
  return { logits: out.logits.data as Float32Array, present: out as Record<string, ort.Tensor> };
}

describe('ONNX with a KV cache in onnxruntime-node', () => {
  for (const [name, over, q] of [
    ['GQA 8/4, tied, int4 (MatMulNBits)', { dim: 64, hiddenDim: 128, nHeads: 8, nKvHeads: 4, vocabSize: 50, tiedEmbeddings: true, maxSeqLen: 64 }, true],
    ['MHA, untied, fp32', { dim: 32, hiddenDim: 64, nHeads: 4, nKvHeads: 4, vocabSize: 37, tiedEmbeddings: false, maxSeqLen: 64 }, false],
  ] as const) {
    it(`${name}: cached decoding = uncached = float64 reference`, async () => {
      const cfg = tinyConfig(over);
      const w = randomWeights(cfg, 11, 0.5);
      const qm: QuantizedModel | null = q ? quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false }) : null;
      const tokens = [1, 5, 9, 2, 33, 7, 8, 3, 21, 14];
      const T = tokens.length, V = cfg.vocabSize;
      const ref = refForward(cfg, qm ? dequantizedWeights(w, qm) : w, tokens, 1, T).logits;
      const plain = await ort.InferenceSession.create(exportOnnx(cfg, w, qm));
      const full = (await plain.run({ input_ids: i64(tokens, [1, T]) })).logits.data as Float32Array;
      expectClose('uncached ORT vs float64 reference', full, ref, { atol: 1e-4, rtol: 1e-3 });
      const bytes = exportOnnx(cfg, w, qm, { kvCache: true });
      const s = await ort.InferenceSession.create(bytes);
      expect(s.inputNames).toEqual(['input_ids', 'attention_mask', 'position_ids', ...Array.from({ length: cfg.nLayers }, (_, l) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`]).flat()]);
      expect(s.outputNames).toEqual(['logits', ...Array.from({ length: cfg.nLayers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat()]);
      // the whole sequence with an empty cache
      const once = await step(s, cfg, null, tokens, 0);
      expectClose('cached graph, empty cache vs uncached', once.logits, full, { atol: 1e-5, rtol: 1e-5 });
      // prefill 4 tokens, then one token at a time through present → past
      let r = await step(s, cfg, null, tokens.slice(0, 4), 0);
      const rows = [r.logits];
      for (let t = 4; t < T; t++) {
        r = await step(s, cfg, r.present, [tokens[t]], t);
        expect(r.present['present.0.key'].dims).toEqual([1, cfg.nKvHeads, t + 1, cfg.dim / cfg.nHeads]);
        rows.push(r.logits);
      }
      const inc = new Float32Array(T * V);
      let o = 0;
      for (const x of rows) {
        inc.set(x, o);
        o += x.length;
      }
      expectClose('token-by-token with the cache vs uncached', inc, full, { atol: 1e-4, rtol: 1e-4 });
      // left padding in a batch of 2: the padded row's real tokens score as if alone
      const pad = 3, B = 2, L2 = T;
      const ids = [...tokens, 0, 0, 0, ...tokens.slice(0, T - pad)];
      const mask = [...new Array(T).fill(1), 0, 0, 0, ...new Array(T - pad).fill(1)];
      const posIds = [...tokens.map((_, i) => i), 0, 0, 0, ...tokens.slice(0, T - pad).map((_, i) => i)];
      const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids, [B, L2]), attention_mask: i64(mask, [B, L2]), position_ids: i64(posIds, [B, L2]) };
      for (let l = 0; l < cfg.nLayers; l++) for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [B, cfg.nKvHeads, 0, cfg.dim / cfg.nHeads]);
      const both = (await s.run(feeds)).logits.data as Float32Array;
      expectClose('batch row 0 = alone', both.subarray(0, T * V), full, { atol: 1e-4, rtol: 1e-4 });
      expectClose('left-padded row 1 = alone', both.subarray((T + pad) * V, 2 * T * V), full.subarray(0, (T - pad) * V), { atol: 1e-4, rtol: 1e-4 });
      await s.release();
      await plain.release();
    });
  }

  it.skipIf(!hasSharedData)('stories260K int4: smaller than FP32, no mask initializer, cached greedy = Quench', async () => {
    if (!hasSharedData) console.warn(SKIP_MESSAGE);
    const { config: cfg, weights: w } = readLlama2cCheckpoint(readFileSync(sharedPath('models/stories260K/stories260K.bin')), 'stories260K.bin');
    const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false });
    const bytes = exportOnnx(cfg, w, qm, { kvCache: true });
    const fp32 = writeHfModel(cfg, w)['model.safetensors'].byteLength;
    const plain = exportOnnx(cfg, w, qm).byteLength;
    console.log(`stories260K ONNX int4: ${bytes.byteLength} bytes with KV cache, ${plain} without; FP32 safetensors ${fp32}`);
    expect(bytes.byteLength).toBeLessThan(fp32);
    expect(plain).toBeLessThan(fp32);
    // a (512, 512) fp32 mask alone would be 1 MB; the names of the old tables are gone too
    expect(bytes.byteLength).toBeLessThan(fp32 / 2);
    const text = new TextDecoder('latin1').decode(bytes);
    for (const n of ['causal_mask', 'rope_cos', 'rope_sin']) expect(text.includes(n)).toBe(false);
    const s = await ort.InferenceSession.create(bytes);
    const ids: number[] = [1];
    let r = await step(s, cfg, null, ids, 0);
    for (let t = 0; t < 48; t++) {
      const row = r.logits.subarray(r.logits.length - cfg.vocabSize);
      let best = 0;
      for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
      ids.push(best);
      r = await step(s, cfg, r.present, [best], ids.length - 1);
    }
    await s.release();
    const model = LlamaModel.fromWeights(await testGpu(), cfg, w, { quantized: qm });
    const ours = await generate(model, [1], { maxTokens: 48, temperature: 0 });
    model.free();
    expect(ids.slice(1)).toEqual(ours);
  });
});
