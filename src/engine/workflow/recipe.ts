// When a run outgrows the tab: a run spec as a self-contained PyTorch recipe folder (issue 18). The
// folder holds recipe.json (the full RunSpec, the data split and the engine's resolved
// DistillConfig), kdqat.py (plain PyTorch; DDP under torchrun, FSDP as an option), init.safetensors
// (the student's starting state by Quench's rules: scales and zeros of the clip search or min/max,
// the freeze mask, norms, latents), teacher/ (an HF LLaMA folder), tokens.safetensors (the training
// stream and the held-out sequences as int32, so the script needs no tokenizer) and README.md (the
// commands and a memory estimate per GPU). Pure: no node:fs, so the studio offers it as a download.
import type { LlamaConfig, LlamaWeights } from '../model/config';
import { PROJECTIONS, PROJECTION_KEY, headSize } from '../model/config';
import type { Tokenizer } from '../io/tokenizer';
import { writeHfModel } from '../io/hf';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors';
import { quantizeHost, layoutOf } from '../format/pack';
import { searchClip } from '../quant/ptq';
import type { DistillConfig } from '../train/distill';
import { describeFreeze } from '../train/freeze';
import { evalSequences, trainStream, type DataSplit, type EvalDescription } from './data';
import { tokenizerJsonOf } from './export';
import { resolveRunSpec, runLabel, type RunSpec } from './spec';
import { KDQAT_PY } from './kdqat-py';

export const RECIPE_FORMAT = 'quench-kdqat-recipe';

export interface RecipeTeacher {
  name: string;
  config: LlamaConfig;
  weights: LlamaWeights;
  tokenizer: Tokenizer;
  /** tokenizer.json text to ship in teacher/ (llama2.c tokenizers are converted when absent) */
  tokenizerJson?: string;
}

export interface RecipeOptions {
  /** store the starting latents in init.safetensors (default true); they equal the teacher's
   *  projections at step 0, so a large model can leave them out and kdqat.py reads the teacher's */
  latents?: boolean;
}

export interface RecipeJson {
  format: typeof RECIPE_FORMAT;
  version: 1;
  label: string;
  /** the freeze mask described (preset name or 'custom per-layer') */
  scheme: string;
  spec: RunSpec;
  /** resolveRunSpec(spec, config), with seq fitted to the stream as runTraining does */
  distill: DistillConfig;
  config: LlamaConfig;
  teacher: { name: string; dir: 'teacher' };
  data: EvalDescription;
  tokens: { train: number; evalSequences: number; evalTokens: number };
  memory: MemoryEstimate[];
  createdBy: string;
}

export interface MemoryEstimate {
  setup: string;
  processes: number;
  fsdp: boolean;
  /** per GPU, bytes */
  bytes: number;
  detail: string;
}

/** The engine's config for a spec exactly as runTraining builds it (seq fitted to the stream). */
export function recipeDistillConfig(spec: RunSpec, cfg: LlamaConfig, trainTokens: number): DistillConfig {
  const dc = resolveRunSpec(spec, cfg);
  return { ...dc, seq: Math.min(dc.seq, Math.max(8, trainTokens - 1)) };
}

/** The student's starting state by the Distiller's rules: a frozen projection is quantized once
 *  with the clip search's (scaleInit 'search') or min/max·clip scales; learned scales start from
 *  the same; min/max scales are recomputed from the latents every step (nothing stored). */
