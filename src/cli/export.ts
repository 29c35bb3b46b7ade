// quench export --model PATH [--tokenizer PATH] --format gguf|onnx|safetensors --out DIR
//               [--dtype F32|F16] [--name NAME] [--no-cache] [--json]
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { loadModelFromPath } from '../engine/io/load-node';
import type { GgufExportReport } from '../engine/io/gguf-write';
import { exportModel, type ExportFormat } from '../engine/workflow/export';
import { parse } from './args';

const HELP = `usage: quench export --model PATH [--tokenizer PATH] --format gguf|onnx|safetensors --out DIR
                     [--dtype F32|F16] [--name NAME] [--no-cache] [--json]
Exports any model quench loads (an HF folder, a Quench-quantized folder such as a distill run's
DIR/student, a llama2.c .bin with --tokenizer, a .gguf) for other runtimes:
  gguf         DIR/model.gguf for llama.cpp (and Ollama, LM Studio, wllama). A Quench-quantized
               model keeps its codes: asymmetric 4-bit (group a multiple of 32) -> Q4_1,
               symmetric 4-bit -> Q4_0, 8-bit -> Q8_0; other projections, and projections whose
               rows are not a multiple of 32 values, F16; embeddings F16 (--dtype F32 keeps them
               F32); norms F32. The fp16 block scales round ours: the max / mean weight change
               is printed and stored in the file (quench.export.* keys). An FP model: F32, or
               F16 with --dtype F16. The tokenizer is embedded: tokenizer.ggml.model "llama"
               (SentencePiece) or "gpt2" (byte-level BPE with its merges and llama.cpp's name for
               the pre-tokenizer: llama-bpe, qwen2, smollm, gpt-2; others are refused).
  onnx         DIR/onnx/model.onnx + config.json, generation_config.json, tokenizer.json,
               tokenizer_config.json (the folder layout transformers.js reads): MatMulNBits for
               4-bit projections, a KV cache (input_ids, attention_mask, position_ids,
               past_key_values.N.key/value -> logits, present.N.key/value); --no-cache for the
               plain input_ids -> logits graph.
  safetensors  an HF folder: F32 / F16 for an FP model, Quench's packed layout for a quantized one.`;

function printGgufReport(r: GgufExportReport, file: string): void {
  console.log(`wrote ${file}: ${(r.size / 1e6).toFixed(3)} MB, projections ${Object.entries(r.projectionTypes).map(([k, v]) => `${v}x ${k}`).join(', ') || r.fileType}`);
  if (r.packed) console.log(`  fp16 scale rounding over ${r.packed.tensors} projections that kept their codes: max |dw| ${r.packed.maxAbsError.toExponential(3)}, mean |dw| ${r.packed.meanAbsError.toExponential(3)}, max |dw| / max|w| ${r.packed.maxRelError.toExponential(3)}`);
  if (r.f16) console.log(`  F16 rounding over ${r.f16.tensors} tensors: max |dw| ${r.f16.maxAbsError.toExponential(3)}, mean |dw| ${r.f16.meanAbsError.toExponential(3)}`);
  for (const t of r.tensors) console.log(`  ${t.name.padEnd(28)} ${t.type.padEnd(5)} max |dw| ${t.maxAbsError.toExponential(2)}  mean ${t.meanAbsError.toExponential(2)}`);
}

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { model: { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' }, dtype: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' }, 'no-cache': { type: 'boolean' } }, HELP);
  if (!a) return 0;
  if (!a.model || !a.out || !a.format) throw new Error(`--model, --format and --out are required\n\n${HELP}`);
  const format = a.format as string;
  if (!['gguf', 'onnx', 'safetensors'].includes(format)) throw new Error(`--format must be gguf, onnx or safetensors, got ${format}`);
  const dtype = a.dtype === undefined ? undefined : String(a.dtype).toUpperCase();
  if (dtype !== undefined && dtype !== 'F32' && dtype !== 'F16') throw new Error(`--dtype must be F32 or F16, got ${a.dtype}`);
  const m = await loadModelFromPath(a.model as string, a.tokenizer as string | undefined);
  const out = a.out as string;
  const name = (a.name as string | undefined) ?? basename(m.path).replace(/\.(bin|gguf|safetensors)$/, '');
  const r = exportModel({ name, config: m.config, weights: m.weights, quantized: m.quantized ?? null, tokenizer: m.tokenizer, tokenizerJson: m.tokenizerJson }, format as ExportFormat, {
    dtype: dtype as 'F32' | 'F16' | undefined, kvCache: !a['no-cache'], extra: { source: m.path },
  });
  for (const w of r.warnings) console.error(`quench export: ${w}`);
  for (const [n, bytes] of Object.entries(r.files)) {
    mkdirSync(dirname(join(out, n)), { recursive: true });
    writeFileSync(join(out, n), bytes);
  }
  const list = Object.entries(r.files).map(([n, b]) => ({ file: join(out, n), bytes: b.byteLength }));
  if (r.gguf) {
    if (a.json) console.log(JSON.stringify({ file: list[0].file, ...r.gguf }));
    else printGgufReport(r.gguf, list[0].file);
    return 0;
  }
  if (a.json) console.log(JSON.stringify({ format, files: list }));
  else console.log(`wrote ${list.map((f) => `${f.file} (${(f.bytes / 1e6).toFixed(3)} MB)`).join(', ')}`);
  return 0;
}
