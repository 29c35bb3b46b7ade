// Embedding gather out (N, C) = table (V, C)[tokens (N) u32]; backward dtable += scatter-add.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 256;

/** Host-side check of token ids before they are written to the GPU. */
export function checkTokens(tokens: ArrayLike<number>, V: number, where = 'tokens'): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`${where}: token id ${t} at position ${i} is outside the vocabulary [0, ${V})`);
  }
}

export function embeddingForward(gpu: Gpu, out: Tensor, tokens: Tensor, table: Tensor, nTokens: number, C: number): void {
  const V = table.numel / C;
  gpu.run({ shader: 'embedding', entry: 'forward', constants: { WG } }, { params: new Params().u32(nTokens, V, C), bindings: { 1: tokens, 2: table, 3: out }, workgroups: gpu.grid(Math.ceil((nTokens * C) / WG)) });
}

export function embeddingBackward(gpu: Gpu, dtable: Tensor, dout: Tensor, tokens: Tensor, nTokens: number, V: number, C: number): void {
  gpu.run({ shader: 'embedding', entry: 'backward', constants: { WG } }, { params: new Params().u32(nTokens, V, C), bindings: { 1: tokens, 4: dout, 5: dtable }, workgroups: gpu.grid(Math.ceil((V * C) / WG)) });
}
