// Vocabulary tables larger than one storage binding: the token embedding and the classifier (V, C)
// stored as consecutive chunks of whole rows, one GPU buffer each, every chunk under the binding
// limit (and maxBufferSize). A 128256×2048 fp32 embedding (Llama-3.2-1B) is 1002 MiB; lavapipe binds
// 128 MiB, so it is 8 chunks of 16384 rows (the last 13568). Small tables are one chunk, and then
// every op below is exactly the unsplit one.
//   gather:      ops/embedding.ts embeddingForward over the chunk list (one dispatch per chunk)
//   scatter-add: embeddingBackward into the gradient's chunks (link once, scatter per chunk)
//   classifier:  VocabLinear — logits (M, V) vocabulary chunk by vocabulary chunk: each chunk's
//                matmul into a (M, Vk) scratch, its columns copied into the (M, V) logits; backward:
//                each chunk's columns of d(logits) out into the scratch, dX accumulated over the
//                chunks, dW per chunk. A row of logits (V f32) always fits one binding, so the
//                losses, log-softmax, argmax and sampling see whole rows and are the unsplit ones.
//   optimizer:   one AdamW parameter per chunk (train/pretrain.ts, train/kd-student.ts).
import type { Gpu, Tensor } from '../gpu/runtime';
import { copyColumns } from '../ops/embedding';
import { matmulBackwardInput, matmulBackwardWeight, matmulForward } from '../ops/matmul';
import type { Linear } from './linear';

const forced = new WeakMap<Gpu, number>();

/** Tests: split vocabulary tables of models built on this device as if one binding held only
 *  `bytes` (null: the adapter's limits again). Only the split uses it (the same code path a real
 *  1 GB embedding takes); every other tensor is still checked against the adapter's real limit. */
export function setMaxBindingBytes(gpu: Gpu, bytes: number | null): void {
  if (bytes === null) forced.delete(gpu);
  else {
    if (!(Number.isInteger(bytes) && bytes >= 4)) throw new Error(`setMaxBindingBytes: ${bytes} is not a byte count`);
    forced.set(gpu, bytes);
  }
}

/** The bytes one vocabulary chunk may take on this device: min(maxStorageBufferBindingSize,
 *  maxBufferSize), or the forced limit of setMaxBindingBytes when smaller. */
export function maxBindingBytes(gpu: Gpu): number {
  const l = gpu.device.limits;
  const real = Math.min(l.maxStorageBufferBindingSize, l.maxBufferSize);
  return Math.min(real, forced.get(gpu) ?? real);
}

/** Rows per chunk of a (V, C) f32 table under `bindingBytes`: all V when it fits, else as many
 *  whole rows as fit, rounded down to a multiple of 64 (the matmuls' row blocks stay whole). */
export function vocabChunkRows(V: number, C: number, bindingBytes: number): number {
  if (4 * V * C <= bindingBytes) return V;
  let r = Math.floor(bindingBytes / (4 * C));
  if (r < 1) throw new Error(`one row of ${C} f32 values (${4 * C} bytes) is more than one binding (${bindingBytes} bytes)`);
  if (r >= 128) r -= r % 64;
  return r;
}

/** A (V, C) f32 table as chunks of consecutive rows. */
export class VocabTable {
  readonly chunks: Tensor[]; // (rows_k, C) f32 each, in vocabulary order
  readonly starts: number[]; // first vocabulary row of each chunk
  readonly rows: number[];
  readonly label: string;
  /** `label` names a one-chunk table; chunk k of a split one is `${label}.${k}`. `chunkRows`:
   *  rows per chunk (default: what one binding of this device holds, vocabChunkRows). */
  constructor(gpu: Gpu, label: string, readonly V: number, readonly C: number, data?: Float32Array, readonly chunkRows = vocabChunkRows(V, C, maxBindingBytes(gpu))) {
    if (data && data.length !== V * C) throw new Error(`${label}: ${data.length} values for a ${V}×${C} table`);
    this.label = label;
    this.starts = [];
    this.rows = [];
    for (let v0 = 0; v0 < V; v0 += chunkRows) this.starts.push(v0), this.rows.push(Math.min(chunkRows, V - v0));
    const one = this.starts.length === 1;
    this.chunks = this.starts.map((v0, k) => gpu.tensor(one ? label : `${label}.${k}`, [this.rows[k], C], 'f32', data?.subarray(v0 * C, (v0 + this.rows[k]) * C)));
  }
  /** a zeroed table of the same split (a gradient, optimizer moments) */
  like(gpu: Gpu, label: string): VocabTable {
    return new VocabTable(gpu, label, this.V, this.C, undefined, this.chunkRows);
  }
  get bytes(): number {
    return this.chunks.reduce((s, t) => s + t.bytes, 0);
  }
  /** the whole table, read back (V·C f32) */
  async read(gpu: Gpu): Promise<Float32Array> {
    const out = new Float32Array(this.V * this.C);
    for (let k = 0; k < this.chunks.length; k++) out.set(await gpu.readF32(this.chunks[k]), this.starts[k] * this.C);
    return out;
  }
  free(gpu: Gpu): void {
    for (const t of this.chunks) gpu.free(t);
  }
}

