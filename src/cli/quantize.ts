// quench quantize --model PATH [--tokenizer PATH] --bits 4 --group 32 [--sym] [--clip-search]
//                 --out DIR [--format safetensors|onnx]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelFromPath } from '../engine/io/load-node';
import { writeQuantizedHfModel } from '../engine/io/hf';
import { tokenizerJsonFromPieces } from '../engine/io/hf-tokenizer';
import { Llama2cTokenizer } from '../engine/io/tokenizer';
import { quantizeWeights } from '../engine/quant/ptq';
import { paramCount } from '../engine/model/config';
import { parse, progress } from './args';
import { describePtq, ptqFromArgs, QUANT_OPTIONS } from './quant-args';

const HELP = `usage: quench quantize --model PATH [--tokenizer PATH] --bits 2|3|4|8 [--group 32|64|128|channel] [--sym]
                       [--clip-search] --out DIR [--format safetensors|onnx] [--json]
Post-training quantization of the seven projections of every layer (q, k, v, o, gate, up, down).
Without --sym and --clip-search: asymmetric min/max round-to-nearest. --group defaults to 32.
DIR becomes a complete model folder (config.json with a quantization_config, model.safetensors,
tokenizer.json) that \`quench eval --model DIR\` and the studio load as they are; --format onnx
also writes DIR/model.onnx (MatMulNBits). Prints per-tensor relative error and bytes.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, { model: { type: 'string' }, tokenizer: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' }, json: { type: 'boolean' }, ...QUANT_OPTIONS }, HELP);
  if (!a) return 0;
  if (!a.model || !a.out) throw new Error(`--model and --out are required\n\n${HELP}`);
  const q = ptqFromArgs(a);
  if (!q) throw new Error(`--bits is required\n\n${HELP}`);
  const format = (a.format as string | undefined) ?? 'safetensors';
  if (!['safetensors', 'onnx'].includes(format)) throw new Error(`--format must be safetensors or onnx, got ${format}`);
  const m = await loadModelFromPath(a.model as string, a.tokenizer as string | undefined);
  if (m.quantized) throw new Error(`${m.path}: already quantized`);
  const qm = quantizeWeights(m.config, m.weights, q, progress('quantize: tensors'));
  let tokenizerJson = m.tokenizerJson;
  if (m.tokenizer instanceof Llama2cTokenizer) tokenizerJson = JSON.stringify(tokenizerJsonFromPieces(m.tokenizer.vocab, m.tokenizer.scores));
  const files = writeQuantizedHfModel(m.config, m.weights, qm, { tokenizerJson });
  if (format === 'onnx') {
    const { exportOnnx } = await import('../engine/quant/onnx');
    files['model.onnx'] = exportOnnx(m.config, m.weights, qm);
  }
  const out = a.out as string;
  mkdirSync(out, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(out, name), bytes);
  const fp = qm.report.reduce((s, r) => s + r.bytesFp32, 0), pk = qm.report.reduce((s, r) => s + r.bytesPacked, 0);
  if (a.json) console.log(JSON.stringify({ out, quant: q, params: paramCount(m.config), projectionBytesFp32: fp, projectionBytesPacked: pk, modelBytes: files['model.safetensors'].byteLength, tensors: qm.report }));
  else {
    console.log(`${describePtq(q)}: ${qm.report.length} tensors, projections ${(fp / 1e6).toFixed(3)} MB fp32 -> ${(pk / 1e6).toFixed(3)} MB packed (${(fp / pk).toFixed(2)}x)`);
    for (const r of qm.report) console.log(`  layer ${String(r.layer).padStart(2)} ${r.proj.padEnd(4)} rel error ${r.relError.toFixed(4)}`);
    console.log(`wrote ${Object.keys(files).map((f) => join(out, f)).join(', ')}`);
  }
  return 0;
}
