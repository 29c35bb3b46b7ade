// RMSNorm (LLaMA): y = x / sqrt(mean(x²) + eps) * w over the last dim C; rows = B*T.
// forward: one thread per row; writes y and rstd (rows) for the backward.
// backward_dx: one thread per row, dx (assigns). backward_dw: one thread per column, looping over
// rows (deterministic, no atomics), dw (accumulates).
// CPU reference: src/engine/ref/rmsnorm.ts
override WG: u32 = 64;
struct Params { rows: u32, C: u32, eps: f32, _p: u32 }
@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let base = r * p.C;
  var ss = 0.0;
  for (var i = 0u; i < p.C; i++) { let v = x[base + i]; ss += v * v; }
  let rs = 1.0 / sqrt(ss / f32(p.C) + p.eps);
  rstd[r] = rs;
  for (var i = 0u; i < p.C; i++) { y[base + i] = x[base + i] * rs * w[i]; }
}

// backward: dx = rstd*(w*dy) - x * rstd³/C * Σ(w*dy*x)
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<f32>;

@compute @workgroup_size(WG)
fn backward_dx(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.rows) { return; }
  let base = r * p.C;
  let rs = rstd_in[r];
  var dot = 0.0;
  for (var i = 0u; i < p.C; i++) { dot += w[i] * dy[base + i] * x[base + i]; }
  let k = rs * rs * rs * dot / f32(p.C);
  for (var i = 0u; i < p.C; i++) { dx[base + i] = rs * w[i] * dy[base + i] - x[base + i] * k; }
}

@compute @workgroup_size(WG)
fn backward_dw(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.C) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.C + i] * x[r * p.C + i] * rstd_in[r]; }
  dw[i] = dw[i] + s;
}
