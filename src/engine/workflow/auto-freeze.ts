// Auto-freeze: let the measurements choose what to freeze (`--freeze auto`, the studio's "Auto").
//  1. Probe: a short no-freeze KD-QAT run and the same FP fine-tune (the paper's reference) record,
//     per layer × projection, the latent-gradient norm relative to the FP reference's; per
//     projection type, the fraction of codes that flipped; per layer, how much of the forward error
//     training removed; and, per cell, the error quantizing that one projection adds (KL of the
//     logits to the teacher's with only that projection quantized, on a calibration batch).
//  2. Candidates: masks over projection types, ranked by a score from those signals, and the
//     per-layer cells that score above 0 on their own (when they are not a whole-type mask), each
//     with its reason in words.
//  3. Successive halving on identical seed and data: every candidate (and no freeze) trains to 1/8
//     of the run, the better half (by perplexity on a validation slice of the *training* documents,
//     never the held-out text) and no freeze continue to 1/4 (from their checkpoints); the best
//     there is chosen (the extrapolation to the full length is reported, not used). With a fifth
//     (cell) candidate the rungs are 1/16, 1/8, 1/4 and no freeze holds one of the kept places.
//  4. The chosen scheme's full run, from step 0 on all the training documents: exactly the run
//     that scheme gets without auto-freeze. Cost ≤ 0.1 (probes) + 0.875 (rungs; 0.75 with five
//     candidates) + 1 = 1.975 runs.
import type { Gpu } from '../gpu/runtime';
import { PROJECTIONS, PROJECTION_KEY, type LlamaConfig, type LlamaWeights, type Projection } from '../model/config';
import { LlamaModel } from '../model/llama';
import { quantizeWeights, type QuantizedModel } from '../quant/ptq';
import type { StepMetrics } from '../train/distill';
import { describeFreeze, type FreezeMask } from '../train/freeze';
import { sampleBatch, Rng } from '../train/data';
import type { Checkpoint } from './checkpoint';
import { runTraining, type Progress, type RunOutcome, type Teacher } from './run';
import { makeRunSpec, type RunSpec } from './spec';

export interface CellSignal {
  layer: number;
  proj: Projection;
  /** mean squared latent-gradient norm over the probe (quantized student) */
  gradSq: number;
  /** the same for the FP fine-tune */
  fpGradSq: number;
  /** gradSq / fpGradSq */
  gradRatio: number;
  /** mean KL(teacher ‖ model with only this projection quantized) per token, nats */
  addedKl: number;
}

export interface Signals {
  cells: CellSignal[];
  /** fraction of codes changed over the probe, per projection type */
  codeFlips: Partial<Record<Projection, number>>;
  /** per layer: 1 − (hidden error at the end of the probe) / (at its start) */
  errorRemoved: number[];
  probeSteps: number;
}

export interface Candidate {
  name: string;
  mask: FreezeMask;
  score: number;
  reason: string;
}

export interface HalvingRound {
  toStep: number;
  results: { name: string; valPpl: number; kept: boolean }[];
}

export interface AutoFreezeResult {
  signals: Signals;
  candidates: Candidate[];
  rounds: HalvingRound[];
  /** the survivors' validation perplexity extrapolated to the full run (the final decision) */
  predicted: Record<string, number>;
  chosen: Candidate;
  /** the chosen candidate's full run (evaluated on the held-out text) */
  outcome: RunOutcome;
  /** metrics of every candidate as far as it went (for overlaid curves) */
  curves: Record<string, StepMetrics[]>;
  /** steps trained in all, as a multiple of one full run */
  costRuns: number;
  spec: RunSpec;
}

const sumGrad = (ms: StepMetrics[], l: number, p: Projection) => {
  const xs = ms.filter((m) => m.gradSq).map((m) => m.gradSq![l][p]);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
};

/** The error quantizing one projection adds: mean KL(teacher ‖ that model) per token over a batch
 *  of training windows. One forward per cell (L × 7); the teacher's log-probs once. */