export function initTensors(cfg: LlamaConfig, w: LlamaWeights, dc: DistillConfig, o: RecipeOptions = {}): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  const f32 = (name: string, shape: number[], data: Float32Array) => out.push({ name, dtype: 'F32', shape, data });
  const hs = headSize(cfg);
  const freeze = new Uint8Array(cfg.nLayers * PROJECTIONS.length);
  w.layers.forEach((lw, l) => {
    PROJECTIONS.forEach((p, j) => {
      const frozen = dc.freeze[l][p];
      freeze[l * PROJECTIONS.length + j] = frozen ? 1 : 0;
      const W = lw[PROJECTION_KEY[p]];
      const K = p === 'o' ? cfg.nHeads * hs : p === 'down' ? cfg.hiddenDim : cfg.dim;
      const N = W.length / K;
      if (o.latents !== false) f32(`layers.${l}.${p}.latent`, [N, K], W);
      if (dc.fpReference || !(frozen || dc.scales === 'learned')) return;
      // float32 clip ratio, as the GPU quantizer multiplies by it (exact in fround(lo·clip))
      const clip = dc.scaleInit === 'search' ? searchClip(W, N, K, dc.bits, dc.group, dc.sym) : Math.fround(dc.clip);
      const pw = quantizeHost(W, N, K, { bits: dc.bits, group: dc.group, sym: dc.sym }, clip);
      const L = layoutOf(N, K, dc.bits, dc.group);
      f32(`layers.${l}.${p}.scales`, [N, L.nBlocks], pw.scales);
      f32(`layers.${l}.${p}.zeros`, [N, L.nBlocks], pw.zeros);
    });
    f32(`layers.${l}.attnNorm`, [cfg.dim], lw.attnNorm);
    f32(`layers.${l}.mlpNorm`, [cfg.dim], lw.mlpNorm);
  });
  f32('finalNorm', [cfg.dim], w.finalNorm);
  out.push({ name: 'freeze', dtype: 'U8', shape: [cfg.nLayers, PROJECTIONS.length], data: freeze });
  return out;
}

/** Bytes per GPU of a kdqat.py run (fp32 throughout; an estimate, ±20%): the teacher's weights;
 *  the student's latents, gradients and AdamW moments (16 B per trained parameter) plus the
 *  quantizer's per-weight temporaries kept for the backward (dequantized weight, STE mask, LSQ
 *  term: 9 B); embeddings; and the activations autograd keeps for the local batch. FSDP divides
 *  weights, gradients and optimizer state by the number of processes (not the activations). */
