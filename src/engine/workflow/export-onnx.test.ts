// The ONNX export folder in the runtimes it is for (issue 15): a stories260K w4g32 student, written
// as a Quench-quantized folder and loaded back (the layout of a distill run's DIR/student), exported
// with exportModel(…, 'onnx') — what `quench export --format onnx` writes.
//
// 1. onnxruntime-node, with the KV cache (documents fed in chunks of 16 tokens through
//    past_key_values → present) and without (the input_ids → logits graph), gives the perplexity
//    `quench eval` prints (the CLI itself, --json) on the same documents. Tolerance: |Δ mean NLL|
//    ≤ 1e-5 nats (relative 1e-5 on the perplexity). Both sides are fp32 on the same weights (ORT's
//    MatMulNBits dequantizes the same codes, fp32 scales and zero points); only summation order
//    differs, measured ~1e-7 nats. Both 4-bit graphs are smaller than the FP32 safetensors.
// 2. @huggingface/transformers (transformers.js, Node, onnxruntime-node underneath) loads the
//    folder from local files with remote models disabled and fetch() made to throw, tokenizes as
//    Quench does, and its greedy generation equals Quench's (LlamaModel + generate, temperature 0).
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../io/data';
import { readLlama2cCheckpoint } from '../io/llama2c';
import { Llama2cTokenizer } from '../io/tokenizer';
import { tokenizerJsonFromPieces } from '../io/hf-tokenizer';
import { loadModelFromPath, type LoadedModel } from '../io/load-node';
import { quantizeWeights } from '../quant/ptq';
import { encodeDocuments, perplexity, splitDocuments } from '../eval/perplexity';
import { LlamaModel } from '../model/llama';
import { generate } from '../model/runner';
import { testGpu } from '../testing';
import { exportModel, modelFiles } from './export';

if (!hasSharedData) console.warn(SKIP_MESSAGE);

const DOCS = 8;
const i64 = (xs: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs.map(BigInt)), dims);

/** Summed NLL (float64) of tokens[1..] from rows of logits (T, V) f32 for tokens[0..]. */
function nllOf(logits: Float32Array, tokens: number[], V: number, row0 = 0): number {
  let s = 0;
  for (let t = row0; t < tokens.length - 1; t++) {
    const row = logits.subarray((t - row0) * V, (t - row0 + 1) * V);
    let mx = -Infinity, z = 0;
    for (const v of row) mx = Math.max(mx, v);
    for (const v of row) z += Math.exp(v - mx);
    s -= row[tokens[t + 1]] - mx - Math.log(z);
  }
  return s;
}

