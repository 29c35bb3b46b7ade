// The committed default teacher (public/models/default) against its card: held-out perplexity on
// the quick subset recomputed here, far below the unigram baseline the card states.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeDocuments, perplexity } from '../eval/perplexity';
import { loadModelFromPath } from '../io/load-node';
import { LlamaModel } from '../model/llama';
import { sequenceNll } from '../model/runner';
import { testGpu } from '../testing';
import { loadMobyDick, mobyDickDataDir } from './corpus';
import { QUICK_DOCS } from './default-model';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../public/models/default');

describe('bundled default model', () => {
  it('loads as an HF folder and matches its card: held-out perplexity, far below unigram', async () => {
    expect(existsSync(join(DIR, 'card.json')), `${DIR}/card.json`).toBe(true);
    const card = JSON.parse(readFileSync(join(DIR, 'card.json'), 'utf8'));
    const m = await loadModelFromPath(DIR);
    expect(m.format).toBe('hf');
    expect(m.tokenizer?.vocabSize).toBe(card.config.vocabSize);
    expect(card.parameters).toBeGreaterThan(1e6);
    expect(card.parameters).toBeLessThan(5e6);
    expect(m.config.nKvHeads).toBeLessThan(m.config.nHeads); // GQA
    // the card's claim, and the check itself on the quick subset
    expect(card.heldOut.ppl).toBeLessThan(card.unigram.ppl / 4);
    expect(mobyDickDataDir(), 'the corpus package (devDependency) is installed').not.toBeNull();
    const corpus = loadMobyDick();
    const tok = m.tokenizer!;
    const seqs = encodeDocuments(corpus.heldOut.slice(0, QUICK_DOCS), (s) => tok.encode(s, { bos: true }), m.config.maxSeqLen);
    const gpu = await testGpu();
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
    const r = await perplexity(seqs, (t) => sequenceNll(model, t));
    model.free();
    expect(r.tokens).toBe(card.heldOutQuick.tokens);
    expect(Math.abs(r.ppl - card.heldOutQuick.ppl) / card.heldOutQuick.ppl).toBeLessThan(1e-3);
    // the tokenizer round-trips the held-out text
    expect(tok.decode(tok.encode(corpus.heldOut[0], { bos: true }))).toBe(corpus.heldOut[0]);
  });
});
