// Perplexity evaluation tokens/s: `quench eval`'s code path (LlamaModel + sequenceNlls: documents
// batched, log-softmax + gather and per-document sums on the GPU, only the sums read back), the
// previous path (one document per forward, logits read back, float64 log-softmax on the host),
// and onnxruntime-node (CPU, one thread) on the same model exported as ONNX
// (exportModel(…, 'onnx'), MatMulNBits, the input_ids -> logits graph), same documents, same NLL.
// Model: stories260K quantized w4g32 (../shared/data/models/stories260K). Each side does one
// untimed pass over the first documents first (pipeline compilation / session warm-up), then the
// two alternate for `rounds` timed passes each (medians reported, with the per-round ratios).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Gpu } from '../src/engine/gpu/runtime';
import { readLlama2cCheckpoint } from '../src/engine/io/llama2c';
import { Llama2cTokenizer } from '../src/engine/io/tokenizer';
import { quantizeWeights } from '../src/engine/quant/ptq';
import { encodeDocuments, perplexity, perplexityBatched, splitDocuments } from '../src/engine/eval/perplexity';
import { LlamaModel } from '../src/engine/model/llama';
import { sequenceNlls, tokenLogprobsBatch } from '../src/engine/model/runner';
import { exportModel } from '../src/engine/workflow/export';
import type { BenchRow } from './types';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const SHARED = resolve(import.meta.dirname, '../../shared/data');

/** Summed NLL (float64) of tokens[1..] from rows of logits (T, V) f32. */
function nllOf(logits: Float32Array, tokens: number[], V: number): number {
  let s = 0;
  for (let t = 0; t < tokens.length - 1; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let mx = -Infinity, z = 0;
    for (const v of row) mx = Math.max(mx, v);
    for (const v of row) z += Math.exp(v - mx);
    s -= row[tokens[t + 1]] - mx - Math.log(z);
  }
  return s;
}

/** The eval bench's model and documents: stories260K (FP weights and w4g32 RTN codes), the first
 *  `docs` documents of tinystories_val_800.txt encoded with BOS (bench/eval-profile.mts profiles the
 *  same). The caller checks that ../shared/data is there. */
export function evalBenchInputs(docs: number) {
  const S = join(SHARED, 'models/stories260K');
  const { config: cfg, weights } = readLlama2cCheckpoint(readFileSync(join(S, 'stories260K.bin')), 'stories260K.bin');
  const tok = new Llama2cTokenizer(readFileSync(join(S, 'tok512.bin')), 'tok512.bin', cfg.vocabSize);
  const quantized = quantizeWeights(cfg, weights, { bits: 4, group: 32, sym: false, clipSearch: false });
  const texts = splitDocuments(readFileSync(join(SHARED, 'text/tinystories_val_800.txt'), 'utf8'), '<|endoftext|>').slice(0, docs);
  const seqs = encodeDocuments(texts, (s) => tok.encode(s, { bos: true }), cfg.maxSeqLen);
  return { cfg, weights, tok, quantized, seqs, tokens: seqs.reduce((n, s) => n + s.length - 1, 0) };
}

