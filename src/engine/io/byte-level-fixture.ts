// A synthetic byte-level BPE tokenizer.json of any size (Llama-3 / SmolLM components), for tests and
// the fuzz harness: no file to ship, and a 256k-entry vocabulary is built in seconds.
import type { TokenizerJson } from './hf-tokenizer';

/** GPT-2's bytes_to_unicode: the character standing for each byte in a byte-level vocabulary. */
export function byteChars(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i])));
  return out;
}

/**
 * A byte-level BPE tokenizer.json of N entries (Llama-3 / SmolLM style components): the 256 byte
 * characters (ids 0..255), every two-byte piece (256 + 256·a + b, merge [a, b]), then three-byte
 * pieces whose first byte runs from 'a' (65792 + 65536·(a − 'a') + 256·b + c, merge [ab, c]).
 */
export function byteLevelJson(N: number): TokenizerJson {
  const ch = byteChars();
  const vocab: Record<string, number> = {};
  const merges: [string, string][] = [];
  for (let b = 0; b < 256; b++) vocab[ch[b]] = b;
  let id = 256;
  for (let a = 0; a < 256 && id < N; a++)
    for (let b = 0; b < 256 && id < N; b++) {
      vocab[ch[a] + ch[b]] = id++;
      merges.push([ch[a], ch[b]]);
    }
  for (let a = 0x61; a < 256 && id < N; a++)
    for (let b = 0; b < 256 && id < N; b++)
      for (let c = 0; c < 256 && id < N; c++) {
        vocab[ch[a] + ch[b] + ch[c]] = id++;
        merges.push([ch[a] + ch[b], ch[c]]);
      }
  return {
    version: '1.0',
    added_tokens: [
      { id: N, content: '<|begin_of_text|>', special: true },
      { id: N + 1, content: '<|end_of_text|>', special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  } as unknown as TokenizerJson;
}
