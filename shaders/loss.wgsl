// Losses, each with a per-row forward and a backward (both assign). One thread per row; rows are
// independent, and the caller sums per-row losses (ops/optim.ts sum, or on the host).
//   ce_*:       softmax cross-entropy on logits (rows, V) with u32 targets; 0xFFFFFFFF = ignore.
//               loss = logsumexp(z) − z[target];  dz = scale·(softmax(z) − onehot)
//   kl_*:       T²·KL(softmax(zt/T) ‖ softmax(zs/T)) per row;  dzs = scale·T·(ps − pt)
//   attnkl_*:   KL(pt ‖ ps) over one row of causal attention probabilities (row length n, valid
//               keys 0..(row % T)); ps floored at 1e-12;  dps = −scale·pt/ps (0 where pt = 0)
//   mse_*:      Σ (a − b)²/C per row;  da = scale·2(a − b)/C
// CPU reference: src/engine/ref/loss.ts
override WG: u32 = 64;
struct Params { rows: u32, V: u32, T: u32, _p: u32, temp: f32, scale: f32, _q: u32, _r: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;        // student logits / probs / a
@group(0) @binding(2) var<storage, read> zt: array<f32>;       // teacher logits / probs / b
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;

fn rowId(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn ce_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let tgt = targets[r];
  if (tgt == 0xFFFFFFFFu) { losses[r] = 0.0; return; }
  let base = r * p.V;
  var m = -3.0e38;
  for (var i = 0u; i < p.V; i++) { m = max(m, z[base + i]); }
  var s = 0.0;
  for (var i = 0u; i < p.V; i++) { s += exp(z[base + i] - m); }
  losses[r] = log(s) + m - z[base + tgt];
}

@compute @workgroup_size(WG)
fn ce_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let tgt = targets[r];
  let base = r * p.V;
  if (tgt == 0xFFFFFFFFu) {
    for (var i = 0u; i < p.V; i++) { dz[base + i] = 0.0; }
    return;
  }
  var m = -3.0e38;
  for (var i = 0u; i < p.V; i++) { m = max(m, z[base + i]); }
  var s = 0.0;
  for (var i = 0u; i < p.V; i++) { s += exp(z[base + i] - m); }
  let inv = 1.0 / s;
  for (var i = 0u; i < p.V; i++) {
    var g = exp(z[base + i] - m) * inv;
    if (i == tgt) { g -= 1.0; }
    dz[base + i] = p.scale * g;
  }
}

// log-sum-exp of a row of x/T: returns (max, log Σ exp(x/T − max))
fn lse(base: u32, useTeacher: bool) -> vec2f {
  var m = -3.0e38;
  for (var i = 0u; i < p.V; i++) {
    var x = z[base + i];
    if (useTeacher) { x = zt[base + i]; }
    m = max(m, x / p.temp);
  }
  var s = 0.0;
  for (var i = 0u; i < p.V; i++) {
    var x = z[base + i];
    if (useTeacher) { x = zt[base + i]; }
    s += exp(x / p.temp - m);
  }
  return vec2f(m, log(s));
}

@compute @workgroup_size(WG)
fn kl_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.V;
  let ls = lse(base, false);
  let lt = lse(base, true);
  var kl = 0.0;
  for (var i = 0u; i < p.V; i++) {
    let logpt = zt[base + i] / p.temp - lt.x - lt.y;
    let logps = z[base + i] / p.temp - ls.x - ls.y;
    kl += exp(logpt) * (logpt - logps);
  }
  losses[r] = p.temp * p.temp * kl;
}

@compute @workgroup_size(WG)
fn kl_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.V;
  let ls = lse(base, false);
  let lt = lse(base, true);
  for (var i = 0u; i < p.V; i++) {
    let pt = exp(zt[base + i] / p.temp - lt.x - lt.y);
    let ps = exp(z[base + i] / p.temp - ls.x - ls.y);
    dz[base + i] = p.scale * p.temp * (ps - pt);
  }
}

// Attention maps: rows = B*NH*T rows of length V (= T); row r is query t = r % T, keys 0..t.
@compute @workgroup_size(WG)
fn attnkl_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.V;
  let t = r % p.T;
  var kl = 0.0;
  for (var j = 0u; j <= t; j++) {
    let pt = zt[base + j];
    if (pt > 0.0) { kl += pt * (log(pt) - log(max(z[base + j], 1e-12))); }
  }
  losses[r] = kl;
}

@compute @workgroup_size(WG)
fn attnkl_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.V;
  let t = r % p.T;
  for (var j = 0u; j < p.V; j++) {
    var g = 0.0;
    let pt = zt[base + j];
    if (j <= t && pt > 0.0) { g = -p.scale * pt / max(z[base + j], 1e-12); }
    dz[base + j] = g;
  }
}

@compute @workgroup_size(WG)
fn mse_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.V;
  var s = 0.0;
  for (var i = 0u; i < p.V; i++) { let d = z[base + i] - zt[base + i]; s += d * d; }
  losses[r] = s / f32(p.V);
}

@compute @workgroup_size(WG)
fn mse_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let r = rowId(gid, nwg);
  if (r >= p.rows) { return; }
  let base = r * p.V;
  for (var i = 0u; i < p.V; i++) { dz[base + i] = p.scale * 2.0 * (z[base + i] - zt[base + i]) / f32(p.V); }
}
