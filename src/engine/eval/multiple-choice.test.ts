// Hand-made tiny tasks; expected scores computed independently with the float64 reference model.
import { describe, expect, it } from 'vitest';
import { randomWeights, tinyConfig } from '../model/config';
import { LlamaModel } from '../model/llama';
import { tokenLogprobs, tokenLogprobsBatch } from '../model/runner';
import { refForward } from '../ref/llama';
import { testGpu } from '../testing';
import { evaluateTask, oneAtATime, stderrOfMean } from './multiple-choice';
import { parseTask, type McDoc } from './tasks';

// a toy tokenizer: one token per character code (mod V), BOS = 1
const V = 64;
const encode = (s: string) => [1, ...[...s].map((c) => 2 + (c.charCodeAt(0) % (V - 2)))];

describe('multiple-choice scoring', () => {
  it('acc and acc_norm match an independent float64 computation', async () => {
    const gpu = await testGpu();
    const cfg = tinyConfig({ vocabSize: V, maxSeqLen: 64 });
    const w = randomWeights(cfg, 12, 1.5);
    const docs: McDoc[] = [
      { context: 'ab', continuations: [' cd', ' e', ' fghij'], gold: 0 },
      { context: 'xyz', continuations: [' q', ' rr'], gold: 1 },
      { context: 'hello', continuations: [' a', ' b', ' c', ' d'], gold: 2 },
      { context: 'k', continuations: [' mm', ' nnnn'], gold: 0 },
      { context: 'p q', continuations: [' s', ' tt', ' u'], gold: 2 },
    ];
    // independent expectation: sum of log-softmax from the reference model over continuation chars
    const refLogp = (tokens: number[]) => {
      const l = refForward(cfg, w, tokens, 1, tokens.length).logits;
      const out: number[] = [];
      for (let t = 0; t + 1 < tokens.length; t++) {
        const row = Array.from(l.subarray(t * V, (t + 1) * V));
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
        out.push(row[tokens[t + 1]] - lse);
      }
      return out;
    };
    const accs: number[] = [], norms: number[] = [];
    for (const d of docs) {
      const nctx = encode(d.context).length;
      const sums = d.continuations.map((c) => refLogp(encode(d.context + c)).slice(nctx - 1).reduce((a, b) => a + b, 0));
      const lens = d.continuations.map((c) => c.length);
      const best = (xs: number[]) => xs.indexOf(Math.max(...xs));
      accs.push(best(sums) === d.gold ? 1 : 0);
      norms.push(best(sums.map((s, i) => s / lens[i])) === d.gold ? 1 : 0);
    }
    const model = LlamaModel.fromWeights(gpu, cfg, w);
    // batched (all choices of a document in one forward) and one sequence at a time
    for (const fn of [(seqs: number[][]) => tokenLogprobsBatch(model, seqs), oneAtATime((t) => tokenLogprobs(model, t))]) {
      const r = await evaluateTask(docs, encode, fn);
      expect(r.n).toBe(5);
      expect(r.acc).toBeCloseTo(accs.reduce((a, b) => a + b) / 5, 12);
      expect(r.acc_norm).toBeCloseTo(norms.reduce((a, b) => a + b) / 5, 12);
      expect(r.acc_stderr).toBeCloseTo(stderrOfMean(accs), 12);
    }
    // batched log-probabilities of ragged sequences (padded, chunked) equal one-at-a-time ones
    const seqs = [encode('ab cd'), encode('x'), encode('hello world, longer'), encode('pq')];
    const batched = await tokenLogprobsBatch(model, seqs, 3);
    for (let k = 0; k < seqs.length; k++) {
      const single = await tokenLogprobs(model, seqs[k]);
      expect(batched[k].length).toBe(single.length);
      for (let i = 0; i < single.length; i++) expect(Math.abs(batched[k][i] - single[i])).toBeLessThan(1e-4);
    }
    model.free();
  });
  it('stderr of the mean: sample standard deviation / sqrt(n)', () => {
    expect(stderrOfMean([1, 0, 1, 1])).toBeCloseTo(Math.sqrt((0.75 * 0.25 * 4) / 3 / 4), 12);
  });
  it('readers build lm-eval prompts and gold labels', () => {
    const copa = parseTask('copa', '{"premise": "The man turned on the faucet.", "choice1": "The toilet filled.", "choice2": "Water flowed.", "question": "effect", "label": 1}\n');
    expect(copa[0]).toEqual({ context: 'The man turned on the faucet therefore', continuations: [' the toilet filled.', ' water flowed.'], gold: 1 });
    const boolq = parseTask('boolq', '{"question": "is it", "passage": "P.", "label": true}\n{"question": "q", "passage": "P.", "label": "true"}\n{"question": "q", "passage": "P.", "label": "false"}');
    expect(boolq[0]).toEqual({ context: 'P.\nQuestion: is it?\nAnswer:', continuations: [' no', ' yes'], gold: 1 });
    expect(boolq.map((d) => d.gold)).toEqual([1, 1, 0]); // SuperGLUE writes "true"/"false" strings
    expect(() => parseTask('boolq', '{"question": "q", "passage": "P.", "label": "maybe"}')).toThrow(/label "maybe" is not true\/false/);
    const siqa = parseTask('siqa', '{"context": "C.", "question": "Why?", "answerA": "a", "answerB": "b", "answerC": "c"}', '3\n');
    expect(siqa[0]).toEqual({ context: 'Q: C. Why?\nA:', continuations: [' a', ' b', ' c'], gold: 2 });
    const arc = parseTask('arc_easy', '{"question": {"stem": "S?", "choices": [{"text": "x", "label": "A"}, {"text": "y", "label": "B"}]}, "answerKey": "B"}');
    expect(arc[0]).toEqual({ context: 'Question: S?\nAnswer:', continuations: [' x', ' y'], gold: 1 });
    expect(() => parseTask('piqa', '{"goal": "g", "sol1": "a", "sol2": "b"}', '0\n1\n')).toThrow(/2 labels for 1 documents/);
    expect(() => parseTask('copa', '{"premise": "p", broken')).toThrow(/copa\/val\.jsonl:1: not valid JSON/);
  });
});
