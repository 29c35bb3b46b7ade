// Export a model to ONNX and run it in onnxruntime-web next to our own int4 forward: the check a
// user runs after exporting, and what the e2e test asserts on the wasm and webgpu providers.
import type * as OrtNs from 'onnxruntime-web';
import type { Gpu } from '../gpu/runtime';
import { randomWeights, type LlamaConfig, type LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { exportOnnx } from './onnx';
import { quantizeWeights, type QuantizedModel } from './ptq';

export interface OnnxCheckResult {
  provider: string;
  maxAbsDiff: number;
  maxAbsLogit: number;
  ms: number;
  ok: boolean;
  error?: string;
}

export const ONNX_TOLERANCE = 1e-3; // max |ours − ORT| relative to max |logit|

export async function ourLogits(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, qm: QuantizedModel | null, tokens: number[]): Promise<Float32Array> {
  const m = LlamaModel.fromWeights(gpu, cfg, w, { quantized: qm ?? undefined });
  const acts = m.activations(1, tokens.length, false);
  gpu.write(acts.tokens, new Uint32Array(tokens));
  m.forward(acts);
  const out = await gpu.readF32(acts.logits);
  m.free();
  return out;
}

export async function runOnnx(ort: typeof OrtNs, bytes: Uint8Array, tokens: number[], provider: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { executionProviders: [provider] });
  try {
    const out = await s.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map((t) => BigInt(t))), [1, tokens.length]) });
    return Float32Array.from(out.logits.data as Float32Array);
  } finally {
    await s.release();
  }
}

export function compareLogits(ours: Float32Array, theirs: Float32Array): { maxAbsDiff: number; maxAbsLogit: number } {
  let d = 0, m = 0;
  for (let i = 0; i < ours.length; i++) {
    d = Math.max(d, Math.abs(ours[i] - theirs[i]));
    m = Math.max(m, Math.abs(ours[i]));
  }
  if (ours.length !== theirs.length) d = Infinity;
  return { maxAbsDiff: d, maxAbsLogit: m };
}

/** A small random GQA model with a ragged hidden size, quantized w4g32, exported, run in ORT. */
export async function onnxSelfCheck(gpu: Gpu, ort: typeof OrtNs, providers: string[]): Promise<OnnxCheckResult[]> {
  const cfg: LlamaConfig = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 8, nKvHeads: 4, vocabSize: 96, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
  const w = randomWeights(cfg, 42, 0.5);
  const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: true });
  const bytes = exportOnnx(cfg, w, qm);
  const tokens = [1, 17, 4, 88, 23, 5, 60, 2, 31, 77, 9];
  const ours = await ourLogits(gpu, cfg, w, qm, tokens);
  const results: OnnxCheckResult[] = [];
  for (const provider of providers) {
    const t0 = performance.now();
    try {
      const theirs = await runOnnx(ort, bytes, tokens, provider);
      const c = compareLogits(ours, theirs);
      results.push({ provider, ...c, ms: performance.now() - t0, ok: c.maxAbsDiff <= ONNX_TOLERANCE * c.maxAbsLogit });
    } catch (e) {
      results.push({ provider, maxAbsDiff: NaN, maxAbsLogit: NaN, ms: performance.now() - t0, ok: false, error: (e as Error).message });
    }
  }
  return results;
}
