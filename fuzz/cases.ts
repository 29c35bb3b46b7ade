// Hostile-input fuzzing (issue 17): real files of every kind the loaders read, built with the
// project's own writers, mutated by fast-check arbitraries. Each case says which file it mutated
// and whether the mutation is known-invalid (NaN injection, size blow-up, truncation, type swap,
// out-of-range id or label ...: must be refused) or of unknown validity (a byte flip, a deleted
// optional field: refused or loaded, either is fine). classify() loads the case the way the CLI
// does and sorts the outcome:
//   error   a clear Error: plain Error, names the mutated file, no raw JavaScript text
//   load    a correct load: every value finite, every shape consistent, the tokenizer fits
//   unclear an error that is a TypeError/RangeError, raw JS text, or does not name the file
//   silent  a known-invalid input loaded, or a load whose values are not finite/consistent
//   hang    over the time limit (10 s in-process); crashes are seen by the runner (fuzz/run.ts)
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { layerShapes, randomWeights, type LlamaConfig, type LlamaWeights } from '../src/engine/model/config';
import { writeHfModel, writeQuantizedHfModel } from '../src/engine/io/hf';
import { writeLlama2cCheckpoint, writeLlama2cTokenizer } from '../src/engine/io/llama2c';
import { tokenizerJsonFromPieces } from '../src/engine/io/hf-tokenizer';
import { byteChars, byteLevelJson } from '../src/engine/io/byte-level-fixture';
import { Llama2cTokenizer } from '../src/engine/io/tokenizer';
import { loadModelFromPath, type LoadedModel } from '../src/engine/io/load-node';
import { parseTask, TASK_FILES, type McDoc, type TaskName } from '../src/engine/eval/tasks';
import { quantizeWeights } from '../src/engine/quant/ptq';
import { exportModel } from '../src/engine/workflow/export';
import { CHECKPOINT_FORMAT, decodeCheckpointTensors, encodeCheckpointTensors, parseCheckpointMeta, verifyCheckpoint, type Checkpoint } from '../src/engine/workflow/checkpoint';
import { makeRunSpec, type RunSpec } from '../src/engine/workflow/spec';

export const SHARED = join(import.meta.dirname, '../../shared/data');
export const TOK512 = join(SHARED, 'models/stories260K/tok512.bin');

export type Outcome = 'error' | 'load' | 'unclear' | 'silent' | 'hang' | 'crash';

export interface FuzzCase {
  kind: Kind;
  /** the mutation, e.g. "nan", "typeswap num_hidden_layers=\"5\"" */
  mutation: string;
  /** known-invalid: must be refused */
  invalid: boolean;
  /** the mutated file: a refusal must name it */
  file: string;
  /** model-kind cases: the folder's files (model.bin for llama2.c), main = what loadModelFromPath gets */
  files?: Record<string, Uint8Array>;
  main?: string;
  /** task-kind cases */
  task?: { name: TaskName; docs: string; labels?: string };
  /** checkpoint cases: checkpoint.json text and the tensors file's bytes */
  checkpoint?: { json: string; tensors: Uint8Array };
  /** stored-run cases (the studio's IndexedDB records, recipe.json): a run spec as JSON text */
  runSpec?: string;
}

export const KINDS = ['safetensors', 'config', 'index', 'quantized', 'llama2c-v0', 'llama2c-q80', 'tokenizer-bin', 'tokenizer-json', 'tokenizer-json-bytelevel', 'tasks', 'gguf', 'checkpoint', 'run-spec'] as const;
export type Kind = (typeof KINDS)[number];

// ---------------------------------------------------------------------------------------------
// Base files

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Bases {
  realTokenizer: boolean;
  tokBin: Uint8Array;
  tokJson: string;
  /** a byte-level BPE tokenizer.json (Llama-3 / SmolLM style) with exactly the model's vocab_size */
  byteJson: string;
  hfByte: Record<string, Uint8Array>;
  pieces: string[];
  scores: Float32Array;
  cfg: LlamaConfig; // HF folders (untied)
  hf: Record<string, Uint8Array>;
  hfF16: Record<string, Uint8Array>;
  sharded: Record<string, Uint8Array>;
  quant: Record<string, Uint8Array>;
  v0: Uint8Array;
  q80: Uint8Array;
  tasks: Record<TaskName, { docs: string[]; labels?: string[] }>;
  gguf: Uint8Array;
  ckpt: { json: string; tensors: Uint8Array; spec: RunSpec; expected: Map<string, number[]> };
}

