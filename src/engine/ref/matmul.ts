// float64 references for shaders/matmul.wgsl (linear-layer matmuls, PyTorch layout W (N, K)).

/** y (M,N) = x (M,K) · wᵀ */
export function matmulForwardRef(x: ArrayLike<number>, w: ArrayLike<number>, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}

/** dx (M,K) = dy (M,N) · w (N,K) */
export function matmulBackwardInputRef(dy: ArrayLike<number>, w: ArrayLike<number>, M: number, K: number, N: number): Float64Array {
  const dx = new Float64Array(M * K);
  for (let m = 0; m < M; m++)
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dy[m * N + n] * w[n * K + k];
      dx[m * K + k] = s;
    }
  return dx;
}

/** dw (N,K) = dyᵀ (N,M) · x (M,K) (the kernel adds this to dw) */
export function matmulBackwardWeightRef(dy: ArrayLike<number>, x: ArrayLike<number>, M: number, K: number, N: number): Float64Array {
  const dw = new Float64Array(N * K);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let m = 0; m < M; m++) s += dy[m * N + n] * x[m * K + k];
      dw[n * K + k] = s;
    }
  return dw;
}
