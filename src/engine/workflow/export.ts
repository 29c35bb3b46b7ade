// Exports of a model or a student, the same from the CLI and the studio: a Quench-quantized
// safetensors folder (`quench eval` loads it), ONNX (MatMulNBits), the FP model as HF files.
import type { LlamaConfig, LlamaWeights } from '../model/config';
import { writeHfModel, writeQuantizedHfModel } from '../io/hf';
import { tokenizerJsonFromPieces } from '../io/hf-tokenizer';
import { Llama2cTokenizer, type Tokenizer } from '../io/tokenizer';
import { exportOnnx } from '../quant/onnx';
import type { QuantizedModel } from '../quant/ptq';

export type ExportFormat = 'safetensors' | 'onnx';

/** The tokenizer as tokenizer.json text (llama2.c's converted; undefined for the byte tokenizer). */
export function tokenizerJsonOf(tok: Tokenizer, json?: string): string | undefined {
  if (json) return json;
  if (tok instanceof Llama2cTokenizer) return JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores));
  return undefined;
}

/** Files of a model: FP (quantized = null) as HF safetensors, or a quantized student/PTQ model. */
export function modelFiles(config: LlamaConfig, weights: LlamaWeights, quantized: QuantizedModel | null, format: ExportFormat, tokenizerJson?: string): Record<string, Uint8Array> {
  if (format === 'onnx') return { 'model.onnx': exportOnnx(config, weights, quantized) };
  return quantized ? writeQuantizedHfModel(config, weights, quantized, { tokenizerJson }) : writeHfModel(config, weights, { tokenizerJson });
}
