// One run spec for everything a user runs (the CLI's flags, the studio's forms, a recipe file):
// its type, its defaults (the documented recipe), its validation and its resolution to the
// engine's DistillConfig. The CLI and the studio both build a RunSpec and call resolveRunSpec, so a
// default exists once.
import { DEFAULT_DISTILL, type DistillConfig, type LossWeights } from '../train/distill';
import { FREEZE_PRESETS, parseFreeze, type FreezeMask } from '../train/freeze';
import { PROJECTIONS, type LlamaConfig, type Projection } from '../model/config';
import type { Bits } from '../format/pack';

export type RunKind = 'kdqat' | 'fp-finetune';

export interface RunSpec {
  /** 'kdqat': the quantized student learns from the FP teacher; 'fp-finetune': the FP model
   *  fine-tuned with the same recipe (the paper's reference, the fair ceiling) */
  kind: RunKind;
  /** freeze preset (none, ov, qk, qkv, attention, mlp) or a projection list "q,k"; 'custom' with `mask` */
  scheme: string;
  /** a per-layer freeze mask; overrides `scheme` when given (the studio's matrix) */
  mask?: FreezeMask;
  bits: Bits;
  group: number;
  sym: boolean;
  clip: number;
  scales: 'minmax' | 'learned';
  scaleLrRatio: number;
  scaleInit: 'minmax' | 'search';
  loss: LossWeights;
  temperature: number;
  steps: number;
  batch: number;
  seq: number;
  accum: number;
  lr: number;
  minLrRatio: number;
  /** warm-up steps; 'auto' = min(20, steps/10) */
  warmup: number | 'auto';
  weightDecay: number;
  gradClip: number;
  beta1: number;
  beta2: number;
  seed: number;
  /** detailed metrics (gradient norms per layer × projection, forward error, code flips) every N
   *  steps; 'auto' = max(1, min(10, steps/20)) */
  metricsEvery: number | 'auto';
  trainNorms: boolean;
}

/** The documented recipe (README "KD-QAT"): KL + 0.5·CE, learned scales from the clip search, AdamW
 *  lr 5e-4, 300 steps of 8×128. The studio's forms start here too. */
export const DEFAULT_RUN_SPEC: RunSpec = {
  kind: 'kdqat', scheme: 'none',
  bits: DEFAULT_DISTILL.bits, group: DEFAULT_DISTILL.group, sym: DEFAULT_DISTILL.sym, clip: DEFAULT_DISTILL.clip,
  scales: DEFAULT_DISTILL.scales, scaleLrRatio: DEFAULT_DISTILL.scaleLrRatio, scaleInit: DEFAULT_DISTILL.scaleInit,
  loss: { ...DEFAULT_DISTILL.loss }, temperature: DEFAULT_DISTILL.temperature,
  steps: DEFAULT_DISTILL.steps, batch: DEFAULT_DISTILL.batch, seq: DEFAULT_DISTILL.seq, accum: DEFAULT_DISTILL.accum,
  lr: DEFAULT_DISTILL.lr, minLrRatio: DEFAULT_DISTILL.minLrRatio, warmup: 'auto', weightDecay: DEFAULT_DISTILL.weightDecay,
  gradClip: DEFAULT_DISTILL.gradClip, beta1: DEFAULT_DISTILL.beta1, beta2: DEFAULT_DISTILL.beta2, seed: DEFAULT_DISTILL.seed,
  metricsEvery: 'auto', trainNorms: DEFAULT_DISTILL.trainNorms,
};

/** Pretraining from scratch (the studio's Pretrain tab, `quench pretrain`): the model's shape (a
 *  key of PRETRAIN_CONFIGS), its tokenizer and the AdamW run. */
export interface PretrainSpec {
  /** a key of PRETRAIN_CONFIGS (train/pretrain.ts) */
  config: string;
  /** 'bpe': train a BPE tokenizer of vocabSize tokens on the data first; 'byte': 259 byte ids */
  tokenizer: 'bpe' | 'byte';
  vocabSize: number;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  seed: number;
}

