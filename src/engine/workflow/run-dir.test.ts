// Run folders: resume refuses what it cannot verify without touching the folder; settings compare
// by value; a crash between any two writes of a checkpoint leaves a resumable folder. (The CLI =
// studio parity test is test/studio-cli.test.ts.)
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomWeights, type LlamaConfig } from '../model/config';
import { ByteTokenizer } from '../io/byte-tokenizer';
import { testGpu } from '../testing';
import { makeRunSpec, canonicalJson } from './spec';
import { splitText } from './data';
import { runInFolder } from './run-folder';
import { RunDir, nodeIo, type RunDirIo } from './run-dir';
import type { StepMetrics } from '../train/distill';

// a tiny random teacher with a byte tokenizer: resume and crash tests stay fast
const cfg: LlamaConfig = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
const teacher = { name: 'tiny', config: cfg, weights: randomWeights(cfg, 3, 0.5), tokenizer: new ByteTokenizer() };
const text = Array.from({ length: 12 }, (_, i) => `Document ${i}: the whale swam ${i} leagues and the sea was calm.`).join('\n<|endoftext|>\n');
const split = splitText(text, 'tiny.txt', { holdout: 2 });
const spec = makeRunSpec({ bits: 4, group: 32, steps: 4, batch: 2, seq: 16, scheme: 'ov' }, 'test');
const quiet = { log: () => {} };