export async function benchEval(gpu: Gpu, opts: { docs?: number; rounds?: number } = {}): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const rounds = Math.max(1, opts.rounds ?? 3);
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const S = join(SHARED, 'models/stories260K');
  const textFile = join(SHARED, 'text/tinystories_val_800.txt');
  if (!existsSync(join(S, 'stories260K.bin')) || !existsSync(textFile)) {
    notes.push(`eval: ${S} or ${textFile} not found, skipped`);
    return { rows, notes };
  }
  const { cfg, weights, tok, quantized, seqs, tokens } = evalBenchInputs(opts.docs ?? 16);
  const shape = `stories260K w4g32, ${seqs.length} docs, ${tokens} tokens`;

  const model = LlamaModel.fromWeights(gpu, cfg, weights, { quantized });
  await sequenceNlls(model, seqs.slice(0, 2)); // compile
  await tokenLogprobsBatch(model, [seqs[0]]);
  // the peer: the same model exported as ONNX, in onnxruntime-node; without it quench runs alone
  const dir = mkdtempSync(join(tmpdir(), 'quench-eval-bench-'));
  let sess: import('onnxruntime-node').InferenceSession | undefined;
  let nll: ((ids: number[]) => Promise<number>) | undefined;
  try {
    const ort = await import('onnxruntime-node');
    const r = exportModel({ name: 'stories260K-w4g32', config: cfg, weights, quantized, tokenizer: tok }, 'onnx', { kvCache: false });
    for (const [n, b] of Object.entries(r.files)) {
      mkdirSync(dirname(join(dir, n)), { recursive: true });
      writeFileSync(join(dir, n), b);
    }
    // one thread: on a shared 2-core machine more threads spin
    const session = await ort.InferenceSession.create(join(dir, 'onnx/model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    sess = session;
    const i64 = (xs: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs.map(BigInt)), [1, xs.length]);
    nll = async (ids: number[]) => nllOf((await session.run({ input_ids: i64(ids) })).logits.data as Float32Array, ids, cfg.vocabSize);
    await nll(seqs[0]);
  } catch (e) {
    notes.push(`eval: no onnxruntime-node peer (${(e as Error).message.split('\n')[0]})`);
    nll = undefined;
  }
  try {
    // The two sides alternate, `rounds` timed passes each, so a stretch of host noise (this machine
    // is shared) falls on both rather than on whichever ran during it; each side's median is reported.
    const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
      const t0 = performance.now();
      const v = await f();
      return [v, (performance.now() - t0) / 1000];
    };
    const qt: number[] = [], ot: number[] = [];
    let q = { ppl: NaN }, o = { ppl: NaN };
    for (let i = 0; i < rounds; i++) {
      const [qv, qs] = await timed(() => perplexityBatched(seqs, (s) => sequenceNlls(model, s)));
      q = qv;
      qt.push(qs);
      if (nll) {
        const [ov, os] = await timed(() => perplexity(seqs, nll!));
        o = ov;
        ot.push(os);
      }
    }
    const [q0, q0s] = await timed(() => perplexity(seqs, async (ids) => -(await tokenLogprobsBatch(model, [ids]))[0].reduce((a, b) => a + b, 0)));
    const qs = median(qt);
    const spread = (ts: number[]) => (rounds > 1 ? `; ${rounds} rounds ${(tokens / Math.max(...ts)).toFixed(0)}-${(tokens / Math.min(...ts)).toFixed(0)}` : '');
    rows.push({ name: 'eval (quench eval path, WebGPU)', shape, ms: qs * 1000, note: `${(tokens / qs).toFixed(0)} tokens/s${spread(qt)}; ppl ${q.ppl.toFixed(4)}` });
    rows.push({ name: 'eval (one doc per forward, host log-softmax)', shape, ms: q0s * 1000, note: `${(tokens / q0s).toFixed(0)} tokens/s; ppl ${q0.ppl.toFixed(4)} (the previous quench eval path)` });
    notes.push(`eval ${shape}: batched quench eval ${(q0s / qs).toFixed(2)}x the previous path (one document per forward, logits read back); |Δppl| ${(Math.abs(q.ppl - q0.ppl) / q0.ppl).toExponential(1)} relative`);
    if (ot.length) {
      const os = median(ot);
      rows.push({ name: 'eval (onnxruntime-node CPU, 1 thread)', shape, ms: os * 1000, note: `${(tokens / os).toFixed(0)} tokens/s${spread(ot)}; ppl ${o.ppl.toFixed(4)}; peer` });
      const ratio = os / qs;
      const perRound = qt.map((t, i) => (ot[i] / t).toFixed(2)).join(', ');
      notes.push(`eval ${shape}: quench ${(tokens / qs).toFixed(0)} tokens/s, onnxruntime-node ${(tokens / os).toFixed(0)} tokens/s (medians of ${rounds} alternating rounds) -> quench/ORT ${ratio.toFixed(2)} (target >= 0.5: ${ratio >= 0.5 ? 'met' : 'missed'})${rounds > 1 ? `; per round ${perRound}` : ''}; |Δppl| ${Math.abs(q.ppl - o.ppl).toExponential(1)}`);
    }
  } finally {
    await sess?.release();
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, notes };
}