export async function addedErrors(gpu: Gpu, cfg: LlamaConfig, w: LlamaWeights, full: QuantizedModel, tokens: Uint32Array, B: number, T: number): Promise<number[][]> {
  const logprobs = async (quantized?: QuantizedModel) => {
    const model = LlamaModel.fromWeights(gpu, cfg, w, { quantized });
    try {
      const acts = model.activations(B, T, false);
      gpu.write(acts.tokens, tokens);
      model.forward(acts);
      return logSoftmaxRows(await gpu.readF32(acts.logits), cfg.vocabSize);
    } finally {
      model.free();
    }
  };
  const teacher = await logprobs();
  const out: number[][] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const row: number[] = [];
    for (const p of PROJECTIONS) {
      const one: QuantizedModel = { ...full, packed: full.packed.map((layer, i) => (i === l && layer[p] ? { [p]: layer[p] } : {})) };
      row.push(klRows(teacher, await logprobs(one), cfg.vocabSize));
    }
    out.push(row);
  }
  return out;
}

export function logSoftmaxRows(logits: ArrayLike<number>, V: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let r = 0; r < logits.length / V; r++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r * V + v] - max);
    const lse = max + Math.log(s);
    for (let v = 0; v < V; v++) out[r * V + v] = logits[r * V + v] - lse;
  }
  return out;
}

/** mean over rows of KL(p ‖ q) from log-probabilities */
export function klRows(lp: Float64Array, lq: Float64Array, V: number): number {
  const rows = lp.length / V;
  let kl = 0;
  for (let i = 0; i < lp.length; i++) kl += Math.exp(lp[i]) * (lp[i] - lq[i]);
  return kl / rows;
}

/**
 * Candidate masks from the signals. A cell's "fragility" is how far its gradients run above the
 * FP reference's and how often its codes flip; its "lock-in cost" is the error freezing it keeps
 * (the error its quantization adds, times the share of error training would have removed). A
 * candidate freezes the projection types (in every layer) whose fragility most exceeds their cost.
 */
export function rankCandidates(s: Signals, nLayers: number, max = 3): Candidate[] {
  const byProj = PROJECTIONS.map((p) => {
    const cells = s.cells.filter((c) => c.proj === p);
    const ratio = cells.reduce((a, c) => a + c.gradRatio, 0) / cells.length;
    const gradSq = cells.reduce((a, c) => a + c.gradSq, 0);
    const kl = cells.reduce((a, c) => a + c.addedKl, 0);
    const removed = cells.reduce((a, c) => a + Math.max(0, s.errorRemoved[c.layer] ?? 0), 0) / cells.length;
    const flips = s.codeFlips[p] ?? 0;
    return { p, ratio, gradSq, kl, removed, flips };
  });
  const maxRatio = Math.max(...byProj.map((x) => x.ratio), 1e-30), maxFlip = Math.max(...byProj.map((x) => x.flips), 1e-30), maxKl = Math.max(...byProj.map((x) => x.kl), 1e-30);
  const scored = byProj.map((x) => {
    const fragility = x.ratio / maxRatio + x.flips / maxFlip;
    const cost = (x.kl / maxKl) * (0.5 + x.removed);
    return { ...x, score: fragility - cost };
  }).sort((a, b) => b.score - a.score);
  const q = byProj.find((x) => x.p === 'q')!;
  const why = (x: (typeof scored)[number]) => `${x.p} carries ${(x.gradSq / Math.max(q.gradSq, 1e-30)).toFixed(1)}× q's gradient norm² (${x.ratio.toFixed(1)}× the FP reference's), ${(100 * x.flips).toFixed(1)}% of its codes flip; freezing it locks in KL ${x.kl.toExponential(2)} of added error`;
  const maskOf = (projs: Projection[]): FreezeMask => Array.from({ length: nLayers }, () => Object.fromEntries(PROJECTIONS.map((p) => [p, projs.includes(p)])) as Record<Projection, boolean>);
  const out: Candidate[] = [];
  // the top one, the top two, the top three projection types (only those scoring above 0)
  const positive = scored.filter((x) => x.score > 0);
  for (let k = 1; k <= Math.min(max, positive.length); k++) {
    const projs = positive.slice(0, k).map((x) => x.p);
    const mask = maskOf(projs);
    out.push({ name: describeFreeze(mask), mask, score: positive.slice(0, k).reduce((a, x) => a + x.score, 0), reason: positive.slice(0, k).map(why).join('; ') });
  }
  // when no type scores above 0, the best-scoring one all the same
  if (out.length === 0 && scored.length) {
    const x = scored[0];
    out.push({ name: describeFreeze(maskOf([x.p])), mask: maskOf([x.p]), score: x.score, reason: `${why(x)} (its score ${x.score.toFixed(2)} is the best, though not above 0)` });
  }
  // per-layer cells: the same score for each layer × projection (a cell's share of its type's
  // added error, L × its KL against the type normaliser, so the mean cell scores as its type does);
  // the best-scoring cells above 0, as many as one type has (a light freeze spread by the signals),
  // form one more candidate when they are not a whole-type mask already
  const cellScores = s.cells.map((c) => {
    const t = byProj.find((x) => x.p === c.proj)!;
    const fragility = c.gradRatio / maxRatio + t.flips / maxFlip;
    const cost = ((nLayers * c.addedKl) / maxKl) * (0.5 + Math.max(0, s.errorRemoved[c.layer] ?? 0));
    return { c, score: fragility - cost };
  });
  const hot = cellScores.filter((x) => x.score > 0).sort((a, b) => b.score - a.score).slice(0, nLayers);
  if (hot.length) {
    const mask = maskOf([]);
    for (const { c } of hot) mask[c.layer][c.proj] = true;
    const typeMask = PROJECTIONS.every((p) => mask.every((l) => l[p]) || mask.every((l) => !l[p]));
    if (!typeMask) {
      const name = cellMaskName(mask);
      const top = hot.slice(0, 3).map(({ c, score }) => `${c.proj} in layer ${c.layer} (${c.gradRatio.toFixed(1)}× the FP reference's gradient, KL ${c.addedKl.toExponential(1)} added; score ${score.toFixed(2)})`);
      out.push({ name, mask, score: hot.reduce((a, x) => a + x.score, 0), reason: `the ${hot.length} best of the ${cellScores.length} layer cells, each scored as its type is (fragility above lock-in cost): ${top.join(', ')}` });
    }
  }
  return out;
}

