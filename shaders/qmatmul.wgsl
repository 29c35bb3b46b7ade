// Low-bit dequant-matmul that reads packed codes directly (layout: src/engine/quant/pack.ts):
//   y (M, N) = x (M, K) · dequant(W)ᵀ,  dequant(W)[n, k] = (code[n, k] − zero[n, g]) · scale[n, g]
// computed per group as scale·(Σ x·code − zero·Σ x), so the inner loop is integer unpack + FMA.
//   gemm:  one thread per 4 (m) × 4 (n) tile, no workgroup memory (CPU Vulkan friendly).
//   gemv:  M = 1, one workgroup per output row, threads stride over groups, tree reduction in
//          workgroup memory (what real GPUs want for decoding).
//   dx:    dX (M, K) (=, or += with accumulate) dY (M, N) · dequant(W) (N, K), one thread per 4 (m) × 4 (k) tile.
// Bindings: 0 params, 1 x / dY (read), 2 codes u32, 3 scales, 4 zeros, 5 y / dX (read_write).
// CPU reference: src/engine/ref/quant.ts
override WG: u32 = 64;
struct Params { M: u32, N: u32, K: u32, group: u32, nBlocks: u32, wordsPerRow: u32, bits: u32, cpw: u32, accumulate: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> zeros: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

fn code_at(n: u32, j: u32) -> f32 {
  let w = codes[n * p.wordsPerRow + j / p.cpw];
  return f32((w >> ((j % p.cpw) * p.bits)) & ((1u << p.bits) - 1u));
}

@compute @workgroup_size(8, 8)
fn gemm(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (n0 >= p.N || m0 >= p.M) { return; }
  var ms: array<u32, 4>;
  var ns: array<u32, 4>;
  for (var t = 0u; t < 4u; t++) { ms[t] = min(m0 + t, p.M - 1u); ns[t] = min(n0 + t, p.N - 1u); }
  var acc: array<array<f32, 4>, 4>;
  for (var g = 0u; g < p.nBlocks; g++) {
    let k0 = g * p.group;
    let k1 = min(p.K, k0 + p.group);
    // explicit zeroing: some compilers hoist a loop-local var out of the loop
    var dot: array<vec4f, 4>;
    for (var a = 0u; a < 4u; a++) { dot[a] = vec4f(0.0); }
    var xs = vec4f(0.0);
    for (var k = k0; k < k1; k++) {
      let xv = vec4f(x[ms[0] * p.K + k], x[ms[1] * p.K + k], x[ms[2] * p.K + k], x[ms[3] * p.K + k]);
      xs += xv;
      let cv = vec4f(code_at(ns[0], k), code_at(ns[1], k), code_at(ns[2], k), code_at(ns[3], k));
      for (var a = 0u; a < 4u; a++) {
        dot[a][0] += xv[a] * cv[0];
        dot[a][1] += xv[a] * cv[1];
        dot[a][2] += xv[a] * cv[2];
        dot[a][3] += xv[a] * cv[3];
      }
    }
    for (var b = 0u; b < 4u; b++) {
      let s = scales[ns[b] * p.nBlocks + g];
      let z = zeros[ns[b] * p.nBlocks + g];
      for (var a = 0u; a < 4u; a++) { acc[a][b] += s * (dot[a][b] - z * xs[a]); }
    }
  }
  for (var a = 0u; a < 4u; a++) {
    if (m0 + a >= p.M) { break; }
    for (var b = 0u; b < 4u; b++) {
      if (n0 + b >= p.N) { break; }
      y[(m0 + a) * p.N + n0 + b] = acc[a][b];
    }
  }
}

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(WG)
fn gemv(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = wid.x + wid.y * nwg.x;
  var s = 0.0;
  if (n < p.N) {
    for (var g = lid.x; g < p.nBlocks; g += WG) {
      let k0 = g * p.group;
      let k1 = min(p.K, k0 + p.group);
      var dot = 0.0;
      var xs = 0.0;
      for (var k = k0; k < k1; k++) {
        let xv = x[k];
        xs += xv;
        dot += xv * code_at(n, k);
      }
      s += scales[n * p.nBlocks + g] * (dot - zeros[n * p.nBlocks + g] * xs);
    }
  }
  part[lid.x] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid.x < h) { part[lid.x] += part[lid.x + h]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < p.N) { y[n] = part[0]; }
}

// GEMV, one thread per output row walking the packed words (no per-element division; the group
// boundary is tracked incrementally). No workgroup memory: the variant CPU Vulkan prefers.
@compute @workgroup_size(WG)
fn gemv_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = gid.x + gid.y * nwg.x * WG;
  if (n >= p.N) { return; }
  let mask = (1u << p.bits) - 1u;
  let rowW = n * p.wordsPerRow;
  let rowS = n * p.nBlocks;
  var g = 0u;
  var nextB = p.group;
  var s = scales[rowS];
  var z = zeros[rowS];
  var acc = 0.0;
  var part = 0.0;
  var k = 0u;
  for (var wi = 0u; wi < p.wordsPerRow; wi++) {
    let word = codes[rowW + wi];
    for (var t = 0u; t < p.cpw; t++) {
      if (k >= p.K) { break; }
      if (k == nextB) {
        acc += s * part;
        part = 0.0;
        g++;
        nextB += p.group;
        s = scales[rowS + g];
        z = zeros[rowS + g];
      }
      part += x[k] * (f32((word >> (t * p.bits)) & mask) - z);
      k++;
    }
  }
  y[n] = acc + s * part;
}

// dX (M, K) = dY (M, N) · dequant(W): x holds dY here, y receives dX.
@compute @workgroup_size(8, 8)
fn dx(@builtin(global_invocation_id) gid: vec3u) {
  let k0 = gid.x * 4u;
  let m0 = gid.y * 4u;
  if (k0 >= p.K || m0 >= p.M) { return; }
  var ms: array<u32, 4>;
  var ks: array<u32, 4>;
  var gs: array<u32, 4>;
  for (var t = 0u; t < 4u; t++) { ms[t] = min(m0 + t, p.M - 1u); ks[t] = min(k0 + t, p.K - 1u); gs[t] = ks[t] / p.group; }
  var acc: array<array<f32, 4>, 4>;
  for (var n = 0u; n < p.N; n++) {
    let dyv = vec4f(x[ms[0] * p.N + n], x[ms[1] * p.N + n], x[ms[2] * p.N + n], x[ms[3] * p.N + n]);
    var wv: vec4f;
    for (var b = 0u; b < 4u; b++) {
      let sb = n * p.nBlocks + gs[b];
      wv[b] = (code_at(n, ks[b]) - zeros[sb]) * scales[sb];
    }
    for (var a = 0u; a < 4u; a++) {
      acc[a][0] += dyv[a] * wv[0];
      acc[a][1] += dyv[a] * wv[1];
      acc[a][2] += dyv[a] * wv[2];
      acc[a][3] += dyv[a] * wv[3];
    }
  }
  for (var a = 0u; a < 4u; a++) {
    if (m0 + a >= p.M) { break; }
    for (var b = 0u; b < 4u; b++) {
      if (k0 + b >= p.K) { break; }
      let idx = (m0 + a) * p.K + k0 + b;
      if (p.accumulate != 0u) { y[idx] = y[idx] + acc[a][b]; } else { y[idx] = acc[a][b]; }
    }
  }
}