function hashDir(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const f of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, f.name);
      h.update(p);
      if (f.isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

describe('run folders: nothing lost, nothing overwritten', () => {
  it('resume refuses what it cannot verify and leaves the folder byte-identical; settings compare by value', async () => {
    const gpu = await testGpu();
    const base = join(mkdtempSync(join(tmpdir(), 'quench-resume-')), 'run');
    const short = makeRunSpec({ ...spec, steps: 2 }, 'test');
    await runInFolder(gpu, teacher, short, split, base, { ...quiet, checkpointEvery: 1 });
    // a fresh run never overwrites a folder that holds one
    const h0 = hashDir(base);
    await expect(runInFolder(gpu, teacher, spec, split, base, quiet)).rejects.toThrow(/already holds a run.*--resume/);
    expect(hashDir(base)).toBe(h0);
    const ckpt = JSON.parse(readFileSync(join(base, 'checkpoint.json'), 'utf8'));
    const corruptions: [string, (dir: string) => void, RegExp][] = [
      ['checkpoint.json deleted', (d) => rmSync(join(d, 'checkpoint.json')), /checkpoint\.json: not found; there is nothing to resume/],
      ['truncated checkpoint.json', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify(ckpt).slice(0, 40)), /checkpoint\.json: not valid JSON/],
      ['step 2.5', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify({ ...ckpt, step: 2.5 })), /step must be a non-negative integer/],
      ['step "2"', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify({ ...ckpt, step: '2' })), /step must be a non-negative integer/],
      ['step 1e9', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify({ ...ckpt, step: 1e9 })), /step must be a non-negative integer/],
      ['rngState "x"', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify({ ...ckpt, rngState: 'x' })), /rngState must be/],
      ['malformed history', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify({ ...ckpt, history: [{ step: 0 }, 7] })), /history\[0\]\.loss|history\[1\]/],
      ['other settings', (d) => writeFileSync(join(d, 'checkpoint.json'), JSON.stringify({ ...ckpt, spec: { ...ckpt.spec, lr: 1e-3 } })), /different settings \(lr: 0\.001 then, 0\.0005 now\)/],
      ['tensors file missing', (d) => rmSync(join(d, ckpt.tensorsFile)), /not found, but .*checkpoint\.json names it/],
      ['truncated tensors', (d) => writeFileSync(join(d, ckpt.tensorsFile), readFileSync(join(d, ckpt.tensorsFile)).subarray(0, 100)), /checkpoint-2\.safetensors/],
      ['NaN in Adam v', (d) => {
        const b = readFileSync(join(d, ckpt.tensorsFile));
        const hl = Number(b.readBigUInt64LE(0));
        const hdr = JSON.parse(b.subarray(8, 8 + hl).toString());
        const name = Object.keys(hdr).find((k) => k.endsWith('.adam_v'))!;
        b.writeFloatLE(NaN, 8 + hl + hdr[name].data_offsets[0]);
        writeFileSync(join(d, ckpt.tensorsFile), b);
      }, /checkpoint-2\.safetensors: tensor .*adam_v" holds a non-finite value \(NaN\).*optimizer state/],
      ['swapped tensor names', (d) => {
        const b = readFileSync(join(d, ckpt.tensorsFile));
        const s = b.toString('latin1').replace('layers.0.q.param', 'layers.9.q.param');
        writeFileSync(join(d, ckpt.tensorsFile), Buffer.from(s, 'latin1'));
      }, /tensor "layers\.9\.q\.param" does not belong to this run/],
    ];
    for (const [what, corrupt, message] of corruptions) {
      const dir = `${base}-${what.replace(/\W+/g, '_')}`;
      cpSync(base, dir, { recursive: true });
      corrupt(dir);
      const before = hashDir(dir);
      await expect(runInFolder(gpu, teacher, spec, split, dir, { ...quiet, resume: true }), what).rejects.toThrow(message);
      expect(hashDir(dir), `${what}: the refused folder changed`).toBe(before);
    }
    // the same settings written in another key order resume fine
    const reordered = `${base}-reordered`;
    cpSync(base, reordered, { recursive: true });
    const rev = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).reverse());
    writeFileSync(join(reordered, 'checkpoint.json'), JSON.stringify(rev({ ...ckpt, spec: rev(ckpt.spec) })));
    const r = await runInFolder(gpu, teacher, spec, split, reordered, { ...quiet, resume: true });
    expect(r.history.length).toBe(4);
    expect(canonicalJson(JSON.parse(readFileSync(join(reordered, 'checkpoint.json'), 'utf8')).spec)).toBe(canonicalJson(spec));
  });

  it('resumed = uninterrupted; a crash between any two writes of a checkpoint leaves a resumable folder', async () => {
    const gpu = await testGpu();
    const root = mkdtempSync(join(tmpdir(), 'quench-crash-'));
    const full = await runInFolder(gpu, teacher, spec, split, join(root, 'full'), quiet);
    const fullLosses = full.history.map((m) => m.loss);
    // count the file operations of one checkpoint save after step 2
    const half = join(root, 'half');
    // the same 4-step run, stopped after its step-2 checkpoint
    let steps = 0;
    await runInFolder(gpu, teacher, spec, split, half, { ...quiet, checkpointEvery: 2, shouldStop: () => steps++ >= 2 });
    expect(JSON.parse(readFileSync(join(half, 'checkpoint.json'), 'utf8')).step).toBe(2);
    let ops = 0;
    const counting: RunDirIo = { write: (p, d) => (ops++, nodeIo.write(p, d)), rename: (a, b) => (ops++, nodeIo.rename(a, b)), unlink: (p) => (ops++, nodeIo.unlink(p)) };
    const probe = join(root, 'probe');
    cpSync(half, probe, { recursive: true });
    const c = await new RunDir(probe).readCheckpoint();
    new RunDir(probe, counting).saveCheckpoint({ ...c, meta: { ...c.meta } });
    expect(ops).toBeGreaterThanOrEqual(4);
    for (let k = 0; k < ops; k++) {
      const dir = join(root, `crash-${k}`);
      cpSync(half, dir, { recursive: true });
      let n = 0;
      const crashing: RunDirIo = {
        write: (p, d) => { if (n++ === k) throw new Error('crash'); nodeIo.write(p, d); },
        rename: (a, b) => { if (n++ === k) throw new Error('crash'); nodeIo.rename(a, b); },
        unlink: (p) => { if (n++ === k) throw new Error('crash'); nodeIo.unlink(p); },
      };
      const cc = await new RunDir(dir).readCheckpoint();
      expect(() => new RunDir(dir, crashing).saveCheckpoint(cc)).toThrow('crash');
      expect(existsSync(join(dir, 'checkpoint.json'))).toBe(true);
      const resumed = await runInFolder(gpu, teacher, spec, split, dir, { ...quiet, resume: true });
      expect(resumed.history.map((m) => m.loss), `crash after ${k} operations`).toEqual(fullLosses);
    }
  });
});
