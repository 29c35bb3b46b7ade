// A byte-level tokenizer for models the studio creates itself: 0 <unk>, 1 <s>, 2 </s>, then the
// 256 byte values (id = byte + 3, the same ids llama2.c gives its byte-fallback tokens).
import { decodeTokenText, type EncodeOptions, type Tokenizer } from './tokenizer';

export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 259;
  readonly bosId = 1;
  readonly eosId = 2;
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out = opts.bos ?? true ? [1] : [];
    for (const b of new TextEncoder().encode(text)) out.push(b + 3);
    if (opts.eos) out.push(2);
    return out;
  }
  tokenBytes(_prev: number, id: number): Uint8Array {
    return id >= 3 && id < 259 ? Uint8Array.of(id - 3) : new Uint8Array(0);
  }
  decodeToken(prev: number, id: number): string {
    return decodeTokenText(this, prev, id);
  }
  decode(ids: number[]): string {
    return new TextDecoder().decode(Uint8Array.from(ids.filter((i) => i >= 3 && i < 259).map((i) => i - 3)));
  }
}
