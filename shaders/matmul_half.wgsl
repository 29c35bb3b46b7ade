// fp32 x times f16 weights, forward only (a frozen teacher's projections at half the bytes):
//   y (M,N) = x (M,K) · Wᵀ, W (N,K) stored as IEEE binary16, two per u32 (little end first), read
//   4 at a time as vec2u and widened with unpack2x16float (core WGSL: needs no shader-f16 feature;
//   the arithmetic is fp32, so the only difference from the fp32 kernel is W rounded to f16).
// Entries (both need K % 4 == 0; both assign, or += when p.accumulate != 0):
//   half_nt4  the register-tiled layout of matmul.wgsl's regtile_nt4 (each thread a 4x4 tile of y,
//             no workgroup memory: CPU Vulkan punishes barriers).  dispatch (ceil(N/4/WGX), ceil(M/4/WGY))
//   half_wg8  real GPUs: the 8x8 register tiles of tile8.wgsl (16x16 threads, a 128x128 block of y,
//             8-deep slabs in workgroup memory), W widened from f16 once per slab into workgroup
//             memory as f32 (each W value feeds 128 rows of x from there).  dispatch (ceil(N/128), ceil(M/128))
//             With PREFETCH (half_wg8p) each thread loads its share of the next slab into registers
//             before the current slab's FMAs (bit-identical to PREFETCH off).
//   (the f16-arithmetic twin, half_wg8h, is shaders/matmul_half_f16.wgsl: `enable f16` would make
//   this whole module need the shader-f16 feature)
// Bindings: 0 uniform Params, 1 x (M*K/4 vec4f; half_wg8 reads it as M*K f32), 2 W (N*K/4 vec2u),
// 3 y (M*N f32, read_write).
// CPU reference: src/engine/ref/matmul.ts (matmulForwardRef) on the f16-rounded weights.
override WGX: u32 = 4;
override WGY: u32 = 4;
override PREFETCH: bool = false; // half_wg8: load the next slab into registers during this one's FMAs (variant half_wg8p)

struct Params { I: u32, J: u32, R: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> wh: array<vec2u>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>; // x again, scalar (half_wg8 only; no entry uses both)

fn put1(i: u32, j: u32, v: f32) {
  if (i >= p.I || j >= p.J) { return; }
  let idx = i * p.J + j;
  if (p.accumulate != 0u) { c[idx] = c[idx] + v; } else { c[idx] = v; }
}

fn put4(i: u32, j0: u32, v: vec4f) {
  put1(i, j0, v.x);
  put1(i, j0 + 1u, v.y);
  put1(i, j0 + 2u, v.z);
  put1(i, j0 + 3u, v.w);
}

fn w4(idx: u32) -> vec4f {
  let h = wh[idx];
  return vec4f(unpack2x16float(h.x), unpack2x16float(h.y));
}

@compute @workgroup_size(WGX, WGY)
fn half_nt4(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.I || j0 >= p.J) { return; }
  let R4 = p.R / 4u;
  let ia0 = min(i0, p.I - 1u) * R4;
  let ia1 = min(i0 + 1u, p.I - 1u) * R4;
  let ia2 = min(i0 + 2u, p.I - 1u) * R4;
  let ia3 = min(i0 + 3u, p.I - 1u) * R4;
  let jb0 = min(j0, p.J - 1u) * R4;
  let jb1 = min(j0 + 1u, p.J - 1u) * R4;
  let jb2 = min(j0 + 2u, p.J - 1u) * R4;
  let jb3 = min(j0 + 3u, p.J - 1u) * R4;
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var r = 0u; r < R4; r++) {
    let b0 = w4(jb0 + r);
    let b1 = w4(jb1 + r);
    let b2 = w4(jb2 + r);
    let b3 = w4(jb3 + r);
    let a0 = a4[ia0 + r];
    c0 += vec4f(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
    let a1 = a4[ia1 + r];
    c1 += vec4f(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
    let a2 = a4[ia2 + r];
    c2 += vec4f(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
    let a3 = a4[ia3 + r];
    c3 += vec4f(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
  }
  put4(i0, j0, c0);
  put4(i0 + 1u, j0, c1);
  put4(i0 + 2u, j0, c2);
  put4(i0 + 3u, j0, c3);
}

// ---------------------------------------------------------------- half_wg8 (real GPUs)
//#include "tile8"

// x rows i0 + 4q + {0..3} at column k, as a vec4 (zero outside x): one slab slot of As8.
fn xslab(i0: u32, q: u32, k: u32) -> vec4f {
  var v = vec4f(0.0);
  for (var t = 0u; t < 4u; t++) {
    let i = i0 + 4u * q + t;
    if (i < p.I && k < p.R) { v[t] = a[i * p.R + k]; }
  }
  return v;
}

// W rows j0 + 4q + {0..3}, columns 4h.. of the slab at r0, widened: wq[c] = row j0 + 4q + c, columns
// r0 + 4h + {0..3} (K % 4 == 0, so a vec2u lies wholly inside or outside W). Zero outside W.
fn wquad(j0: u32, q: u32, r0: u32, h: u32) -> array<vec4f, 4> {
  var wq = array<vec4f, 4>();
  let k4 = r0 / 4u + h;
  if (k4 * 4u >= p.R) { return wq; }
  let R4 = p.R / 4u;
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + 4u * q + c;
    if (j < p.J) { wq[c] = w4(j * R4 + k4); }
  }
  return wq;
}

@compute @workgroup_size(16, 16)
fn half_wg8(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i0 = wid.y * 128u;
  let j0 = wid.x * 128u;
  let tid = lid.y * 16u + lid.x;
  let sa = tile8_slot(tid, true); // x is contiguous along k: 8 threads read 8 consecutive k of a row
  var acc = array<vec4f, 16>();
  // W's slab: threads 0..63 each read 4 f16 (one vec2u) of 4 rows (a quad q of the block's 32) and
  // transpose them into the 4 vec4s Bs8[(4h + t)·32 + q] (rows 4q..4q+3 at k = r0 + 4h + t); one
  // writer per vec4 (no component writes from several threads into one workgroup vec4)
  let q = tid % 32u;
  let h = tid / 32u;
  // PREFETCH: this thread's share of the next slab, loaded before the FMAs that precede its use
  var na = vec4f(0.0);
  var nw = array<vec4f, 4>();
  if (PREFETCH) {
    na = xslab(i0, sa.x, sa.y);
    if (tid < 64u) { nw = wquad(j0, q, 0u, h); }
  }
  for (var r0 = 0u; r0 < p.R; r0 += 8u) {
    var wq = nw;
    if (PREFETCH) { As8[sa.y * 32u + sa.x] = na; } else { As8[sa.y * 32u + sa.x] = xslab(i0, sa.x, r0 + sa.y); }
    if (tid < 64u) {
      if (!PREFETCH) { wq = wquad(j0, q, r0, h); }
      for (var t = 0u; t < 4u; t++) { Bs8[(4u * h + t) * 32u + q] = vec4f(wq[0][t], wq[1][t], wq[2][t], wq[3][t]); }
    }
    workgroupBarrier();
    if (PREFETCH && r0 + 8u < p.R) {
      na = xslab(i0, sa.x, r0 + 8u + sa.y);
      if (tid < 64u) { nw = wquad(j0, q, r0 + 8u, h); }
    }
    tile8_slab(lid.x, lid.y, &acc);
    workgroupBarrier();
  }
  for (var t = 0u; t < 16u; t++) { put4(i0 + tile8_row(lid.y, t), j0 + tile8_col(lid.x, t), acc[t]); }
}
