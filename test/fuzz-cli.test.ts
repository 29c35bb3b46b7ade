// Hostile input through the CLI as a user runs it (a real process, 60 s limit each): a sample of
// known-invalid mutated files of every model kind through `quench eval`, broken task files through
// `quench evals`, and a model whose finite but absurd weights give a non-finite perplexity. Each
// must exit non-zero with a message naming the file.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caseAt, getBases, writeCase, type FuzzCase, type Kind } from '../fuzz/cases';

const root = mkdtempSync(join(tmpdir(), 'quench-fuzz-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const text = join(root, 'text.txt');
writeFileSync(text, 'Once upon a time, there was a little cat. She liked to play in the sun.\n');

function quench(args: string[]): { status: number | null; out: string; ms: number } {
  const t0 = performance.now();
  const r = spawnSync('node', ['bin/quench.mjs', ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, QUENCH_PROGRESS: '0' } });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}`, ms: performance.now() - t0 };
}

/** The first known-invalid case of a kind for a seed. */
function invalidCase(kind: Kind, seed: number): FuzzCase {
  for (let i = 0; ; i++) {
    const c = caseAt(kind, seed, i);
    if (c.invalid) return c;
  }
}

const MODEL_KINDS: Kind[] = ['safetensors', 'config', 'index', 'quantized', 'llama2c-v0', 'llama2c-q80', 'tokenizer-bin', 'tokenizer-json', 'gguf'];

describe('quench eval / evals on hostile files: non-zero exit, the file named, within 60 s', () => {
  for (const kind of MODEL_KINDS) {
    it.each([17, 18])(`${kind} (seed %i)`, (seed) => {
      const c = invalidCase(kind, seed);
      const dir = join(root, `${kind}-${seed}`);
      const r = quench(['eval', '--model', writeCase(c, dir), '--text', text]);
      expect(r.status, `${c.mutation}: ${r.out}`).not.toBe(0);
      expect(r.status).not.toBeNull(); // null: killed at the time limit
      expect(r.out, c.mutation).toMatch(/quench: /);
      expect(r.out, c.mutation).toContain(c.file);
      expect(r.out).not.toMatch(/TypeError|RangeError|is not a function|Cannot read propert|out of memory/);
    });
  }

  it('evals: a broken task file and a label out of range', () => {
    const B = getBases();
    const model = writeCase({ kind: 'config', mutation: 'none', invalid: false, file: '', files: B.hf, main: '.' }, join(root, 'good'));
    const data = join(root, 'evals');
    mkdirSync(join(data, 'copa'), { recursive: true });
    mkdirSync(join(data, 'piqa'), { recursive: true });
    writeFileSync(join(data, 'copa/val.jsonl'), 'null\n');
    let r = quench(['evals', '--model', model, '--tasks', 'copa', '--data-dir', data]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/copa\/val\.jsonl:1: the top level must be an object, got null/);
    writeFileSync(join(data, 'piqa/valid.jsonl'), '{"goal": "g", "sol1": "a", "sol2": "b"}\n');
    writeFileSync(join(data, 'piqa/valid-labels.lst'), '7\n');
    r = quench(['evals', '--model', model, '--tasks', 'piqa', '--data-dir', data]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/valid-labels\.lst:1: label "7" must be an integer from 0 to 1/);
  });

  it('eval: finite weights that overflow give a non-finite perplexity, which is an error', () => {
    const B = getBases();
    // llama2.c v0 with every RMSNorm weight 3e38: the activations overflow float32
    const v0 = B.v0.slice();
    const dv = new DataView(v0.buffer);
    const { dim: C, hiddenDim: H, nLayers: L, vocabSize: V } = B.cfg;
    const kv = (B.cfg.nKvHeads * C) / B.cfg.nHeads;
    const off = (floats: number) => 28 + 4 * floats;
    const rmsAtt = V * C, rmsFfn = rmsAtt + L * C + L * C * C + 2 * L * kv * C + L * C * C, rmsFinal = rmsFfn + L * C + 3 * L * H * C;
    for (const [start, n] of [[rmsAtt, L * C], [rmsFfn, L * C], [rmsFinal, C]]) for (let i = 0; i < n; i++) dv.setFloat32(off(start + i), 3e38, true);
    const dir = join(root, 'overflow');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.bin'), v0);
    writeFileSync(join(dir, 'tokenizer.bin'), B.tokBin);
    const r = quench(['eval', '--model', join(dir, 'model.bin'), '--text', text]);
    expect(r.status, r.out).toBe(1);
    expect(r.out).toMatch(/model\.bin on .*text\.txt: (perplexity|mean NLL) is (NaN|Infinity)/);
  });
});