describe.skipIf(!hasSharedData)('the ONNX export folder in onnxruntime-node and transformers.js', () => {
  let m: LoadedModel;
  let dir: string, student: string, textFile: string;
  let seqs: number[][];

  beforeAll(async () => {
    const S = 'models/stories260K';
    const { config: cfg, weights: w } = readLlama2cCheckpoint(readFileSync(sharedPath(S, 'stories260K.bin')), 'stories260K.bin');
    const tok = new Llama2cTokenizer(readFileSync(sharedPath(S, 'tok512.bin')), 'tok512.bin', cfg.vocabSize);
    dir = mkdtempSync(join(tmpdir(), 'quench-onnx-'));
    student = join(dir, 'student');
    mkdirSync(student);
    const qm = quantizeWeights(cfg, w, { bits: 4, group: 32, sym: false, clipSearch: false });
    for (const [n, b] of Object.entries(modelFiles(cfg, w, qm, JSON.stringify(tokenizerJsonFromPieces(tok.vocab, tok.scores))))) writeFileSync(join(student, n), b);
    m = await loadModelFromPath(student);
    expect(m.quantized).toBeDefined();
    for (const kvCache of [true, false]) {
      const out = join(dir, kvCache ? 'onnx-kv' : 'onnx-plain');
      const r = exportModel({ name: 'stories260K-w4g32', config: m.config, weights: m.weights, quantized: m.quantized ?? null, tokenizer: m.tokenizer, tokenizerJson: m.tokenizerJson }, 'onnx', { kvCache });
      for (const [n, b] of Object.entries(r.files)) {
        mkdirSync(dirname(join(out, n)), { recursive: true });
        writeFileSync(join(out, n), b);
      }
    }
    textFile = sharedPath('text/tinystories_val_800.txt');
    const docs = splitDocuments(readFileSync(textFile, 'utf8'), '<|endoftext|>').slice(0, DOCS);
    seqs = encodeDocuments(docs, (s) => m.tokenizer!.encode(s, { bos: true }), m.config.maxSeqLen);
  });

  it(`onnxruntime-node, with the KV cache and without, gives quench eval's perplexity on ${DOCS} documents`, async () => {
    const repo = join(__dirname, '../../..');
    const tc = performance.now();
    const cli = JSON.parse(execFileSync(process.execPath, [join(repo, 'bin/quench.mjs'), 'eval', '--model', student, '--text', textFile, '--sep', '<|endoftext|>', '--limit', String(DOCS), '--json'], { encoding: 'utf8', env: { ...process.env, QUENCH_PROGRESS: '0' } }).trim().split('\n').pop()!) as { ppl: number; nll: number; tokens: number; documents: number };
    const cliSeconds = (performance.now() - tc) / 1000;
    const cfg = m.config, V = cfg.vocabSize, HS = cfg.dim / cfg.nHeads;
    // the 4-bit folders are smaller than the FP32 model (safetensors of the same weights)
    const fp32 = modelFiles(cfg, m.weights, null)['model.safetensors'].byteLength;
    for (const g of ['onnx-kv', 'onnx-plain']) expect(statSync(join(dir, g, 'onnx/model.onnx')).size).toBeLessThan(fp32);
    // one thread each: on this shared 2-core machine more threads spin
    const so: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
    const plain = await ort.InferenceSession.create(join(dir, 'onnx-plain/onnx/model.onnx'), so);
    const cached = await ort.InferenceSession.create(join(dir, 'onnx-kv/onnx/model.onnx'), so);
    expect(cached.inputNames).toContain('past_key_values.0.key');
    const t0 = performance.now();
    const plainR = await perplexity(seqs, async (ids) => nllOf((await plain.run({ input_ids: i64(ids, [1, ids.length]) })).logits.data as Float32Array, ids, V));
    const t1 = performance.now();
    const cachedR = await perplexity(seqs, async (ids) => {
      let past: Record<string, ort.Tensor> | null = null;
      let nll = 0;
      for (let s = 0; s < ids.length; s += 16) {
        const chunk = ids.slice(s, s + 16);
        const feeds: Record<string, ort.Tensor> = {
          input_ids: i64(chunk, [1, chunk.length]),
          attention_mask: i64(new Array(s + chunk.length).fill(1), [1, s + chunk.length]),
          position_ids: i64(chunk.map((_, i) => s + i), [1, chunk.length]),
        };
        for (let l = 0; l < cfg.nLayers; l++)
          for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = past?.[`present.${l}.${kv}`] ?? new ort.Tensor('float32', new Float32Array(0), [1, cfg.nKvHeads, 0, HS]);
        const out = await cached.run(feeds);
        // rows of this chunk predict ids[s + 1 ..]; the chunk's last row predicts the next chunk's first token
        nll += nllOf(out.logits.data as Float32Array, ids.slice(0, s + chunk.length + 1), V, s);
        past = out as Record<string, ort.Tensor>;
      }
      return nll;
    });
    const t2 = performance.now();
    await plain.release();
    await cached.release();
    console.log(`stories260K w4g32, ${cli.documents} documents, ${cli.tokens} tokens: quench eval ppl ${cli.ppl.toFixed(6)} (nll ${cli.nll.toFixed(8)}, ${cliSeconds.toFixed(1)} s with the CLI's start); ORT uncached ${plainR.ppl.toFixed(6)} (Δnll ${(plainR.nll - cli.nll).toExponential(2)}, ${((t1 - t0) / 1000).toFixed(2)} s); ORT KV cache, chunks of 16 ${cachedR.ppl.toFixed(6)} (Δnll ${(cachedR.nll - cli.nll).toExponential(2)}, ${((t2 - t1) / 1000).toFixed(2)} s)`);
    for (const r of [plainR, cachedR]) {
      expect(r.documents).toBe(cli.documents);
      expect(r.tokens).toBe(cli.tokens);
      expect(Math.abs(r.nll - cli.nll)).toBeLessThan(1e-5);
      expect(Math.abs(r.ppl / cli.ppl - 1)).toBeLessThan(1e-5);
    }
  });

  it('transformers.js loads the folder from local files only, tokenizes as Quench, and greedy-generates as Quench', async () => {
    const tf = await import('@huggingface/transformers');
    tf.env.allowRemoteModels = false;
    tf.env.allowLocalModels = true;
    tf.env.localModelPath = dir;
    tf.env.useFSCache = false;
    // no network: any fetch() during loading or generation fails the test
    const realFetch = globalThis.fetch;
    const fetched: string[] = [];
    globalThis.fetch = ((u: unknown) => {
      fetched.push(String(u));
      throw new Error(`transformers.js tried to fetch ${String(u)}`);
    }) as typeof fetch;
    try {
      const tok = await tf.AutoTokenizer.from_pretrained('onnx-kv');
      const model = await tf.AutoModelForCausalLM.from_pretrained('onnx-kv', { dtype: 'fp32', device: 'cpu', session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 } });
      for (const s of ['Once upon a time', 'Lily said, "No!" and ran to the park.\n\nThe end.', ' café 日本']) {
        expect(Array.from(tok.encode(s))).toEqual(m.tokenizer!.encode(s, { bos: true }));
      }
      const gpuModel = LlamaModel.fromWeights(await testGpu(), m.config, m.weights, { quantized: m.quantized });
      try {
        for (const prompt of [[m.tokenizer!.bosId], m.tokenizer!.encode('Once upon a time', { bos: true })]) {
          const out = (await model.generate({ input_ids: new tf.Tensor('int64', BigInt64Array.from(prompt.map(BigInt)), [1, prompt.length]), attention_mask: new tf.Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]), max_new_tokens: 64, do_sample: false })) as { tolist(): bigint[][] };
          const theirs = out.tolist()[0].slice(prompt.length).map(Number);
          const ours = await generate(gpuModel, prompt, { maxTokens: 64, temperature: 0 });
          // transformers.js stops after EOS; Quench's generate stops before it
          expect(theirs.filter((t) => t !== m.tokenizer!.eosId)).toEqual(ours.slice(0, theirs.length));
          expect(theirs.length).toBeGreaterThanOrEqual(Math.min(64, ours.length));
          console.log(`transformers.js greedy from ${JSON.stringify(tok.decode(prompt, { skip_special_tokens: true }))}: ${theirs.length} tokens = Quench's: ${JSON.stringify(tok.decode(theirs, { skip_special_tokens: true }).slice(0, 80))}…`);
        }
      } finally {
        gpuModel.free();
      }
      await model.dispose();
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(fetched).toEqual([]);
  });
});
