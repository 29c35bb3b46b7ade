// Tokenizers for LLaMA-family models.
// - Llama2cTokenizer: llama2.c's tokenizer.bin with run.c's exact encode(): a dummy prefix space
//   when the text is non-empty, UTF-8 code point lookup with byte fallback (id = byte + 3), then
//   greedy merges of the best-scoring adjacent pair. BOS = 1, EOS = 2.
//   This hand-written encoder stays for tokenizer.bin: @huggingface/tokenizers on the converted
//   tokenizer.json gives the same ids on all of TinyStories (hf-tokenizer.test.ts), but reads a
//   literal '▁' as a space where run.c byte-falls-back, and is 2-8x slower here.
// - Every HF tokenizer.json (byte-level BPE, SentencePiece BPE, Unigram) goes through
//   @huggingface/tokenizers in hf-tokenizer.ts; the byte tokenizer the studio uses for models it
//   creates is in byte-tokenizer.ts.
// Ids are numbers; decode() skips a leading BOS and strips the dummy-prefix space after it.
import { LIMITS } from './validate';

export interface EncodeOptions {
  bos?: boolean;
  eos?: boolean;
  /** counts the merge work (tokenizers with a hand-written BPE: Llama2cTokenizer) */
  work?: BpeWork;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string, opts?: EncodeOptions): number[];
  /** Text of a token sequence (a leading BOS is skipped, and the space after it stripped). */
  decode(ids: number[]): string;
  /** The bytes one token contributes after `prev` (-1 at the start of a sequence): byte-fallback
   *  tokens give one raw byte, specials none. Join and UTF-8 decode them (see StreamDecoder). */
  tokenBytes(prev: number, id: number): Uint8Array;
  /** tokenBytes as text. A byte-fallback token is only part of a UTF-8 character and decodes to
   *  U+FFFD on its own: stream through StreamDecoder to print multi-byte characters whole. */
  decodeToken(prev: number, id: number): string;
}

/** Streaming detokenizer: push ids as they are generated, get the text that is complete so far
 *  (UTF-8 sequences split across byte-fallback tokens are held back until whole). */
export class StreamDecoder {
  private prev = -1;
  private readonly dec = new TextDecoder();
  constructor(private readonly tok: Tokenizer) {}
  push(id: number): string {
    const prev = this.prev;
    this.prev = id;
    if (prev === -1 && id === this.tok.bosId) return '';
    return this.dec.decode(this.tok.tokenBytes(prev, id), { stream: true });
  }
  /** Whatever is still held back (an incomplete UTF-8 sequence becomes U+FFFD). */
  flush(): string {
    return this.dec.decode();
  }
}

/** Shared decodeToken: a lone token's bytes as text. */
export function decodeTokenText(tok: Tokenizer, prev: number, id: number): string {
  return new TextDecoder().decode(tok.tokenBytes(prev, id));
}

/** bpeMerge's operation count (pair lookups, heap pops and sift steps): how a test checks that a
 *  megabyte of text takes O(n log n) work without timing anything. */
export interface BpeWork {
  steps: number;
}

/**
 * Greedy BPE over a list of symbol ids, O(n log n) with a heap and a linked list (the quadratic
 * scan of llama2.c's run.c gives the same result but hangs on a megabyte of text). `pair(a, b)`
 * returns the merged id and its priority (lower merges first) or undefined; among equal
 * priorities the leftmost pair merges first. That is run.c's rule (best score, first found), and
 * HF tokenizers' Word::merge_all (lowest rank, then lowest position).
 */
export function bpeMerge(ids: number[], pair: (a: number, b: number) => { id: number; priority: number } | undefined, work?: BpeWork): number[] {
  const n = ids.length;
  if (n < 2) return ids.slice();
  const id = Int32Array.from(ids);
  const next = new Int32Array(n), prev = new Int32Array(n);
  const alive = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // Entries in parallel typed arrays (at most n-1 initial pairs + 2 per merge < 3n); the heap
  // holds entry indices ordered by (priority, left node).
  const cap = 3 * n;
  const ePri = new Float64Array(cap), eL = new Int32Array(cap), eA = new Int32Array(cap), eB = new Int32Array(cap), eM = new Int32Array(cap);
  const heap = new Int32Array(cap);
  let ne = 0, hn = 0;
  const less = (x: number, y: number) => ePri[x] < ePri[y] || (ePri[x] === ePri[y] && eL[x] < eL[y]);
  const push = (pri: number, l: number, a: number, b: number, m: number) => {
    const e = ne++;
    ePri[e] = pri;
    eL[e] = l;
    eA[e] = a;
    eB[e] = b;
    eM[e] = m;
    let i = hn++;
    while (i > 0) {
      if (work) work.steps++;
      const p = (i - 1) >> 1;
      if (!less(e, heap[p])) break;
      heap[i] = heap[p];
      i = p;
    }
    heap[i] = e;
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap[--hn];
    let i = 0;
    for (;;) {
      if (work) work.steps++;
      const l = 2 * i + 1;
      if (l >= hn) break;
      const c = l + 1 < hn && less(heap[l + 1], heap[l]) ? l + 1 : l;
      if (!less(heap[c], last)) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = last;
    return top;
  };
  const consider = (l: number) => {
    if (l < 0) return;
    const r = next[l];
    if (r < 0) return;
    if (work) work.steps++;
    const m = pair(id[l], id[r]);
    if (m) push(m.priority, l, id[l], id[r], m.id);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);
  while (hn > 0) {
    if (work) work.steps++;
    const e = pop();
    const l = eL[e];
    const r = next[l];
    if (!alive[l] || r < 0 || id[l] !== eA[e] || id[r] !== eB[e]) continue; // stale
    id[l] = eM[e];
    alive[r] = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[next[r]] = l;
    consider(prev[l]);
    consider(l);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]) out.push(id[i]);
  return out;
}

