// RoPE (HF rotate_half convention) on x (B, T, nHeads, HS) at positions pos0 + t.
// Forward rotates by +angle, backward by −angle (the transpose). Both may run in place (out === x:
// the buffer is then bound once, read_write) or out of place; both assign.
// cos/sin come from a per-(RoPE spec, HS) table computed in float64 on the CPU from the inverse
// frequencies of ropeInvFreq (src/engine/ref/rope.ts: theta and any rope_scaling, the one place
// they are defined) and cached on the GPU (see shaders/rope.wgsl for why); it grows on demand and
// lives until releaseRopeTables(gpu).
import { Params, type Gpu, type Tensor } from '../gpu/runtime';
import { ropeInvFreq, ropeKey, ropeTheta, type RopeSpec } from '../ref/rope';

export type { RopeSpec };

const WG = 64;

interface RopeTable {
  t: Tensor; // (nPos, HS/2) vec2(cos, sin) f32
  nPos: number;
}
const tables = new WeakMap<Gpu, Map<string, RopeTable>>();

/** The (cos, sin) table for positions [0, nPos), grown (to a power of two, at least 64) on demand. */
export function ropeTable(gpu: Gpu, HS: number, rope: RopeSpec, nPos: number): Tensor {
  let m = tables.get(gpu);
  if (!m) {
    m = new Map();
    tables.set(gpu, m);
  }
  const key = `${ropeKey(rope)}:${HS}`;
  const have = m.get(key);
  if (have && have.nPos >= nPos) return have.t;
  let cap = 64;
  while (cap < nPos) cap *= 2;
  const half = HS / 2;
  const inv = ropeInvFreq(HS, rope); // (HS/2) f64
  const data = new Float32Array(cap * half * 2);
  for (let pos = 0; pos < cap; pos++)
    for (let i = 0; i < half; i++) {
      const a = pos * inv[i];
      data[2 * (pos * half + i)] = Math.cos(a);
      data[2 * (pos * half + i) + 1] = Math.sin(a);
    }
  if (have) gpu.free(have.t);
  const t = gpu.tensor(`rope.table.${ropeKey(rope)}.hs${HS}`, [cap, half, 2], 'f32', data);
  m.set(key, { t, nPos: cap });
  return t;
}

/** Free the cached cos/sin tables of this GPU (they are rebuilt on the next RoPE call). */
export function releaseRopeTables(gpu: Gpu): void {
  const m = tables.get(gpu);
  if (!m) return;
  for (const r of m.values()) gpu.free(r.t);
  tables.delete(gpu);
}

/** The head size and theta every RoPE entry needs (even, positive). */
function checkRope(HS: number, spec: RopeSpec): void {
  if (HS % 2 !== 0 || HS <= 0) throw new Error(`rope: head size ${HS} must be even and positive`);
  const theta = ropeTheta(spec);
  if (!(theta > 0)) throw new Error(`rope: theta must be > 0, got ${theta}`);
}

function rope(gpu: Gpu, out: Tensor, x: Tensor, B: number, T: number, nHeads: number, HS: number, spec: RopeSpec, pos0: number, sign: number): void {
  checkRope(HS, spec);
  const n = B * T * nHeads * HS;
  if (x.numel < n || out.numel < n) throw new Error(`rope: tensors "${x.label}" (${x.numel}) / "${out.label}" (${out.numel}) smaller than B*T*nHeads*HS = ${n}`);
  if (n === 0) return;
  const cs = ropeTable(gpu, HS, spec, pos0 + T);
  const params = new Params().u32(B * T, T, nHeads, HS, pos0).f32(sign).u32(0, 0);
  const workgroups = gpu.grid(Math.ceil(n / 2 / WG));
  if (out.buffer === x.buffer) gpu.run({ shader: 'rope', entry: 'rope_inplace', constants: { WG } }, { params, bindings: { 2: out, 3: cs }, workgroups });
  else gpu.run({ shader: 'rope', entry: 'rope', constants: { WG } }, { params, bindings: { 1: x, 2: out, 3: cs }, workgroups });
}