/** The one set of pretraining defaults: a quick run in a browser tab (a BPE of 512 tokens trained on
 *  the text, 200 steps of 8×64). The studio's form starts here and `quench pretrain`'s flags default
 *  to it (the bundled teacher's own, longer recipe is DEFAULT_MODEL_RECIPE). */
export const DEFAULT_PRETRAIN_SPEC: Readonly<PretrainSpec> = Object.freeze({ config: 'tiny', tokenizer: 'bpe', vocabSize: 512, steps: 200, batch: 8, seq: 64, lr: 3e-3, seed: 1 });

export const LOSS_NAMES: Record<keyof LossWeights, string> = { kl: 'KL(teacher‖student)', ce: 'next-token CE', attnMap: 'attention-map KL', attnOut: 'attention-output MSE', hidden: 'hidden-state MSE' };

/** A RunSpec from the defaults and the given fields, every value checked (`where` names the source
 *  in messages: a flag set, a form, a file). */
export function makeRunSpec(over: Partial<RunSpec>, where = 'run spec'): RunSpec {
  if (!over || typeof over !== 'object' || Array.isArray(over)) throw new Error(`${where}: must be an object of run settings, got ${JSON.stringify(over)}`);
  // a field that is present must be valid: null is not "use the default" (mask: null = no mask)
  for (const [k, v] of Object.entries(over)) if (v === null && k !== 'mask') throw new Error(`${where}: ${k} is null`);
  if (over.mask === null) over = { ...over, mask: undefined };
  if (over.loss !== undefined && (typeof over.loss !== 'object' || Array.isArray(over.loss))) throw new Error(`${where}: loss must be an object of weights (kl, ce, attnMap, attnOut, hidden)`);
  const s: RunSpec = { ...DEFAULT_RUN_SPEC, ...stripUndefined(over), loss: { ...DEFAULT_RUN_SPEC.loss, ...(over.loss ?? {}) } };
  const bad = (field: string, why: string): never => {
    throw new Error(`${where}: ${field} ${why}`);
  };
  const posInt = (k: keyof RunSpec, v: unknown, min = 1) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) bad(k, `must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  };
  const finite = (k: string, v: unknown, min = 0, max = Infinity) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) bad(k, `must be a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  };
  if (s.kind !== 'kdqat' && s.kind !== 'fp-finetune') bad('kind', `must be kdqat or fp-finetune, got ${JSON.stringify(s.kind)}`);
  if (![2, 3, 4, 8].includes(s.bits)) bad('bits', `must be 2, 3, 4 or 8, got ${JSON.stringify(s.bits)}`);
  posInt('group', s.group, 0);
  if (s.group % 8 !== 0) bad('group', `must be a multiple of 8 (or 0 = per channel), got ${s.group}`);
  for (const k of ['steps', 'batch', 'seq', 'accum'] as const) posInt(k, s[k]);
  posInt('seed', s.seed, 0);
  if (s.steps > 1e7) bad('steps', `is absurd (${s.steps})`);
  finite('lr', s.lr, 0, 1);
  if (s.lr === 0) bad('lr', 'must be > 0');
  finite('clip', s.clip, 0.05, 1);
  finite('scaleLrRatio', s.scaleLrRatio, 0, 1e3);
  finite('temperature', s.temperature, 1e-3, 100);
  finite('minLrRatio', s.minLrRatio, 0, 1);
  finite('weightDecay', s.weightDecay, 0, 10);
  finite('gradClip', s.gradClip, 0);
  finite('beta1', s.beta1, 0, 0.999999);
  finite('beta2', s.beta2, 0, 0.999999);
  if (s.warmup !== 'auto') posInt('warmup', s.warmup, 0);
  if (s.metricsEvery !== 'auto') posInt('metricsEvery', s.metricsEvery, 1);
  if (s.scales !== 'minmax' && s.scales !== 'learned') bad('scales', `must be minmax or learned, got ${JSON.stringify(s.scales)}`);
  if (s.scaleInit !== 'minmax' && s.scaleInit !== 'search') bad('scaleInit', `must be minmax or search, got ${JSON.stringify(s.scaleInit)}`);
  for (const k of Object.keys(LOSS_NAMES) as (keyof LossWeights)[]) finite(`loss.${k}`, s.loss[k], 0, 1e6);
  for (const k of Object.keys(s.loss)) if (!(k in LOSS_NAMES)) bad(`loss.${k}`, `is not a loss (${Object.keys(LOSS_NAMES).join(', ')})`);
  if (Object.values(s.loss).every((x) => x === 0)) bad('loss', 'has every weight 0');
  if (typeof s.scheme !== 'string' || !s.scheme) bad('scheme', 'must be a preset or a projection list');
  if (!s.mask && s.scheme !== 'custom') {
    try {
      parseFreeze(s.scheme, 1);
    } catch (e) {
      bad('scheme', (e as Error).message.replace(/^--freeze: /, ''));
    }
  }
  if (s.mask) {
    if (!Array.isArray(s.mask) || s.mask.length === 0 || s.mask.some((row) => typeof row !== 'object' || row === null || PROJECTIONS.some((p) => typeof row[p] !== 'boolean'))) bad('mask', `must be one {${PROJECTIONS.join(', ')}: boolean} per layer`);
  }
  return s;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export const autoWarmup = (steps: number) => Math.min(20, Math.floor(steps / 10));
