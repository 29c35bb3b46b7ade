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

@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> scale: array<f32>;

@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let g = grad[i] * scale[0];
  let mi = p.b1 * m[i] + (1.0 - p.b1) * g;
  let vi = p.b2 * v[i] + (1.0 - p.b2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let w = param[i];
  param[i] = w - p.lr * ((mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps) + p.wd * w);
}
