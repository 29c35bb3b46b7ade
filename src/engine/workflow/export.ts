// Exports of a model or a student, the same from `quench export`, the CLI's run folders and the
// studio: a safetensors folder (Quench's packed layout for a quantized model; `quench eval` loads
// it), ONNX in the folder layout transformers.js reads (MatMulNBits, KV cache), and GGUF for
// llama.cpp (Q4_1 / Q4_0 / Q8_0 keep the codes; the fp16 scale rounding is measured).
import type { LlamaConfig, LlamaWeights } from '../model/config';
import { hfConfigJson, writeHfModel, writeQuantizedHfModel } from '../io/hf';
import { tokenizerJsonFromPieces } from '../io/hf-tokenizer';
import { Llama2cTokenizer, type Tokenizer } from '../io/tokenizer';
import { concatParts, exportGguf, ggufVocabOf, type GgufExportReport } from '../io/gguf-write';
import { exportOnnx } from '../quant/onnx';
import type { QuantizedModel } from '../quant/ptq';

export type ExportFormat = 'safetensors' | 'onnx' | 'gguf';
export const EXPORT_FORMATS: ExportFormat[] = ['safetensors', 'onnx', 'gguf'];

/** The tokenizer as tokenizer.json text (llama2.c's converted; undefined for the byte tokenizer). */
export function tokenizerJsonOf(tok: Tokenizer | null, json?: string): string | undefined {
  if (json) return json;
  if (tok instanceof Llama2cTokenizer) return JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores));
  return undefined;
}

/** tokenizer_config.json for a tokenizer.json (HF's generic fast tokenizer class; the BOS / EOS
 *  strings of the given ids, BOS added as Quench's encode does). */
export function tokenizerConfigJson(tokenizerJson: string, bosId: number, eosId: number, maxLen: number): Record<string, unknown> {
  const j = JSON.parse(tokenizerJson) as { added_tokens?: { id: number; content: string }[]; model?: { vocab?: Record<string, number> | [string, number][]; unk_token?: string } };
  const byId = new Map<number, string>();
  const vocab = j.model?.vocab;
  if (vocab && !Array.isArray(vocab)) for (const [p, id] of Object.entries(vocab)) byId.set(id, p);
  else if (Array.isArray(vocab)) vocab.forEach(([p], id) => byId.set(id, p));
  for (const t of j.added_tokens ?? []) byId.set(t.id, t.content);
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: byId.get(bosId) ?? null,
    eos_token: byId.get(eosId) ?? null,
    ...(j.model?.unk_token ? { unk_token: j.model.unk_token } : {}),
    add_bos_token: true,
    add_eos_token: false,
    model_max_length: maxLen,
  };
}

/** Files of a model as a safetensors folder: FP (quantized = null) as HF, or a quantized model. */
export function modelFiles(config: LlamaConfig, weights: LlamaWeights, quantized: QuantizedModel | null, tokenizerJson?: string, dtype: 'F32' | 'F16' = 'F32'): Record<string, Uint8Array> {
  return quantized ? writeQuantizedHfModel(config, weights, quantized, { tokenizerJson }) : writeHfModel(config, weights, { dtype, tokenizerJson });
}

export interface ExportSource {
  name: string;
  config: LlamaConfig;
  weights: LlamaWeights;
  quantized: QuantizedModel | null;
  tokenizer: Tokenizer | null;
  tokenizerJson?: string;
}

export interface ExportResult {
  /** relative paths → bytes */
  files: Record<string, Uint8Array>;
  /** GGUF: per-tensor types and the rounding the format's fp16 scales add */
  gguf?: GgufExportReport;
  warnings: string[];
}

/** One model in one format. `dtype`: F32/F16 for FP tensors; `kvCache`: the ONNX graph with
 *  past_key_values (default) or plain input_ids → logits. */
export function exportModel(m: ExportSource, format: ExportFormat, o: { dtype?: 'F32' | 'F16'; kvCache?: boolean; extra?: Record<string, string> } = {}): ExportResult {
  const tokenizerJson = tokenizerJsonOf(m.tokenizer, m.tokenizerJson);
  const warnings: string[] = [];
  if (format === 'safetensors') return { files: modelFiles(m.config, m.weights, m.quantized, tokenizerJson, o.dtype), warnings };
  if (format === 'onnx') {
    const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x, null, 2));
    const files: Record<string, Uint8Array> = {
      'onnx/model.onnx': exportOnnx(m.config, m.weights, m.quantized, { kvCache: o.kvCache ?? true }),
      'config.json': new TextEncoder().encode(hfConfigJson(m.config)),
      'generation_config.json': enc({ bos_token_id: m.tokenizer?.bosId ?? 1, eos_token_id: m.tokenizer?.eosId ?? 2 }),
    };
    if (tokenizerJson) {
      files['tokenizer.json'] = new TextEncoder().encode(tokenizerJson);
      // transformers.js's AutoTokenizer needs tokenizer_config.json beside tokenizer.json
      files['tokenizer_config.json'] = enc(tokenizerConfigJson(tokenizerJson, m.tokenizer?.bosId ?? 1, m.tokenizer?.eosId ?? 2, m.config.maxSeqLen));
    } else warnings.push('no tokenizer: the ONNX folder has no tokenizer.json');
    return { files, warnings };
  }
  const vocab = ggufVocabOf(m.tokenizer, tokenizerJson);
  if (!vocab) warnings.push('no tokenizer found; the GGUF has no tokenizer.ggml.* vocabulary (llama.cpp needs one)');
  const g = exportGguf(m.config, m.weights, {
    quantized: m.quantized ?? undefined,
    floatType: m.quantized ? undefined : (o.dtype ?? 'F32'),
    otherType: m.quantized ? (o.dtype ?? 'F16') : undefined,
    vocab, name: m.name, extra: o.extra,
  });
  return { files: { 'model.gguf': concatParts(g.parts) }, gguf: g.report, warnings };
}

/** What the GGUF format's rounding did, in one line (the export dialog and the CLI print it). */
export function describeGgufReport(r: GgufExportReport): string {
  const types = Object.entries(r.projectionTypes).map(([k, v]) => `${v}× ${k}`).join(', ') || r.fileType;
  const packed = r.packed ? `; fp16 block scales change kept-code weights by at most ${r.packed.maxAbsError.toExponential(2)} (mean ${r.packed.meanAbsError.toExponential(2)}, ${r.packed.maxRelError.toExponential(2)} of the largest weight)` : '';
  const f16 = r.f16 ? `; F16 tensors round by at most ${r.f16.maxAbsError.toExponential(2)}` : '';
  return `GGUF ${(r.size / 1e6).toFixed(3)} MB, projections ${types}${packed}${f16}`;
}
