// One checkpoint format for the CLI's run folders and the studio's IndexedDB: a JSON header (step,
// RNG state, the run's spec, the metrics so far) and the tensors (parameters, Adam m and v) as
// safetensors. Everything is verified before a run resumes from it: a checkpoint that cannot be
// verified is refused with a message naming the file and the field or tensor, and nothing is
// written.
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../io/safetensors';
import { bytesSource } from '../io/source';
import type { StepMetrics } from '../train/distill';
import { canonicalJson, makeRunSpec, type RunSpec } from './spec';

export const CHECKPOINT_FORMAT = 'quench-checkpoint';

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  /** optimizer steps taken */
  step: number;
  rngState: number;
  spec: RunSpec;
  history: StepMetrics[];
  /** the safetensors file beside checkpoint.json holding the tensors (run folders) */
  tensorsFile?: string;
}

export interface CheckpointTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  tensors: CheckpointTensor[];
  /** where the tensors came from (a run folder's checkpoint-N.safetensors), for messages */
  source?: { tensors: string };
}

export function encodeCheckpointTensors(c: Checkpoint): Uint8Array {
  return writeSafetensors(c.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })), { format: CHECKPOINT_FORMAT, step: String(c.meta.step) });
}

/** Parse and check checkpoint.json's text (`where` names the file in messages). */
export function parseCheckpointMeta(text: string, where: string): CheckpointMeta {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message}); the file is truncated or corrupted`);
  }
  return checkMeta(raw, where);
}

function checkMeta(raw: unknown, where: string): CheckpointMeta {
  const bad = (why: string): never => {
    throw new Error(`${where}: ${why}`);
  };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad('must be a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.format !== CHECKPOINT_FORMAT) bad(`format is ${JSON.stringify(o.format) ?? 'missing'}, expected "${CHECKPOINT_FORMAT}" (a checkpoint from another version of Quench?)`);
  if (o.version !== 1) bad(`version must be 1, got ${JSON.stringify(o.version) ?? 'nothing'}`);
  if (typeof o.step !== 'number' || !Number.isInteger(o.step) || o.step < 0 || o.step > 1e7) bad(`step must be a non-negative integer, got ${JSON.stringify(o.step)}`);
  if (typeof o.rngState !== 'number' || !Number.isInteger(o.rngState) || o.rngState < 0 || o.rngState > 0xffffffff) bad(`rngState must be a 32-bit unsigned integer, got ${JSON.stringify(o.rngState)}`);
  if (!o.spec || typeof o.spec !== 'object' || Array.isArray(o.spec)) bad(`spec must be the run's settings object, got ${JSON.stringify(o.spec) ?? 'nothing'}`);
  const spec = makeRunSpec(o.spec as Partial<RunSpec>, `${where}: spec`);
  if (!Array.isArray(o.history)) bad('history must be an array of step metrics');
  const history = o.history as unknown[];
  if (history.length !== o.step) bad(`history has ${history.length} steps, the checkpoint says step ${o.step}`);
  history.forEach((h, i) => {
    if (!h || typeof h !== 'object') bad(`history[${i}] is not an object`);
    const m = h as Record<string, unknown>;
    if (m.step !== i) bad(`history[${i}].step is ${JSON.stringify(m.step)}, expected ${i}`);
    for (const k of ['loss', 'lr', 'gradNorm'] as const) if (typeof m[k] !== 'number' || !Number.isFinite(m[k])) bad(`history[${i}].${k} is ${JSON.stringify(m[k])}, not a finite number`);
  });
  if (o.tensorsFile !== undefined && (typeof o.tensorsFile !== 'string' || !/^[\w.-]+\.safetensors$/.test(o.tensorsFile))) bad(`tensorsFile must be a .safetensors file name beside it, got ${JSON.stringify(o.tensorsFile)}`);
  return { format: CHECKPOINT_FORMAT, version: 1, step: o.step as number, rngState: o.rngState as number, spec, history: history as StepMetrics[], tensorsFile: o.tensorsFile as string | undefined };
}

/** Read the tensors of a checkpoint's safetensors bytes (validated as any safetensors file). */
export async function decodeCheckpointTensors(bytes: Uint8Array, where: string): Promise<CheckpointTensor[]> {
  const src = bytesSource(where, bytes);
  const h = await readSafetensorsHeader(src);
  const out: CheckpointTensor[] = [];
  for (const [name, info] of h.tensors) out.push({ name, shape: [...info.shape], data: await readTensorF32(src, h, name) });
  return out;
}

/**
 * Check that a checkpoint can resume the run `spec` on a student whose trainable tensors are
 * `expected` (name → shape): the same settings (by value; steps may differ, the step must not be past
 * them), exactly the expected tensors with their shapes, every value finite.
 */
export function verifyCheckpoint(c: Checkpoint, spec: RunSpec, expected: Map<string, number[]>, where: string): void {
  const meta = checkMeta(c.meta, where);
  const a = canonicalJson({ ...meta.spec, steps: 0 }), b = canonicalJson({ ...spec, steps: 0 });
  if (a !== b) {
    const was = meta.spec as unknown as Record<string, unknown>, now = spec as unknown as Record<string, unknown>;
    const diff = Object.keys({ ...was, ...now }).filter((k) => k !== 'steps' && canonicalJson(was[k]) !== canonicalJson(now[k]));
    throw new Error(`${where}: the checkpoint was made with different settings (${diff.map((k) => `${k}: ${canonicalJson(was[k])} then, ${canonicalJson(now[k])} now`).join('; ')}); resume needs the same ones (only steps may differ)`);
  }
  if (meta.step > spec.steps) throw new Error(`${where}: the checkpoint is at step ${meta.step}, past the ${spec.steps} steps asked for`);
  where = c.source?.tensors ?? where;
  const seen = new Set<string>();
  for (const t of c.tensors) {
    const shape = expected.get(t.name);
    if (!shape) throw new Error(`${where}: tensor "${t.name}" does not belong to this run's student`);
    if (seen.has(t.name)) throw new Error(`${where}: tensor "${t.name}" appears twice`);
    seen.add(t.name);
    if (t.shape.join('x') !== shape.join('x') || t.data.length !== shape.reduce((p, x) => p * x, 1)) throw new Error(`${where}: tensor "${t.name}" has shape [${t.shape}], the run needs [${shape}]`);
    const bad = t.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new Error(`${where}: tensor "${t.name}" holds a non-finite value (${t.data[bad]}) at index ${bad}${t.name.endsWith('.adam_v') || t.name.endsWith('.adam_m') ? ' (optimizer state)' : ''}`);
  }
  const missing = [...expected.keys()].filter((n) => !seen.has(n));
  if (missing.length) throw new Error(`${where}: tensor(s) missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
}
