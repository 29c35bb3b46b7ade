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
//           param and grad get their own binding (K of each), while m and v of all K live in two
//           arenas (one binding each) at per-tensor offsets. Thread i updates element i of every
//           tensor j with i < t[j].x, one guarded block per tensor with constant indices into the
//           uniform table (a switch on a computed tensor index, or a lookup of it, measured ~2x
//           slower per element on lavapipe, which runs lanes as SIMD with masks); the dispatch
//           covers the largest of the K, so the host groups tensors of similar sizes.
//           t[j] = (n, 0, arena offset, 0), h[j] = (lr, wd, 0, 0); unused slots have n = 0 and
//           are bound to small dummy buffers, never touched.
//           Bindings: 0 params (Multi), 6 scale (read), 7 m arena, 8 v arena (read_write),
//           10+j param j (read_write), 20+j grad j (read). Dispatch gpu.grid(ceil(max n_j / WG)).
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
  t: array<vec4u, KMAX>, // (n, 0, arena offset, 0) per tensor
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

/** m, v of the arena element o updated; returns the new param. */
fn adamAt(o: u32, g: f32, w: f32, lr: f32, wd: f32) -> f32 {
  let r = adam(g * mscale[0], marena[o], varena[o], w, lr, wd, pm.b1, pm.b2, pm.eps, pm.bc1, pm.bc2);
  marena[o] = r.x;
  varena[o] = r.y;
  return r.z;
}

@compute @workgroup_size(WG)
fn adamw_multi2(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < pm.t[0].x) { w0[i] = adamAt(pm.t[0].z + i, g0[i], w0[i], pm.h[0].x, pm.h[0].y); }
  if (i < pm.t[1].x) { w1[i] = adamAt(pm.t[1].z + i, g1[i], w1[i], pm.h[1].x, pm.h[1].y); }
}

@compute @workgroup_size(WG)
fn adamw_multi3(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < pm.t[0].x) { w0[i] = adamAt(pm.t[0].z + i, g0[i], w0[i], pm.h[0].x, pm.h[0].y); }
  if (i < pm.t[1].x) { w1[i] = adamAt(pm.t[1].z + i, g1[i], w1[i], pm.h[1].x, pm.h[1].y); }
  if (i < pm.t[2].x) { w2[i] = adamAt(pm.t[2].z + i, g2[i], w2[i], pm.h[2].x, pm.h[2].y); }
}

@compute @workgroup_size(WG)
fn adamw_multi4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < pm.t[0].x) { w0[i] = adamAt(pm.t[0].z + i, g0[i], w0[i], pm.h[0].x, pm.h[0].y); }
  if (i < pm.t[1].x) { w1[i] = adamAt(pm.t[1].z + i, g1[i], w1[i], pm.h[1].x, pm.h[1].y); }
  if (i < pm.t[2].x) { w2[i] = adamAt(pm.t[2].z + i, g2[i], w2[i], pm.h[2].x, pm.h[2].y); }
  if (i < pm.t[3].x) { w3[i] = adamAt(pm.t[3].z + i, g3[i], w3[i], pm.h[3].x, pm.h[3].y); }
}

@compute @workgroup_size(WG)
fn adamw_multi6(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < pm.t[0].x) { w0[i] = adamAt(pm.t[0].z + i, g0[i], w0[i], pm.h[0].x, pm.h[0].y); }
  if (i < pm.t[1].x) { w1[i] = adamAt(pm.t[1].z + i, g1[i], w1[i], pm.h[1].x, pm.h[1].y); }
  if (i < pm.t[2].x) { w2[i] = adamAt(pm.t[2].z + i, g2[i], w2[i], pm.h[2].x, pm.h[2].y); }
  if (i < pm.t[3].x) { w3[i] = adamAt(pm.t[3].z + i, g3[i], w3[i], pm.h[3].x, pm.h[3].y); }
  if (i < pm.t[4].x) { w4[i] = adamAt(pm.t[4].z + i, g4[i], w4[i], pm.h[4].x, pm.h[4].y); }
  if (i < pm.t[5].x) { w5[i] = adamAt(pm.t[5].z + i, g5[i], w5[i], pm.h[5].x, pm.h[5].y); }
}
