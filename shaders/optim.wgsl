// Optimizer kernels: global-norm gradient clipping and AdamW, with no CPU readback in between.
//   clip:   one thread: total = Σ sumsq[0..n) (per-tensor sums of squares, e.g. from
//           sumSquaresMany), norm = sqrt(total); out[0] = min(1, maxNorm / (norm + 1e-6)) (1 when
//           maxNorm <= 0: clipping off), out[1] = norm (assigns).
//           Bindings: 0 params, 1 sumsq (read), 2 out (read_write).   Dispatch (1).
//   adamw:  one thread per element (AdamW, Loshchilov & Hutter: decoupled weight decay, bias
//           correction): g = grad·scale[0]; m = b1·m + (1-b1)·g; v = b2·v + (1-b2)·g²;
//           param -= lr·(m/bc1 / (sqrt(v/bc2) + eps) + wd·param), bc1 = 1-b1^t, bc2 = 1-b2^t
//           (computed on the CPU in float64). Updates param, m, v in place; grad is only read.
//           Bindings: 0 params, 1 grad (read), 2 param, 3 m, 4 v (read_write), 5 scale (read).
//           Dispatch gpu.grid(ceil(n / WG)).
//   adamw_multi{2,3,4,6}: the same update (the same fp32 operations in the same order: one shared
//           function, so results equal adamw's bit for bit) for up to K tensors in one dispatch.
//           WGSL binds whole buffers and cannot index an array of bindings, so each tensor's
//           param and grad get their own binding (K of each; a switch on the tensor index, uniform
//           per workgroup, picks them), while m and v of all K live in two arenas (one binding
//           each) at per-tensor offsets. Tensor j owns workgroups [t[j].y, t[j+1].y): element
//           i = (wg - t[j].y)·WG + lane, arena index t[j].z + i, n = t[j].x, lr = h[j].x,
//           wd = h[j].y. Unused slots (j >= count) are bound to small dummy buffers, never read.
//           Bindings: 0 params (Multi), 6 scale (read), 7 m arena, 8 v arena (read_write),
//           10+j param j (read_write), 20+j grad j (read). Dispatch gpu.grid(Σ ceil(n_j / WG)).
//           Storage bindings: 3 + 2K (K = 6 needs 15; the WebGPU default of 8 allows K = 2).
// CPU reference: src/engine/ref/optim.ts (clipScaleRef, adamwRef)
override WG: u32 = 256;

struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> sumsq: array<f32>;
@group(0) @binding(2) var<storage, read_write> clipOut: array<f32>;

@compute @workgroup_size(1)
fn clip() {
  var total = 0.0;
  for (var i = 0u; i < p.n; i++) { total += sumsq[i]; }
  let norm = sqrt(total);
  var s = 1.0;
  if (p.maxNorm > 0.0) { s = min(1.0, p.maxNorm / (norm + 1e-6)); }
  clipOut[0] = s;
  clipOut[1] = norm;
}

/** One AdamW element: (m, v, param) after the step, from the scaled gradient g and the old values. */
fn adam(g: f32, m0: f32, v0: f32, w: f32, lr: f32, wd: f32, b1: f32, b2: f32, eps: f32, bc1: f32, bc2: f32) -> vec3f {
  let mi = b1 * m0 + (1.0 - b1) * g;
  let vi = b2 * v0 + (1.0 - b2) * g * g;
  return vec3f(mi, vi, w - lr * ((mi / bc1) / (sqrt(vi / bc2) + eps) + wd * w));
}

@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> scale: array<f32>;

@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let r = adam(grad[i] * scale[0], m[i], v[i], param[i], p.lr, p.wd, p.b1, p.b2, p.eps, p.bc1, p.bc2);
  m[i] = r.x;
  v[i] = r.y;
  param[i] = r.z;
}

// ---- multi-tensor AdamW
const KMAX = 6u;
struct Multi {
  count: u32, _q0: u32, _q1: u32, _q2: u32,
  b1: f32, b2: f32, eps: f32, bc1: f32,
  bc2: f32, _q3: f32, _q4: f32, _q5: f32,
  t: array<vec4u, KMAX>, // (n, first workgroup, arena offset, 0) per tensor
  h: array<vec4f, KMAX>, // (lr, weight decay, 0, 0) per tensor
}
@group(0) @binding(0) var<uniform> pm: Multi;
@group(0) @binding(6) var<storage, read> mscale: array<f32>;
@group(0) @binding(7) var<storage, read_write> marena: array<f32>;
@group(0) @binding(8) var<storage, read_write> varena: array<f32>;
@group(0) @binding(10) var<storage, read_write> w0: array<f32>;
@group(0) @binding(11) var<storage, read_write> w1: array<f32>;
@group(0) @binding(12) var<storage, read_write> w2: array<f32>;
@group(0) @binding(13) var<storage, read_write> w3: array<f32>;
@group(0) @binding(14) var<storage, read_write> w4: array<f32>;
@group(0) @binding(15) var<storage, read_write> w5: array<f32>;
@group(0) @binding(20) var<storage, read> g0: array<f32>;
@group(0) @binding(21) var<storage, read> g1: array<f32>;
@group(0) @binding(22) var<storage, read> g2: array<f32>;
@group(0) @binding(23) var<storage, read> g3: array<f32>;
@group(0) @binding(24) var<storage, read> g4: array<f32>;
@group(0) @binding(25) var<storage, read> g5: array<f32>;

