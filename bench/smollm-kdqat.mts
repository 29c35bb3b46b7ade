// The SmolLM2-135M-shaped KD-QAT step in Quench beside the same step in PyTorch eager (issue 16's
// GPU comparison; bench/gpu.sh runs it on a real GPU, CUDA for PyTorch).
// One recipe folder (src/engine/workflow/recipe.ts, the `quench export-recipe` format) holds the
// teacher (random weights, pretrainInit's N(0, 0.02), seed 1, SmolLM2-135M's shape: 30 layers, dim 576, MLP 1536,
// 9/3 heads, vocab 49152, tied), a random token stream and the resolved DistillConfig: w4g32,
// freeze ov, KL + 0.5 CE, AdamW, min/max scales (the clip search over 106 M weights is host work
// that changes no step time). Quench runs that DistillConfig in its Distiller on this adapter;
// PyTorch runs the folder's own kdqat.py (the exact step: teacher forward, STE student
// forward/backward, AdamW) with --device cuda when torch sees a GPU, else on the CPU.
// Each side: `--warmup` steps first (compile, allocator), then `--steps` timed; tokens/s = timed
// tokens / wall seconds (Quench: submitted steps drained at the end; PyTorch: the median of
// kdqat.py's per-step tokens/s after the warm-up). Prints both and quench/PyTorch time ratio.
//   npx tsx bench/smollm-kdqat.mts [--layers 30] [--batch 4] [--seq 256] [--steps 8] [--warmup 2]
//        [--threads N (PyTorch CPU threads)] [--python PATH] [--keep DIR]
//        [--matmul auto,tile8 (Quench's step once per kernel choice: auto = the adapter's picks; a
//         fp32 matmul variant name (shared8, ...) sets that one; tile8 = the 8x8 register-tile
//         kernels for all four: fp32 shared8, int4 gemm_wg8 and dx_wg8, and the f16-weight teacher's
//         half_wg8; tile8p = tile8 with the next slab prefetched into registers (shared8p,
//         gemm_wg8p, dx_wg8p; the teacher's half_wg8); tile8h = tile8 with the teacher's
//         f16-arithmetic half_wg8h (shader-f16 adapters); tuned = the adapter's picks, then the kernels tuned per shape after the first
//         warm-up step (shape-choice.ts, as QUENCH_KERNELS=…,tune), its tuning time printed apart;
//         the ratio uses the fastest)]
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createNodeGpu } from '../src/engine/gpu/node';
import type { LlamaConfig } from '../src/engine/model/config';
import { pretrainInit } from '../src/engine/train/pretrain';
import { Distiller, type DistillConfig } from '../src/engine/train/distill';
import { MATMUL_VARIANTS, preferMatmulVariant, type MatmulKernel } from '../src/engine/ops/matmul';
import { setShapeChoices, shapeLabel, startShapeCapture, stopShapeCapture, type KernelOp } from '../src/engine/ops/shape-choice';
import { applyKernelChoice, currentKernels, defaultKernels, familyOf, tuneKernelShapes } from '../src/engine/ops/kernel-choice';
import { Rng } from '../src/engine/train/data';
import { makeRunSpec } from '../src/engine/workflow/spec';
import { recipeFilesOfTokens, type RecipeJson } from '../src/engine/workflow/recipe';
import { hostPythons } from './types';