function syntheticPieces(): { pieces: string[]; scores: Float32Array } {
  const pieces = ['<unk>', '\n<s>\n', '\n</s>\n', ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, '0')}>`)];
  for (const c of 'abcdefghijklmnopqrstuvwxyz .,') pieces.push(c);
  for (const m of [' t', 'th', 'he', ' a', 'in', 'the', ' the', 'on', 'ce', ' up', 'ti', 'me']) pieces.push(m);
  return { pieces, scores: Float32Array.from(pieces, (_, i) => (i < 259 ? 0 : -i)) };
}

let bases: Bases | null = null;
export function getBases(): Bases {
  if (bases) return bases;
  const realTokenizer = existsSync(TOK512);
  let tokBin: Uint8Array, pieces: string[], scores: Float32Array;
  if (realTokenizer) {
    tokBin = new Uint8Array(readFileSync(TOK512));
    const t = new Llama2cTokenizer(tokBin, 'tok512.bin');
    pieces = t.vocab;
    scores = t.scores;
  } else {
    ({ pieces, scores } = syntheticPieces());
    tokBin = writeLlama2cTokenizer(pieces, scores);
  }
  const tokJson = JSON.stringify(tokenizerJsonFromPieces(pieces, scores));
  const V = pieces.length;
  const cfg: LlamaConfig = { dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: V, maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false };
  const w = randomWeights(cfg, 17);
  const tied: LlamaConfig = { ...cfg, tiedEmbeddings: true };
  const wt: LlamaWeights = { ...randomWeights(tied, 18), lmHead: null };
  const quantModel = quantizeWeights(cfg, w, { bits: 4, group: 8, sym: false, clipSearch: false });
  const byteJson = JSON.stringify(byteLevelJson(V - 2)); // V - 2 BPE entries + BOS/EOS
  const hf = writeHfModel(cfg, w, { tokenizerJson: tokJson });
  bases = {
    realTokenizer,
    tokBin,
    tokJson,
    byteJson,
    hfByte: { ...hf, 'tokenizer.json': enc(byteJson) },
    pieces,
    scores,
    cfg,
    hf,
    hfF16: writeHfModel(cfg, w, { dtype: 'F16', tokenizerJson: tokJson }),
    sharded: writeHfModel(cfg, w, { tokenizerJson: tokJson, maxShardBytes: 12_000 }),
    quant: writeQuantizedHfModel(cfg, w, quantModel, { tokenizerJson: tokJson }),
    v0: writeLlama2cCheckpoint(tied, wt, { version: 0 }),
    q80: writeLlama2cCheckpoint(tied, wt, { version: 2 }),
    tasks: taskBases(),
    gguf: exportModel({ name: 'fuzz', config: cfg, weights: w, quantized: null, tokenizer: new Llama2cTokenizer(tokBin, 'tok.bin') }, 'gguf').files['model.gguf'],
    ckpt: checkpointBase(),
  };
  return bases;
}

/** A real checkpoint's two files: the header (spec, step, RNG, history) and its tensors. */
function checkpointBase(): Bases['ckpt'] {
  const spec = makeRunSpec({ bits: 4, group: 32, steps: 10, batch: 2, seq: 16, scheme: 'ov' }, 'fuzz');
  const names = ['layers.0.q.param', 'layers.0.q.adam_m', 'layers.0.q.adam_v', 'finalNorm.param', 'finalNorm.adam_m', 'finalNorm.adam_v'];
  const shapes = [[8, 16], [8, 16], [8, 16], [16], [16], [16]];
  const tensors = names.map((name, i) => ({ name, shape: shapes[i], data: Float32Array.from({ length: shapes[i].reduce((a, b) => a * b, 1) }, (_, k) => Math.sin(k + i) * (name.endsWith('adam_v') ? 0.01 : 1) + (name.endsWith('adam_v') ? 0.02 : 0)) }));
  const history = Array.from({ length: 3 }, (_, step) => ({ step, lr: 1e-4, loss: 5 - step * 0.1, losses: { kl: 1, ce: 2, attnMap: 0, attnOut: 0, hidden: 0 }, gradNorm: 0.5, tokensPerSec: 100 }));
  const c: Checkpoint = { meta: { format: CHECKPOINT_FORMAT, version: 1, step: 3, rngState: 12345, spec, history, tensorsFile: 'checkpoint-3.safetensors' }, tensors };
  return { json: JSON.stringify(c.meta), tensors: encodeCheckpointTensors(c), spec, expected: new Map(names.map((n, i) => [n, shapes[i]])) };
}

function taskBases(): Bases['tasks'] {
  const out = {} as Bases['tasks'];
  const dir = join(SHARED, 'evals');
  const synthetic: Record<TaskName, string[]> = {
    arc_easy: [JSON.stringify({ id: 'a1', question: { stem: 'Which is a gas?', choices: [{ text: 'steam', label: 'A' }, { text: 'ice', label: 'B' }, { text: 'rock', label: 'C' }] }, answerKey: 'A' })],
    arc_challenge: [JSON.stringify({ id: 'c1', question: { stem: 'What melts ice?', choices: [{ text: 'heat', label: '1' }, { text: 'cold', label: '2' }] }, answerKey: '1' })],
    piqa: [JSON.stringify({ goal: 'Open a jar', sol1: 'twist the lid', sol2: 'freeze it' })],
    boolq: [JSON.stringify({ question: 'is water wet', passage: 'Water is a liquid.', label: 'true' })],
    copa: [JSON.stringify({ premise: 'The man fell.', choice1: 'He slipped.', choice2: 'He sang.', question: 'cause', label: 0 })],
    siqa: [JSON.stringify({ context: 'Kai ate.', question: 'Why?', answerA: 'hungry', answerB: 'bored', answerC: 'sad' })],
  };
  const synLabels: Partial<Record<TaskName, string[]>> = { piqa: ['0'], siqa: ['1'] };
  for (const t of Object.keys(TASK_FILES) as TaskName[]) {
    const f = TASK_FILES[t];
    if (existsSync(join(dir, f.docs))) {
      const docs = readFileSync(join(dir, f.docs), 'utf8').split('\n').filter((l) => l.trim()).slice(0, 6);
      const labels = f.labels ? readFileSync(join(dir, f.labels), 'utf8').split('\n').filter((l) => l.trim()).slice(0, 6) : undefined;
      out[t] = { docs, labels };
    } else out[t] = { docs: synthetic[t], labels: synLabels[t] };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte and JSON helpers

const copy = (b: Uint8Array) => b.slice();
function setF32(b: Uint8Array, off: number, v: number): Uint8Array {
  const o = copy(b);
  new DataView(o.buffer).setFloat32(off, v, true);
  return o;
}
function setI32(b: Uint8Array, off: number, v: number): Uint8Array {
  const o = copy(b);
  new DataView(o.buffer).setInt32(off, v, true);
  return o;
}
function flip(b: Uint8Array, pos: number, mask: number): Uint8Array {
  const o = copy(b);
  o[pos % o.length] ^= mask || 1;
  return o;
}

/** A JSON value written raw (e.g. "1e400", which JSON.stringify cannot produce). */
class Raw {
  constructor(readonly text: string) {}
}
const DELETE = Symbol('delete');
type Edit = unknown | Raw | typeof DELETE;

/** Set (or delete) the value at `path` of a JSON text; Raw values are spliced in as text. */
function editJson(text: string, path: (string | number)[], value: Edit): string {
  const root = JSON.parse(text) as unknown;
  const marker = '\u0000RAW\u0000';
  let raw: string | null = null;
  const v = value instanceof Raw ? ((raw = value.text), marker) : value;
  if (path.length === 0) return raw ?? JSON.stringify(v);
  let o = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (v === DELETE) {
    if (Array.isArray(o)) o.splice(last as number, 1);
    else delete o[last];
  } else if (last === '__proto__') Object.defineProperty(o, last, { value: v, enumerable: true, configurable: true, writable: true });
  else o[last] = v;
  const s = JSON.stringify(root, null, 1);
  return raw === null ? s : s.replace(JSON.stringify(marker), raw);
}

/** Rename an object key (keeps the order), "__proto__" included as a plain key. */
function renameKey(text: string, path: (string | number)[], from: string, to: string): string {
  const root = JSON.parse(text) as unknown;
  let o = root as Record<string, unknown>;
  for (const k of path) o = o[k] as Record<string, unknown>;
  const entries = Object.entries(o);
  for (const k of Object.keys(o)) delete o[k];
  for (const [k, v] of entries) Object.defineProperty(o, k === from ? to : k, { value: v, enumerable: true, configurable: true, writable: true });
  return JSON.stringify(root);
}

const PROTO_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
const NONFINITE = [NaN, Infinity, -Infinity];

/** Safetensors header JSON and data of a file. */
function splitSafetensors(b: Uint8Array): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; dataStart: number } {
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(dec(b.subarray(8, 8 + n))), dataStart: 8 + n };
}
/** A safetensors file with its header replaced by `json` text (data kept). */
function withHeader(b: Uint8Array, json: string): Uint8Array {
  const { dataStart } = splitSafetensors(b);
  const h = enc(json);
  const padded = (h.length + 7) & ~7;
  const out = new Uint8Array(8 + padded + (b.length - dataStart)).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(h, 8);
  out.set(b.subarray(dataStart), 8 + padded);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: one per kind, each a oneof over mutation families.

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
const frac = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const at = <T>(xs: readonly T[], f: number): T => xs[Math.floor(f * xs.length)];

function modelCase(kind: Kind, base: Record<string, Uint8Array>, file: string, bytes: Uint8Array | string, mutation: string, invalid: boolean, main = '.'): FuzzCase {
  return { kind, mutation, invalid, file, files: { ...base, [file]: typeof bytes === 'string' ? enc(bytes) : bytes }, main };
}

function safetensorsArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const variant = fc.constantFrom('F32', 'F16');
  const baseOf = (v: string) => (v === 'F16' ? B.hfF16 : B.hf);
  const F = 'model.safetensors';
  const nan = fc.tuple(variant, frac, frac, pick(NONFINITE)).map(([v, ft, fe, x]) => {
    const b = baseOf(v)[F];
    const { header, dataStart } = splitSafetensors(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const t = header[at(names, ft)];
    const n = t.shape.reduce((a, c) => a * c, 1);
    const i = Math.floor(fe * n);
    const o = copy(b);
    const dv = new DataView(o.buffer);
    const off = dataStart + t.data_offsets[0];
    if (t.dtype === 'F32') dv.setFloat32(off + 4 * i, x, true);
    else dv.setUint16(off + 2 * i, Number.isNaN(x) ? 0x7e00 : x > 0 ? 0x7c00 : 0xfc00, true);
    return modelCase('safetensors', baseOf(v), F, o, `nan ${x} in ${v}`, true);
  });
  const truncate = fc.tuple(variant, frac).map(([v, f]) => {
    const b = baseOf(v)[F];
    return modelCase('safetensors', baseOf(v), F, b.subarray(0, Math.floor(f * b.length)), 'truncate', true);
  });
  const headerLen = fc.tuple(variant, fc.oneof(fc.integer({ min: -8, max: 8 }).filter((d) => d !== 0), pick([2 ** 40, 2 ** 53, 100_000_001]))).map(([v, d]) => {
    const b = copy(baseOf(v)[F]);
    const dv = new DataView(b.buffer);
    const n = Number(dv.getBigUint64(0, true));
    dv.setBigUint64(0, BigInt(Math.abs(d) > 8 ? d : n + d), true);
    return modelCase('safetensors', baseOf(v), F, b, `header length ${Math.abs(d) > 8 ? d : `n${d > 0 ? '+' : ''}${d}`}`, true);
  });
  const fieldSwap = fc.tuple(variant, frac, pick(['dtype', 'shape', 'data_offsets'] as const), frac).map(([v, ft, field, fv]) => {
    const b = baseOf(v)[F];
    const { header } = splitSafetensors(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const name = at(names, ft);
    const wrong: Record<string, unknown[]> = {
      dtype: [5, null, [], 'X9', 'F4', 'I32', 'U8', 'f32'],
      shape: ['16', [16.5], null, {}, [-1], [2 ** 31, 2 ** 31], [1e300], [...header[name].shape, 2]],
      data_offsets: [[0], '0,4', null, [4, 0], [0, 2 ** 60], [-4, 0], [0.5, 4]],
    };
    const val = at(wrong[field], fv);
    const h = header as Record<string, Record<string, unknown>>;
    h[name][field] = val;
    return modelCase('safetensors', baseOf(v), F, withHeader(b, JSON.stringify(h)), `header ${field}=${JSON.stringify(val)}`, true);
  });
  const rename = fc.tuple(variant, frac, pick(PROTO_NAMES)).map(([v, ft, to]) => {
    const b = baseOf(v)[F];
    const { header } = splitSafetensors(b);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const text = renameKey(JSON.stringify(header), [], at(names, ft), to);
    return modelCase('safetensors', baseOf(v), F, withHeader(b, text), `rename tensor to ${to}`, true);
  });
  const metadata = fc.tuple(variant, pick([5, null, [], { a: 1 }, 'x'])).map(([v, val]) => {
    const b = baseOf(v)[F];
    const { header } = splitSafetensors(b);
    return modelCase('safetensors', baseOf(v), F, withHeader(b, JSON.stringify({ ...header, __metadata__: val })), `__metadata__=${JSON.stringify(val)}`, true);
  });
  const flips = fc.tuple(variant, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([v, p, m]) => modelCase('safetensors', baseOf(v), F, flip(baseOf(v)[F], p, m), 'flip', false));
  return fc.oneof(nan, truncate, headerLen, fieldSwap, rename, metadata, flips);
}

const CONFIG_FIELDS = {
  int: ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'max_position_embeddings'],
  float: ['rms_norm_eps', 'rope_theta'],
  bool: ['tie_word_embeddings'],
};
const WRONG = {
  int: ['5', true, 3.5, -1, 0, new Raw('1e400'), [], {}, new Raw('-1e400')],
  float: ['1e-5', true, -1, 0, new Raw('1e400'), [], {}],
  bool: ['true', 1, [], 'false'],
};
const showEdit = (v: unknown) => (v instanceof Raw ? v.text : JSON.stringify(v));

function configArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const F = 'config.json';
  const text = dec(B.hf[F]);
  const mk = (t: string, mutation: string, invalid: boolean) => modelCase('config', B.hf, F, t, mutation, invalid);
  const typeswap = fc.tuple(pick(['int', 'float', 'bool'] as const), frac, frac).map(([k, ff, fv]) => {
    const field = at(CONFIG_FIELDS[k], ff), val = at(WRONG[k], fv);
    return mk(editJson(text, [field], val), `typeswap ${field}=${showEdit(val)}`, true);
  });
  const blowup = fc.tuple(pick(CONFIG_FIELDS.int), pick([1e7, 2 ** 31 - 1, 1e9, 2 ** 53, 1e300, 2 ** 21])).map(([f, v]) => mk(editJson(text, [f], v), `blowup ${f}=${v}`, true));
  const mismatch = fc.tuple(pick(['num_hidden_layers', 'intermediate_size', 'hidden_size', 'vocab_size', 'num_key_value_heads']), fc.integer({ min: -1, max: 8 }).filter((d) => d !== 0)).map(([f, d]) => {
    const j = JSON.parse(text) as Record<string, number>;
    const v = Math.max(1, j[f] + d);
    return mk(editJson(text, [f], v === j[f] ? v + 1 : v), `mismatch ${f}${d > 0 ? '+' : ''}${d}`, true);
  });
  const arch = pick<[string, unknown]>([
    ['architectures', 'LlamaForCausalLM'],
    ['architectures', ['GPT2LMHeadModel']],
    ['architectures', 5],
    ['model_type', 5],
    ['hidden_act', 'gelu'],
    ['hidden_act', 5],
    ['rope_scaling', { rope_type: 'dynamic', factor: 2 }],
    ['rope_scaling', { rope_type: 'llama3', factor: 8 }],
    ['rope_scaling', { type: 'linear', factor: 0.5 }],
    ['rope_scaling', { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 16 }],
    ['rope_scaling', 'linear'],
    ['attention_bias', true],
    ['attention_bias', 'no'],
    ['mlp_bias', true],
    ['head_dim', 8],
    ['sliding_window', 'x'],
    ['sliding_window', 4],
  ]).map(([f, v]) => {
    let t = editJson(text, [f], v);
    if (f === 'architectures' && Array.isArray(v)) t = editJson(t, ['model_type'], 'gpt2');
    return mk(t, `${f}=${JSON.stringify(v)}`, true);
  });
  // LLaMA-family fields that are supported: must load (issue 13, part C)
  const family = pick<[string, unknown]>([
    ['rope_scaling', { type: 'linear', factor: 2 }],
    ['rope_scaling', { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 }],
    ['rope_scaling', { rope_type: 'default' }],
    ['sliding_window', 64],
    ['attention_bias', false],
  ]).map(([f, v]) => mk(editJson(text, [f], v), `${f}=${JSON.stringify(v)}`, false));
  const whole = pick([new Raw('null'), new Raw('[]'), new Raw('"x"'), new Raw('5'), new Raw('')]).map((v) => mk(v.text, `config.json is ${v.text || 'empty'}`, true));
  const truncate = frac.map((f) => mk(text.slice(0, Math.floor(f * text.length)), 'truncate', true));
  const del = pick(Object.keys(JSON.parse(text))).map((f) => mk(editJson(text, [f], DELETE), `delete ${f}`, false));
  const nul = pick(Object.keys(JSON.parse(text))).map((f) => mk(editJson(text, [f], null), `null ${f}`, false));
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 127 })).map(([p, m]) => mk(dec(flip(B.hf[F], p, m)), 'flip', false));
  return fc.oneof(typeswap, blowup, mismatch, arch, family, whole, truncate, del, nul, flips);
}

function indexArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const F = 'model.safetensors.index.json';
  const text = dec(B.sharded[F]);
  const wm = (JSON.parse(text) as { weight_map: Record<string, string> }).weight_map;
  const tensors = Object.keys(wm), shards = [...new Set(Object.values(wm))];
  const mk = (t: string, mutation: string, invalid: boolean) => modelCase('index', B.sharded, F, t, mutation, invalid);
  const renameTensor = fc.tuple(frac, pick(PROTO_NAMES)).map(([f, to]) => mk(renameKey(text, ['weight_map'], at(tensors, f), to), `weight_map key -> ${to}`, true));
  const renameShard = fc.tuple(frac, pick([...PROTO_NAMES, 'missing.safetensors', 'config.json', '', 'tokenizer.json'])).map(([f, to]) => mk(editJson(text, ['weight_map', at(tensors, f)], to), `shard -> ${JSON.stringify(to)}`, true));
  const remap = fc.tuple(frac, fc.nat()).map(([f, k]) => {
    const t = at(tensors, f);
    const other = shards.filter((s) => s !== wm[t]);
    return mk(editJson(text, ['weight_map', t], other[k % other.length]), 'remap tensor to another shard', true);
  });
  const whole = pick(['null', '[]', '"x"', '5', '{}', '{"weight_map": null}', '{"weight_map": []}', '{"weight_map": "x"}', '{"weight_map": {}}']).map((t) => mk(t, `index is ${t}`, true));
  const valueType = fc.tuple(frac, pick([5, null, [], {}, true])).map(([f, v]) => mk(editJson(text, ['weight_map', at(tensors, f)], v), `weight_map value ${JSON.stringify(v)}`, true));
  const delEntry = frac.map((f) => mk(editJson(text, ['weight_map', at(tensors, f)], DELETE), 'delete entry', true));
  const extra = fc.tuple(pick(['foo.weight', ...PROTO_NAMES]), frac).map(([n, f]) => mk(editJson(text, ['weight_map', n], at(shards, f)), `extra entry ${n}`, true));
  const truncate = frac.map((f) => mk(text.slice(0, Math.floor(f * text.length)), 'truncate', true));
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 127 })).map(([p, m]) => mk(dec(flip(B.sharded[F], p, m)), 'flip', false));
  return fc.oneof(renameTensor, renameShard, remap, whole, valueType, delEntry, extra, truncate, flips);
}

function quantizedArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const C = 'config.json', S = 'model.safetensors';
  const text = dec(B.quant[C]);
  const mk = (f: string, b: Uint8Array | string, mutation: string, invalid: boolean) => modelCase('quantized', B.quant, f, b, mutation, invalid);
  const wrong: Record<string, unknown[]> = {
    bits: [5, '4', 3.5, 16, 0, 1, null, true],
    group_size: ['8', -1, 1.5, true, null, new Raw('1e400')],
    sym: ['true', 1, null],
    modules: ['q', ['x'], [], 5, ['q', 5], null],
    quant_method: ['awq', 5, null, 'gptq'],
    clip_search: ['no', 1],
  };
  const swap = fc.tuple(pick(Object.keys(wrong)), frac).map(([f, fv]) => {
    const v = at(wrong[f], fv);
    return mk(C, editJson(text, ['quantization_config', f], v), `quantization_config.${f}=${showEdit(v)}`, true);
  });
  const delRequired = pick(['bits', 'group_size', 'sym', 'modules', 'quant_method']).map((f) => mk(C, editJson(text, ['quantization_config', f], DELETE), `delete quantization_config.${f}`, true));
  const delOptional = pick(['clip_search', 'format']).map((f) => mk(C, editJson(text, ['quantization_config', f], DELETE), `delete quantization_config.${f}`, false));
  const qcWhole = pick([5, 'x', [], true]).map((v) => mk(C, editJson(text, ['quantization_config'], v), `quantization_config=${JSON.stringify(v)}`, true));
  const st = B.quant[S];
  const { header, dataStart } = splitSafetensors(st);
  const scales = Object.keys(header).filter((k) => k.endsWith('.scales'));
  const zeros = Object.keys(header).filter((k) => k.endsWith('.zeros'));
  const qweights = Object.keys(header).filter((k) => k.endsWith('.qweight'));
  const badScale = fc.tuple(frac, frac, pick([...NONFINITE, 0, -1, -0.5])).map(([ft, fe, x]) => {
    const t = header[at(scales, ft)];
    const n = (t.data_offsets[1] - t.data_offsets[0]) / 4;
    return mk(S, setF32(st, dataStart + t.data_offsets[0] + 4 * Math.floor(fe * n), x), `scale ${x}`, true);
  });
  const badZero = fc.tuple(frac, frac, fc.integer({ min: 16, max: 255 })).map(([ft, fe, z]) => {
    const t = header[at(zeros, ft)];
    const o = copy(st);
    o[dataStart + t.data_offsets[0] + Math.floor(fe * (t.data_offsets[1] - t.data_offsets[0]))] = z;
    return mk(S, o, `zero point ${z}`, true);
  });
  const codeFlip = fc.tuple(frac, frac, fc.integer({ min: 1, max: 255 })).map(([ft, fe, m]) => {
    const t = header[at(qweights, ft)];
    return mk(S, flip(st, dataStart + t.data_offsets[0] + Math.floor(fe * (t.data_offsets[1] - t.data_offsets[0])), m), 'qweight flip', false);
  });
  const truncate = frac.map((f) => mk(S, st.subarray(0, Math.floor(f * st.length)), 'truncate', true));
  return fc.oneof(swap, delRequired, delOptional, qcWhole, badScale, badZero, codeFlip, truncate);
}

/** Byte offsets of the float32 values of a llama2.c file that must be finite, and the header layout. */
function llama2cFloatSlots(v: 0 | 2, b: Uint8Array, cfg: LlamaConfig): number[] {
  const { dim: C, hiddenDim: H, nLayers: L, nHeads, nKvHeads, vocabSize: V } = cfg;
  const kv = (nKvHeads * C) / nHeads;
  if (v === 0) return Array.from({ length: (b.length - 28) / 4 }, (_, i) => 28 + 4 * i);
  const slots: number[] = [];
  let off = 256;
  for (let i = 0; i < 2 * L * C + C; i++, off += 4) slots.push(off);
  const gs = new DataView(b.buffer, b.byteOffset).getInt32(37, true);
  for (const [n, count] of [[V * C, 1], [C * C, L], [kv * C, L], [kv * C, L], [C * C, L], [H * C, L], [C * H, L], [H * C, L]]) {
    for (let k = 0; k < count; k++) {
      off += n;
      for (let s = 0; s < n / gs; s++, off += 4) slots.push(off);
    }
  }
  return slots;
}

function llama2cArb(v: 0 | 2): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const kind: Kind = v === 0 ? 'llama2c-v0' : 'llama2c-q80';
  const F = 'model.bin';
  const b = v === 0 ? B.v0 : B.q80;
  const folder = { [F]: b, 'tokenizer.bin': B.tokBin };
  const mk = (o: Uint8Array, mutation: string, invalid: boolean) => modelCase(kind, folder, F, o, mutation, invalid, F);
  const slots = llama2cFloatSlots(v, b, { ...B.cfg, tiedEmbeddings: true });
  const hdr = v === 0 ? 0 : 8;
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const nan = fc.tuple(frac, pick(NONFINITE)).map(([f, x]) => mk(setF32(b, at(slots, f), x), `nan ${x}`, true));
  // 65537 is within the seq_len limit, and a v2 file's size does not depend on seq_len
  const blowup = fc.tuple(fc.integer({ min: 0, max: 6 }), pick([2 ** 31 - 1, 1e9, -(2 ** 31), 0, -1, 65537, 1 << 21])).map(([i, x0]) => {
    const x = v === 2 && i === 6 && x0 === 65537 ? 1 << 21 : x0;
    return mk(setI32(b, hdr + 4 * i, x), `header ${names[i]}=${x}`, true);
  });
  // v2 holds no freq_cis table, so its seq_len only matters against the limit
  const small = fc.tuple(fc.integer({ min: 0, max: v === 0 ? 6 : 5 }), fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0)).map(([i, d]) => {
    const cur = new DataView(b.buffer, b.byteOffset).getInt32(hdr + 4 * i, true);
    return mk(setI32(b, hdr + 4 * i, cur + d), `header ${names[i]}${d > 0 ? '+' : ''}${d}`, true);
  });
  const truncate = frac.map((f) => mk(b.subarray(0, Math.floor(f * b.length)), 'truncate', true));
  const append = fc.integer({ min: 1, max: 64 }).map((n) => {
    const o = new Uint8Array(b.length + n);
    o.set(b);
    return mk(o, `append ${n} bytes`, true);
  });
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([p, m]) => mk(flip(b, p, m), 'flip', false));
  const fams = [nan, blowup, small, truncate, append, flips];
  if (v === 2) {
    fams.push(pick([0, -1, 3, 8, 2 ** 31 - 1, 32]).map((g) => mk(setI32(b, 37, g), `group_size=${g}`, true)));
    fams.push(pick([1, 3, 0, -1]).map((ver) => mk(setI32(b, 4, ver), `version=${ver}`, true)));
    fams.push(fc.constant(0).map(() => {
      const o = copy(b);
      o[36] = 0;
      return mk(o, 'shared_classifier=0', true);
    }));
  }
  return fc.oneof(...fams);
}

function tokenizerBinArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const F = 'tokenizer.bin';
  const b = B.tokBin;
  const folder = { 'model.bin': B.v0, [F]: b };
  const mk = (o: Uint8Array, mutation: string, invalid: boolean) => modelCase('tokenizer-bin', folder, F, o, mutation, invalid, 'model.bin');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const maxLen = dv.getInt32(0, true);
  const tokOffsets: number[] = [];
  for (let off = 4; off < b.length; off += 8 + dv.getInt32(off + 4, true)) tokOffsets.push(off);
  const nan = fc.tuple(frac, pick(NONFINITE)).map(([f, x]) => mk(setF32(b, at(tokOffsets, f), x), `score ${x}`, true));
  const len = fc.tuple(frac, fc.oneof(fc.integer({ min: maxLen + 1, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: -1 }))).map(([f, l]) => mk(setI32(b, at(tokOffsets, f) + 4, l), `length ${l}`, true));
  const maxTok = pick([-1, 2 ** 31 - 1, 1e6, maxLen - 1, -(2 ** 31)]).map((m) => mk(setI32(b, 0, m), `max_token_length=${m}`, true));
  const truncate = frac.map((f) => mk(b.subarray(0, Math.floor(f * b.length)), 'truncate', true));
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([p, m]) => mk(flip(b, p, m), 'flip', false));
  return fc.oneof(nan, len, maxTok, truncate, flips);
}

function tokenizerJsonArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const F = 'tokenizer.json';
  const text = B.tokJson;
  const j = JSON.parse(text) as { model: { vocab: Record<string, number>; merges: unknown[] }; added_tokens: unknown[] };
  const pieces = Object.keys(j.model.vocab);
  const nMerges = j.model.merges.length;
  const mk = (t: string, mutation: string, invalid: boolean) => modelCase('tokenizer-json', B.hf, F, t, mutation, invalid);
  const idBlow = fc.tuple(frac, pick([1e9, 1e6, 2 ** 31, 1e300, pieces.length + 5, 2 ** 20])).map(([f, id]) => mk(editJson(text, ['model', 'vocab', at(pieces, f)], id), `vocab id ${id}`, true));
  const idType = fc.tuple(frac, pick([-1, 3.5, '5', null, true, [], {}, new Raw('1e400')])).map(([f, v]) => mk(editJson(text, ['model', 'vocab', at(pieces, f)], v), `vocab id ${showEdit(v)}`, true));
  const addedId = fc.tuple(fc.integer({ min: 0, max: 2 }), pick([-1, 3.5, '1', null, 1e9, 1e6])).map(([i, v]) => mk(editJson(text, ['added_tokens', i, 'id'], v), `added_tokens id ${JSON.stringify(v)}`, true));
  const structure = pick<[(string | number)[], unknown]>([
    [['model'], null],
    [['model'], []],
    [['model'], 'BPE'],
    [['model', 'vocab'], []],
    [['model', 'vocab'], 'x'],
    [['model', 'vocab'], {}],
    [['model', 'merges'], {}],
    [['model', 'merges'], 5],
    [['model', 'merges', 0], 5],
    [['model', 'merges', 0], ['a']],
    [['model', 'merges', 0], ['a', 'b', 'c']],
    [['model', 'merges', 0], 'nospace'],
    [['model', 'byte_fallback'], 'yes'],
    [['model', 'unk_token'], 5],
    [['model', 'type'], 'Unigram'],
    [['added_tokens'], {}],
    [['added_tokens', 0], null],
    [['added_tokens', 0, 'content'], 5],
    [['normalizer'], 5],
    [['normalizer'], 'x'],
    [['normalizer', 'normalizers'], {}],
    [['normalizer', 'normalizers', 0], 5],
    [['normalizer', 'normalizers', 0], null],
    [['normalizer', 'normalizers', 0, 'prepend'], 5],
    [['normalizer', 'normalizers', 1, 'pattern'], 'x'],
    [['normalizer', 'normalizers', 1, 'content'], 5],
    [['decoder'], 5],
    [['decoder', 'decoders', 0, 'content'], 5],
    [['decoder', 'decoders', 3, 'start'], '1'],
    [['pre_tokenizer'], { type: 'ByteLevel' }],
    [['pre_tokenizer'], { type: 'Metaspace', replacement: 5 }],
  ]).map(([p, v]) => {
    // a ByteLevel pre-tokenizer or a Unigram model type is a real tokenizer.json form that a full
    // tokenizer library may accept: refused or a correct load, either is right
    const alternative = JSON.stringify(v) === '{"type":"ByteLevel"}' || v === 'Unigram';
    return mk(editJson(text, p, v), `${p.join('.')}=${JSON.stringify(v)}`, !alternative);
  });
  // more tokens than the model's embedding has rows
  const bigger = fc.integer({ min: 1, max: 40 }).map((n) => {
    const extra = Array.from({ length: n }, (_, i) => `zz${i}`);
    return mk(JSON.stringify(tokenizerJsonFromPieces([...B.pieces, ...extra], Float32Array.from([...B.scores, ...extra.map(() => -1e4)]))), `${n} tokens more than the model`, true);
  });
  const delMerge = fc.nat({ max: Math.max(0, nMerges - 1) }).map((k) => mk(editJson(text, ['model', 'merges', k], DELETE), 'delete a merge', false));
  const delField = pick<(string | number)[]>([['model', 'merges'], ['normalizer'], ['decoder'], ['added_tokens'], ['model', 'byte_fallback'], ['post_processor']]).map((p) => mk(editJson(text, p, DELETE), `delete ${p.join('.')}`, false));
  const truncate = frac.map((f) => mk(text.slice(0, Math.floor(f * text.length)), 'truncate', true));
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 127 })).map(([p, m]) => mk(dec(flip(enc(text), p, m)), 'flip', false));
  return fc.oneof(idBlow, idType, addedId, structure, bigger, delMerge, delField, truncate, flips);
}

/** Byte-level BPE (Llama-3 / SmolLM style): the same id mutations on another family of files, and
 *  what only byte-level files have (the 256 byte characters, Split/ByteLevel options, regexes). */
function tokenizerJsonByteLevelArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const F = 'tokenizer.json';
  const text = B.byteJson;
  const j = JSON.parse(text) as { model: { vocab: Record<string, number>; merges: unknown[] } };
  const pieces = Object.keys(j.model.vocab);
  const nMerges = j.model.merges.length;
  const bytes = byteChars();
  const mk = (t: string, mutation: string, invalid: boolean) => modelCase('tokenizer-json-bytelevel', B.hfByte, F, t, mutation, invalid);
  const idBlow = fc.tuple(frac, pick([1e9, 1e6, 2 ** 31, 1e300, pieces.length + 5, 2 ** 20, 2 ** 53])).map(([f, id]) => mk(editJson(text, ['model', 'vocab', at(pieces, f)], id), `vocab id ${id}`, true));
  const idType = fc.tuple(frac, pick([-1, 3.5, '5', null, true, [], {}, new Raw('1e400')])).map(([f, v]) => mk(editJson(text, ['model', 'vocab', at(pieces, f)], v), `vocab id ${showEdit(v)}`, true));
  const addedId = fc.tuple(fc.integer({ min: 0, max: 1 }), pick([-1, 3.5, '1', null, 1e9, 1e6, pieces.length + 7])).map(([i, v]) => mk(editJson(text, ['added_tokens', i, 'id'], v), `added_tokens id ${JSON.stringify(v)}`, true));
  // a byte character missing: text with that byte could not be encoded
  const dropByte = fc.nat({ max: 255 }).map((b) => mk(editJson(text, ['model', 'vocab', bytes[b]], DELETE), `delete byte character ${b}`, true));
  const structure = pick<[(string | number)[], unknown]>([
    [['model'], null],
    [['model', 'vocab'], []],
    [['model', 'vocab'], {}],
    [['model', 'merges'], {}],
    [['model', 'merges', 0], ['Ā']],
    [['model', 'merges', 0], [1, 2]],
    [['model', 'merges', 0], ['zz-not-a-piece', 'Ā']],
    [['model', 'type'], 'WordLevel'],
    [['pre_tokenizer'], { type: 'ByteLevel', use_regex: 'yes' }],
    [['pre_tokenizer'], { type: 'Split', pattern: { Regex: '(' }, behavior: 'Isolated', invert: false }],
    [['pre_tokenizer'], { type: 'Split', pattern: { Regex: 5 }, behavior: 'Isolated', invert: false }],
    [['pre_tokenizer'], { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Sideways', invert: false }],
    [['pre_tokenizer'], { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Isolated', invert: false }, null] }],
    [['pre_tokenizer'], { type: 'UnicodeScripts' }],
    [['decoder'], { type: 'CTC' }],
    [['decoder'], 7],
    [['added_tokens'], {}],
    [['added_tokens', 0, 'content'], 5],
  ]).map(([p, v]) => mk(editJson(text, p, v), `${p.join('.')}=${JSON.stringify(v)}`, true));
  // more tokens than the model's embedding has rows
  const bigger = fc.integer({ min: 1, max: 300 }).map((n) => mk(JSON.stringify(byteLevelJson(pieces.length + n)), `${n} tokens more than the model`, true));
  const delMerge = fc.nat({ max: Math.max(0, nMerges - 1) }).map((k) => mk(editJson(text, ['model', 'merges', k], DELETE), 'delete a merge', false));
  const delField = pick<(string | number)[]>([['normalizer'], ['decoder'], ['added_tokens'], ['post_processor'], ['model', 'ignore_merges']]).map((p) => mk(editJson(text, p, DELETE), `delete ${p.join('.')}`, false));
  const truncate = frac.map((f) => mk(text.slice(0, Math.floor(f * text.length)), 'truncate', true));
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 127 })).map(([p, m]) => mk(dec(flip(enc(text), p, m)), 'flip', false));
  return fc.oneof(idBlow, idType, addedId, dropByte, structure, bigger, delMerge, delField, truncate, flips);
}

const TASK_FIELDS: Record<TaskName, string[][]> = {
  arc_easy: [['question', 'stem'], ['question', 'choices'], ['answerKey'], ['question']],
  arc_challenge: [['question', 'stem'], ['question', 'choices'], ['answerKey'], ['question']],
  piqa: [['goal'], ['sol1'], ['sol2']],
  boolq: [['question'], ['passage'], ['label']],
  copa: [['premise'], ['choice1'], ['choice2'], ['question'], ['label']],
  siqa: [['context'], ['question'], ['answerA'], ['answerB'], ['answerC']],
};

function tasksArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const names = Object.keys(TASK_FILES) as TaskName[];
  const mk = (t: TaskName, docs: string[], labels: string[] | undefined, file: string, mutation: string, invalid: boolean): FuzzCase => ({
    kind: 'tasks',
    mutation: `${t}: ${mutation}`,
    invalid,
    file,
    task: { name: t, docs: docs.join('\n') + '\n', labels: labels ? labels.join('\n') + '\n' : undefined },
  });
  const docsFile = (t: TaskName) => TASK_FILES[t].docs;
  const lineEdit = (t: TaskName, fl: number, edit: (l: string) => string, mutation: string, invalid: boolean) => {
    const { docs, labels } = B.tasks[t];
    const i = Math.floor(fl * docs.length);
    return mk(t, docs.map((l, k) => (k === i ? edit(l) : l)), labels, docsFile(t), `${mutation} (line ${i + 1})`, invalid);
  };
  const wrongLine = fc.tuple(pick(names), frac, pick(['null', '[]', '"x"', '5', 'true', '{}'])).map(([t, f, v]) => lineEdit(t, f, () => v, `line is ${v}`, true));
  const fieldSwap = fc.tuple(pick(names), frac, frac, pick([5, null, [], {}, true, ''])).map(([t, fl, ff, v]) => {
    const path = at(TASK_FIELDS[t], ff);
    const last = path[path.length - 1];
    // boolq accepts true/false/0/1 as a label; '' is a valid ARC answerKey only if a choice has it (none does)
    const val = last === 'label' && (v === true || v === '') ? 'maybe' : v;
    return lineEdit(t, fl, (l) => editJson(l, path, val).replace(/\n\s*/g, ''), `${path.join('.')}=${JSON.stringify(val)}`, true);
  });
  const delField = fc.tuple(pick(names), frac, frac).map(([t, fl, ff]) => {
    const path = at(TASK_FIELDS[t], ff);
    return lineEdit(t, fl, (l) => editJson(l, path, DELETE).replace(/\n\s*/g, ''), `delete ${path.join('.')}`, true);
  });
  const copaLabel = fc.tuple(frac, pick([2, -1, '1', 0.5, null, true, 1e9])).map(([f, v]) => lineEdit('copa', f, (l) => editJson(l, ['label'], v).replace(/\n\s*/g, ''), `label=${JSON.stringify(v)}`, true));
  const arcChoices = fc.tuple(pick(['arc_easy', 'arc_challenge'] as const), frac, pick<unknown>([[], "x", 5])).map(([t, f, v]) => lineEdit(t, f, (l) => editJson(l, ['question', 'choices'], v).replace(/\n\s*/g, ''), `choices=${JSON.stringify(v)}`, true));
  const arcEmpty = fc.tuple(pick(['arc_easy', 'arc_challenge'] as const), frac).map(([t, f]) => lineEdit(t, f, (l) => editJson(l, ['question', 'choices', 0, 'text'], '').replace(/\n\s*/g, ''), 'empty choice', true));
  const arcKey = fc.tuple(pick(['arc_easy', 'arc_challenge'] as const), frac, pick(['Z', 5, null, ''])).map(([t, f, v]) => lineEdit(t, f, (l) => editJson(l, ['answerKey'], v).replace(/\n\s*/g, ''), `answerKey=${JSON.stringify(v)}`, true));
  const truncLine = fc.tuple(pick(names), frac, frac).map(([t, fl, fc2]) => lineEdit(t, fl, (l) => l.slice(0, 1 + Math.floor(fc2 * (l.length - 2))), 'truncated line', true));
  const labelTasks = ['piqa', 'siqa'] as const;
  const badLabel = fc.tuple(pick(labelTasks), frac, pick(['2', '-1', 'x', '0.5', '4', '1e9', 'null', 'NaN'])).map(([t, f, v]) => {
    const { docs, labels } = B.tasks[t];
    const i = Math.floor(f * labels!.length);
    const lv = t === 'siqa' && v === '2' ? '0' : v;
    return mk(t, docs, labels!.map((l, k) => (k === i ? lv : l)), TASK_FILES[t].labels!, `label ${lv} (line ${i + 1})`, true);
  });
  const labelCount = fc.tuple(pick(labelTasks), fc.boolean()).map(([t, drop]) => {
    const { docs, labels } = B.tasks[t];
    return mk(t, docs, drop ? labels!.slice(1) : [...labels!, '1'], TASK_FILES[t].labels!, drop ? 'one label missing' : 'one label extra', true);
  });
  const flips = fc.tuple(pick(names), fc.nat(), fc.integer({ min: 1, max: 127 })).map(([t, p, m]) => {
    const { docs, labels } = B.tasks[t];
    const text = docs.join('\n');
    const o = dec(flip(enc(text), p, m));
    return mk(t, o.split('\n'), labels, docsFile(t), 'flip', false);
  });
  return fc.oneof(wrongLine, fieldSwap, delField, copaLabel, arcChoices, arcEmpty, arcKey, truncLine, badLabel, labelCount, flips);
}

function ggufArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases();
  const F = 'model.gguf';
  const mk = (o: Uint8Array, mutation: string, invalid: boolean) => modelCase('gguf', {}, F, o, mutation, invalid, F);
  const u64 = (b: Uint8Array, off: number, v: bigint) => {
    const o = copy(b);
    new DataView(o.buffer).setBigUint64(off, v, true);
    return o;
  };
  const truncate = frac.map((f) => mk(B.gguf.subarray(0, Math.floor(f * B.gguf.length)), 'truncate', true));
  const magic = fc.integer({ min: 0, max: 3 }).map((i) => {
    const o = copy(B.gguf);
    o[i] ^= 0x20;
    return mk(o, `magic byte ${i}`, true);
  });
  const version = pick([0, 1, 4, 99, 0x03000000]).map((v) => {
    const o = copy(B.gguf);
    new DataView(o.buffer).setUint32(4, v, true);
    return mk(o, `version ${v}`, true);
  });
  const counts = fc.tuple(pick([8, 16] as const), pick([0n, 1n, 2n ** 31n, 2n ** 40n, 2n ** 63n, 2n ** 64n - 1n])).map(([off, v]) => mk(u64(B.gguf, off, v), `${off === 8 ? 'tensor' : 'metadata'} count ${v}`, true));
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([p, m]) => mk(flip(B.gguf, p, m), 'flip', false));
  const tail = fc.integer({ min: 1, max: 64 }).map((n) => mk(B.gguf.subarray(0, B.gguf.length - n), `last ${n} bytes cut`, true));
  return fc.oneof(truncate, magic, version, counts, flips, tail);
}

function checkpointArb(): fc.Arbitrary<FuzzCase> {
  const B = getBases().ckpt;
  const mk = (json: string, tensors: Uint8Array, file: string, mutation: string, invalid: boolean): FuzzCase => ({ kind: 'checkpoint', mutation, invalid, file, checkpoint: { json, tensors } });
  const meta = JSON.parse(B.json) as Record<string, unknown>;
  const FIELDS = ['format', 'version', 'step', 'rngState', 'spec', 'history', 'tensorsFile'];
  const VALUES: unknown[] = [null, -1, 2.5, '3', 1e9, NaN, [], {}, 'x', true, 2 ** 33];
  const typeSwap = fc.tuple(pick(FIELDS), pick(VALUES)).map(([f, v]) => mk(JSON.stringify({ ...meta, [f]: v }), B.tensors, 'checkpoint.json', `${f}=${JSON.stringify(v)}`, !(f === 'rngState' && v === 1e9)));
  const del = pick(FIELDS.filter((f) => f !== 'tensorsFile')).map((f) => {
    const o = { ...meta };
    delete o[f];
    return mk(JSON.stringify(o), B.tensors, 'checkpoint.json', `delete ${f}`, true);
  });
  const SPEC_FIELDS = ['bits', 'group', 'lr', 'steps', 'seed', 'scales', 'loss', 'scheme', 'kind', 'temperature', 'clip'];
  const specSwap = fc.tuple(pick(SPEC_FIELDS), pick(VALUES)).map(([f, v]) => mk(JSON.stringify({ ...meta, spec: { ...(meta.spec as object), [f]: v } }), B.tensors, 'checkpoint.json', `spec.${f}=${JSON.stringify(v)}`, true));
  const history = fc.tuple(fc.nat({ max: 2 }), pick(['loss', 'step', 'gradNorm', 'lr']), pick(VALUES)).map(([i, f, v]) => {
    const h = (meta.history as Record<string, unknown>[]).map((x, k) => (k === i ? { ...x, [f]: v } : x));
    // finite numbers are valid metrics; a step that is not its index is not
    const invalid = f === 'step' ? v !== i : !(typeof v === 'number' && Number.isFinite(v));
    return mk(JSON.stringify({ ...meta, history: h }), B.tensors, 'checkpoint.json', `history[${i}].${f}=${JSON.stringify(v)}`, invalid);
  });
  const truncJson = frac.map((f) => mk(B.json.slice(0, Math.floor(f * B.json.length)), B.tensors, 'checkpoint.json', 'truncated json', true));
  const T = 'checkpoint-3.safetensors';
  const nan = fc.tuple(frac, pick(NONFINITE)).map(([f, x]) => {
    const { header, dataStart } = splitSafetensors(B.tensors);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const t = header[at(names, f)];
    const o = copy(B.tensors);
    new DataView(o.buffer).setFloat32(dataStart + t.data_offsets[0], x, true);
    return mk(B.json, o, T, `${x} in ${at(names, f)}`, true);
  });
  const truncT = frac.map((f) => mk(B.json, B.tensors.subarray(0, Math.floor(f * B.tensors.length)), T, 'truncated tensors', true));
  const rename = frac.map((f) => {
    const { header } = splitSafetensors(B.tensors);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const n = at(names, f);
    const renamed = /\d/.test(n) ? n.replace(/\d/, '9') : n.replace(/^./, 'X');
    return mk(B.json, Uint8Array.from(new TextDecoder('latin1').decode(B.tensors).replace(n, renamed), (ch) => ch.charCodeAt(0)), T, `renamed ${n} to ${renamed}`, true);
  });
  const flips = fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([p, m]) => mk(B.json, flip(B.tensors, p, m), T, 'flip', false));
  return fc.oneof(typeSwap, del, specSwap, history, truncJson, nan, truncT, rename, flips);
}

function runSpecArb(): fc.Arbitrary<FuzzCase> {
  const base = getBases().ckpt.spec as unknown as Record<string, unknown>;
  const mk = (text: string, mutation: string, invalid: boolean): FuzzCase => ({ kind: 'run-spec', mutation, invalid, file: 'stored run', runSpec: text });
  const FIELDS = Object.keys(base);
  const BAD: unknown[] = [null, -1, 2.5, '4', 1e400, NaN, [], {}, 'x', true, 1e12];
  const swap = fc.tuple(pick(FIELDS.filter((f) => f !== 'mask')), pick(BAD)).map(([f, v]) => {
    // a swap that happens to give a valid value is not known-invalid
    let ok = true;
    try {
      makeRunSpec({ ...base, [f]: v } as Partial<RunSpec>, 'probe');
    } catch {
      ok = false;
    }
    return mk(JSON.stringify({ ...base, [f]: v }), `${f}=${JSON.stringify(v)}`, !ok || v === null || (typeof v === 'number' && !Number.isFinite(v)));
  });
  const loss = fc.tuple(pick(['kl', 'ce', 'attnMap', 'attnOut', 'hidden', 'bogus']), pick([-1, NaN, '1', null, 1e9])).map(([k, v]) => mk(JSON.stringify({ ...base, loss: { ...(base.loss as object), [k]: v } }), `loss.${k}=${JSON.stringify(v)}`, true));
  const mask = pick<unknown>([[], [{}], 'ov', [{ q: 1 }], null]).map((m) => mk(JSON.stringify({ ...base, mask: m }), `mask=${JSON.stringify(m)}`, m !== null));
  // the swap oracle above probes makeRunSpec itself for finite-but-odd values; null is never valid
  const trunc = frac.map((f) => {
    const t = JSON.stringify(base);
    return mk(t.slice(0, Math.floor(f * (t.length - 1))), 'truncated', true);
  });
  return fc.oneof(swap, loss, mask, trunc);
}

export function arbitraryFor(kind: Kind): fc.Arbitrary<FuzzCase> {
  switch (kind) {
    case 'safetensors':
      return safetensorsArb();
    case 'config':
      return configArb();
    case 'index':
      return indexArb();
    case 'quantized':
      return quantizedArb();
    case 'llama2c-v0':
      return llama2cArb(0);
    case 'llama2c-q80':
      return llama2cArb(2);
    case 'tokenizer-bin':
      return tokenizerBinArb();
    case 'tokenizer-json':
      return tokenizerJsonArb();
    case 'tokenizer-json-bytelevel':
      return tokenizerJsonByteLevelArb();
    case 'tasks':
      return tasksArb();
    case 'gguf':
      return ggufArb();
    case 'checkpoint':
      return checkpointArb();
    case 'run-spec':
      return runSpecArb();
  }
}

const arbCache = new Map<Kind, fc.Arbitrary<FuzzCase>>();
/** Case i of a kind for a seed: regenerated identically from (kind, seed, i). */
export function caseAt(kind: Kind, seed: number, i: number): FuzzCase {
  let a = arbCache.get(kind);
  if (!a) arbCache.set(kind, (a = arbitraryFor(kind)));
  return fc.sample(a, { seed: (seed * 1_000_003 + i) | 0, numRuns: 1 })[0];
}

// ---------------------------------------------------------------------------------------------
// Loading and classification

/** Raw JavaScript error text that must never reach a user. */
const RAW = /is not a function|is not iterable|Cannot read propert|Cannot set propert|undefined is not|null is not|Maximum call stack|Invalid array length|Invalid typed array length|out of memory|Map maximum size|Array buffer allocation|is not defined|cannot be converted|Offset is outside|Invalid string length|\[object Object\]/;

/** Why a loaded model is not a correct load, or null. */
export function checkLoadedModel(m: LoadedModel): string | null {
  const c = m.config;
  for (const k of ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'maxSeqLen'] as const) if (!Number.isInteger(c[k]) || c[k] <= 0) return `config.${k} = ${c[k]}`;
  if (!(Number.isFinite(c.normEps) && c.normEps > 0 && Number.isFinite(c.ropeTheta) && c.ropeTheta > 0)) return `config eps ${c.normEps} theta ${c.ropeTheta}`;
  const w = m.weights;
  const fin = (a: Float32Array | null, n: number, what: string): string | null => {
    if (!a) return `${what} missing`;
    if (a.length !== n) return `${what} has ${a.length} values, config implies ${n}`;
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return `${what}[${i}] = ${a[i]}`;
    return null;
  };
  let bad = fin(w.tokEmbed, c.vocabSize * c.dim, 'tokEmbed') ?? fin(w.finalNorm, c.dim, 'finalNorm');
  if (bad) return bad;
  if (c.tiedEmbeddings ? w.lmHead !== null : (bad = fin(w.lmHead, c.vocabSize * c.dim, 'lmHead'))) return bad ?? 'tied model with an lmHead';
  if (w.layers.length !== c.nLayers) return `${w.layers.length} layers, config says ${c.nLayers}`;
  const shapes = layerShapes(c);
  for (let l = 0; l < c.nLayers; l++)
    for (const [k, sh] of Object.entries(shapes)) {
      bad = fin(w.layers[l][k as keyof typeof shapes], sh.reduce((a, b) => a * b, 1), `layer ${l} ${k}`);
      if (bad) return bad;
    }
  const tok = m.tokenizer;
  if (!tok) return 'no tokenizer';
  if (!(tok.vocabSize > 0 && tok.vocabSize <= c.vocabSize)) return `tokenizer has ${tok.vocabSize} tokens, model ${c.vocabSize}`;
  if ('scores' in tok) for (const s of (tok as Llama2cTokenizer).scores) if (!Number.isFinite(s)) return `tokenizer score ${s}`;
  const ids = tok.encode('Once upon a time, the cat sat. 日本 ✓');
  for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) return `encode gives id ${id}`;
  if (typeof tok.decode(ids) !== 'string') return 'decode failed';
  return null;
}

export function checkDocs(docs: McDoc[]): string | null {
  if (docs.length === 0) return 'no documents';
  for (const [i, d] of docs.entries()) {
    if (typeof d.context !== 'string' || d.context.length === 0) return `doc ${i} context`;
    if (!Array.isArray(d.continuations) || d.continuations.length < 2) return `doc ${i} has ${d.continuations?.length} continuations`;
    for (const c of d.continuations) if (typeof c !== 'string' || c.trim().length === 0) return `doc ${i} has an empty continuation`;
    if (!Number.isInteger(d.gold) || d.gold < 0 || d.gold >= d.continuations.length) return `doc ${i} gold ${d.gold}`;
  }
  return null;
}

/** Write a case's folder to dir (emptied first); returns the path loadModelFromPath gets. */
export function writeCase(c: FuzzCase, dir: string): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [n, b] of Object.entries(c.files!)) writeFileSync(join(dir, n), b);
  return c.main === '.' ? dir : join(dir, c.main!);
}

export interface Classified {
  outcome: Outcome;
  detail: string;
  ms: number;
}

export const HANG_MS = 10_000;

/** Load one case and sort the outcome (see the header comment). */
export async function classify(c: FuzzCase, dir: string): Promise<Classified> {
  const t0 = performance.now();
  let outcome: Outcome, detail: string;
  try {
    let bad: string | null;
    if (c.task) bad = checkDocs(parseTask(c.task.name, c.task.docs, c.task.labels, TASK_FILES[c.task.name].docs, TASK_FILES[c.task.name].labels));
    else if (c.checkpoint) {
      const B = getBases().ckpt;
      const meta = parseCheckpointMeta(c.checkpoint.json, 'checkpoint.json');
      const tensors = await decodeCheckpointTensors(c.checkpoint.tensors, 'checkpoint-3.safetensors');
      verifyCheckpoint({ meta, tensors, source: { tensors: 'checkpoint-3.safetensors' } }, B.spec, B.expected, 'checkpoint.json');
      bad = null;
    } else if (c.runSpec !== undefined) {
      let raw: unknown;
      try {
        raw = JSON.parse(c.runSpec);
      } catch (e) {
        throw new Error(`stored run: not valid JSON (${(e as Error).message})`);
      }
      const sp = makeRunSpec(raw as Partial<RunSpec>, 'stored run');
      bad = Object.values(sp).some((v) => typeof v === 'number' && !Number.isFinite(v)) ? 'a non-finite field' : null;
    }
    else bad = checkLoadedModel(await loadModelFromPath(writeCase(c, dir)));
    if (bad) [outcome, detail] = ['silent', `loaded with ${bad}`];
    else if (c.invalid) [outcome, detail] = ['silent', 'known-invalid input loaded'];
    else [outcome, detail] = ['load', ''];
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const clear = e instanceof Error && e.constructor === Error && !RAW.test(msg) && msg.includes(c.file) && msg.length < 600;
    [outcome, detail] = [clear ? 'error' : 'unclear', `${e instanceof Error ? e.constructor.name : typeof e}: ${msg.slice(0, 300)}`];
  }
  const ms = performance.now() - t0;
  if (ms > HANG_MS) [outcome, detail] = ['hang', `${ms.toFixed(0)} ms (${detail})`];
  return { outcome, detail, ms };
}
