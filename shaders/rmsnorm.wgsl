// RMSNorm (LLaMA): y = x / sqrt(mean(x²) + eps) * w over the last dim C; rows = B*T.
//   forward:      y (rows, C) assigns; rstd (rows) = 1/sqrt(mean(x²) + eps) assigns when
//                 p.flags & 1 (saved for the backward). With p.flags & 2 the residual add
//                 before the norm is fused in: hsum = x + res (assigns) is normalized instead of x.
//   backward_dx:  dx = rstd·(w⊙dy) − x·rstd³/C·Σ_c(w·dy·x)                       (assigns),
//                 plus res when p.flags & 2 (the residual branch's gradient, fused in).
//   Fusing the adds saves a dispatch and a pass over the rows each; same float ops, same order
//   as the separate add (bit for bit).
//   dw_partial:   part[k, c] = Σ_{r in chunk k} dy[r,c]·x[r,c]·rstd[r], chunks of CHUNK rows
//   dw_reduce:    dw[c] += Σ_k part[k, c], k in order                            (accumulates)
//   The dw sum over rows is two passes (per-chunk partials, then a fixed-order reduce): no
//   atomics, deterministic, and rows·C/CHUNK threads of parallelism instead of C.
// Row layout (forward, backward_dx): LANES threads per row, strided over C, then a tree reduction
// in workgroup memory; a workgroup of WG threads holds WG/LANES rows. LANES = 1: one thread per
// row, no barriers (CPU Vulkan). LANES = WG: a workgroup per row (real GPUs). LANES is a power of
// two dividing WG.
// forward4, backward_dx4: forward and backward_dx for LANES = 1 and C % 4 == 0 (every real
// model), one thread per row through vec4 views of the same bindings: lavapipe pays per load,
// so a row takes a quarter of the loads. The sums of squares and of w·dy·x run in 4 partial sums
// added at the end (a different order from the scalar entries; the float64 tests bound both).
// Bindings: @binding(0) params {rows, C, eps, flags}; (1) x, (2) w, (3) y, (4) rstd, (5) dy,
// (6) rstd_in, (7) dx, (8) dw, (9) part, (10) res, (11) hsum, as each entry uses (res and hsum
// bound to stand-ins when their flag is off).
// Dispatch: forward/backward_dx ceil(rows / (WG/LANES)) workgroups; dw_partial
// ceil(ceil(rows/CHUNK)·C / WG); dw_reduce ceil(C / WG); all folded 2-D by gpu.grid().
// CPU reference: src/engine/ref/rmsnorm.ts
override WG: u32 = 64;
override LANES: u32 = 1;
override CHUNK: u32 = 64;

struct Params { rows: u32, C: u32, eps: f32, flags: u32 }
@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<f32>;
@group(0) @binding(9) var<storage, read_write> part: array<f32>;
@group(0) @binding(10) var<storage, read> res: array<f32>;
@group(0) @binding(11) var<storage, read_write> hsum: array<f32>;

var<workgroup> red: array<f32, WG>;