const { values: a } = parseArgs({
  options: {
    layers: { type: 'string', default: '30' }, batch: { type: 'string', default: '4' }, seq: { type: 'string', default: '256' },
    steps: { type: 'string', default: '8' }, warmup: { type: 'string', default: '2' }, threads: { type: 'string' },
    python: { type: 'string' }, keep: { type: 'string' }, matmul: { type: 'string', default: 'auto' },
  },
});
const L = Number(a.layers), B = Number(a.batch), T = Number(a.seq), N = Number(a.steps), W = Number(a.warmup);
for (const [k, v] of Object.entries({ layers: L, batch: B, seq: T, steps: N })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${k}: a positive integer, got ${v}`);
if (!Number.isInteger(W) || W < 0) throw new Error(`--warmup: a non-negative integer, got ${W}`);
const cfg: LlamaConfig = { dim: 576, hiddenDim: 1536, nLayers: L, nHeads: 9, nKvHeads: 3, vocabSize: 49152, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 100000, tiedEmbeddings: true };
const tokensPerStep = B * T;
const shape = `SmolLM2-135M shape (${L} layers), w4g32 ov, B=${B} T=${T}`;

// ---- the recipe folder (both sides read the same config and numbers)
const dir = a.keep ?? mkdtempSync(join(tmpdir(), 'quench-smollm-kdqat-'));
mkdirSync(dir, { recursive: true });
const r = new Rng(7);
const stream = Uint32Array.from({ length: tokensPerStep * 4 + 1 }, () => Math.floor(r.next() * cfg.vocabSize));
const evalSeq = [1, ...Array.from({ length: 16 }, () => Math.floor(r.next() * cfg.vocabSize))];
const spec = makeRunSpec({ bits: 4, group: 32, scheme: 'ov', scaleInit: 'minmax', steps: W + N, batch: B, seq: T, metricsEvery: 1000 }, 'smollm-kdqat');
const w = pretrainInit(cfg, 1); // GPT-2-style init: near-uniform first logits, as a real model's scale
const tRec = performance.now();
const files = recipeFilesOfTokens(spec, { name: `random ${shape}`, config: cfg, weights: w }, stream, [evalSeq],
  { source: 'random tokens (seed 7)', documents: 1, trainDocuments: 1, heldOutDocuments: 1, evalDocuments: 1, protocol: 'none (benchmark)' }, { latents: false });
for (const [name, bytes] of Object.entries(files)) {
  mkdirSync(dirname(join(dir, name)), { recursive: true });
  writeFileSync(join(dir, name), bytes);
}
const recipe = JSON.parse(readFileSync(join(dir, 'recipe.json'), 'utf8')) as RecipeJson;
const dc: DistillConfig = { ...recipe.distill, metricsEvery: 0 };
console.log(`${shape}: recipe written to ${dir} in ${((performance.now() - tRec) / 1000).toFixed(1)} s`);

// ---- PyTorch eager first, the same recipe: its figure is printed (and each Quench kernel choice's
// ratio beside it) even if a time limit stops the Quench variants part-way (bench/gpu.sh)
// --python, $QUENCH_PYTHON, else the first of python3 on PATH and Debian's /usr/bin/python3 that
// imports torch: on a CUDA machine the python3 on PATH is often a venv's that holds torch while
// /usr/bin/python3 has none, and here Debian's is the one with python3-torch
const probeArgs = ['-c', 'import torch,sys; sys.stdout.write("cuda" if torch.cuda.is_available() else "cpu"); sys.stdout.write(" " + torch.__version__)'];
const explicitPython = a.python ?? process.env.QUENCH_PYTHON;
const pythons = explicitPython ? [explicitPython] : hostPythons();
let py = pythons[0] ?? 'python3';
let probe = spawnSync(py, probeArgs, { encoding: 'utf8', timeout: 120_000 });
for (const cand of pythons.slice(1)) {
  if (probe.status === 0) break;
  py = cand;
  probe = spawnSync(py, probeArgs, { encoding: 'utf8', timeout: 120_000 });
}
let torchTps = NaN;
let torchDevice = '';
if (probe.status !== 0) {
  console.log(`pytorch: ${pythons.join(', ') || 'no python3'} cannot import torch (${(probe.stderr || '').trim().split('\n').pop() ?? ''}); no PyTorch figure`);
} else {
  const [device, version] = probe.stdout.trim().split(' ');
  const threads = a.threads ?? (device === 'cpu' ? '1' : undefined);
  const out = join(dir, 'torch-run');
  const args = [join(dir, 'kdqat.py'), '--recipe', dir, '--out', out, '--steps', String(W + N), '--device', device, '--no-eval', '--quiet', '--checkpoint-every', String(10 ** 9), ...(threads ? ['--threads', threads] : [])];
  const t0 = performance.now();
  const res = spawnSync(py, args, { encoding: 'utf8', timeout: 600_000 });
  if (res.status !== 0) {
    console.log(`pytorch: kdqat.py failed (exit ${res.status}): ${(res.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  } else {
    const ms = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step?: number; loss?: number; tokensPerSec?: number }).filter((m) => typeof m.tokensPerSec === 'number');
    const rates = ms.map((m) => m.tokensPerSec!);
    const timed = (rates.length > W ? rates.slice(W) : rates).sort((x, y) => x - y);
    torchTps = timed[Math.floor(timed.length / 2)];
    console.log(`pytorch ${version} eager ${device}${threads ? ` (${threads} thread${threads === '1' ? '' : 's'})` : ''}: ${timed.length} timed steps, median ${torchTps.toFixed(0)} tokens/s, ${(tokensPerStep / torchTps * 1000).toFixed(1)} ms/step; loss at step 0 ${ms[0]?.loss?.toFixed(4)} (the same step as quench's) (whole run ${((performance.now() - t0) / 1000).toFixed(1)} s with start-up)`);
    torchDevice = device;
  }
}