/** `cells v0,1 o2`: the projections frozen and, for each, the layers */
export function cellMaskName(mask: FreezeMask): string {
  const parts = PROJECTIONS.map((p) => ({ p, ls: mask.flatMap((l, i) => (l[p] ? [i] : [])) })).filter((x) => x.ls.length);
  return `cells ${parts.map((x) => `${x.p}${x.ls.join(',')}`).join(' ')}`;
}

/**
 * Successive halving: every candidate advances to each rung; the better half (lower metric) goes
 * on, and the `always` candidates (no freeze: the reference the others must beat) go on too: the
 * first rung favours freezing (it stabilises the first steps) while projections that keep learning
 * catch up later. The last rung's lowest metric wins; each survivor's metric extrapolated along its
 * last two rungs in log(steps) to `fullSteps` is reported beside it.
 * `advance(name, toStep)` trains that candidate to `toStep` and returns its metric there.
 */
export async function successiveHalving(names: string[], rungs: number[], advance: (name: string, toStep: number) => Promise<number>, o: { always?: string[]; fullSteps?: number; alwaysInSlots?: boolean } = {}): Promise<{ winner: string; rounds: HalvingRound[]; predicted: Record<string, number> }> {
  let alive = [...names];
  const rounds: HalvingRound[] = [];
  const seen = new Map<string, [number, number][]>();
  const order = (xs: { name: string; v: number }[]) => [...xs].sort((a, b) => (a.v === b.v ? names.indexOf(a.name) - names.indexOf(b.name) : Number.isNaN(a.v) ? 1 : Number.isNaN(b.v) ? -1 : a.v - b.v));
  const predicted: Record<string, number> = {};
  for (const [i, toStep] of rungs.entries()) {
    const results: { name: string; valPpl: number; kept: boolean }[] = [];
    for (const n of alive) {
      const v = await advance(n, toStep);
      results.push({ name: n, valPpl: v, kept: false });
      seen.set(n, [...(seen.get(n) ?? []), [toStep, v]]);
    }
    const last = i === rungs.length - 1;
    let keep: string[];
    if (!last) {
      const k = Math.max(1, Math.ceil(alive.length / 2));
      const always = (o.always ?? []).filter((a) => alive.includes(a));
      const ranked = order(results.map((r) => ({ name: r.name, v: r.valPpl }))).map((r) => r.name);
      // alwaysInSlots: the always-kept candidates take places among the k (a fixed cost per rung)
      keep = o.alwaysInSlots ? [...always, ...ranked.filter((n) => !always.includes(n)).slice(0, Math.max(0, k - always.length))] : ranked.slice(0, k);
      for (const a of always) if (!keep.includes(a)) keep.push(a);
    } else {
      // the decision is the last rung's measured value (ties: the order given, no freeze first);
      // the extrapolation to the full length is reported, not used: at w2 it preferred a frozen v
      // that fell faster from a worse start and ended 3.9% behind no freeze (README)
      for (const r of results) {
        const pts = seen.get(r.name)!;
        if (o.fullSteps && pts.length >= 2) {
          const [[t1, p1], [t2, p2]] = pts.slice(-2);
          predicted[r.name] = p2 + ((p2 - p1) / Math.log(t2 / t1)) * Math.log(o.fullSteps / t2);
        }
      }
      keep = [order(results.map((r) => ({ name: r.name, v: r.valPpl })))[0].name];
    }
    for (const r of results) r.kept = keep.includes(r.name);
    rounds.push({ toStep, results });
    alive = names.filter((n) => keep.includes(n));
  }
  return { winner: alive[0], rounds, predicted };
}

