// Hugging Face tokenizer.json for LLaMA-style SentencePiece BPE: model.type "BPE" with merges and
// byte_fallback, the '▁' space marker (normalizer Prepend('▁') + Replace(' ', '▁'), or a Metaspace
// pre-tokenizer), decoder Replace('▁', ' ') + ByteFallback + Fuse + Strip(1 leading space).
// Also: a converter from llama2.c's tokenizer.bin (pieces + scores) to such a tokenizer.json, with
// merges ranked by the merged piece's score as HF's LlamaConverter does.
import { byteOfPiece, decodeIds, type EncodeOptions, type Tokenizer } from './tokenizer';

const SP = '\u2581'; // ▁
const SPECIALS = ['<unk>', '<s>', '</s>'];
const utf8 = new TextEncoder();

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; unk_token?: string | null };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  decoder?: unknown;
}

export class HfBpeTokenizer implements Tokenizer {
  readonly vocab: string[];
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  private readonly ids = new Map<string, number>();
  private readonly ranks = new Map<string, number>(); // "a b" -> rank
  private readonly byteIds: number[] = new Array(256).fill(-1);
  private readonly special = new Set<number>();
  private readonly addPrefixSpace: boolean;

  constructor(json: TokenizerJson, readonly name = 'tokenizer.json') {
    const m = json.model;
    if (!m || m.type !== 'BPE' || !m.vocab) throw new Error(`${name}: only BPE tokenizers (LLaMA SentencePiece style) are supported; model.type is ${JSON.stringify(m?.type)}`);
    const size = Math.max(...Object.values(m.vocab), ...(json.added_tokens ?? []).map((t) => t.id)) + 1;
    this.vocab = new Array(size).fill('');
    for (const [piece, id] of Object.entries(m.vocab)) {
      this.vocab[id] = piece;
      this.ids.set(piece, id);
      const b = byteOfPiece(piece);
      if (b !== null) this.byteIds[b] = id;
    }
    for (const t of json.added_tokens ?? []) {
      this.vocab[t.id] = t.content;
      if (!this.ids.has(t.content)) this.ids.set(t.content, t.id);
      if (t.special) this.special.add(t.id);
    }
    (m.merges ?? []).forEach((mg, rank) => {
      const key = Array.isArray(mg) ? `${mg[0]} ${mg[1]}` : mg;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    this.bosId = this.ids.get('<s>') ?? 1;
    this.eosId = this.ids.get('</s>') ?? 2;
    this.unkId = this.ids.get(m.unk_token ?? '<unk>') ?? 0;
    const js = JSON.stringify([json.normalizer, json.pre_tokenizer]);
    // LLaMA-2 style: Prepend('▁') normalizer; Metaspace with prepend_scheme first/always.
    this.addPrefixSpace = /"Prepend"/.test(js) || /"prepend_scheme":"(first|always)"/.test(js) || /"add_prefix_space":true/.test(js);
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos ?? true) out.push(this.bosId);
    if (text.length > 0) {
      const norm = (this.addPrefixSpace ? SP : '') + text.replace(/ /g, SP);
      // symbols: code points, or byte-fallback pieces for those outside the vocabulary
      let syms: string[] = [];
      for (const ch of norm) {
        if (this.ids.has(ch)) syms.push(ch);
        else for (const b of utf8.encode(ch)) syms.push(this.vocab[this.byteIds[b]] ?? '<unk>');
      }
      for (;;) {
        let best = Infinity, at = -1;
        for (let i = 0; i + 1 < syms.length; i++) {
          const r = this.ranks.get(`${syms[i]} ${syms[i + 1]}`);
          if (r !== undefined && r < best) {
            best = r;
            at = i;
          }
        }
        if (at < 0) break;
        const merged = syms[at] + syms[at + 1];
        syms = [...syms.slice(0, at), merged, ...syms.slice(at + 2)];
      }
      for (const s of syms) out.push(this.ids.get(s) ?? this.unkId);
    }
    if (opts.eos) out.push(this.eosId);
    return out;
  }

  tokenBytes(prev: number, id: number): Uint8Array {
    const piece = this.vocab[id];
    if (piece === undefined) throw new Error(`${this.name}: token id ${id} is outside the vocabulary (${this.vocab.length})`);
    if (this.special.has(id)) return new Uint8Array(0);
    const b = byteOfPiece(piece);
    if (b !== null) return Uint8Array.of(b);
    let s = piece.replace(/\u2581/g, ' ');
    // Strip the prefix space of the first token (after BOS, or at the very start).
    if ((prev === this.bosId || prev === -1) && this.addPrefixSpace && s.startsWith(' ')) s = s.slice(1);
    return utf8.encode(s);
  }

  decode(ids: number[]): string {
    return decodeIds(this, ids);
  }
}

/** Build an HF LLaMA tokenizer.json from SentencePiece pieces and scores (llama2.c tokenizer.bin). */
export function tokenizerJsonFromPieces(vocab: string[], scores: ArrayLike<number>): TokenizerJson {
  const ids = new Map<string, number>();
  vocab.forEach((p, i) => {
    if (!ids.has(p)) ids.set(p, i);
  });
  const isSpecial = (i: number) => i < 3;
  const modelVocab: Record<string, number> = {};
  vocab.forEach((p, i) => {
    // llama2.c writes spaces as ' '; HF pieces use '▁'
    const piece = isSpecial(i) ? SPECIALS[i] : byteOfPiece(p) !== null ? p : p.replace(/ /g, SP);
    if (!(piece in modelVocab)) modelVocab[piece] = i;
  });
  const merges: { l: string; r: string; score: number; id: number }[] = [];
  for (const [piece, id] of Object.entries(modelVocab)) {
    if (isSpecial(id) || byteOfPiece(piece) !== null) continue;
    const cps = [...piece];
    for (let k = 1; k < cps.length; k++) {
      const l = cps.slice(0, k).join(''), r = cps.slice(k).join('');
      const li = modelVocab[l], ri = modelVocab[r];
      if (li !== undefined && ri !== undefined && !isSpecial(li) && !isSpecial(ri)) merges.push({ l, r, score: scores[id], id });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || modelVocab[a.l] - modelVocab[b.l]);
  return {
    model: { type: 'BPE', vocab: modelVocab, merges: merges.map((m) => [m.l, m.r] as [string, string]), byte_fallback: true, unk_token: '<unk>' },
    added_tokens: [
      { id: 0, content: SPECIALS[0], special: true },
      { id: 1, content: SPECIALS[1], special: true },
      { id: 2, content: SPECIALS[2], special: true },
    ],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SP }, { type: 'Replace', pattern: { String: ' ' }, content: SP }] },
    pre_tokenizer: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
  };
}

export function parseTokenizerJson(text: string, name = 'tokenizer.json'): HfBpeTokenizer {
  let json: TokenizerJson;
  try {
    json = JSON.parse(text) as TokenizerJson;
  } catch (e) {
    throw new Error(`${name}: not valid JSON (${(e as Error).message})`);
  }
  return new HfBpeTokenizer(json, name);
}
