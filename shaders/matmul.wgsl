// fp32 matmul family for linear layers, one generic kernel with strides:
//   C[i, j] (=, or += when p.accumulate) Σ_r A(i, r) · B(j, r)
// with A(i, r) = a[i*sAi + r*sAr], B(j, r) = b[j*sBj + r*sBr], C row-major (I, J).
// The wrapper (src/engine/ops/matmul.ts) maps forward (y = x·Wᵀ), dX = dY·W and dW += dYᵀ·X onto it.
// Bindings: 0 params, 1 a (read), 2 b (read), 3 c (read_write).
// Dispatch: (ceil(J / (TJ*WGJ)), ceil(I / (TI*WGI))); each thread owns a TI×TJ register tile
// (no workgroup memory: CPU Vulkan punishes barriers). CPU reference: src/engine/ref/matmul.ts
override WGI: u32 = 8;
override WGJ: u32 = 8;
const TI: u32 = 4u;
const TJ: u32 = 4u;

struct Params { I: u32, J: u32, R: u32, sAi: u32, sAr: u32, sBj: u32, sBr: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WGJ, WGI)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * TI;
  let j0 = gid.x * TJ;
  if (i0 >= p.I || j0 >= p.J) { return; }
  var acc: array<array<f32, 4>, 4>;
  // Clamp out-of-range rows/cols to a valid index; their results are discarded below.
  var ia: array<u32, 4>;
  var jb: array<u32, 4>;
  for (var t = 0u; t < TI; t++) { ia[t] = min(i0 + t, p.I - 1u) * p.sAi; }
  for (var t = 0u; t < TJ; t++) { jb[t] = min(j0 + t, p.J - 1u) * p.sBj; }
  for (var r = 0u; r < p.R; r++) {
    let ra = r * p.sAr;
    let rb = r * p.sBr;
    let av = vec4f(a[ia[0] + ra], a[ia[1] + ra], a[ia[2] + ra], a[ia[3] + ra]);
    let bv = vec4f(b[jb[0] + rb], b[jb[1] + rb], b[jb[2] + rb], b[jb[3] + rb]);
    for (var t = 0u; t < TI; t++) {
      acc[t][0] += av[t] * bv[0];
      acc[t][1] += av[t] * bv[1];
      acc[t][2] += av[t] * bv[2];
      acc[t][3] += av[t] * bv[3];
    }
  }
  for (var ti = 0u; ti < TI; ti++) {
    let i = i0 + ti;
    if (i >= p.I) { break; }
    for (var tj = 0u; tj < TJ; tj++) {
      let j = j0 + tj;
      if (j >= p.J) { break; }
      let idx = i * p.J + j;
      if (p.accumulate != 0u) { c[idx] = c[idx] + acc[ti][tj]; } else { c[idx] = acc[ti][tj]; }
    }
  }
}

// GEMV for one row (decode, M = 1): y[n] = Σ_k x[k] w[n, k]. A workgroup of WG threads per GROUP
// output rows splits K, then a tree reduction in workgroup memory.
override WG: u32 = 64;
var<workgroup> part: array<f32, 256>;

struct GemvParams { N: u32, K: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> q: GemvParams;

@compute @workgroup_size(WG)
fn gemv(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = wid.x + wid.y * nwg.x;
  var s = 0.0;
  if (n < q.N) {
    let base = n * q.K;
    for (var k = lid.x; k < q.K; k += WG) { s += a[k] * b[base + k]; }
  }
  part[lid.x] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid.x < h) { part[lid.x] += part[lid.x + h]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < q.N) { c[n] = part[0]; }
}
