import { describe, expect, it } from 'vitest';
import { metaspaceWords, pieceClass, trainBpe } from './bpe-train';
import { HfBpeTokenizer, parseTokenizerJson } from './hf-tokenizer';

const SP = '\u2581';

describe('BPE trainer', () => {
  it('splits text into Metaspace words', () => {
    expect(metaspaceWords('the cat  sat')).toEqual([`${SP}the`, `${SP}cat`, SP, `${SP}sat`]);
    expect(metaspaceWords('')).toEqual([]);
  });

  it('learns the most frequent pair first, as counted independently here', () => {
    const texts = ['low lower lowest', 'newer newest wider', 'low low new'];
    // independent count of adjacent character pairs over the Metaspace words
    const pairs = new Map<string, number>();
    for (const t of texts)
      for (const w of t.split(' ').map((x) => SP + x)) {
        const ch = [...w];
        for (let i = 0; i + 1 < ch.length; i++) pairs.set(ch[i] + '|' + ch[i + 1], (pairs.get(ch[i] + '|' + ch[i + 1]) ?? 0) + 1);
      }
    const max = Math.max(...pairs.values());
    const firsts = [...pairs.entries()].filter(([, c]) => c === max).map(([k]) => k.split('|').join('')).sort();
    const json = trainBpe(texts, { vocabSize: 259 + 20 + 5, minCharCount: 1 });
    const merges = json.model!.merges as [string, string][];
    expect(merges[0].join('')).toBe(firsts[0]);
    expect(merges.length).toBeGreaterThan(0);
  });

  it('writes a tokenizer.json the project loader reads, round-tripping any text through byte fallback', () => {
    const corpus = Array.from({ length: 40 }, (_, i) => `The whale swam ${i % 3 ? 'slowly' : 'swiftly'} past the ship, and the sailors watched the whale.`);
    const json = trainBpe(corpus, { vocabSize: 330 });
    const tok = parseTokenizerJson(JSON.stringify(json), 'trained.json');
    expect(tok).toBeInstanceOf(HfBpeTokenizer);
    expect(tok.vocabSize).toBeLessThanOrEqual(330);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    // frequent words become single tokens
    const ids = tok.encode('the whale', { bos: false });
    expect(ids.length).toBe(2);
    for (const s of ['The whale swam past.', 'Zebra ünïcode 🐳 text\twith tabs', 'two  inner  spaces', 'x']) {
      const enc = tok.encode(s, { bos: true });
      expect(enc[0]).toBe(1);
      expect(tok.decode(enc)).toBe(s); // (leading spaces are not kept, as in HF's Metaspace)
    }
  });

  it('never merges letters with punctuation (as SentencePiece splits by script)', () => {
    expect([pieceClass(`${SP}him`), pieceClass('.'), pieceClass(SP), pieceClass("n't")]).toEqual(['W', 'P', 'S', 'W']);
    const json = trainBpe(Array.from({ length: 30 }, () => 'him. him, him.'), { vocabSize: 300, minCharCount: 1 });
    const pieces = Object.keys(json.model!.vocab!);
    expect(pieces).toContain(`${SP}him`);
    expect(pieces.some((p) => /[a-z][.,]|[.,][a-z]/.test(p))).toBe(false);
  });

  it('is deterministic and rejects a vocabulary too small or empty text', () => {
    const corpus = ['a b c ab abc bca cab', 'abc abc cab'];
    expect(JSON.stringify(trainBpe(corpus, { vocabSize: 270, minCharCount: 1 }))).toBe(JSON.stringify(trainBpe(corpus, { vocabSize: 270, minCharCount: 1 })));
    expect(() => trainBpe(corpus, { vocabSize: 100 })).toThrow(/vocabSize/);
    expect(() => trainBpe([''], { vocabSize: 300 })).toThrow(/empty/);
  });
});
