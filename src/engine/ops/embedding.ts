// Embedding gather out (N, C) = table (V, C)[tokens (N) u32]; backward dtable += scatter-add,
// deterministic without atomics (shaders/embedding.wgsl: a per-token linked list of positions,
// then one writer per (vocab row, channel) summing in position order).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 256;

/** Host-side check of token ids before they are written to the GPU. */
export function checkTokens(tokens: ArrayLike<number>, V: number, where = 'tokens'): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`${where}: token id ${t} at position ${i} is outside the vocabulary [0, ${V})`);
  }
}

/** Validate host token ids against V, then write them into a u32 tensor (at offsetElems). */
export function writeTokens(gpu: Gpu, dst: Tensor, tokens: ArrayLike<number>, V: number, offsetElems = 0): void {
  if (dst.dtype !== 'u32') throw new Error(`writeTokens: "${dst.label}" is ${dst.dtype}, not u32`);
  checkTokens(tokens, V, `tokens for "${dst.label}"`);
  gpu.write(dst, Uint32Array.from(tokens), offsetElems);
}

function need(op: string, name: string, t: Tensor, n: number): void {
  if (t.numel < n) throw new Error(`${op}: ${name} "${t.label}" has ${t.numel} elements, needs ${n}`);
}

/** out (N, C) = table (V, C)[tokens (N) u32] (assigns); V = table.numel / C. A token id >= V
 *  (GPU-side data is not checked on the host) gives a zero row. */
export function embeddingForward(gpu: Gpu, out: Tensor, tokens: Tensor, table: Tensor, nTokens: number, C: number): void {
  const V = Math.floor(table.numel / C);
  need('embeddingForward', 'out', out, nTokens * C);
  need('embeddingForward', 'tokens', tokens, nTokens);
  gpu.run({ shader: 'embedding', entry: 'forward', constants: { WG } }, { params: new Params().u32(nTokens, V, C, 0), bindings: { 1: tokens, 2: table, 3: out }, workgroups: gpu.grid(Math.ceil((nTokens * C) / WG)) });
}

const nexts = new WeakMap<Gpu, Tensor>();
/** Reused u32 scratch for the position chains (grows; one per device). */
function nextScratch(gpu: Gpu, n: number): Tensor {
  let t = nexts.get(gpu);
  if (!t || t.numel < n) {
    gpu.free(t);
    t = gpu.tensor('embedding.scratch.next', [Math.max(n, 1024)], 'u32');
    nexts.set(gpu, t);
  }
  return t;
}

/** dtable (V, C) += Σ_{t: tokens[t] = v} dout[t] (accumulates); dout (N, C), tokens (N) u32.
 *  Ids >= V are skipped. Work: O(N²) compares + O(N·C) adds, independent of V. */
export function embeddingBackward(gpu: Gpu, dtable: Tensor, dout: Tensor, tokens: Tensor, nTokens: number, V: number, C: number): void {
  need('embeddingBackward', 'dtable', dtable, V * C);
  need('embeddingBackward', 'dout', dout, nTokens * C);
  need('embeddingBackward', 'tokens', tokens, nTokens);
  if (nTokens >= 0x7fffffff) throw new Error(`embeddingBackward: ${nTokens} tokens is too many`);
  const next = nextScratch(gpu, nTokens);
  const params = () => new Params().u32(nTokens, V, C, 0);
  gpu.run({ shader: 'embedding', entry: 'link', constants: { WG } }, { params: params(), bindings: { 1: tokens, 6: next }, workgroups: gpu.grid(Math.ceil(nTokens / WG)) });
  gpu.run({ shader: 'embedding', entry: 'scatter', constants: { WG } }, { params: params(), bindings: { 1: tokens, 4: dout, 5: dtable, 6: next }, workgroups: gpu.grid(Math.ceil((nTokens * C) / WG)) });
}
