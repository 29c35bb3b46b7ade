// The CLI as a user runs it (a real process), on the shared stories260K model.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasSharedData, sharedPath, SKIP_MESSAGE } from '../engine/io/data';

if (!hasSharedData) console.warn(SKIP_MESSAGE);
const quench = (args: string[]) => execFileSync('node', ['bin/quench.mjs', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, QUENCH_PROGRESS: '0' } });

describe.skipIf(!hasSharedData)('quench CLI', () => {
  const S = sharedPath('models/stories260K');
  it('eval --json prints documents, tokens, nll, ppl; convert writes a folder eval reads the same', () => {
    const args = ['--text', sharedPath('text/tinystories_val_800.txt'), '--sep', '<|endoftext|>', '--limit', '3', '--json'];
    const a = JSON.parse(quench(['eval', '--model', join(S, 'stories260K.bin'), '--tokenizer', join(S, 'tok512.bin'), ...args]).trim().split('\n').at(-1)!);
    expect(a.documents).toBe(3);
    expect(a.tokens).toBeGreaterThan(100);
    expect(Math.exp(a.nll)).toBeCloseTo(a.ppl, 10);
    expect(a.ppl).toBeGreaterThan(1.5);
    expect(a.ppl).toBeLessThan(10);
    const out = mkdtempSync(join(tmpdir(), 'quench-convert-'));
    quench(['convert', '--model', join(S, 'stories260K.bin'), '--tokenizer', join(S, 'tok512.bin'), '--out', out]);
    const b = JSON.parse(quench(['eval', '--model', out, ...args]).trim().split('\n').at(-1)!);
    expect(b.tokens).toBe(a.tokens);
    expect(Math.abs(b.ppl - a.ppl) / a.ppl).toBeLessThan(1e-6);
  });
  it('clear errors: missing file, not a model', () => {
    expect(() => quench(['eval', '--model', '/nonexistent/model.bin', '--text', 'x'])).toThrow(/\/nonexistent\/model\.bin: no such file or folder/);
    expect(() => quench(['generate', '--model', sharedPath('text/tinyshakespeare.txt')])).toThrow(/tinyshakespeare\.txt: not a llama2\.c checkpoint \(its header reads dim=/);
  });
});

describe('quench compare on the bundled default model', () => {
  const M = 'public/models/default';
  it('--teacher-data samples its training text from the teacher; --tasks puts accuracy beside perplexity in every row', () => {
    const dir = mkdtempSync(join(tmpdir(), 'quench-compare-'));
    mkdirSync(join(dir, 'evals/copa'), { recursive: true });
    writeFileSync(join(dir, 'evals/copa/val.jsonl'), [
      { premise: 'The sea was rough.', choice1: 'The ship rolled.', choice2: 'The ship sang.', question: 'effect', label: 0 },
      { premise: 'The whale rose.', choice1: 'The men cheered.', choice2: 'The sun set.', question: 'effect', label: 0 },
    ].map((d) => JSON.stringify(d)).join('\n'));
    const out = join(dir, 'out');
    quench(['compare', '--teacher', M, '--teacher-data', '3', '--eval', `${M}/data.txt`, '--eval-docs', '2', '--bits', '3', '--group', '32', '--schemes', 'none',
      '--steps', '2', '--batch', '2', '--seq', '16', '--tasks', 'copa', '--data-dir', join(dir, 'evals'), '--out', out]);
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(res.rows.map((r: { kind: string }) => r.kind)).toEqual(['fp', 'ptq-rtn', 'ptq-clip', 'student']);
    for (const r of res.rows) {
      expect(r.accuracy.copa.n).toBe(2);
      expect(r.accuracy.copa.acc).toBeGreaterThanOrEqual(0);
      expect(r.ppl).toBeGreaterThan(1);
    }
    expect(res.rows[3]).toMatchObject({ bits: 3, group: 32, scheme: 'none', steps: 2, spec: { bits: 3, steps: 2, batch: 2 } });
    expect(res.rows[1]).toMatchObject({ bits: 3, group: 32, spec: { clipSearch: false } });
    expect(readFileSync(join(out, 'results.csv'), 'utf8').split('\n')[0]).toContain('copa acc_norm');
    expect(existsSync(join(out, 'none/student/config.json'))).toBe(true);
  });
});

describe('quench pretrain', () => {
  it('--bpe trains a tokenizer on the text, then a model from scratch; eval reads the folder', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'quench-pretrain-')), 'm');
    const r = JSON.parse(quench(['pretrain', '--text', 'public/models/default/data.txt', '--bpe', '300', '--config', 'tiny', '--steps', '4', '--batch', '2', '--seq', '32', '--out', out]).trim().split('\n').at(-1)!);
    expect(r.config.vocabSize).toBe(300);
    const tj = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'));
    expect(tj.model.type).toBe('BPE');
    const e = JSON.parse(quench(['eval', '--model', out, '--text', 'public/models/default/data.txt', '--sep', '<|endoftext|>', '--limit', '2', '--json']).trim().split('\n').at(-1)!);
    expect(e.documents).toBe(2);
    expect(e.ppl).toBeGreaterThan(1);
    expect(e.ppl).toBeLessThan(300 * 1.5); // near the uniform 300 after 4 steps, not wildly off
  });
  it('--bpe 0 asks for the byte-level tokenizer (259 ids)', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'quench-pretrain-')), 'm');
    const r = JSON.parse(quench(['pretrain', '--text', 'public/models/default/data.txt', '--bpe', '0', '--steps', '1', '--batch', '1', '--seq', '16', '--out', out]).trim().split('\n').at(-1)!);
    expect(r.config.vocabSize).toBe(259);
    expect(r.steps).toBe(1);
  });
});

