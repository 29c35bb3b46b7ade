// Shared validation for every input kind the loaders read (safetensors, config.json, the shard
// index, the quantized-folder config, llama2.c checkpoints, tokenizer.bin, tokenizer.json, task
// jsonl): size limits, zod helpers that turn the first issue into a short message naming the file
// and field, finite-value checks, and the model/tokenizer vocabulary comparison.
// Rules: a present-but-wrong-typed field is an error, never a default; sizes are checked against
// these limits and against what the files hold before anything is allocated; names from a file
// are looked up with Map / Object.hasOwn, so "__proto__" or "toString" are plain names.
import { z } from 'zod';

/** Upper bounds on model dimensions (far above any LLaMA that fits a browser tab). */
export const LIMITS = {
  dim: 65536,
  hiddenDim: 262144,
  nLayers: 1024,
  nHeads: 1024,
  vocabSize: 1 << 20,
  maxSeqLen: 1 << 20,
  /** tokenizer pieces, in bytes */
  pieceBytes: 1 << 16,
} as const;

/** Short text of a value for a message (clipped). */
export function show(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** A zod error as one short line naming the file and the field (the first issue only):
 *  `config.json: "rope_theta" must be a finite number, got "1e4"`. */
export function zodMessage(file: string, err: z.ZodError, what = ''): string {
  const iss = err.issues[0] as z.core.$ZodIssue & { input?: unknown; expected?: string; values?: unknown[]; maximum?: unknown; minimum?: unknown };
  const path = iss.path.map(String).join('.');
  const name = path ? `${what ? `${what} ` : ''}"${path}"` : what || 'the top level';
  const got = `got ${show(iss.input)}`;
  const where = `${file}: `;
  if (iss.input === undefined && (iss.code === 'invalid_type' || iss.code === 'invalid_union' || iss.code === 'invalid_value')) return `${where}missing ${name}`;
  switch (iss.code) {
    case 'invalid_type':
      return `${where}${name} must be ${iss.expected === 'int' ? 'an integer' : iss.expected === 'number' ? 'a finite number' : `a${/^[aeio]/.test(String(iss.expected)) ? 'n' : ''} ${iss.expected}`}, ${got}`;
    case 'too_big':
      return `${where}${name} is ${show(iss.input)}, above the limit ${String(iss.maximum)}`;
    case 'too_small':
      return `${where}${name} is ${show(iss.input)}, below the minimum ${String(iss.minimum)}`;
    case 'invalid_value':
      return `${where}${name} must be ${iss.values!.map((v) => show(v)).join(' or ')}, ${got}`;
    case 'invalid_union':
      return `${where}${name} has the wrong type or value, ${got}`;
    default:
      return `${where}${name}: ${iss.message}${iss.input !== undefined ? `, ${got}` : ''}`;
  }
}

/** Parse with a schema, throwing a message naming the file (and field) on the first issue. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, file: string, what = ''): z.infer<T> {
  const r = schema.safeParse(value, { reportInput: true });
  if (!r.success) throw new Error(zodMessage(file, r.error, what));
  return r.data;
}

/** JSON.parse with the file named in the error. */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(`${file}: not valid JSON (${m.length > 80 ? `${m.slice(0, 77)}...` : m})`);
  }
}

/** JSON.parse that must give an object (not null, not an array). */
export function parseJsonObject(text: string, file: string): Record<string, unknown> {
  const j = parseJson(text, file);
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${file}: expected a JSON object, got ${j === null ? 'null' : Array.isArray(j) ? 'an array' : typeof j}`);
  return j as Record<string, unknown>;
}

/** A positive integer no larger than max. */
export const posInt = (max: number) => z.number().int().min(1).max(max);
/** A finite number > 0. */
export const posFinite = z.number().positive();

/** Own entries of a parsed JSON object as a Map (keeps "__proto__" as a plain key). */
export function ownMap<V>(o: Record<string, V>): Map<string, V> {
  return new Map(Object.entries(o));
}

/** Object.hasOwn lookup: undefined unless `key` is the object's own property. */
export function own<V>(o: Record<string, V>, key: string): V | undefined {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Throws naming the file and tensor at the first NaN/Inf. */
export function checkFinite(a: ArrayLike<number>, file: string, what: string): void {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) throw new Error(`${file}: ${what} has a non-finite value (${a[i]}) at index ${i}`);
}

/** The largest element of a (possibly huge) list without spreading it into arguments. */
export function maxOf(xs: Iterable<number>, init = -Infinity): number {
  let m = init;
  for (const x of xs) if (x > m) m = x;
  return m;
}

/** Refuse a tokenizer whose ids reach past the model's embedding rows (the model's vocabulary may
 *  be larger: padded vocabularies are common). */
export function checkVocabularies(model: { vocabSize: number }, tok: { vocabSize: number; bosId: number; eosId: number }, modelFile: string, tokFile: string): void {
  if (tok.vocabSize > model.vocabSize) throw new Error(`${tokFile}: tokenizer has ${tok.vocabSize} tokens but the model (${modelFile}) has vocab_size ${model.vocabSize}; they do not belong together`);
  for (const [k, id] of [['BOS', tok.bosId], ['EOS', tok.eosId]] as const) {
    if (!Number.isInteger(id) || id < 0 || id >= model.vocabSize) throw new Error(`${tokFile}: ${k} id ${id} is outside the model's vocabulary (${modelFile}: ${model.vocabSize})`);
  }
}

/** Throw when a result (perplexity, accuracy ...) is NaN or infinite. */
export function requireFiniteResults(where: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) if (!Number.isFinite(v)) throw new Error(`${where}: ${k} is ${v}; the model or the data is broken (non-finite result)`);
}