export function memoryEstimate(cfg: LlamaConfig, dc: DistillConfig, processes: number, fsdp: boolean): MemoryEstimate {
  const hs = headSize(cfg), C = cfg.dim, H = cfg.hiddenDim, V = cfg.vocabSize, NH = cfg.nHeads;
  const kv = cfg.nKvHeads * hs;
  const perLayer = 2 * C * C + 2 * kv * C + 3 * H * C;
  const proj = perLayer * cfg.nLayers;
  const emb = V * C * (cfg.tiedEmbeddings ? 1 : 2);
  let trained = 0, frozen = 0;
  for (let l = 0; l < cfg.nLayers; l++)
    for (const p of PROJECTIONS) {
      const n = p === 'q' || p === 'o' ? C * C : p === 'k' || p === 'v' ? kv * C : H * C;
      if (dc.freeze[l][p]) frozen += n;
      else trained += n;
    }
  const shard = fsdp ? processes : 1;
  const teacherB = 4 * (proj + emb);
  const studentB = 16 * trained + 4 * frozen + (dc.fpReference ? 0 : 9 * trained) + 4 * emb;
  const rows = Math.ceil(dc.batch / processes) * dc.seq;
  // per token and layer: ~12·C + 4·H floats saved (norms, q/k/v, rope, attention output, MLP),
  // 3 attention maps (scores, probabilities, mask) per head; logits: student, teacher, softmaxes
  const act = 4 * rows * (cfg.nLayers * (12 * C + 4 * H + 3 * NH * dc.seq) + 6 * V) + 4 * rows * cfg.nLayers * (dc.loss.attnMap > 0 ? NH * dc.seq : 0);
  const bytes = Math.round(teacherB / shard + studentB / shard + act);
  const gib = (b: number) => (b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 2 ** 30).toFixed(1)} GiB`);
  return {
    setup: fsdp ? `FSDP, ${processes} processes` : processes === 1 ? 'one process' : `DDP, ${processes} processes`,
    processes, fsdp, bytes,
    detail: `teacher ${gib(teacherB / shard)}, student + grads + AdamW ${gib(studentB / shard)}, activations (${rows} tokens per micro-batch) ${gib(act)}`,
  };
}

const enc = (s: string) => new TextEncoder().encode(s);

/** The recipe folder's files (relative path → bytes). */
export function recipeFiles(spec: RunSpec, teacher: RecipeTeacher, split: DataSplit, o: RecipeOptions = {}): Record<string, Uint8Array> {
  const cfg = teacher.config;
  // kdqat.py builds plain RoPE tables; it is not checked against a scaled one yet
  if (cfg.ropeScaling) throw new Error(`the PyTorch recipe does not support rope_scaling yet (this model has type "${cfg.ropeScaling.type}")`);
  const description: EvalDescription = { ...split.description };
  const stream = trainStream(split.train, teacher.tokenizer);
  const seqs = evalSequences(split.evalDocs, teacher.tokenizer, cfg.maxSeqLen, description);
  const tokenizerJson = tokenizerJsonOf(teacher.tokenizer, teacher.tokenizerJson);
  return recipeFilesOfTokens(spec, { name: teacher.name, config: cfg, weights: teacher.weights, tokenizerJson }, stream, seqs, description, o);
}

/** recipeFiles from token ids already made: the training stream and the held-out sequences (each
 *  BOS + tokens). A teacher without tokenizerJson gets no tokenizer.json in teacher/ (kdqat.py
 *  reads only ids; bench/smollm-kdqat.mts builds a random-weight recipe this way). */
export function recipeFilesOfTokens(spec: RunSpec, teacher: Omit<RecipeTeacher, 'tokenizer'>, stream: Uint32Array, seqs: number[][], description: EvalDescription, o: RecipeOptions = {}): Record<string, Uint8Array> {
  const cfg = teacher.config;
  if (cfg.ropeScaling) throw new Error(`the PyTorch recipe does not support rope_scaling yet (this model has type "${cfg.ropeScaling.type}")`);
  const dc = recipeDistillConfig(spec, cfg, stream.length);
  if (stream.length < dc.seq + 1) throw new Error(`the training text has ${stream.length} tokens, fewer than one sequence of ${dc.seq + 1}`);
  const offsets = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => (offsets[i + 1] = offsets[i] + s.length));
  const evalTokens = new Int32Array(offsets[seqs.length]);
  seqs.forEach((s, i) => evalTokens.set(s, offsets[i]));
  const files: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(writeHfModel(cfg, teacher.weights, { tokenizerJson: teacher.tokenizerJson, maxShardBytes: 2 ** 31 }))) files[`teacher/${name}`] = bytes;
  files['tokens.safetensors'] = writeSafetensors([
    { name: 'train', dtype: 'I32', shape: [stream.length], data: Int32Array.from(stream) },
    { name: 'eval_tokens', dtype: 'I32', shape: [evalTokens.length], data: evalTokens },
    { name: 'eval_offsets', dtype: 'I32', shape: [offsets.length], data: offsets },
  ], { format: 'pt', note: 'train: the training stream (documents with BOS, concatenated); eval_tokens[eval_offsets[i]:eval_offsets[i+1]]: held-out sequence i (BOS + tokens, truncated)' });
  files['init.safetensors'] = writeSafetensors(initTensors(cfg, teacher.weights, dc, o), { format: 'pt', note: 'the student at step 0 by Quench\'s rules (src/engine/workflow/recipe.ts initTensors)' });
  const memory = [memoryEstimate(cfg, dc, 1, false), memoryEstimate(cfg, dc, 8, false), memoryEstimate(cfg, dc, 8, true), memoryEstimate(cfg, dc, 16, true)];
  const recipe: RecipeJson = {
    format: RECIPE_FORMAT, version: 1, label: runLabel(spec), scheme: spec.mask ? describeFreeze(dc.freeze) : spec.scheme,
    spec, distill: dc, config: cfg, teacher: { name: teacher.name, dir: 'teacher' }, data: description,
    tokens: { train: stream.length, evalSequences: seqs.length, evalTokens: description.evalTokens ?? 0 }, memory,
    createdBy: 'quench export-recipe (src/engine/workflow/recipe.ts)',
  };
  files['recipe.json'] = enc(JSON.stringify(recipe, null, 2));
  files['kdqat.py'] = enc(KDQAT_PY);
  files['README.md'] = enc(recipeReadme(recipe));
  return files;
}

function recipeReadme(r: RecipeJson): string {
  const dc = r.distill;
  const gib = (b: number) => (b < 2 ** 30 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 2 ** 30).toFixed(1)} GiB`);
  const tokensPerStep = dc.batch * dc.seq * dc.accum;
  return `# KD-QAT recipe: ${r.label} (${r.teacher.name})

Exported by Quench. The same run as \`quench distill\` / the studio, on PyTorch (1.13 or newer; no
other dependency): the same quantizer, losses, freeze mask, optimizer and data order, from the same
starting numbers (\`init.safetensors\`).

- teacher: \`teacher/\` (HF LLaMA folder), ${r.config.nLayers} layers, dim ${r.config.dim}, vocab ${r.config.vocabSize}
- student: w${dc.bits}g${dc.group}${dc.sym ? ' symmetric' : ''}, scales ${dc.scales} (init ${dc.scaleInit}), freeze ${r.scheme}
- losses: ${Object.entries(dc.loss).filter(([, v]) => v > 0).map(([k, v]) => `${v}·${k}`).join(' + ')}${dc.loss.kl > 0 ? ` (temperature ${dc.temperature})` : ''}
- ${dc.steps} steps of ${dc.batch}×${dc.seq}${dc.accum > 1 ? ` ×${dc.accum} accumulation` : ''} (${tokensPerStep} tokens per step), AdamW lr ${dc.lr} (warm-up ${dc.warmup}, cosine to ${dc.minLrRatio}×), clip ${dc.gradClip}, seed ${dc.seed}
- data: ${r.tokens.train} training tokens; held-out: ${r.tokens.evalSequences} sequences, ${r.tokens.evalTokens} predicted tokens (${r.data.source})

Everything in the recipe is in \`recipe.json\` (\`spec\`: the run spec; \`distill\`: what the engine runs).

## Run it

One GPU (or the CPU):

    python3 kdqat.py --out run            # --device cpu|cuda, --steps N to shorten

One node, 8 GPUs (DDP: the global batch of ${dc.batch} rows is split across the processes, so the
curve is the one-process curve; the batch must be at least the number of processes):

    torchrun --nproc_per_node 8 kdqat.py --out run

Several nodes (run on each node; node_rank 0..N-1, the first node's address):

    torchrun --nnodes 2 --nproc_per_node 8 --node_rank 0 --master_addr HOST0 --master_port 29500 kdqat.py --out run

A model that does not fit one GPU: add \`--fsdp\` (FullyShardedDataParallel, one unit per layer;
parameters, gradients and optimizer state sharded).

With torch 1.13 on Python 3.11, torchrun needs \`--redirects 1 --tee 1\` (it crashes with
\`'NoneType' object has no attribute 'get'\` otherwise). On the CPU the processes use gloo; set
\`OMP_NUM_THREADS\` (or \`--threads\`) so they do not oversubscribe the cores.

Outputs in \`run/\`: \`metrics.jsonl\` (Quench's format, one line per step), \`checkpoint.pt\`
(\`--resume\` continues), \`summary.json\` (held-out perplexity \`evalPpl\`), \`student/\` (a Quench
quantized folder: \`quench eval --model run/student --text held-out.txt\`), \`student-hf/\` (the
student dequantized, plain HF layout). \`quench import-run run --out RUN_DIR\` brings it back into
Quench's compare table and the studio.

## Memory per GPU (estimate, fp32)

| setup | per GPU | of which |
|---|---|---|
${r.memory.map((m) => `| ${m.setup} | ${gib(m.bytes)} | ${m.detail} |`).join('\n')}

A trained projection weight costs about 25 bytes on the device (latent, gradient, two AdamW
moments, and the quantizer's dequantized weight, STE mask and LSQ term kept for the backward); the
teacher 4 bytes per weight. Activations grow with batch × seq per process; lower the batch (more
\`accum\` in the spec) when they dominate.
`;
}