export const autoMetricsEvery = (steps: number) => Math.max(1, Math.min(10, Math.floor(steps / 20)));

/** The freeze mask a spec means for a model of nLayers layers. */
export function freezeMaskOf(spec: RunSpec, nLayers: number): FreezeMask {
  if (spec.mask) {
    if (spec.mask.length !== nLayers) throw new Error(`freeze mask has ${spec.mask.length} layers, the model ${nLayers}`);
    return spec.mask.map((row) => Object.fromEntries(PROJECTIONS.map((p) => [p, !!row[p]])) as Record<Projection, boolean>);
  }
  return parseFreeze(spec.scheme.replace(/\+/g, ','), nLayers);
}

/** The engine's config for a spec on a model (freeze mask, warm-up, metrics interval, seq within
 *  the model's context). */
export function resolveRunSpec(spec: RunSpec, cfg: Pick<LlamaConfig, 'nLayers' | 'maxSeqLen'>): DistillConfig {
  return {
    bits: spec.bits, group: spec.group, sym: spec.sym, clip: spec.clip, scales: spec.scales, scaleLrRatio: spec.scaleLrRatio, scaleInit: spec.scaleInit,
    freeze: freezeMaskOf(spec, cfg.nLayers), loss: { ...spec.loss }, temperature: spec.temperature,
    steps: spec.steps, batch: spec.batch, seq: Math.min(spec.seq, cfg.maxSeqLen), accum: spec.accum,
    lr: spec.lr, minLrRatio: spec.minLrRatio, warmup: spec.warmup === 'auto' ? autoWarmup(spec.steps) : spec.warmup,
    weightDecay: spec.weightDecay, gradClip: spec.gradClip, beta1: spec.beta1, beta2: spec.beta2, seed: spec.seed,
    metricsEvery: spec.metricsEvery === 'auto' ? autoMetricsEvery(spec.steps) : spec.metricsEvery, trainNorms: spec.trainNorms,
    fpReference: spec.kind === 'fp-finetune',
  };
}

/** A short name for a run: its scheme, or the FP reference. */
export function runLabel(spec: RunSpec): string {
  if (spec.kind === 'fp-finetune') return 'FP fine-tune';
  return `w${spec.bits}g${spec.group} ${spec.mask ? 'custom' : spec.scheme}`;
}

export const FREEZE_SCHEMES = Object.keys(FREEZE_PRESETS);

/** JSON with object keys sorted at every level: settings compare by value, not by key order. */
export function canonicalJson(x: unknown): string {
  return JSON.stringify(x, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]])) : v));
}