type RopeArgs = [B: number, T: number, nHeads: number, HS: number, rope: RopeSpec, pos0: number];
function parse(a: Tensor, rest: (Tensor | RopeSpec)[]): { out: Tensor; x: Tensor; s: RopeArgs } {
  if (typeof rest[0] === 'number') return { out: a, x: a, s: rest as RopeArgs };
  return { out: a, x: rest[0] as Tensor, s: rest.slice(1) as RopeArgs };
}

/** out = RoPE(x) at positions pos0 + t (assigns). out === x rotates in place. `rope` is theta, or
 *  { theta, scaling } (rope_scaling linear / llama3).
 *  out, x: (B, T, nHeads*HS) f32. */
export function ropeForward(gpu: Gpu, out: Tensor, x: Tensor, B: number, T: number, nHeads: number, HS: number, rope: RopeSpec, pos0: number): void;
/** In-place shorthand: ropeForward(gpu, x, x, ...). */
export function ropeForward(gpu: Gpu, x: Tensor, B: number, T: number, nHeads: number, HS: number, rope: RopeSpec, pos0: number): void;
export function ropeForward(gpu: Gpu, a: Tensor, ...rest: (Tensor | RopeSpec)[]): void {
  const { out, x, s } = parse(a, rest);
  rope(gpu, out, x, ...s, 1);
}

/** dx = Rᵀ dy (rotation by −angle; activation gradient, assigns). dx === dy works in place.
 *  dx, dy: (B, T, nHeads*HS) f32. */
export function ropeBackward(gpu: Gpu, dx: Tensor, dy: Tensor, B: number, T: number, nHeads: number, HS: number, rope: RopeSpec, pos0: number): void;
/** In-place shorthand: ropeBackward(gpu, d, d, ...). */
export function ropeBackward(gpu: Gpu, d: Tensor, B: number, T: number, nHeads: number, HS: number, rope: RopeSpec, pos0: number): void;
export function ropeBackward(gpu: Gpu, a: Tensor, ...rest: (Tensor | RopeSpec)[]): void {
  const { out, x, s } = parse(a, rest);
  rope(gpu, out, x, ...s, -1);
}

/** q (B, T, NH·HS) and k (B, T, NKV·HS) rotated in place in one dispatch: the same result as
 *  ropeForward (sign +1) or ropeBackward (sign −1) on each, one launch instead of two. */
export function ropeQK(gpu: Gpu, q: Tensor, k: Tensor, B: number, T: number, NH: number, NKV: number, HS: number, spec: RopeSpec, pos0: number, sign: 1 | -1): void {
  checkRope(HS, spec);
  if (q.buffer === k.buffer) throw new Error(`ropeQK: q "${q.label}" and k "${k.label}" must be separate tensors`);
  const nq = B * T * NH * HS, nk = B * T * NKV * HS;
  if (q.numel < nq || k.numel < nk) throw new Error(`ropeQK: q "${q.label}" (${q.numel}) / k "${k.label}" (${k.numel}) smaller than B*T*heads*HS = ${nq} / ${nk}`);
  if (nq + nk === 0) return;
  const cs = ropeTable(gpu, HS, spec, pos0 + T);
  const params = new Params().u32(B * T, T, NH, HS, pos0).f32(sign).u32(NKV, 0);
  // HS % 8 == 0: 4 pairs per thread through vec4s (shaders/rope.wgsl, rope_qk_inplace4)
  const per = HS % 8 === 0 ? 8 : 2;
  gpu.run({ shader: 'rope', entry: per === 8 ? 'rope_qk_inplace4' : 'rope_qk_inplace', constants: { WG } }, { params, bindings: { 2: q, 3: cs, 4: k }, workgroups: gpu.grid(Math.ceil((nq + nk) / per / WG)) });
}
