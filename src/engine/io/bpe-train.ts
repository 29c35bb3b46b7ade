// Trains a SentencePiece-style BPE tokenizer (LLaMA layout: '▁' marks a preceding space, byte
// fallback for anything outside the learned alphabet) and writes it as an HF tokenizer.json that
// HF's tokenizers (and @huggingface/tokenizers, through HfTokenizer) read: LLaMA-2's normalizer
// (Prepend '▁', spaces to '▁'), a Metaspace pre-tokenizer that only splits before each '▁', model
// BPE with merges in rank order, byte_fallback, fuse_unk, and LLaMA-2's decoder (Replace,
// ByteFallback, Fuse, Strip) so byte tokens decode to bytes and every text round-trips.
//
// The algorithm is classic word-level BPE: count the pre-tokenized words, start each word from
// its characters (characters rarer than minCharCount fall back to byte tokens, which are never
// merged), then repeatedly merge the most frequent adjacent pair (ties: the pair whose merged
// piece sorts first, so training is deterministic). Pair counts are updated incrementally from
// an index pair -> words, so a few thousand merges over a novel take a second or two.
import type { TokenizerJson } from './hf-tokenizer';

const SP = '\u2581';
export const SPECIAL_PIECES = ['<unk>', '<s>', '</s>'] as const;
/** What a piece holds, besides '▁': S nothing, W letters/digits/apostrophes, P anything else.
 *  Merges join like with like (or a bare '▁' with anything), as SentencePiece's
 *  split_by_unicode_script does, so "him." stays "him" + "." and words are reusable. */
export function pieceClass(piece: string): 'S' | 'W' | 'P' {
  const core = piece.split(SP).join('');
  if (core.length === 0) return 'S';
  return /^[\p{L}\p{N}'’]+$/u.test(core) ? 'W' : 'P';
}
const BYTE_PIECE = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

export interface BpeTrainOptions {
  /** total vocabulary: 3 specials + 256 byte pieces + alphabet + merges */
  vocabSize: number;
  /** characters seen fewer times than this are not in the alphabet (byte fallback instead) */
  minCharCount?: number;
  /** called every few hundred merges */
  onProgress?: (merges: number, target: number) => void;
}

/** The words a Metaspace(split) pre-tokenizer makes of a text: '▁'-prefixed runs between spaces. */
export function metaspaceWords(text: string): string[] {
  if (text.length === 0) return [];
  const s = SP + text.split(' ').join(SP);
  const words: string[] = [];
  let start = 0;
  for (let i = 1; i <= s.length; i++) {
    if (i === s.length || s[i] === SP) {
      words.push(s.slice(start, i));
      start = i;
    }
  }
  return words;
}

export function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions): TokenizerJson {
  const minChar = opts.minCharCount ?? 2;
  const base = SPECIAL_PIECES.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize <= base) throw new Error(`BPE vocabSize must be an integer above ${base} (3 specials + 256 byte pieces); got ${opts.vocabSize}`);

  // word -> count
  const wordCount = new Map<string, number>();
  for (const t of texts) for (const w of metaspaceWords(t)) wordCount.set(w, (wordCount.get(w) ?? 0) + 1);
  if (wordCount.size === 0) throw new Error('BPE training text is empty');

  // alphabet: characters at least minChar times, most frequent first (ties by code point)
  const charCount = new Map<string, number>();
  for (const [w, c] of wordCount) for (const ch of w) charCount.set(ch, (charCount.get(ch) ?? 0) + c);
  const pieces: string[] = [...SPECIAL_PIECES];
  for (let b = 0; b < 256; b++) pieces.push(BYTE_PIECE(b));
  const alphabet = [...charCount.entries()].filter(([, c]) => c >= minChar).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([ch]) => ch);
  const keep = alphabet.slice(0, Math.max(0, opts.vocabSize - base));
  const pieceId = new Map<string, number>(pieces.map((p, i) => [p, i]));
  for (const ch of keep) {
    pieceId.set(ch, pieces.length);
    pieces.push(ch);
  }
  const utf8 = new TextEncoder();

  // words as symbol arrays; byte-fallback symbols are marked mergeable = false by id < base
  const words: number[][] = [];
  const counts: number[] = [];
  for (const [w, c] of wordCount) {
    const syms: number[] = [];
    for (const ch of w) {
      const id = pieceId.get(ch);
      if (id !== undefined) syms.push(id);
      else for (const b of utf8.encode(ch)) syms.push(SPECIAL_PIECES.length + b);
    }
    words.push(syms);
    counts.push(c);
  }

  // pair key = a * K + b with K large enough for every id we can create
  const K = opts.vocabSize + 1;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const cls: ('S' | 'W' | 'P')[] = pieces.map(pieceClass);
  const mergeable = (a: number, b: number) => a >= base && b >= base && (cls[a] === 'S' || cls[b] === 'S' || cls[a] === cls[b]);
  const addPairs = (wi: number, sign: number) => {
    const s = words[wi], c = counts[wi] * sign;
    for (let i = 0; i + 1 < s.length; i++) {
      if (!mergeable(s[i], s[i + 1])) continue;
      const key = s[i] * K + s[i + 1];
      const n = (pairCount.get(key) ?? 0) + c;
      if (n === 0) pairCount.delete(key);
      else pairCount.set(key, n);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(wi);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1);

  const merges: [string, string][] = [];
  const target = opts.vocabSize - pieces.length;
  while (pieces.length < opts.vocabSize) {
    // the most frequent pair; ties broken by the merged string, then the left piece
    let bestCount = 0;
    for (const c of pairCount.values()) if (c > bestCount) bestCount = c;
    let best = -1, bestStr = '', bestLeft = '';
    if (bestCount >= 2)
      for (const [key, c] of pairCount) {
        if (c !== bestCount) continue;
        const l = pieces[Math.floor(key / K)], str = l + pieces[key % K];
        if (best < 0 || str < bestStr || (str === bestStr && l < bestLeft)) {
          best = key;
          bestStr = str;
          bestLeft = l;
        }
      }
    if (best < 0 || bestCount < 2) break; // nothing left worth merging
    const a = Math.floor(best / K), b = best % K;
    let id = pieceId.get(bestStr);
    if (id === undefined) {
      id = pieces.length;
      pieces.push(bestStr);
      cls.push(pieceClass(bestStr));
      pieceId.set(bestStr, id);
    }
    merges.push([pieces[a], pieces[b]]);
    for (const wi of [...(pairWords.get(best) ?? [])]) {
      addPairs(wi, -1);
      const s = words[wi], out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(id);
          i++;
        } else out.push(s[i]);
      }
      words[wi] = out;
      addPairs(wi, 1);
    }
    pairCount.delete(best);
    pairWords.delete(best);
    if (opts.onProgress && merges.length % 250 === 0) opts.onProgress(merges.length, target);
  }

  const vocab: Record<string, number> = {};
  pieces.forEach((p, i) => (vocab[p] = i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_PIECES.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    // LLaMA-2's normalizer (always a '▁' in front, as metaspaceWords counts words), then words cut
    // before each '▁'; the decoder is LLaMA-2's, with ByteFallback so byte tokens decode as bytes
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SP }, { type: 'Replace', pattern: { String: ' ' }, content: SP }] },
    pre_tokenizer: { type: 'Metaspace', replacement: SP, prepend_scheme: 'never', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}