const utf8 = new TextEncoder();

/** Parse "<0xAB>" byte-fallback pieces. */
export function byteOfPiece(piece: string): number | null {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  return m ? parseInt(m[1], 16) : null;
}

/** Streaming-safe decoding of token ids through their bytes. */
export function decodeIds(tok: Tokenizer, ids: number[]): string {
  const parts: Uint8Array[] = [];
  let prev = -1;
  for (const id of ids) {
    if (id === tok.bosId && prev === -1) {
      prev = id;
      continue;
    }
    parts.push(tok.tokenBytes(prev, id));
    prev = id;
  }
  const n = parts.reduce((s, p) => s + p.length, 0);
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return new TextDecoder().decode(all);
}

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  readonly vocab: string[];
  readonly scores: Float32Array;
  readonly maxTokenLength: number;
  private readonly lookup = new Map<string, number>();
  private readonly pieceBytes: Uint8Array[];
  private readonly pairCache = new Map<number, { id: number; priority: number } | null>();

  constructor(bytes: Uint8Array, readonly name = 'tokenizer.bin', vocabSize?: number) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4) throw new Error(`${name}: too short for a llama2.c tokenizer`);
    this.maxTokenLength = dv.getInt32(0, true);
    if (!(this.maxTokenLength >= 0 && this.maxTokenLength <= LIMITS.pieceBytes)) throw new Error(`${name}: max_token_length ${this.maxTokenLength} is outside 0..${LIMITS.pieceBytes} (not a llama2.c tokenizer.bin, or corrupt)`);
    if (vocabSize !== undefined && !(Number.isInteger(vocabSize) && vocabSize > 0 && vocabSize <= LIMITS.vocabSize)) throw new Error(`${name}: the model's vocabulary size ${vocabSize} is not a positive integer up to ${LIMITS.vocabSize}`);
    const vocab: string[] = [];
    const scores: number[] = [];
    const raw: Uint8Array[] = [];
    let off = 4;
    const dec = new TextDecoder();
    while (off < bytes.byteLength && (vocabSize === undefined || vocab.length < vocabSize)) {
      if (off + 8 > bytes.byteLength) throw new Error(`${name}: truncated at token ${vocab.length}`);
      const score = dv.getFloat32(off, true);
      if (!Number.isFinite(score)) throw new Error(`${name}: token ${vocab.length} has a non-finite score (${score})`);
      scores.push(score);
      const len = dv.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || off + len > bytes.byteLength) throw new Error(`${name}: token ${vocab.length} has length ${len} past the end of the file`);
      if (len > this.maxTokenLength) throw new Error(`${name}: token ${vocab.length} has length ${len}, longer than the file's max_token_length ${this.maxTokenLength}`);
      if (vocab.length >= LIMITS.vocabSize) throw new Error(`${name}: more than ${LIMITS.vocabSize} tokens`);
      const b = bytes.slice(off, off + len);
      raw.push(b);
      vocab.push(dec.decode(b));
      off += len;
    }
    if (vocabSize !== undefined && vocab.length < vocabSize) throw new Error(`${name}: has ${vocab.length} tokens, the model needs ${vocabSize}`);
    this.vocab = vocab;
    this.scores = Float32Array.from(scores);
    this.pieceBytes = raw;
    vocab.forEach((v, i) => {
      if (!this.lookup.has(v)) this.lookup.set(v, i);
    });
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    // As run.c: BOS and the dummy prefix are in the list the merges run over (BOS never merges:
    // no piece starts with "\n<s>\n").
    const work: number[] = [];
    if (opts.bos ?? true) work.push(this.bosId);
    if (text.length > 0) {
      const sp = this.lookup.get(' ');
      if (sp !== undefined) work.push(sp);
    }
    for (const ch of text) {
      // one Unicode code point at a time (llama2.c groups UTF-8 continuation bytes the same way)
      const id = this.lookup.get(ch);
      if (id !== undefined) work.push(id);
      else for (const b of utf8.encode(ch)) work.push(b + 3);
    }
    // Greedy merges: repeatedly merge the adjacent pair whose merged string scores best (the
    // leftmost among equals), as run.c does.
    const out = bpeMerge(work, (a, b) => {
      const key = a * this.vocab.length + b;
      let m = this.pairCache.get(key);
      if (m === undefined) {
        const id = this.lookup.get(this.vocab[a] + this.vocab[b]);
        m = id === undefined ? null : { id, priority: -this.scores[id] };
        this.pairCache.set(key, m);
      }
      return m ?? undefined;
    }, opts.work);
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  tokenBytes(prev: number, id: number): Uint8Array {
    const piece = this.vocab[id];
    if (piece === undefined) throw new Error(`${this.name}: token id ${id} is outside the vocabulary (${this.vocab.length})`);
    const b = byteOfPiece(piece);
    if (b !== null) return Uint8Array.of(b);
    const raw = this.pieceBytes[id];
    // llama2.c: after BOS, a leading space of the piece is stripped
    if (prev === this.bosId && raw[0] === 0x20) return raw.subarray(1);
    return raw;
  }

  decode(ids: number[]): string {
    return decodeIds(this, ids);
  }

  decodeToken(prev: number, id: number): string {
    return decodeTokenText(this, prev, id);
  }
}
