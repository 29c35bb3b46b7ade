// Embedding gather out (N, C) = table (V, C)[tokens (N) u32]; backward dtable += scatter-add,
// deterministic without atomics (shaders/embedding.wgsl: a per-token linked list of positions,
// then one writer per (vocab row, channel) summing in position order). A table may be split into
// chunks of consecutive whole rows, one buffer each (a 128256×2048 fp32 embedding is 1 GB, more
// than one storage binding): pass the chunks in vocabulary order; one dispatch per chunk.
// copyColumns (shaders/columns.wgsl) moves a block of columns between row-major matrices: the
// chunked classifier's logits and their gradients (model/vocab.ts).
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

/** A table, or its chunks of consecutive rows in vocabulary order: [first row, rows] of each. */
function chunksOf(table: Tensor | readonly Tensor[], C: number): { t: Tensor; v0: number; rows: number }[] {
  const list = Array.isArray(table) ? (table as readonly Tensor[]) : [table as Tensor];
  let v0 = 0;
  return list.map((t) => {
    const rows = Math.floor(t.numel / C);
    const c = { t, v0, rows };
    v0 += rows;
    return c;
  });
}

/** out (N, C) = table (V, C)[tokens (N) u32] (assigns); V = table.numel / C (a list of chunks: the
 *  sum of their rows). A token id >= V (GPU-side data is not checked on the host) gives a zero row. */
export function embeddingForward(gpu: Gpu, out: Tensor, tokens: Tensor, table: Tensor | readonly Tensor[], nTokens: number, C: number): void {
  need('embeddingForward', 'out', out, nTokens * C);
  need('embeddingForward', 'tokens', tokens, nTokens);
  const chunks = chunksOf(table, C);
  if (chunks.length === 0) throw new Error('embeddingForward: no table');
  // C % 4 == 0: a thread per 4 channels, vec4 loads and stores (forward4)
  const v4 = C % 4 === 0;
  chunks.forEach((c, k) =>
    gpu.run({ shader: 'embedding', entry: v4 ? 'forward4' : 'forward', constants: { WG } }, { params: new Params().u32(nTokens, c.rows, C, c.v0, k === 0 ? 1 : 0), bindings: { 1: tokens, 2: c.t, 3: out }, workgroups: gpu.grid(Math.ceil((nTokens * (v4 ? C / 4 : C)) / WG)) }),
  );
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

/** dtable (V, C) += Σ_{t: tokens[t] = v} dout[t] (accumulates); dout (N, C), tokens (N) u32;
 *  dtable may be a list of chunks of rows (their rows sum to V). Ids >= V are skipped.
 *  Work: O(N²) compares + O(N·C) adds per chunk, independent of V. */
export function embeddingBackward(gpu: Gpu, dtable: Tensor | readonly Tensor[], dout: Tensor, tokens: Tensor, nTokens: number, V: number, C: number): void {
  const chunks = chunksOf(dtable, C);
  const rows = chunks.reduce((s, c) => s + c.rows, 0);
  if (rows < V) throw new Error(`embeddingBackward: dtable "${chunks[0]?.t.label}" has ${rows} rows in ${chunks.length} chunk(s), needs ${V}`);
  need('embeddingBackward', 'dout', dout, nTokens * C);
  need('embeddingBackward', 'tokens', tokens, nTokens);
  if (nTokens >= 0x7fffffff) throw new Error(`embeddingBackward: ${nTokens} tokens is too many`);
  const next = nextScratch(gpu, nTokens);
  gpu.run({ shader: 'embedding', entry: 'link', constants: { WG } }, { params: new Params().u32(nTokens, V, C, 0, 0), bindings: { 1: tokens, 6: next }, workgroups: gpu.grid(Math.ceil(nTokens / WG)) });
  for (const c of chunks) {
    const n = Math.min(c.rows, V - c.v0);
    if (n <= 0) break;
    gpu.run({ shader: 'embedding', entry: 'scatter', constants: { WG } }, { params: new Params().u32(nTokens, n, C, c.v0, 0), bindings: { 1: tokens, 4: dout, 5: c.t, 6: next }, workgroups: gpu.grid(Math.ceil((nTokens * C) / WG)) });
  }
}

/** dst[r, dstCol + c] = src[r, srcCol + c] for r < rows, c < cols (assigns); row-major matrices
 *  with row strides srcStride / dstStride (elements). */
export function copyColumns(gpu: Gpu, dst: Tensor, src: Tensor, a: { rows: number; cols: number; srcStride: number; srcCol: number; dstStride: number; dstCol: number }): void {
  if (a.rows === 0 || a.cols === 0) return;
  if (a.srcCol + a.cols > a.srcStride || a.dstCol + a.cols > a.dstStride) throw new Error(`copyColumns: columns ${a.srcCol}+${a.cols} of stride ${a.srcStride} -> ${a.dstCol}+${a.cols} of stride ${a.dstStride} do not fit a row`);
  need('copyColumns', 'src', src, (a.rows - 1) * a.srcStride + a.srcCol + a.cols);
  need('copyColumns', 'dst', dst, (a.rows - 1) * a.dstStride + a.dstCol + a.cols);
  const params = new Params().u32(a.rows, a.cols, a.srcStride, a.srcCol, a.dstStride, a.dstCol);
  gpu.run({ shader: 'columns', constants: { WG } }, { params, bindings: [src, dst], workgroups: gpu.grid(Math.ceil((a.rows * a.cols) / WG)) });
}
