// fp32 x times f16 weights, forward only (a frozen teacher's projections at half the bytes):
//   y (M,N) = x (M,K) · Wᵀ, W (N,K) stored as IEEE binary16, two per u32 (little end first), read
//   4 at a time as vec2u and widened with unpack2x16float (core WGSL: needs no shader-f16 feature;
//   the arithmetic is fp32, so the only difference from the fp32 kernel is W rounded to f16).
// Entry half_nt4: the register-tiled layout of matmul.wgsl's regtile_nt4 (each thread a 4x4 tile of
//   y, no workgroup memory); needs K % 4 == 0. Assigns (or += when p.accumulate != 0).
// Bindings: 0 uniform Params, 1 x (M*K/4 vec4f), 2 W (N*K/4 vec2u), 3 y (M*N f32, read_write).
// Dispatch: (ceil(N/4/WGX), ceil(M/4/WGY)).
// CPU reference: src/engine/ref/matmul.ts (refMatmul) on the f16-rounded weights.
override WGX: u32 = 4;
override WGY: u32 = 4;

struct Params { I: u32, J: u32, R: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> wh: array<vec2u>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

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
