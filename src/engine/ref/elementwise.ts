// float64 references for shaders/elementwise.wgsl
export function addRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}
export function axpyRef(out: ArrayLike<number>, alpha: number, a: ArrayLike<number>): Float64Array {
  const r = new Float64Array(out.length);
  for (let i = 0; i < out.length; i++) r[i] = out[i] + alpha * a[i];
  return r;
}
