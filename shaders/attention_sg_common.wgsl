// The subgroup flash kernels' overrides, uniform, bindings and vec4 row loads, shared by
// shaders/attention_sg.wgsl (flash_forward_sg, the backward) and shaders/attention_sg4.wgsl
// (flash_forward_sg4, generated). Same Params and bindings as shaders/attention.wgsl.
enable subgroups;
override HSC: u32 = 8u;
override HS4: u32 = (HSC + 3u) / 4u;
const MAX_HS4: u32 = 32u;
// Heads larger than UNROLL_HS run their vec4 loops to the uniform head size instead of the
// constant one (as in shaders/attention.wgsl): LLVM would otherwise unroll 8 copies of every loop
// over the head and take minutes to compile at HS 64 on lavapipe.
override UNROLL_HS: u32 = 128u;
const NEG: f32 = -3.0e38;
// vec4s per head row the loops run to: the constant HS4 (unrolled) up to UNROLL_HS, else the
// uniform head size (looped)
fn headVec4s() -> u32 { return select(HS4, (p.HS + 3u) / 4u, HSC > UNROLL_HS); }

struct Params { B: u32, Tq: u32, Tk: u32, TkMax: u32, NH: u32, NKV: u32, HS: u32, pos0: u32, scale: f32, writeProbs: u32, hasExtra: u32, writeLse: u32 }
@group(0) @binding(0) var<uniform> p: Params;
// q, k, v (and dout below) are read as vec4s: lavapipe loads each lane's address in a loop, one
// load per scalar, so one vec4 load brings 4 values for the price of one. Rows of HSC % 4 != 0
// start off the vec4 grid and are taken from two vec4s (tensors are allocated in whole 16 bytes).
@group(0) @binding(1) var<storage, read> q: array<vec4f>;
@group(0) @binding(2) var<storage, read> k: array<vec4f>;
@group(0) @binding(3) var<storage, read> v: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(13) var<storage, read_write> lse: array<f32>; // (B, NH, Tq)

// Values i + 4·d4 .. + 3 of a row (those past HSC read as 0) from the 8 of the vec4s a, b that
// hold them (a = the one with value i + 4·d4).
fn row4(a: vec4f, b: vec4f, i: u32, d4: u32) -> vec4f {
  if (HSC % 4u == 0u) { return a; }
  var r: vec4f;
  switch ((i + d4 * 4u) % 4u) {
    case 0u: { r = a; }
    case 1u: { r = vec4f(a.yzw, b.x); }
    case 2u: { r = vec4f(a.zw, b.xy); }
    default: { r = vec4f(a.w, b.xyz); }
  }
  return select(vec4f(0.0), r, vec4u(d4 * 4u) + vec4u(0u, 1u, 2u, 3u) < vec4u(HSC));
}
// b's index is only read when HSC % 4 != 0 (the constant folds it away otherwise); when it falls
// past the end of the buffer, no value of it is used.
fn ld4q(i: u32, d4: u32) -> vec4f { let o = (i + d4 * 4u) / 4u; return row4(q[o], q[select(o, o + 1u, HSC % 4u != 0u)], i, d4); }
fn ld4k(i: u32, d4: u32) -> vec4f { let o = (i + d4 * 4u) / 4u; return row4(k[o], k[select(o, o + 1u, HSC % 4u != 0u)], i, d4); }
fn ld4v(i: u32, d4: u32) -> vec4f { let o = (i + d4 * 4u) / 4u; return row4(v[o], v[select(o, o + 1u, HSC % 4u != 0u)], i, d4); }
fn st4out(i: u32, d4: u32, x: vec4f) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { out[i + d4 * 4u + c] = x[c]; } }
}
fn hsum(x: vec4f) -> f32 { return (x.x + x.y) + (x.z + x.w); }

// The backward's (flash_backward_q_sg / flash_backward_kv_sg and their 32-row forms).
@group(0) @binding(6) var<storage, read> dout: array<vec4f>;
@group(0) @binding(10) var<storage, read_write> dq: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<f32>;
@group(0) @binding(12) var<storage, read_write> dv: array<f32>;
@group(0) @binding(14) var<storage, read_write> drow: array<f32>; // (B, NH, T) D_t

fn ld4dout(i: u32, d4: u32) -> vec4f { let o = (i + d4 * 4u) / 4u; return row4(dout[o], dout[select(o, o + 1u, HSC % 4u != 0u)], i, d4); }
fn ld4o(i: u32, d4: u32) -> vec4f {
  let o = i + d4 * 4u;
  if (HSC % 4u == 0u || d4 * 4u + 4u <= HSC) { return vec4f(out[o], out[o + 1u], out[o + 2u], out[o + 3u]); }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { r[c] = out[o + c]; } }
  return r;
}
