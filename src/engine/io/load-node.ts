// Node: load a model given a path (an HF folder, a .safetensors file inside one, or a llama2.c
// .bin) and a tokenizer (tokenizer.json or llama2.c tokenizer.bin; found beside the model when
// not given).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { LlamaConfig, LlamaWeights } from '../model/config';
import { readLlama2cCheckpoint } from './llama2c';
import { loadHfModel, type HfFiles } from './hf';
import { fileSource } from './node-source';
import { Llama2cTokenizer, type Tokenizer } from './tokenizer';
import { HfTokenizer, parseTokenizerJson, tokenizerJsonFromSentencePiece } from './hf-tokenizer';
import type { QuantizedModel } from '../quant/ptq';
import { checkVocabularies } from './validate';

export interface LoadedModel {
  config: LlamaConfig;
  weights: LlamaWeights;
  tokenizer: Tokenizer | null;
  format: 'llama2c' | 'hf' | 'gguf';
  path: string;
  dtypes: string[];
  quantization?: Record<string, unknown>;
  /** tokenizer.json text, when the model came with one (to write it back out) */
  tokenizerJson?: string;
  /** packed projections, for a Quench-quantized folder */
  quantized?: QuantizedModel;
}

export function loadTokenizerFile(path: string, vocabSize?: number): Tokenizer {
  if (!existsSync(path)) throw new Error(`${path}: tokenizer file not found`);
  if (path.endsWith('.json')) return parseTokenizerJson(readFileSync(path, 'utf8'), basename(path));
  // SentencePiece protobuf (LLaMA's tokenizer.model), converted as transformers' LlamaConverter
  if (path.endsWith('.model')) return new HfTokenizer(tokenizerJsonFromSentencePiece(readFileSync(path), basename(path)), basename(path));
  return new Llama2cTokenizer(readFileSync(path), basename(path), vocabSize);
}

/** A llama.cpp .gguf file (weights dequantized to fp32, tokenizer from its metadata unless given). */
async function loadGgufFile(path: string, tokenizerPath?: string): Promise<LoadedModel> {
  const { loadGgufModel } = await import('./gguf');
  const src = await fileSource(path);
  try {
    const m = await loadGgufModel(src, { skipTokenizer: !!tokenizerPath });
    const tok = tokenizerPath ? loadTokenizerFile(tokenizerPath, m.config.vocabSize) : m.tokenizerJson ? parseTokenizerJson(m.tokenizerJson, basename(path), { generationConfig: m.specialIds }) : null;
    return { config: m.config, weights: m.weights, tokenizer: tok, format: 'gguf', path, dtypes: m.dtypes, tokenizerJson: tokenizerPath ? undefined : (m.tokenizerJson ?? undefined) };
  } finally {
    await src.close?.();
  }
}

export async function loadModelFromPath(modelPath: string, tokenizerPath?: string): Promise<LoadedModel> {
  if (!existsSync(modelPath)) throw new Error(`${modelPath}: no such file or folder`);
  const st = statSync(modelPath);
  if (st.isFile() && modelPath.endsWith('.gguf')) return loadGgufFile(modelPath, tokenizerPath);
  if (st.isFile() && !modelPath.endsWith('.safetensors') && !modelPath.endsWith('.json')) {
    const m = readLlama2cCheckpoint(readFileSync(modelPath), basename(modelPath));
    let tok: Tokenizer | null = null;
    const tokPath = tokenizerPath ?? ['tokenizer.bin', 'tokenizer.json'].map((f) => join(dirname(modelPath), f)).find(existsSync);
    if (tokPath) {
      tok = loadTokenizerFile(tokPath, m.config.vocabSize);
      checkVocabularies(m.config, tok, basename(modelPath), basename(tokPath));
    }
    return { config: m.config, weights: m.weights, tokenizer: tok, format: 'llama2c', path: modelPath, dtypes: [m.version === 2 ? 'Q8_0' : 'F32'] };
  }
  const dir = st.isDirectory() ? modelPath : dirname(modelPath);
  const files: HfFiles = {};
  const opened = [];
  for (const f of readdirSync(dir)) {
    if (!/\.(json|safetensors)$/.test(f)) continue;
    const src = await fileSource(join(dir, f));
    files[f] = src;
    opened.push(src);
  }
  // a single .safetensors given explicitly: use only that one unless sharded
  if (st.isFile() && modelPath.endsWith('.safetensors') && !files['model.safetensors.index.json']) {
    for (const k of Object.keys(files)) if (k.endsWith('.safetensors') && k !== basename(modelPath)) delete files[k];
  }
  try {
    const m = await loadHfModel(files);
    let tok: Tokenizer | null = null;
    if (tokenizerPath) tok = loadTokenizerFile(tokenizerPath, m.config.vocabSize);
    else if (m.tokenizerJson !== null) tok = parseTokenizerJson(m.tokenizerJson, join(dir, 'tokenizer.json'), m.tokenizerExtras);
    if (tok) checkVocabularies(m.config, tok, join(dir, 'config.json'), tokenizerPath ?? join(dir, 'tokenizer.json'));
    return { config: m.config, weights: m.weights, tokenizer: tok, format: 'hf', path: dir, dtypes: m.dtypes, quantization: m.quantization, tokenizerJson: m.tokenizerJson ?? undefined, quantized: m.quantized };
  } finally {
    for (const s of opened) await s.close?.();
  }
}
