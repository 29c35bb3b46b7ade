// Zero-shot multiple-choice tasks in lm-evaluation-harness's formats. Each document becomes a
// context and a list of continuations; the gold index says which is right.
//   arc_easy / arc_challenge: "Question: {stem}\nAnswer:" + " {choice}"
//   piqa:  "Question: {goal}\nAnswer:" + " {sol1|sol2}"              (labels file, 0-based)
//   boolq: "{passage}\nQuestion: {question}?\nAnswer:" + " no" | " yes" (label true -> yes)
//   copa:  "{premise without final period} because|therefore" + " {choice, first letter lowercased}"
//   siqa:  "Q: {context} {question}\nA:" + " {answerA|B|C}"           (labels file, 1-based)

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

function jsonl(text: string, file: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .map((l, i) => [l.trim(), i] as const)
    .filter(([l]) => l.length > 0)
    .map(([l, i]) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
      }
    });
}

function labelsOf(text: string | undefined, file: string, n: number, offset: number): number[] {
  if (text === undefined) throw new Error(`${file}: this task needs its labels file`);
  const ls = text.split('\n').map((l) => l.trim()).filter(Boolean).map(Number);
  if (ls.length !== n) throw new Error(`${file}: ${ls.length} labels for ${n} documents`);
  return ls.map((x) => x - offset);
}

const need = (d: Record<string, unknown>, k: string, file: string, i: number): string => {
  const v = d[k];
  if (typeof v !== 'string') throw new Error(`${file}: document ${i + 1} has no string field "${k}"`);
  return v;
};

export function parseTask(task: TaskName, docsText: string, labelsText?: string, file: string = TASK_FILES[task].docs): McDoc[] {
  const docs = jsonl(docsText, file);
  switch (task) {
    case 'arc_easy':
    case 'arc_challenge':
      return docs.map((d, i) => {
        const q = d.question as { stem: string; choices: { text: string; label: string }[] };
        if (!q?.stem || !Array.isArray(q.choices)) throw new Error(`${file}: document ${i + 1} is not an ARC question`);
        const gold = q.choices.findIndex((c) => c.label === d.answerKey);
        if (gold < 0) throw new Error(`${file}: document ${i + 1}: answerKey ${String(d.answerKey)} is not a choice label`);
        return { context: `Question: ${q.stem}\nAnswer:`, continuations: q.choices.map((c) => ` ${c.text}`), gold };
      });
    case 'piqa': {
      const labels = labelsOf(labelsText, TASK_FILES.piqa.labels!, docs.length, 0);
      return docs.map((d, i) => ({ context: `Question: ${need(d, 'goal', file, i)}\nAnswer:`, continuations: [` ${need(d, 'sol1', file, i)}`, ` ${need(d, 'sol2', file, i)}`], gold: labels[i] }));
    }
    case 'boolq':
      return docs.map((d, i) => {
        // SuperGLUE's jsonl writes the label as a string ("true"/"false"); accept booleans and 0/1 too
        const l = d.label;
        const gold = l === true || l === 'true' || l === 1 ? 1 : l === false || l === 'false' || l === 0 ? 0 : -1;
        if (gold < 0) throw new Error(`${file}: document ${i + 1}: label ${JSON.stringify(l)} is not true/false`);
        return { context: `${need(d, 'passage', file, i)}\nQuestion: ${need(d, 'question', file, i)}?\nAnswer:`, continuations: [' no', ' yes'], gold };
      });
    case 'copa':
      return docs.map((d, i) => {
        const connector = { cause: ' because', effect: ' therefore' }[need(d, 'question', file, i)];
        if (!connector) throw new Error(`${file}: document ${i + 1}: question must be cause or effect`);
        const premise = need(d, 'premise', file, i).trim().replace(/\.$/, '');
        const conv = (c: string) => ` ${c[0].toLowerCase()}${c.slice(1)}`;
        return { context: premise + connector, continuations: [conv(need(d, 'choice1', file, i)), conv(need(d, 'choice2', file, i))], gold: Number(d.label) };
      });
    case 'siqa': {
      const labels = labelsOf(labelsText, TASK_FILES.siqa.labels!, docs.length, 1);
      return docs.map((d, i) => ({ context: `Q: ${need(d, 'context', file, i)} ${need(d, 'question', file, i)}\nA:`, continuations: ['answerA', 'answerB', 'answerC'].map((k) => ` ${need(d, k, file, i)}`), gold: labels[i] }));
    }
  }
}