// ---- Quench on this adapter
const gpu = await createNodeGpu();
const adapter = gpu.info.description || gpu.info.device || gpu.info.vendor;
let quenchTps = NaN;
const variants = a.matmul!.split(',').map((v) => v.trim());
for (const v of variants) if (v !== 'auto' && v !== 'tile8' && v !== 'tile8p' && v !== 'tile8h' && v !== 'tuned' && !(MATMUL_VARIANTS as readonly string[]).includes(v)) throw new Error(`--matmul: ${v} is not one of auto, tile8, tile8p, tile8h, tuned, ${MATMUL_VARIANTS.join(', ')}`);
for (const v of variants) {
  if (v === 'tile8h' && !gpu.hasF16) {
    console.log('quench (tile8h): skipped, the teacher\'s half_wg8h needs shader-f16, which this adapter lacks');
    continue;
  }
  if (v === 'tile8' || v === 'tile8h') applyKernelChoice(gpu, { ...defaultKernels(gpu), matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: v === 'tile8' ? 'half_wg8' : 'half_wg8h' });
  else if (v === 'tile8p') applyKernelChoice(gpu, { ...defaultKernels(gpu), matmul: 'shared8p', gemm: 'gemm_wg8p', dx: 'dx_wg8p', half: 'half_wg8' });
  else {
    applyKernelChoice(gpu, null);
    if (v !== 'auto') preferMatmulVariant(gpu, v as MatmulKernel);
  }
  const k = currentKernels(gpu);
  const familyDefault = (op: KernelOp) => k[familyOf(op)];
  const tag = `quench (${v === 'auto' || v === 'tuned' ? `${v}: fp32 matmul ${k.matmul}, teacher ${k.half}` : v.startsWith('tile8') ? `${v}: ${k.matmul}, ${k.gemm}, ${k.dx}, teacher ${k.half}` : `fp32 matmul ${v}`})`;
  const tb = performance.now();
  const d = new Distiller(gpu, cfg, w, dc, stream);
  console.log(`${tag}: built in ${((performance.now() - tb) / 1000).toFixed(1)} s on ${adapter}`);
  let first = NaN;
  for (let s = 0; s < W; s++) {
    if (v === 'tuned' && s === 0) startShapeCapture(gpu);
    const m = await d.trainStep();
    if (s === 0) first = m.loss;
    if (v === 'tuned' && s === 0) {
      const shapes = stopShapeCapture(gpu), tt = performance.now();
      const t = await tuneKernelShapes(gpu, shapes);
      const changed = t.chosen.filter((c) => c.variant !== familyDefault(c.shape.op));
      console.log(`${tag}: tuned ${shapes.length} shapes in ${((performance.now() - tt) / 1000).toFixed(1)} s; ${changed.length} differ from the family's kernel: ${changed.map((c) => `${c.shape.op} ${shapeLabel(c.shape)} ${c.variant}`).join('; ') || 'none'}`);
    }
  }
  const t0 = performance.now();
  let last = NaN;
  for (let s = 0; s < N; s++) for (const m of await d.submitStep()) last = m.loss;
  for (const m of await d.drain()) last = m.loss;
  const sec = (performance.now() - t0) / 1000;
  const tps = (N * tokensPerStep) / sec;
  if (Number.isNaN(quenchTps) || tps > quenchTps) quenchTps = tps; // the fastest variant's figure goes into the ratio
  console.log(`${tag}: ${N} steps in ${sec.toFixed(2)} s, ${(sec / N * 1000).toFixed(1)} ms/step, ${tps.toFixed(0)} tokens/s; loss at step 0 ${first.toFixed(4)}, last ${last.toFixed(4)}${Number.isNaN(torchTps) ? '' : `; ${(torchTps / tps).toFixed(2)}x PyTorch ${torchDevice}'s step time`}`);
  d.free();
  setShapeChoices(gpu, null);
}
applyKernelChoice(gpu, null);
gpu.destroy();
if (!Number.isNaN(torchTps)) {
  const target = torchDevice === 'cuda' ? ' (target on a real GPU: quench step time <= 3x PyTorch CUDA\'s)' : '';
  console.log(`${shape}: quench step time / PyTorch ${torchDevice} step time = ${(torchTps / quenchTps).toFixed(2)}x${target} (the fastest of Quench's kernel choices)`);
}

if (!a.keep) rmSync(dir, { recursive: true, force: true });
