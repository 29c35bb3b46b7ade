// Tokenizers for LLaMA-family models.
// - Llama2cTokenizer: llama2.c's tokenizer.bin with run.c's exact encode(): a dummy prefix space
//   when the text is non-empty, UTF-8 code point lookup with byte fallback (id = byte + 3), then
//   greedy merges of the best-scoring adjacent pair. BOS = 1, EOS = 2.
// - The HF tokenizer.json (SentencePiece BPE) reader is in hf-tokenizer.ts.

export interface EncodeOptions {
  bos?: boolean;
  eos?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string, opts?: EncodeOptions): number[];
  /** Text of a token sequence (a leading BOS is skipped, and the space after it stripped). */
  decode(ids: number[]): string;
  /** The bytes one token contributes after `prev` (for streaming; join and UTF-8 decode). */
  tokenBytes(prev: number, id: number): Uint8Array;
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

  constructor(bytes: Uint8Array, readonly name = 'tokenizer.bin', vocabSize?: number) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4) throw new Error(`${name}: too short for a llama2.c tokenizer`);
    this.maxTokenLength = dv.getInt32(0, true);
    const vocab: string[] = [];
    const scores: number[] = [];
    const raw: Uint8Array[] = [];
    let off = 4;
    const dec = new TextDecoder();
    while (off < bytes.byteLength && (vocabSize === undefined || vocab.length < vocabSize)) {
      if (off + 8 > bytes.byteLength) throw new Error(`${name}: truncated at token ${vocab.length}`);
      scores.push(dv.getFloat32(off, true));
      const len = dv.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || off + len > bytes.byteLength) throw new Error(`${name}: token ${vocab.length} has length ${len} past the end of the file`);
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
    // As run.c: BOS and the dummy prefix are in the list the merges run over.
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
    // Greedy merges: repeatedly merge the adjacent pair whose merged string scores best.
    for (;;) {
      let best = -1e10, bestId = -1, bestIdx = -1;
      for (let i = 0; i + 1 < work.length; i++) {
        const id = this.lookup.get(this.vocab[work[i]] + this.vocab[work[i + 1]]);
        if (id !== undefined && this.scores[id] > best) {
          best = this.scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) break;
      work.splice(bestIdx, 2, bestId);
    }
    if (opts.eos) work.push(this.eosId);
    return work;
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
}
