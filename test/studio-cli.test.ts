// The studio and the CLI stand on one workflow layer: the same spec through `quench distill` and
// through the worker's engine gives the same run, and their defaults (distill and pretrain) are one. (A test outside
// src/engine: it imports the CLI, the worker and the UI store, which the engine itself may not.)
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { testGpu } from '../src/engine/testing';
import { run as distillCli, specFromArgs } from '../src/cli/distill';
import { run as pretrainCli, pretrainSpecFromArgs } from '../src/cli/pretrain';
import { StudioEngine } from '../src/worker/studio-engine';
import { DEFAULT_SETTINGS } from '../src/ui/store';
import { makeRunSpec, resolveRunSpec, DEFAULT_PRETRAIN_SPEC, DEFAULT_RUN_SPEC } from '../src/engine/workflow/spec';
import { autoHoldout } from '../src/engine/workflow/data';
import type { StepMetrics } from '../src/engine/train/distill';

const M = 'public/models/default';

describe('one workflow under the CLI and the studio', () => {
  it("the studio's defaults are the CLI's (spec and resolved engine config)", () => {
    const cli = specFromArgs({ bits: String(DEFAULT_RUN_SPEC.bits), group: String(DEFAULT_RUN_SPEC.group) });
    expect(DEFAULT_SETTINGS.run).toEqual(cli);
    const cfg = { nLayers: 4, maxSeqLen: 256 };
    expect(resolveRunSpec(makeRunSpec(DEFAULT_SETTINGS.run, 'studio'), cfg)).toEqual(resolveRunSpec(cli, cfg));
    // the documented recipe, not the studio's old one (lr 2e-3, 4x64) that made students worse than RTN
    expect(cli).toMatchObject({ lr: 5e-4, batch: 8, seq: 128, steps: 300, loss: { kl: 1, ce: 0.5 }, scales: 'learned', scaleInit: 'search' });
  });

  it("pretraining: the studio's form and `quench pretrain`'s flags both default to DEFAULT_PRETRAIN_SPEC", async () => {
    expect(DEFAULT_SETTINGS.pretrain).toEqual(DEFAULT_PRETRAIN_SPEC);
    expect(pretrainSpecFromArgs({})).toEqual({ spec: DEFAULT_PRETRAIN_SPEC });
    // the studio's quick run in a tab: BPE of 512 tokens trained on the text, 200 steps of 8x64
    expect(DEFAULT_PRETRAIN_SPEC).toEqual({ config: 'tiny', tokenizer: 'bpe', vocabSize: 512, steps: 200, batch: 8, seq: 64, lr: 3e-3, seed: 1 });
    // --bpe N sets the vocabulary, --bpe 0 asks for bytes, --tokenizer a file; both at once is refused
    expect(pretrainSpecFromArgs({ bpe: '300' }).spec).toEqual({ ...DEFAULT_PRETRAIN_SPEC, vocabSize: 300 });
    expect(pretrainSpecFromArgs({ bpe: '0' }).spec.tokenizer).toBe('byte');
    expect(pretrainSpecFromArgs({ tokenizer: 't.json', steps: '5' })).toEqual({ spec: { ...DEFAULT_PRETRAIN_SPEC, steps: 5 }, tokenizerFile: 't.json' });
    expect(() => pretrainSpecFromArgs({ tokenizer: 't.json', bpe: '300' })).toThrow(/--tokenizer or --bpe, not both/);
    expect(() => pretrainSpecFromArgs({ config: 'huge' })).toThrow(/--config must be one of .*tiny/);
    // --help prints the defaults from the constant
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await pretrainCli(['--help'])).toBe(0);
      const help = log.mock.calls.map((c) => String(c[0])).join('\n');
      const D = DEFAULT_PRETRAIN_SPEC;
      expect(help).toContain(`--config ${D.config} --steps ${D.steps}`);
      expect(help).toContain(`--batch ${D.batch} --seq ${D.seq}`);
      expect(help).toContain(`--lr ${D.lr} --seed ${D.seed}`);
      expect(help).toContain(`BPE of ${D.vocabSize} tokens`);
      expect(help).toContain('--bpe 0');
    } finally {
      log.mockRestore();
    }
  });

  it('the same spec through `quench distill` and through the worker engine: identical per-step losses and held-out perplexity', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'quench-wf-')), 'run');
    const argv = ['--teacher', M, '--data', `${M}/data.txt`, '--bits', '3', '--group', '32', '--freeze', 'ov', '--steps', '3', '--batch', '2', '--seq', '32', '--out', out];
    process.env.QUENCH_PROGRESS = '0';
    expect(await distillCli(argv)).toBe(0);
    const cliSteps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepMetrics);
    const cliSummary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));

    const gpu = await testGpu();
    const studio = new StudioEngine(gpu);
    const files = ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => new File([readFileSync(join(M, f))], f));
    await studio.loadFiles(files, 'default');
    const info = studio.setData(readFileSync(`${M}/data.txt`, 'utf8'), 'data.txt');
    const steps: StepMetrics[] = [];
    const spec = makeRunSpec({ ...DEFAULT_SETTINGS.run, bits: 3, group: 32, scheme: 'ov', steps: 3, batch: 2, seq: 32 }, 'studio form');
    const r = await studio.train({ id: 'r1', spec }, (m) => steps.push(m), () => {}, () => false);
    expect(r.status).toBe('done');
    expect(steps.map((s) => s.loss)).toEqual(cliSteps.map((s) => s.loss));
    expect(steps.map((s) => s.losses)).toEqual(cliSteps.map((s) => s.losses));
    expect(r.summary!.evalPpl).toBe(cliSummary.evalPpl);
    expect(r.summary!.evalTokens).toBe(cliSummary.evalTokens);
    // one split: the studio's description is the CLI's
    expect(info.eval.heldOutDocuments).toBe(cliSummary.data.heldOutDocuments);
    expect(info.eval.heldOutDocuments).toBe(autoHoldout(info.documents));
    // the studio's student files are the folder quench eval loads, byte for byte
    expect(Buffer.from(r.studentFiles!['model.safetensors']).equals(readFileSync(join(out, 'student/model.safetensors')))).toBe(true);
  });
});