/** The workgroup's tensor j and element i (z = 0: past the tensor's end, nothing to do). */
fn slot(wid: vec3u, nwg: vec3u, lane: u32) -> vec3u {
  let wg = wid.x + wid.y * nwg.x;
  var j = 0u;
  for (var k = 1u; k < pm.count; k++) { if (wg >= pm.t[k].y) { j = k; } }
  let i = (wg - pm.t[j].y) * WG + lane;
  return vec3u(j, i, select(0u, 1u, i < pm.t[j].x));
}

/** m, v of tensor j's element i updated in the arenas; returns the new param. */
fn adamArena(j: u32, i: u32, g: f32, w: f32) -> f32 {
  let o = pm.t[j].z + i;
  let r = adam(g * mscale[0], marena[o], varena[o], w, pm.h[j].x, pm.h[j].y, pm.b1, pm.b2, pm.eps, pm.bc1, pm.bc2);
  marena[o] = r.x;
  varena[o] = r.y;
  return r.z;
}

@compute @workgroup_size(WG)
fn adamw_multi2(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let s = slot(wid, nwg, lane);
  if (s.z == 0u) { return; }
  let j = s.x;
  let i = s.y;
  var g = 0.0;
  var w = 0.0;
  switch j {
    case 0u: { g = g0[i]; w = w0[i]; }
    default: { g = g1[i]; w = w1[i]; }
  }
  let r = adamArena(j, i, g, w);
  switch j {
    case 0u: { w0[i] = r; }
    default: { w1[i] = r; }
  }
}

@compute @workgroup_size(WG)
fn adamw_multi3(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let s = slot(wid, nwg, lane);
  if (s.z == 0u) { return; }
  let j = s.x;
  let i = s.y;
  var g = 0.0;
  var w = 0.0;
  switch j {
    case 0u: { g = g0[i]; w = w0[i]; }
    case 1u: { g = g1[i]; w = w1[i]; }
    default: { g = g2[i]; w = w2[i]; }
  }
  let r = adamArena(j, i, g, w);
  switch j {
    case 0u: { w0[i] = r; }
    case 1u: { w1[i] = r; }
    default: { w2[i] = r; }
  }
}

@compute @workgroup_size(WG)
fn adamw_multi4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let s = slot(wid, nwg, lane);
  if (s.z == 0u) { return; }
  let j = s.x;
  let i = s.y;
  var g = 0.0;
  var w = 0.0;
  switch j {
    case 0u: { g = g0[i]; w = w0[i]; }
    case 1u: { g = g1[i]; w = w1[i]; }
    case 2u: { g = g2[i]; w = w2[i]; }
    default: { g = g3[i]; w = w3[i]; }
  }
  let r = adamArena(j, i, g, w);
  switch j {
    case 0u: { w0[i] = r; }
    case 1u: { w1[i] = r; }
    case 2u: { w2[i] = r; }
    default: { w3[i] = r; }
  }
}

@compute @workgroup_size(WG)
fn adamw_multi6(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lane: u32) {
  let s = slot(wid, nwg, lane);
  if (s.z == 0u) { return; }
  let j = s.x;
  let i = s.y;
  var g = 0.0;
  var w = 0.0;
  switch j {
    case 0u: { g = g0[i]; w = w0[i]; }
    case 1u: { g = g1[i]; w = w1[i]; }
    case 2u: { g = g2[i]; w = w2[i]; }
    case 3u: { g = g3[i]; w = w3[i]; }
    case 4u: { g = g4[i]; w = w4[i]; }
    default: { g = g5[i]; w = w5[i]; }
  }
  let r = adamArena(j, i, g, w);
  switch j {
    case 0u: { w0[i] = r; }
    case 1u: { w1[i] = r; }
    case 2u: { w2[i] = r; }
    case 3u: { w3[i] = r; }
    case 4u: { w4[i] = r; }
    default: { w5[i] = r; }
  }
}
