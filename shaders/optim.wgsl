// Reductions and the optimizer.
//   partial:  per workgroup, the sum (mode 0) or sum of squares (mode 1) of CHUNK = WG·PER
//             elements of x, written to partials[wg]. Deterministic (fixed tree order).
//   finish:   one workgroup sums partials[0..nPartials) into out[outIndex] (assigns).
//   clip:     one thread: norm = sqrt(Σ sumsq[0..n)); scale[0] = min(1, maxNorm/(norm + 1e-6)),
//             scale[1] = norm — global-norm gradient clipping with no CPU readback.
//   adamw:    one thread per element; g = grad·scale[0]; decoupled weight decay; bias correction
//             (AdamW, Loshchilov & Hutter). Updates param, m, v in place.
// CPU reference: src/engine/ref/optim.ts
override WG: u32 = 256;
const PER: u32 = 8u;
struct Params { n: u32, mode: u32, outIndex: u32, nPartials: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> param: array<f32>;
@group(0) @binding(5) var<storage, read_write> m: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;
@group(0) @binding(7) var<storage, read> scale: array<f32>;

var<workgroup> sh: array<f32, 256>;

@compute @workgroup_size(WG)
fn partial(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let wg = wid.x + wid.y * nwg.x;
  let base = wg * WG * PER;
  var s = 0.0;
  for (var t = 0u; t < PER; t++) {
    let i = base + t * WG + lid.x;
    if (i < p.n) {
      let a = x[i];
      if (p.mode == 1u) { s += a * a; } else { s += a; }
    }
  }
  sh[lid.x] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid.x < h) { sh[lid.x] += sh[lid.x + h]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { partials[wg] = sh[0]; }
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  for (var i = lid.x; i < p.nPartials; i += WG) { s += partials[i]; }
  sh[lid.x] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid.x < h) { sh[lid.x] += sh[lid.x + h]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[p.outIndex] = sh[0]; }
}

@compute @workgroup_size(1)
fn clip() {
  var total = 0.0;
  for (var i = 0u; i < p.n; i++) { total += x[i]; }
  let norm = sqrt(total);
  out[0] = min(1.0, p.maxNorm / (norm + 1e-6));
  out[1] = norm;
}

@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let g = x[i] * scale[0];
  let mi = p.b1 * m[i] + (1.0 - p.b1) * g;
  let vi = p.b2 * v[i] + (1.0 - p.b2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let mhat = mi / p.bc1;
  let vhat = vi / p.bc2;
  param[i] = param[i] - p.lr * (mhat / (sqrt(vhat) + p.eps) + p.wd * param[i]);
}