export interface AutoFreezeOptions {
  onProgress?: (p: Progress) => void;
  log?: (s: string) => void;
  /** probe length (default max(10, steps/10)) */
  probeSteps?: number;
  /** validation sequences carved from the training documents (carveValidation) */
  valSeqs: number[][];
  /** held-out sequences the chosen run is finally evaluated on */
  evalSeqs: number[][];
  /** the winner's last stretch: its steps (the studio's live curve) and a stop */
  onStep?: (m: StepMetrics) => void;
  shouldStop?: () => boolean;
  /** the whole training stream (validation documents included): the chosen scheme's full run
   *  trains on it from step 0, so it is exactly the run that scheme gets without auto-freeze */
  fullTrain: Uint32Array;
  /** the chosen scheme's full run, when the caller writes it (the CLI's run folder) */
  finalRun?: (spec: RunSpec) => Promise<RunOutcome>;
}

/** The whole procedure on one spec (its scheme is ignored). `train` excludes the validation docs. */
export async function autoFreeze(gpu: Gpu, teacher: Teacher, base: RunSpec, train: Uint32Array, o: AutoFreezeOptions): Promise<AutoFreezeResult> {
  const log = o.log ?? (() => {});
  const S = base.steps;
  // a few dozen steps for a real run, never more than a quarter of a short one
  const P = o.probeSteps ?? Math.min(Math.max(5, Math.floor(S / 20)), Math.max(1, Math.floor(S / 4)));
  const L = teacher.config.nLayers;
  // 1. probes (metrics every step)
  const probeSpec = (kind: RunSpec['kind']) => makeRunSpec({ ...base, kind, scheme: 'none', mask: undefined, steps: P, metricsEvery: 1 }, 'auto-freeze probe');
  // (a probe's own final evaluation is not used: one validation document keeps it cheap)
  log(`auto-freeze: probe of ${P} steps, no freeze`);
  const q = await runTraining(gpu, teacher, probeSpec('kdqat'), train, o.valSeqs.slice(0, 1), { onProgress: o.onProgress });
  log(`auto-freeze: probe of ${P} steps, FP fine-tune (the reference)`);
  const fp = await runTraining(gpu, teacher, probeSpec('fp-finetune'), train, o.valSeqs.slice(0, 1), { onProgress: o.onProgress });
  const full = quantizeWeights(teacher.config, teacher.weights, { bits: base.bits, group: base.group, sym: base.sym, clipSearch: base.scaleInit === 'search' });
  const calib = sampleBatch(train, 2, Math.min(64, teacher.config.maxSeqLen, train.length - 1), new Rng(base.seed + 7));
  const added = await addedErrors(gpu, teacher.config, teacher.weights, full, calib.inputs, 2, calib.inputs.length / 2);
  const cells: CellSignal[] = [];
  for (let l = 0; l < L; l++)
    PROJECTIONS.forEach((p, j) => {
      const g = sumGrad(q.history, l, p), gf = sumGrad(fp.history, l, p);
      cells.push({ layer: l, proj: p, gradSq: g, fpGradSq: gf, gradRatio: g / Math.max(gf, 1e-30), addedKl: added[l][j] });
    });
  const withErr = q.history.filter((m) => m.hiddenRelErr);
  const e0 = withErr[0]?.hiddenRelErr ?? [], e1 = withErr.at(-1)?.hiddenRelErr ?? [];
  const signals: Signals = { cells, codeFlips: q.history.filter((m) => m.codeFlips).at(-1)?.codeFlips ?? {}, errorRemoved: e0.map((e, l) => (e > 0 ? 1 - (e1[l] ?? e) / e : 0)), probeSteps: P };
  // 2. candidates (+ no freeze, first, so ties go to it)
  const ranked = rankCandidates(signals, L);
  const none: Candidate = { name: 'none', mask: Array.from({ length: L }, () => Object.fromEntries(PROJECTIONS.map((p) => [p, false])) as Record<Projection, boolean>), score: 0, reason: 'no freeze: every projection keeps learning' };
  const candidates = [none, ...ranked.filter((c) => c.name !== 'none')];
  for (const c of candidates) log(`auto-freeze candidate ${c.name}: ${c.reason}`);
  // 3. successive halving on the validation slice
  const specOf = (c: Candidate) => makeRunSpec({ ...base, kind: 'kdqat', scheme: c.name === 'none' ? 'none' : 'custom', mask: c.name === 'none' ? undefined : c.mask }, `auto-freeze ${c.name}`);
  const state = new Map<string, { ckpt?: Checkpoint; history: StepMetrics[] }>(candidates.map((c) => [c.name, { history: [] }]));
  let stepsTrained = 2 * P;
  // up to four candidates: rungs at 1/8 and 1/4, the better half and no freeze going on; five (a
  // per-layer cell mask beside the type masks): rungs at 1/16, 1/8 and 1/4, no freeze taking one of
  // the better half's places, so the rungs cost 5/16 + 3/16 + 2/8 = 0.75 runs instead of 0.875
  const five = candidates.length > 4;
  const rungs = (five ? [16, 8, 4] : [8, 4]).map((d) => Math.max(1, Math.floor(S / d)));
  const { winner, rounds, predicted } = await successiveHalving(candidates.map((c) => c.name), rungs, async (name, toStep) => {
    const c = candidates.find((x) => x.name === name)!;
    const st = state.get(name)!;
    const from = st.ckpt?.meta.step ?? 0;
    const r = await runTraining(gpu, teacher, specOf(c), train, o.valSeqs, { onProgress: o.onProgress, untilStep: toStep }, st.ckpt);
    stepsTrained += toStep - from;
    st.ckpt = r.checkpoint ?? undefined;
    st.history = r.history;
    log(`auto-freeze ${name}: validation perplexity ${r.summary!.evalPpl.toFixed(4)} at step ${toStep}`);
    return r.summary!.evalPpl;
  }, { always: ['none'], fullSteps: S, alwaysInSlots: five });
  for (const [n, v] of Object.entries(predicted)) log(`auto-freeze ${n}: validation perplexity extrapolated to step ${S}: ${v.toFixed(4)}`);
  const chosen = candidates.find((c) => c.name === winner)!;
  log(`auto-freeze: chose ${chosen.name}`);
  const spec = specOf(chosen);
  log(`auto-freeze: the full run of ${chosen.name} on all the training documents`);
  const outcome = o.finalRun ? await o.finalRun(spec) : await runTraining(gpu, teacher, spec, o.fullTrain, o.evalSeqs, { onProgress: o.onProgress, onStep: o.onStep, shouldStop: o.shouldStop });
  stepsTrained += S;
  const curves = Object.fromEntries([...state].map(([k, v]) => [k, v.history]));
  curves[`${winner} (full run)`] = outcome.history;
  return { signals, candidates, rounds, predicted, chosen, outcome, curves, costRuns: stepsTrained / S, spec };
}
