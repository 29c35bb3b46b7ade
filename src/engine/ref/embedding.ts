// float64 reference for shaders/embedding.wgsl. Ids outside [0, V) give a zero row and no gradient.
export function embeddingForwardRef(tokens: ArrayLike<number>, table: ArrayLike<number>, C: number, V = Math.floor(table.length / C)): Float64Array {
  const out = new Float64Array(tokens.length * C);
  for (let t = 0; t < tokens.length; t++) {
    if (!(tokens[t] >= 0 && tokens[t] < V)) continue;
    for (let c = 0; c < C; c++) out[t * C + c] = table[tokens[t] * C + c];
  }
  return out;
}
/** dtable contribution (the kernel adds it) */
export function embeddingBackwardRef(dout: ArrayLike<number>, tokens: ArrayLike<number>, V: number, C: number): Float64Array {
  const d = new Float64Array(V * C);
  for (let t = 0; t < tokens.length; t++) {
    if (!(tokens[t] >= 0 && tokens[t] < V)) continue;
    for (let c = 0; c < C; c++) d[tokens[t] * C + c] += dout[t * C + c];
  }
  return d;
}
/** shaders/columns.wgsl: dst[r, dstCol + c] = src[r, srcCol + c] for r < rows, c < cols (row strides given) */
export function copyColumnsRef(dst: Float64Array, src: ArrayLike<number>, rows: number, cols: number, srcStride: number, srcCol: number, dstStride: number, dstCol: number): Float64Array {
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[r * dstStride + dstCol + c] = src[r * srcStride + srcCol + c];
  return dst;
}