fn reduceSum(lid: u32, v: f32) -> f32 {
  if (LANES == 1u) { return v; }
  red[lid] = v;
  workgroupBarrier();
  let lane = lid % LANES;
  for (var s = LANES / 2u; s > 0u; s = s / 2u) {
    if (lane < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let out = red[lid - lane];
  workgroupBarrier();
  return out;
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * (WG / LANES) + lid / LANES;
  let lane = lid % LANES;
  let valid = r < p.rows;
  let n = select(0u, p.C, valid);
  let base = r * p.C;
  let fused = (p.flags & 2u) != 0u;
  var ss = 0.0;
  for (var i = lane; i < n; i += LANES) {
    var v = x[base + i];
    if (fused) { v = v + res[base + i]; hsum[base + i] = v; }
    ss += v * v;
  }
  ss = reduceSum(lid, ss);
  let rs = 1.0 / sqrt(ss / f32(p.C) + p.eps);
  if (valid && lane == 0u && (p.flags & 1u) != 0u) { rstd[r] = rs; }
  for (var i = lane; i < n; i += LANES) {
    var v = x[base + i];
    if (fused) { v = hsum[base + i]; } // this lane's own write above
    y[base + i] = v * rs * w[i];
  }
}

@compute @workgroup_size(WG)
fn backward_dx(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * (WG / LANES) + lid / LANES;
  let lane = lid % LANES;
  let valid = r < p.rows;
  let n = select(0u, p.C, valid);
  let base = r * p.C;
  var rs = 0.0;
  if (valid) { rs = rstd_in[r]; }
  var acc = 0.0;
  for (var i = lane; i < n; i += LANES) { acc += w[i] * dy[base + i] * x[base + i]; }
  let dot = reduceSum(lid, acc);
  let k = rs * rs * rs * dot / f32(p.C);
  let fused = (p.flags & 2u) != 0u;
  for (var i = lane; i < n; i += LANES) {
    var v = rs * w[i] * dy[base + i] - x[base + i] * k;
    if (fused) { v = v + res[base + i]; }
    dx[base + i] = v;
  }
}

@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> w4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4f>;
@group(0) @binding(5) var<storage, read> dy4: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dx4: array<vec4f>;
@group(0) @binding(10) var<storage, read> res4: array<vec4f>;
@group(0) @binding(11) var<storage, read_write> hsum4: array<vec4f>;

fn hadd(v: vec4f) -> f32 { return (v.x + v.y) + (v.z + v.w); }

// Dispatch ceil(rows / WG) workgroups, folded 2-D.
@compute @workgroup_size(WG)
fn forward4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; } // no barriers here
  let C4 = p.C / 4u;
  let base = r * C4;
  let fused = (p.flags & 2u) != 0u;
  var ss = vec4f(0.0);
  for (var i = 0u; i < C4; i++) {
    var v = x4[base + i];
    if (fused) { v = v + res4[base + i]; hsum4[base + i] = v; }
    ss += v * v;
  }
  let rs = 1.0 / sqrt(hadd(ss) / f32(p.C) + p.eps);
  if ((p.flags & 1u) != 0u) { rstd[r] = rs; }
  for (var i = 0u; i < C4; i++) {
    var v = x4[base + i];
    if (fused) { v = hsum4[base + i]; } // this thread's own write above
    y4[base + i] = v * rs * w4[i];
  }
}

// Dispatch ceil(rows / WG) workgroups, folded 2-D.
@compute @workgroup_size(WG)
fn backward_dx4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let C4 = p.C / 4u;
  let base = r * C4;
  let rs = rstd_in[r];
  var acc = vec4f(0.0);
  for (var i = 0u; i < C4; i++) { acc += w4[i] * dy4[base + i] * x4[base + i]; }
  let k = rs * rs * rs * hadd(acc) / f32(p.C);
  let fused = (p.flags & 2u) != 0u;
  for (var i = 0u; i < C4; i++) {
    var v = rs * w4[i] * dy4[base + i] - x4[base + i] * k;
    if (fused) { v = v + res4[base + i]; }
    dx4[base + i] = v;
  }
}

@compute @workgroup_size(WG)
fn dw_partial(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let nChunks = (p.rows + CHUNK - 1u) / CHUNK;
  if (i >= nChunks * p.C) { return; }
  let k = i / p.C;
  let c = i % p.C;
  let r1 = min(p.rows, (k + 1u) * CHUNK);
  var s = 0.0;
  for (var r = k * CHUNK; r < r1; r++) { s += dy[r * p.C + c] * x[r * p.C + c] * rstd_in[r]; }
  part[i] = s;
}

@compute @workgroup_size(WG)
fn dw_reduce(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= p.C) { return; }
  let nChunks = (p.rows + CHUNK - 1u) / CHUNK;
  var s = 0.0;
  for (var k = 0u; k < nChunks; k++) { s += part[k * p.C + c]; }
  dw[c] = dw[c] + s;
}