describe('quench kernels and QUENCH_KERNELS', () => {
  const run = (args: string[], env: Record<string, string> = {}) => execFileSync('node', ['bin/quench.mjs', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, QUENCH_PROGRESS: '0', ...env } });
  it('times every variant, names the fastest; the other commands run what QUENCH_KERNELS names, and refuse what this adapter cannot run', () => {
    const t = JSON.parse(run(['kernels', '--size', 'small', '--json']));
    const variants = (op: string) => t.rows.filter((r: { op: string }) => r.op === op).map((r: { variant: string }) => r.variant);
    expect(variants('fp32 dW')).toEqual(expect.arrayContaining(['regtile', 'shared', 'shared8']));
    expect(variants('int4 dX')).toEqual(expect.arrayContaining(['dx', 'dx_wg', 'dx_wg8']));
    expect(variants('fp32 y=x·Wᵀ')).toContain(t.fastest.matmul);
    expect(variants('int4 y=x·Wᵀ')).toContain(t.fastest.gemm);
    expect(variants('f16-weight y=x·Wᵀ')).toEqual(expect.arrayContaining(['half_nt4', 'half_wg8']));
    expect(variants('f16-weight y=x·Wᵀ')).toContain(t.fastest.half);
    // the GEMV family: decoding one token, timed at M = 1
    expect(variants('int4 GEMV')).toEqual(expect.arrayContaining(['gemv', 'gemv_rows', 'gemv_wide']));
    expect(variants('int4 GEMV')).toContain(t.fastest.gemv);
    expect(t.rows.filter((r: { op: string }) => r.op === 'int4 GEMV').every((r: { shape: string }) => r.shape.startsWith('1×'))).toBe(true);
    // the fp32 GEMV family (generating with an FP model), at M = 1; gemv_red where subgroup_id exists
    expect(variants('fp32 GEMV')).toEqual(expect.arrayContaining(['gemv_rows', 'gemv_wg', 'gemv_red']));
    expect(variants('fp32 GEMV')).toContain(t.fastest.fp32gemv);
    expect(t.rows.filter((r: { op: string }) => r.op === 'fp32 GEMV').every((r: { shape: string }) => r.shape.startsWith('1×'))).toBe(true);
    // the attention families: every flash forward at a prefill and at one decoding row
    expect(variants('attention forward')).toEqual(expect.arrayContaining(['flash', 'flash_tiled', 'flash_split']));
    expect(variants('attention forward')).toContain(t.fastest.attention);
    expect(variants('attention decode')).toContain(t.fastest.decode);
    expect(t.rows.filter((r: { op: string }) => r.op === 'attention decode').every((r: { shape: string }) => /^1×1×128 4\/2 HS 32$/.test(r.shape))).toBe(true);
    expect(t.inUse).toEqual(t.defaults);
    // one check per timed row, and the fp32 GEMVs' scalar forms (K 135) besides
    expect(t.checks.length).toBe(t.rows.length + variants('fp32 GEMV').length);
    expect(t.checks.filter((c: { op: string; shape: string }) => c.op === 'fp32 GEMV' && c.shape === '1×135×130').length).toBe(variants('fp32 GEMV').length);
    // every attention kernel checked on this adapter too (forward, decoding, backward), all correct here
    expect(t.attentionChecks.some((c: { kernel: string }) => c.kernel === 'decode flash_split')).toBe(true);
    expect(t.attentionChecks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
    expect(t.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
    // three names (the older form) keep the adapter's kernels for the rest; a fourth sets the
    // f16-weight one, a fifth the GEMV, a sixth and a seventh the attention forward and decoding,
    // an eighth the fp32 GEMV
    const { attention, decode } = t.defaults;
    const info = JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8' }));
    // left out: the adapter's kernels, and the named matmul variant's own fp32 GEMV (shared8: gemv_wg)
    expect(info.kernels).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: t.defaults.half, gemv: t.defaults.gemv, attention, decode, fp32gemv: 'gemv_wg' });
    const info4 = JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8' }));
    expect(info4.kernels).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: 'half_wg8', gemv: t.defaults.gemv, attention, decode, fp32gemv: 'gemv_wg' });
    const info5 = JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemv_wide' }));
    expect(info5.kernels).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: 'half_wg8', gemv: 'gemv_wide', attention, decode, fp32gemv: 'gemv_wg' });
    const info7 = JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemv_wide,flash,flash_tiled' }));
    expect(info7.kernels).toEqual({ matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8', half: 'half_wg8', gemv: 'gemv_wide', attention: 'flash', decode: 'flash_tiled', fp32gemv: 'gemv_wg' });
    // the 8th name: the fp32 GEMV apart from the matmul variant's own
    const info8 = JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemv_wide,flash,flash_tiled,gemv_rows' }));
    expect(info8.kernels).toEqual({ ...info7.kernels, fp32gemv: 'gemv_rows' });
    expect(() => run(['info'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemv_wide,flash,flash_tiled,gemv_sg' })).toThrow(/fp32gemv one of gemv_rows\|gemv_wg/); // an int4 GEMV is not an fp32 one
    expect(info7.attention).toBe('flash'); // what training's forward runs
    expect(() => run(['info'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemv_wide,workgroup' })).toThrow(/attention one of flash\|flash_tiled/); // materializing: not a choice
    expect(() => run(['info'], { QUENCH_KERNELS: 'cublas,gemm,dx' })).toThrow(/QUENCH_KERNELS="cublas,gemm,dx": expected "matmul,gemm,dx\[,half\[,gemv\[,attention\[,decode\[,fp32gemv\]\]\]\]\]\[,tune\]" \(or "tune" alone\) with matmul one of .*shared8.*half one of .*half_wg8.*gemv one of .*gemv_wide.*decode one of .*flash_split.*fp32gemv one of .*gemv_wg/);
    expect(() => run(['info'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_fp8' })).toThrow(/QUENCH_KERNELS="shared8,gemm_wg8,dx_wg8,half_fp8": expected/);
    expect(() => run(['info'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemm' })).toThrow(/expected/); // a GEMM is not a GEMV
    expect(() => run(['info'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,half_wg8,gemv,flash,flash,gemv_wg,extra' })).toThrow(/expected "matmul,gemm,dx\[,half\[,gemv\[,attention\[,decode\[,fp32gemv\]\]\]\]\]\[,tune\]"/);
    // a last "tune": training runs tune the kernels to their shapes first; alone, with the adapter's kernels
    expect(JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'tune' }))).toMatchObject({ kernels: t.defaults, tuneKernelShapes: true });
    expect(JSON.parse(run(['info', '--json'], { QUENCH_KERNELS: 'shared8,gemm_wg8,dx_wg8,tune' }))).toMatchObject({ kernels: { matmul: 'shared8', gemm: 'gemm_wg8', dx: 'dx_wg8' }, tuneKernelShapes: true });
    expect(info.tuneKernelShapes).toBe(false);
    expect(() => run(['info'], { QUENCH_KERNELS: 'tune,shared8,gemm_wg8,dx_wg8' })).toThrow(/expected/);
    // the text form prints each row as it is timed, then the checks and the choice
    const text = run(['kernels', '--size', 'small']).split('\n');
    const rowsAt = text.findIndex((l) => l.startsWith('product ')), fastAt = text.findIndex((l) => l.startsWith('fastest here:'));
    expect(rowsAt > 0 && fastAt > rowsAt, text.slice(0, 4).join('\n')).toBe(true);
    expect(text.slice(rowsAt + 1).filter((l) => /^(fp32|int4|f16-weight|attention) /.test(l)).length).toBe(t.rows.length);
    // the command that prints the replacement still runs, with the defaults
    const again = JSON.parse(run(['kernels', '--size', 'small', '--json'], { QUENCH_KERNELS: 'cublas,gemm,dx' }));
    expect(again.inUse).toEqual(t.defaults);
  });
});
