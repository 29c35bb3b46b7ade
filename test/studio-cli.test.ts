// The studio and the CLI stand on one workflow layer: the same spec through `quench distill` and
// through the worker's engine gives the same run, and their defaults are one. (A test outside
// src/engine: it imports the CLI, the worker and the UI store, which the engine itself may not.)
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testGpu } from '../src/engine/testing';
import { run as distillCli, specFromArgs } from '../src/cli/distill';
import { StudioEngine } from '../src/worker/studio-engine';
import { DEFAULT_SETTINGS } from '../src/ui/store';
import { makeRunSpec, resolveRunSpec, DEFAULT_RUN_SPEC } from '../src/engine/workflow/spec';
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

