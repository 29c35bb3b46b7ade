// Zero-shot multiple-choice tasks in lm-evaluation-harness's formats. Each document becomes a
// context and a list of continuations; the gold index says which is right.
//   arc_easy / arc_challenge: "Question: {stem}\nAnswer:" + " {choice}"
//   piqa:  "Question: {goal}\nAnswer:" + " {sol1|sol2}"              (labels file, 0-based)
//   boolq: "{passage}\nQuestion: {question}?\nAnswer:" + " no" | " yes" (label true -> yes)
//   copa:  "{premise without final period} because|therefore" + " {choice, first letter lowercased}"
//   siqa:  "Q: {context} {question}\nA:" + " {answerA|B|C}"           (labels file, 1-based)

import { z } from 'zod';
import { parseWith, show } from '../io/validate';

export interface McDoc {
  context: string;
  continuations: string[];
  gold: number;
}

export const TASKS = ['arc_easy', 'arc_challenge', 'piqa', 'boolq', 'copa', 'siqa'] as const;
export type TaskName = (typeof TASKS)[number];

/** Default file names inside --data-dir (the layout of ../shared/data/evals). */
export const TASK_FILES: Record<TaskName, { docs: string; labels?: string }> = {
  arc_easy: { docs: 'arc/ARC-Easy-Test.jsonl' },
  arc_challenge: { docs: 'arc/ARC-Challenge-Test.jsonl' },
  piqa: { docs: 'piqa/valid.jsonl', labels: 'piqa/valid-labels.lst' },
  boolq: { docs: 'boolq/val.jsonl' },
  copa: { docs: 'copa/val.jsonl' },
  siqa: { docs: 'siqa/dev.jsonl', labels: 'siqa/dev-labels.lst' },
};

// Every line is checked against its task's schema (zod): a line that is not an object, a missing or
// empty field, a label out of range is an error naming the file and the line, never scored.
const text1 = z.string().min(1);
const LINE_SCHEMAS = {
  arc: z.looseObject({ question: z.looseObject({ stem: text1, choices: z.array(z.looseObject({ text: text1, label: z.string() })).min(2) }), answerKey: z.string() }),
  piqa: z.looseObject({ goal: text1, sol1: text1, sol2: text1 }),
  boolq: z.looseObject({ passage: text1, question: text1, label: z.unknown() }),
  copa: z.looseObject({ premise: text1, choice1: text1, choice2: text1, question: z.enum(['cause', 'effect']), label: z.union([z.literal(0), z.literal(1)]) }),
  siqa: z.looseObject({ context: text1, question: text1, answerA: text1, answerB: text1, answerC: text1 }),
};

/** The non-empty lines of a jsonl file, each parsed and checked: [line number, document]. */
function jsonl<T extends z.ZodType>(text: string, file: string, schema: T): [number, z.infer<T>][] {
  const out: [number, z.infer<T>][] = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (l.length === 0) return;
    const at = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch (e) {
      throw new Error(`${at}: not valid JSON (${(e as Error).message.slice(0, 80)})`);
    }
    out.push([i + 1, parseWith(schema, v, at)]);
  });
  if (out.length === 0) throw new Error(`${file}: no documents`);
  return out;
}

/** One integer label per line, in [lo, hi]; returned 0-based. */
function labelsOf(text: string | undefined, file: string, n: number, lo: number, hi: number): number[] {
  if (text === undefined) throw new Error(`${file}: this task needs its labels file`);
  const out: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const l = raw.trim();
    if (l.length === 0) return;
    const x = /^-?\d+$/.test(l) ? Number(l) : NaN;
    if (!(x >= lo && x <= hi)) throw new Error(`${file}:${i + 1}: label ${show(l)} must be an integer from ${lo} to ${hi}`);
    out.push(x - lo);
  });
  if (out.length !== n) throw new Error(`${file}: ${out.length} labels for ${n} documents`);
  return out;
}

export function parseTask(task: TaskName, docsText: string, labelsText?: string, file: string = TASK_FILES[task].docs, labelsFile: string = TASK_FILES[task].labels ?? 'labels'): McDoc[] {
  switch (task) {
    case 'arc_easy':
    case 'arc_challenge':
      return jsonl(docsText, file, LINE_SCHEMAS.arc).map(([line, d]) => {
        const q = d.question;
        const gold = q.choices.findIndex((c) => c.label === d.answerKey);
        if (gold < 0) throw new Error(`${file}:${line}: answerKey ${show(d.answerKey)} is not a choice label`);
        return { context: `Question: ${q.stem}\nAnswer:`, continuations: q.choices.map((c) => ` ${c.text}`), gold };
      });
    case 'piqa': {
      const docs = jsonl(docsText, file, LINE_SCHEMAS.piqa);
      const labels = labelsOf(labelsText, labelsFile, docs.length, 0, 1);
      return docs.map(([, d], i) => ({ context: `Question: ${d.goal}\nAnswer:`, continuations: [` ${d.sol1}`, ` ${d.sol2}`], gold: labels[i] }));
    }
    case 'boolq':
      // SuperGLUE's jsonl writes the label as a string ("true"/"false"); booleans and 0/1 too
      return jsonl(docsText, file, LINE_SCHEMAS.boolq).map(([line, d]) => {
        const l = d.label;
        const gold = l === true || l === 'true' || l === 1 ? 1 : l === false || l === 'false' || l === 0 ? 0 : -1;
        if (gold < 0) throw new Error(`${file}:${line}: label ${show(l)} is not true/false`);
        return { context: `${d.passage}\nQuestion: ${d.question}?\nAnswer:`, continuations: [' no', ' yes'], gold };
      });
    case 'copa':
      return jsonl(docsText, file, LINE_SCHEMAS.copa).map(([, d]) => {
        const connector = d.question === 'cause' ? ' because' : ' therefore';
        const premise = d.premise.trim().replace(/\.$/, '');
        const conv = (c: string) => ` ${c[0].toLowerCase()}${c.slice(1)}`;
        return { context: premise + connector, continuations: [conv(d.choice1), conv(d.choice2)], gold: d.label };
      });
    case 'siqa': {
      const docs = jsonl(docsText, file, LINE_SCHEMAS.siqa);
      const labels = labelsOf(labelsText, labelsFile, docs.length, 1, 3);
      return docs.map(([, d], i) => ({ context: `Q: ${d.context} ${d.question}\nA:`, continuations: [d.answerA, d.answerB, d.answerC].map((c) => ` ${c}`), gold: labels[i] }));
    }
  }
}
