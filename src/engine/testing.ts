// Helpers for engine tests: seeded randomness, tolerance checks that print the first mismatches,
// central finite differences, and one shared Node GPU per test file.
import type { Gpu } from './gpu/runtime';

/** mulberry32: small, fast, seedable. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples via Box-Muller. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return out;
}

export function randu(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export function toF64(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>);
}

export interface Tol {
  atol: number;
  rtol: number;
}

/** llm.c-style check |got - ref| <= atol + rtol*|ref|; throws with the first mismatches and max error. */
export function expectClose(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tol): void {
  if (got.length !== ref.length) throw new Error(`${name}: length ${got.length} != reference ${ref.length}`);
  const bad: string[] = [];
  let nbad = 0;
  let maxAbs = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = got[i];
    const r = ref[i];
    const d = Math.abs(g - r);
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    if (!(d <= tol.atol + tol.rtol * Math.abs(r))) {
      nbad++;
      if (bad.length < 6) bad.push(`  [${i}] got ${g} ref ${r} (|diff| ${d.toExponential(2)})`);
    }
  }
  if (nbad > 0) throw new Error(`${name}: ${nbad}/${ref.length} outside atol=${tol.atol} rtol=${tol.rtol}; max |diff| ${maxAbs.toExponential(3)}\n${bad.join('\n')}`);
}

/** Central finite differences of a scalar function at the given indices (all when omitted). */
/** Where two outputs differ bit for bit (NaN equals NaN): "" when they are identical, else the
 *  count and the first few indices (cheap on large arrays, unlike a deep-equal diff). */
export function bitDiff(a: Float32Array, b: Float32Array): string {
  if (a.length !== b.length) return `lengths ${a.length} and ${b.length}`;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  const at: number[] = [];
  let n = 0;
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      if (at.length < 4) at.push(i);
      n++;
    }
  }
  return n ? `${n}/${a.length} differ, first at ${at.map((i) => `[${i}] ${a[i]} vs ${b[i]}`).join(', ')}` : '';
}

export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, eps = 1e-6, indices?: number[]): Float64Array {
  const g = new Float64Array(x.length);
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  for (const i of idx) {
    const old = x[i];
    x[i] = old + eps;
    const fp = f(x);
    x[i] = old - eps;
    const fm = f(x);
    x[i] = old;
    g[i] = (fp - fm) / (2 * eps);
  }
  return g;
}

/** Pick n distinct-ish indices in [0, len) deterministically, for sampled gradient checks. */
export function sampleIndices(len: number, n: number, seed: number): number[] {
  if (n >= len) return Array.from({ length: len }, (_, i) => i);
  const r = rng(seed);
  const set = new Set<number>();
  while (set.size < n) set.add(Math.floor(r() * len));
  return [...set];
}

/** Dot product of two arrays, for projection-based gradient checks: <g, v>. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

let shared: Promise<Gpu> | null = null;
/** One Dawn device per test process (vitest runs files in separate forks). */
export function testGpu(): Promise<Gpu> {
  if (!shared) shared = import('./gpu/node').then((m) => m.createNodeGpu());
  return shared;
}

/** Destroy the shared device (vitest setup file calls this after each file): Dawn crashes if the
 *  process exits with a live device. */
export async function releaseTestGpu(): Promise<void> {
  if (!shared) return;
  const g = await shared;
  shared = null;
  g.destroy();
}

/** The kernel entries the calls in `fn` dispatch, in order (which variant 'auto' ran). */
export function dispatchedEntries(gpu: Gpu, fn: () => void): string[] {
  const seen: string[] = [];
  const run = gpu.run;
  gpu.run = (spec, args) => {
    seen.push(spec.entry ?? 'main');
    run.call(gpu, spec, args);
  };
  try {
    fn();
  } finally {
    gpu.run = run;
  }
  return seen;
}
