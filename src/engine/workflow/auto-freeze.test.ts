// Auto-freeze: the added-error signal equals the float64 reference; successive halving keeps the
// right candidate on a constructed case; the same seed gives the same choice.
import { describe, expect, it } from 'vitest';
import { PROJECTIONS, PROJECTION_KEY, randomWeights, type LlamaConfig, type LlamaWeights } from '../model/config';
import { quantizeWeights } from '../quant/ptq';
import { dequantizeHost } from '../format/pack';
import { refForward } from '../ref/llama';
import { ByteTokenizer } from '../io/byte-tokenizer';
import { testGpu } from '../testing';
import { addedErrors, autoFreeze, cellMaskName, klRows, logSoftmaxRows, rankCandidates, successiveHalving } from './auto-freeze';
import { carveValidation, evalSequences, splitText, trainStream } from './data';
import { makeRunSpec } from './spec';
import { runTraining } from './run';

const cfg: LlamaConfig = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
const weights = randomWeights(cfg, 5, 0.5);

describe('auto-freeze', () => {
  it('the error one projection\'s quantization adds (KL to the teacher) equals the float64 reference', async () => {
    const gpu = await testGpu();
    const full = quantizeWeights(cfg, weights, { bits: 3, group: 32, sym: false, clipSearch: false });
    const B = 2, T = 12;
    const tokens = Uint32Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % cfg.vocabSize);
    const gpuKl = await addedErrors(gpu, cfg, weights, full, tokens, B, T);
    const ids = [...tokens];
    const ref = logSoftmaxRows(refForward(cfg, weights, ids, B, T).logits, cfg.vocabSize);
    for (let l = 0; l < cfg.nLayers; l++)
      PROJECTIONS.forEach((p, j) => {
        const w: LlamaWeights = { ...weights, layers: weights.layers.map((L, i) => (i === l ? { ...L, [PROJECTION_KEY[p]]: dequantizeHost(full.packed[l][p]!) } : L)) };
        const kl = klRows(ref, logSoftmaxRows(refForward(cfg, w, ids, B, T).logits, cfg.vocabSize), cfg.vocabSize);
        expect(kl).toBeGreaterThan(0);
        expect(Math.abs(gpuKl[l][j] - kl), `layer ${l} ${p}: gpu ${gpuKl[l][j]} ref ${kl}`).toBeLessThanOrEqual(1e-6 + 2e-3 * kl);
      });
  });

  it('successive halving keeps the right candidate on a constructed case', async () => {
    // c is only third-best early on but the best at the end; d and a are dropped after rung 1
    const curve: Record<string, number[]> = { none: [5.0, 4.0], b: [4.5, 3.9], c: [4.8, 3.5], d: [6.0, 3.0] };
    const calls: string[] = [];
    const r = await successiveHalving(['none', 'b', 'c', 'd'], [10, 20], async (n, step) => {
      calls.push(`${n}@${step}`);
      return curve[n][step === 10 ? 0 : 1];
    });
    expect(r.winner).toBe('c');
    expect(calls).toEqual(['none@10', 'b@10', 'c@10', 'd@10', 'b@20', 'c@20']);
    expect(r.rounds[0].results.filter((x) => x.kept).map((x) => x.name)).toEqual(['b', 'c']);
    // ties go to the earlier name (no freeze first)
    expect((await successiveHalving(['none', 'x'], [1], async () => 2)).winner).toBe('none');
    // no freeze is kept to the last rung even when behind at the first, and wins there
    const curve2: Record<string, number[]> = { none: [5.0, 4.0], b: [4.5, 4.2], c: [4.6, 4.4], d: [6, 6] };
    const r2 = await successiveHalving(['none', 'b', 'c', 'd'], [10, 20], async (n, step) => curve2[n][step === 10 ? 0 : 1], { always: ['none'], fullSteps: 80 });
    expect(r2.rounds[0].results.filter((x) => x.kept).map((x) => x.name)).toEqual(['none', 'b', 'c']);
    expect(r2.predicted.none).toBeCloseTo(4.0 - 1.0 * 2, 10); // two more doublings of steps
    expect(r2.predicted.b).toBeCloseTo(4.2 - 0.3 * 2, 10);
    expect(r2.winner).toBe('none');
  });

  it('ranks per-layer cells: projections fragile in one layer only become a cell candidate', () => {
    const L = 3;
    // every cell: gradient a fifth of the FP reference's, the same added error and code flips, and
    // training removes all the error (so freezing locks in a lot); but v in layer 1 runs 20× and k
    // in layer 2 10× above the reference
    const ratio = (proj: string, layer: number) => (proj === 'v' && layer === 1 ? 20 : proj === 'k' && layer === 2 ? 10 : 0.2);
    const cells = Array.from({ length: L }, (_, layer) => PROJECTIONS.map((proj) => ({ layer, proj, gradSq: ratio(proj, layer), fpGradSq: 1, gradRatio: ratio(proj, layer), addedKl: 0.02 }))).flat();
    const s = { cells, codeFlips: Object.fromEntries(PROJECTIONS.map((p) => [p, 0.01])), errorRemoved: [1, 1, 1], probeSteps: 5 };
    const c = rankCandidates(s, L);
    // as types: v (mean ratio 6.8) then v and k (3.5) score above 0, the rest below
    expect(c.map((x) => x.name)).toEqual(['v', 'k,v', 'cells k2 v1']);
    const cell = c[2];
    expect(cell.mask.map((l) => PROJECTIONS.filter((p) => l[p]))).toEqual([[], ['v'], ['k']]);
    expect(cell.reason).toContain('v in layer 1');
    // when every layer's v is fragile alike, the cells are the whole-type mask: no cell candidate
    const even = { ...s, cells: cells.map((x) => ({ ...x, gradRatio: x.proj === 'v' ? 20 : 0.2 })) };
    expect(rankCandidates(even, L).some((x) => x.name.startsWith('cells'))).toBe(false);
    expect(cellMaskName(cell.mask)).toBe('cells k2 v1');
  });

  it('successive halving with no freeze holding one of the kept places costs a fixed amount per rung', async () => {
    const curve: Record<string, number[]> = { none: [9, 8, 7], a: [5, 4, 3.5], b: [6, 5, 3.0], c: [7, 6, 5], d: [8, 7, 6] };
    const calls: string[] = [];
    const r = await successiveHalving(['none', 'a', 'b', 'c', 'd'], [1, 2, 4], async (n, step) => {
      calls.push(`${n}@${step}`);
      return curve[n][Math.log2(step)];
    }, { always: ['none'], alwaysInSlots: true });
    // 5 → 3 places (none + a, b) → 2 places (none + a; b is dropped though it would end best)
    expect(r.rounds.map((x) => x.results.length)).toEqual([5, 3, 2]);
    expect(calls.slice(5)).toEqual(['none@2', 'a@2', 'b@2', 'none@4', 'a@4']);
    expect(r.winner).toBe('a');
  });

  it('the same seed gives the same choice, at the stated cost', async () => {
    const gpu = await testGpu();
    const teacher = { name: 'tiny', config: cfg, weights, tokenizer: new ByteTokenizer() };
    const text = Array.from({ length: 30 }, (_, i) => `Story ${i}: a fox ran ${i % 5} miles past the ${['mill', 'farm', 'river'][i % 3]} and slept.`).join('\n<|endoftext|>\n');
    const split = splitText(text, 'tiny.txt', { holdout: 3 });
    const { train, val } = carveValidation(split.train);
    const spec = makeRunSpec({ bits: 3, group: 32, steps: 16, batch: 2, seq: 16 }, 'test');
    const go = () => autoFreeze(gpu, teacher, spec, trainStream(train, teacher.tokenizer), { probeSteps: 3, valSeqs: evalSequences(val, teacher.tokenizer, 64), evalSeqs: evalSequences(split.evalDocs, teacher.tokenizer, 64), fullTrain: trainStream(split.train, teacher.tokenizer) });
    const a = await go();
    const b = await go();
    expect(b.chosen.name).toBe(a.chosen.name);
    expect(b.rounds).toEqual(a.rounds);
    expect(b.outcome.summary!.evalPpl).toBe(a.outcome.summary!.evalPpl);
    expect(a.candidates[0].name).toBe('none');
    expect(a.candidates.length).toBeGreaterThanOrEqual(2);
    expect(a.signals.cells.length).toBe(cfg.nLayers * 7);
    expect(a.signals.cells.every((c) => c.gradSq >= 0 && c.fpGradSq > 0 && c.addedKl > 0)).toBe(true);
    // probes 2×3 steps; rungs 2 and 4 steps for the candidates (the better half and no freeze go
    // on); the chosen scheme's full 16 steps on all the training documents
    const n = a.candidates.length;
    expect(a.rounds.length).toBe(n > 4 ? 3 : 2);
    expect(a.rounds[1].results.length).toBeLessThanOrEqual(Math.ceil(n / 2) + (n > 4 ? 0 : 1));
    const rungSteps = a.rounds.reduce((acc, r, i) => acc + r.results.length * (r.toStep - (i ? a.rounds[i - 1].toStep : 0)), 0);
    expect(a.costRuns).toBeCloseTo((6 + rungSteps + 16) / 16, 10);
    // the stated bound: probes + rungs (0.875 runs; 0.75 with a fifth, cell candidate) + the full run
    expect(a.costRuns).toBeLessThanOrEqual(6 / 16 + (n > 4 ? 0.75 : 0.875) + 1 + 1e-12);
    expect(a.outcome.history.length).toBe(16);
    // that full run is exactly the chosen scheme's ordinary run
    const plain = await runTraining(gpu, teacher, a.spec, trainStream(split.train, teacher.tokenizer), evalSequences(split.evalDocs, teacher.tokenizer, 64));
    expect(plain.history.map((m) => m.loss)).toEqual(a.outcome.history.map((m) => m.loss));
    expect(plain.summary!.evalPpl).toBe(a.outcome.summary!.evalPpl);
    for (const c of a.candidates) expect(c.reason.length).toBeGreaterThan(10);
  });
});
