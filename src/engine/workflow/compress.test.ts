// The compress pipeline end to end on a tiny random teacher (seconds): every row and stage model,
// the 4-bit student's bytes, resume = uninterrupted (a stop mid-KD, then resume, gives the same
// table and weights), bad input refused before any work.
import { describe, expect, it } from 'vitest';
import { randomWeights, type LlamaConfig } from '../model/config';
import { ByteTokenizer } from '../io/byte-tokenizer';
import { testGpu } from '../testing';
import { splitText } from './data';
import { makeCompressSpec, runCompress, compressCsv, compressTable, compressVerdict, type CompressHooks, type TrainStage } from './compress';
import { evaluateTask } from '../eval/multiple-choice';
import type { McDoc } from '../eval/tasks';
import type { Checkpoint } from './checkpoint';
import type { Teacher } from './run';
import { evalSequences } from './data';
import { loadHfModel } from '../io/hf';
import { bytesSource } from '../io/source';
import { LlamaModel } from '../model/llama';
import { sequenceNll, tokenLogprobsBatch } from '../model/runner';
import { perplexity } from '../eval/perplexity';

const tok = new ByteTokenizer();
const cfg: LlamaConfig = { dim: 32, hiddenDim: 48, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: tok.vocabSize, maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
const teacher: Teacher = { name: 'tiny', config: cfg, weights: randomWeights(cfg, 1, 0.3), tokenizer: tok };
const text = Array.from({ length: 12 }, (_, i) => `story ${i}: the cat sat on the mat and the dog ran ${i % 3 ? 'far' : 'home'}.`).join('\n<|endoftext|>\n');
const split = splitText(text, 'tiny.txt', { holdout: 2 });
const spec = makeCompressSpec({
  prune: { layers: 2, headsKeep: 0.5, mlpKeep: 0.5 }, calibration: { sequences: 2, seq: 16 },
  kd: { steps: 6, batch: 2, seq: 16, lr: 3e-3 }, qat: { bits: 4, group: 16, steps: 3, metricsEvery: 1 },
});

describe('quench compress pipeline', () => {
  it('prune → KD → PTQ → KD-QAT + baselines: rows, models, bytes; resume = uninterrupted', async () => {
    const gpu = await testGpu();
    const models: Record<string, Record<string, Uint8Array>> = {};
    const full = await runCompress(gpu, teacher, spec, split, { onModel: (s, f) => void (models[s] = f) });
    expect(full.status).toBe('done');
    expect(full.rows.map((r) => r.stage)).toEqual(['teacher', 'pruned', 'kd', 'ptq', 'kdqat', 'ce-scratch', 'ce-pruned']);
    expect(Object.keys(models).sort()).toEqual(['ce-pruned', 'ce-scratch', 'kd', 'kdqat', 'pruned', 'ptq']);
    const cj = JSON.parse(new TextDecoder().decode(models.kdqat['config.json']));
    // --mlp-keep 0.5 of 48 channels is 24, rounded to the nearest multiple of the group (16): 32,
    // so down's rows pack without padding
    expect(cj).toMatchObject({ num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 32, head_dim: 8 });
    expect(full.student).toMatchObject({ nLayers: 2, nHeads: 2, nKvHeads: 1, hiddenDim: 32, headDim: 8 });
    const by = Object.fromEntries(full.rows.map((r) => [r.stage, r]));
    expect(by.kdqat.bits).toBe(4);
    expect(by.kdqat.bytes).toBeLessThan(by.kd.bytes);
    expect(by.kd.params).toBeLessThan(by.teacher.params);
    for (const r of full.rows) expect(Number.isFinite(r.ppl)).toBe(true);
    expect(by.kd.trainTokens).toBe(by['ce-scratch'].trainTokens);
    expect(compressVerdict(full.rows).finalStage).toBe('kdqat');
    expect(full.importance!.layers).toHaveLength(3);
    // the embedding is packed at PTQ (8-bit default) and kept through KD-QAT: the shipped folder
    // holds those codes, its bytes are what the row says, and it loads back to the row's perplexity
    expect(full.final!.quantized.embedding?.bits).toBe(8);
    expect([by.kd.embedBits, by.ptq.embedBits, by.kdqat.embedBits]).toEqual([null, 8, 8]);
    expect(compressTable(full.rows).split('\n').find((l) => l.startsWith('| pruned + KD + PTQ |'))).toContain('| 4 | 8-bit |');
    expect(models.kdqat['model.safetensors'].byteLength).toBeGreaterThan(by.kdqat.bytes);
    expect(models.kdqat['model.safetensors'].byteLength).toBeLessThan(by.kdqat.bytes + 4096); // + the safetensors header
    const back = await loadHfModel(Object.fromEntries(Object.entries(models.kdqat).map(([k, v]) => [k, bytesSource(k, v)])));
    expect([...back.quantized!.embedding!.codes]).toEqual([...full.final!.quantized.embedding!.codes]);
    const ev = evalSequences(split.evalDocs, tok, cfg.maxSeqLen, split.description);
    const lm = LlamaModel.fromWeights(gpu, back.config, back.weights, { quantized: back.quantized });
    expect((await perplexity(ev, (ids) => sequenceNll(lm, ids))).ppl).toBeCloseTo(by.kdqat.ppl, 4);
    lm.free();
    // an fp32 embedding costs 4 bytes a value: the same pipeline without it is larger by about that
    // (this run also scores each stage on a zero-shot task, as --tasks does: real scoring of the
    // stage's own model, so the teacher and the pruned model differ)
    const docs: McDoc[] = [{ context: 'the cat sat on the', continuations: [' mat', ' dog ran'], gold: 0 }, { context: 'story 1:', continuations: [' the cat', ' far home'], gold: 0 }, { context: 'the dog ran', continuations: [' home.', ' mat and'], gold: 0 }];
    const seen: string[] = [];
    const accuracy = async (label: string, model: LlamaModel) => {
      seen.push(label);
      return { toy: await evaluateTask(docs, (t) => tok.encode(t, { bos: true }), (seqs) => tokenLogprobsBatch(model, seqs)) };
    };
    const fp = await runCompress(gpu, teacher, { ...spec, embedding: null, baselines: false, qat: { ...spec.qat, steps: 0 } }, split, { accuracy });
    expect(seen).toEqual(['the teacher', 'the pruned model', 'pruned + KD', 'pruned + KD + PTQ']);
    for (const r of fp.rows) expect(r.accuracy?.toy.n).toBe(3);
    expect(compressCsv(fp.rows).split('\n')[0]).toMatch(/,toy acc,toy acc_norm$/);
    expect(compressTable(fp.rows)).toContain(fp.rows[1].accuracy!.toy.acc.toFixed(4));
    const ptqFp = fp.rows.find((r) => r.stage === 'ptq')!;
    expect(ptqFp.bytes - by.ptq.bytes).toBeGreaterThan(cfg.vocabSize * cfg.dim * 4 * 0.6);
    expect(fp.final!.quantized.embedding).toBeUndefined();

    // stop in the middle of KD (step 4 of 6) and of KD-QAT, then resume from the checkpoints
    const saved: Partial<Record<TrainStage, Checkpoint>> = {};
    let steps = 0;
    const hooks = (stopAt: number | null): CompressHooks => ({ onCheckpoint: (s, c) => void (saved[s] = c), onStep: () => void steps++, shouldStop: () => stopAt !== null && steps >= stopAt, checkpointEvery: 2 });
    const a = await runCompress(gpu, teacher, spec, split, hooks(4));
    expect(a.status).toBe('stopped');
    expect(saved.kd!.meta.step).toBe(4);
    const b = await runCompress(gpu, teacher, spec, split, { ...hooks(8), resume: { ...saved } });
    expect(b.status).toBe('stopped'); // now inside KD-QAT
    expect(saved.kdqat).toBeDefined();
    const c = await runCompress(gpu, teacher, spec, split, { ...hooks(null), resume: { ...saved } });
    expect(c.status).toBe('done');
    expect(c.rows.map((r) => r.ppl)).toEqual(full.rows.map((r) => r.ppl));
    expect([...c.final!.quantized.packed[1].down!.codes]).toEqual([...full.final!.quantized.packed[1].down!.codes]);
  }, 120_000);

  it('bad input is refused with a clear message before any work', async () => {
    const gpu = await testGpu();
    const bad = (prune: object) => runCompress(gpu, teacher, makeCompressSpec({ prune, kd: { steps: 1 } }), split);
    await expect(bad({ headsKeep: 8 })).rejects.toThrow(/only 4 attention heads/);
    await expect(bad({ headsKeep: 3 })).rejects.toThrow(/breaks GQA/);
    await expect(bad({ dropLayers: [3] })).rejects.toThrow(/out of range; the teacher has layers 0\.\.2/);
  });
});
