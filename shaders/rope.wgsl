// Rotary position embedding, Hugging Face rotate_half convention, on x (B, T, NHx, HS):
// within a head, dim i pairs with i + HS/2 (i < HS/2), angle = (pos0 + t) · invFreq[i], where
// invFreq[i] = theta^(-2i/HS), rescaled per frequency by rope_scaling (linear, llama3);
//   y[i] = x[i]·cos − x[i+HS/2]·sin,   y[i+HS/2] = x[i+HS/2]·cos + x[i]·sin.
// forward rotates by +angle (sign = +1); backward applies the transpose, i.e. rotates by −angle
// (sign = −1): dx = Rᵀ dy (activation gradient: assigns).
// The angles come from a table cs (maxPos, HS/2) of vec2(cos, sin) built on the CPU in float64
// from ropeInvFreq (src/engine/ref/rope.ts; table in src/engine/ops/rope.ts), so any scaling of the
// frequencies is a host-side change and the kernel stays the same. GPU sin/cos are only specified
// on [−π, π] and pos·freq in fp32 loses ~pos·2⁻²⁴ rad, so the table is both more accurate and
// cheaper than computing them here.
// Entries:
//   rope          out-of-place: @binding(1) x (read), @binding(2) out (write), @binding(3) cs
//   rope_inplace  in place:     @binding(2) out (read_write, holds x), @binding(3) cs
//   rope_qk_inplace  q and k of one attention in one dispatch, in place: @binding(2) out (q,
//                 nHeads heads), @binding(4) out2 (k, p.nHeads2 heads), @binding(3) cs; threads
//                 past q's pairs take k's (the same rotation per element as two rope_inplace calls)
//   rope_qk_inplace4 rope_qk_inplace for HS % 8 == 0 (every real model), one thread per 4
//                 consecutive pairs through vec4 views of the same bindings: lavapipe pays per load
//                 and per thread's index arithmetic, not per value. Same float ops per element.
//                 Dispatch ceil(B·T·(NH + NKV)·HS/8 / WG).
// Dispatch: one thread per (b, t, head, i < HS/2): ceil(B·T·NHx·HS/2 / WG) workgroups, folded 2-D
// by gpu.grid(); linear id = gid.x + gid.y·nwg.x·WG.
// CPU reference: src/engine/ref/rope.ts
override WG: u32 = 64;
struct Params { BT: u32, T: u32, nHeads: u32, HS: u32, pos0: u32, sign: f32, nHeads2: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> cs: array<vec2f>;
@group(0) @binding(4) var<storage, read_write> out2: array<f32>;

struct Pair { base: u32, i: u32, half: u32, c: f32, s: f32 }

fn pair_of(idx: u32, nHeads: u32) -> Pair {
  let half = p.HS / 2u;
  let i = idx % half;
  let h = (idx / half) % nHeads;
  let bt = idx / (half * nHeads);
  let pos = p.pos0 + bt % p.T;
  let r = cs[pos * half + i];
  return Pair((bt * nHeads + h) * p.HS, i, half, r.x, p.sign * r.y);
}
fn pair(idx: u32) -> Pair { return pair_of(idx, p.nHeads); }

@compute @workgroup_size(WG)
fn rope(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.BT * p.nHeads * (p.HS / 2u)) { return; }
  let r = pair(idx);
  let a = x[r.base + r.i];
  let b = x[r.base + r.i + r.half];
  out[r.base + r.i] = a * r.c - b * r.s;
  out[r.base + r.i + r.half] = b * r.c + a * r.s;
}

@compute @workgroup_size(WG)
fn rope_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.BT * p.nHeads * (p.HS / 2u)) { return; }
  let r = pair(idx);
  let a = out[r.base + r.i];
  let b = out[r.base + r.i + r.half];
  out[r.base + r.i] = a * r.c - b * r.s;
  out[r.base + r.i + r.half] = b * r.c + a * r.s;
}

@compute @workgroup_size(WG)
fn rope_qk_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  let nq = p.BT * p.nHeads * (p.HS / 2u);
  if (idx < nq) {
    let r = pair(idx);
    let a = out[r.base + r.i];
    let b = out[r.base + r.i + r.half];
    out[r.base + r.i] = a * r.c - b * r.s;
    out[r.base + r.i + r.half] = b * r.c + a * r.s;
    return;
  }
  if (idx - nq >= p.BT * p.nHeads2 * (p.HS / 2u)) { return; }
  let r = pair_of(idx - nq, p.nHeads2);
  let a = out2[r.base + r.i];
  let b = out2[r.base + r.i + r.half];
  out2[r.base + r.i] = a * r.c - b * r.s;
  out2[r.base + r.i + r.half] = b * r.c + a * r.s;
}

@group(0) @binding(2) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(3) var<storage, read> cs4: array<vec4f>; // cs as vec4s: pairs (2j, 2j + 1)
@group(0) @binding(4) var<storage, read_write> out24: array<vec4f>;

// Pairs 4·i4 .. 4·i4 + 3 of head (bt, h): the vec4 indices of their first and second halves and
// their cos, ±sin (HS % 8 == 0: every row and half-row starts on a vec4; cs rows on two).
struct Pair4 { ia: u32, ib: u32, c: vec4f, s: vec4f }
fn pair4_of(idx: u32, nHeads: u32) -> Pair4 {
  let half = p.HS / 2u;
  let h4 = half / 4u;
  let i4 = idx % h4;
  let h = (idx / h4) % nHeads;
  let bt = idx / (h4 * nHeads);
  let pos = p.pos0 + bt % p.T;
  let t = (pos * half + 4u * i4) / 2u;
  let r0 = cs4[t];
  let r1 = cs4[t + 1u];
  let ia = ((bt * nHeads + h) * p.HS) / 4u + i4;
  return Pair4(ia, ia + h4, vec4f(r0.x, r0.z, r1.x, r1.z), p.sign * vec4f(r0.y, r0.w, r1.y, r1.w));
}

@compute @workgroup_size(WG)
fn rope_qk_inplace4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  let nq = p.BT * p.nHeads * (p.HS / 8u);
  if (idx < nq) {
    let r = pair4_of(idx, p.nHeads);
    let a = out4[r.ia];
    let b = out4[r.ib];
    out4[r.ia] = a * r.c - b * r.s;
    out4[r.ib] = b * r.c + a * r.s;
    return;
  }
  if (idx - nq >= p.BT * p.nHeads2 * (p.HS / 8u)) { return; }
  let r = pair4_of(idx - nq, p.nHeads2);
  let a = out24[r.ia];
  let b = out24[r.ib];
  out24[r.ia] = a * r.c - b * r.s;
  out24[r.ib] = b * r.c + a * r.s;
}