/** The classifier logits (M, V) = x (M, C) · Wᵀ over a chunked W (V, C), as a Linear (N = V, K = C):
 *  the model code calls it as any projection. `grad` is null: the gradient is `gradTable` (chunked). */
export class VocabLinear implements Linear {
  readonly grad = null;
  readonly N: number;
  readonly K: number;
  private scratch: Tensor | null = null; // (M, max rows of a chunk) one chunk's logits or d(logits)
  constructor(
    private readonly gpu: Gpu,
    readonly w: VocabTable,
    /** dW, chunked like w (accumulates); null when frozen */
    readonly gradTable: VocabTable | null,
    private readonly ownsWeight: boolean,
    private readonly ownsGrad: boolean,
  ) {
    this.N = w.V;
    this.K = w.C;
  }
  get bytes(): number {
    return this.w.bytes;
  }
  get split(): boolean {
    return this.w.chunks.length > 1;
  }
  private tmp(M: number): Tensor {
    const n = M * Math.max(...this.w.rows);
    if (!this.scratch || this.scratch.numel < n) {
      this.gpu.free(this.scratch);
      this.scratch = this.gpu.tensor(`chunk_logits.${this.w.label}`, [n]); // scratch, not weights (memory reports by label)
    }
    return this.scratch;
  }
  /** the columns of chunk k of d(logits) (M, V) into the scratch (M, rows_k) */
  private gather(dout: Tensor, M: number, k: number): Tensor {
    const s = this.tmp(M), rows = this.w.rows[k];
    copyColumns(this.gpu, s, dout, { rows: M, cols: rows, srcStride: this.N, srcCol: this.w.starts[k], dstStride: rows, dstCol: 0 });
    return s;
  }
  forward(out: Tensor, x: Tensor, M: number): void {
    const { gpu, K, N } = this;
    if (!this.split) return matmulForward(gpu, out, x, this.w.chunks[0], M, K, N);
    if (out.numel < M * N) throw new Error(`VocabLinear ${this.w.label}: out "${out.label}" has ${out.numel} elements, needs ${M * N}`);
    const s = this.tmp(M);
    this.w.chunks.forEach((w, k) => {
      const rows = this.w.rows[k];
      matmulForward(gpu, s, x, w, M, K, rows);
      copyColumns(gpu, out, s, { rows: M, cols: rows, srcStride: rows, srcCol: 0, dstStride: N, dstCol: this.w.starts[k] });
    });
  }
  backwardInput(dx: Tensor, dout: Tensor, M: number, accumulate: boolean): void {
    const { gpu, K, N } = this;
    if (!this.split) return matmulBackwardInput(gpu, dx, dout, this.w.chunks[0], M, K, N, { accumulate });
    this.w.chunks.forEach((w, k) => matmulBackwardInput(gpu, dx, this.gather(dout, M, k), w, M, K, this.w.rows[k], { accumulate: accumulate || k > 0 }));
  }
  backwardWeight(dout: Tensor, x: Tensor, M: number): void {
    const g = this.gradTable;
    if (!g) return;
    const { gpu, K, N } = this;
    if (!this.split) return matmulBackwardWeight(gpu, g.chunks[0], dout, x, M, K, N);
    g.chunks.forEach((dw, k) => matmulBackwardWeight(gpu, dw, this.gather(dout, M, k), x, M, K, this.w.rows[k]));
  }
  free(gpu: Gpu): void {
    if (this.ownsWeight) this.w.free(gpu);
    if (this.ownsGrad) this.gradTable?.free(gpu);
    gpu.free(this.scratch);
    this.scratch = null;
  }
}
