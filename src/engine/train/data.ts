// Training data: documents encoded with BOS and concatenated into one token stream; batches are
// random windows of T+1 tokens drawn with a seeded generator (state saved in checkpoints).
export class Rng {
  constructor(public state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export function tokenStream(docs: string[], encode: (s: string) => number[]): Uint32Array {
  const parts = docs.map((d) => encode(d));
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** B windows of T+1 tokens: inputs (B*T) and next-token targets (B*T). */
export function sampleBatch(stream: Uint32Array, B: number, T: number, rng: Rng): { inputs: Uint32Array; targets: Uint32Array } {
  if (stream.length < T + 1) throw new Error(`training data has ${stream.length} tokens, fewer than one sequence of ${T + 1}`);
  const inputs = new Uint32Array(B * T), targets = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = Math.floor(rng.next() * (stream.length - T));
    inputs.set(stream.subarray(start, start + T), b * T);
    targets.set(stream.subarray(start + 1, start + T + 1), b * T);
  }
  return { inputs, targets };
}
