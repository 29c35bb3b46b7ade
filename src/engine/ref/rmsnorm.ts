// float64 reference for shaders/rmsnorm.wgsl
export function rmsnormForwardRef(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, C: number, eps: number): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * C), rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += x[r * C + i] ** 2;
    const rs = 1 / Math.sqrt(ss / C + eps);
    rstd[r] = rs;
    for (let i = 0; i < C; i++) y[r * C + i] = x[r * C + i] * rs * w[i];
  }
  return { y, rstd };
}

/** Gradients of Σ y·dy: dx, dw (dw is what the kernel adds). */
export function rmsnormBackwardRef(dy: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>, rows: number, C: number, eps: number): { dx: Float64Array; dw: Float64Array } {
  const dx = new Float64Array(rows * C), dw = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += x[r * C + i] ** 2;
    const rs = 1 / Math.sqrt(ss / C + eps);
    let dot = 0;
    for (let i = 0; i < C; i++) dot += w[i] * dy[r * C + i] * x[r * C + i];
    for (let i = 0; i < C; i++) {
      dx[r * C + i] = rs * w[i] * dy[r * C + i] - (x[r * C + i] * rs ** 3 * dot) / C;
      dw[i] += dy[r * C + i] * x[r * C + i] * rs;
    }
  }
  return { dx, dw };
}
