// Losses: each a per-row forward (losses (rows), assigns) and a backward (gradient, assigns).
// Rows are independent; the caller sums the per-row losses (ops/optim.ts sum, or on the host).
//   ce_*:      softmax cross-entropy on logits z (rows, V), u32 targets (rows); 0xFFFFFFFF = ignore
//              (loss 0, grad 0). loss = logsumexp(z) − z[target];  dz = scale·(softmax(z) − onehot).
//              A target >= V (other than ignore) is never read through: loss NaN (so a bad batch
//              shows up in the summed loss), grad 0.
//   kl_*:      T²·KL(softmax(zt/T) ‖ softmax(z/T)) per row (z student, zt teacher, both (rows, V));
//              dz = scale·T·(p_s − p_t).
//   attnkl_*:  rows = B*NH*T rows of causal attention probabilities, row length V = T; row r is
//              query t = r % T with valid keys 0..t (entries above the diagonal are skipped; the
//              backward writes 0 there). loss = Σ_{j<=t, pt>0} pt·(log pt − log max(ps, 1e-12))
//              (0·log 0 = 0; ps is floored at 1e-12 so a zero student probability gives a large
//              finite loss, not inf);  dps = −scale·pt / max(ps, 1e-12) (0 where pt = 0).
//   mse_*:     Σ_c (a − b)²/C per row (z = a, zt = b, row length V = C);  da = scale·2(a − b)/C.
// Layout: LANES threads work on one row (strided over its entries, then a tree reduction in
// workgroup memory); a workgroup of WG threads holds WG/LANES rows.
//   LANES = 1:   one thread per row, no barriers at all (CPU Vulkan: lavapipe, SwiftShader).
//   LANES = WG:  one workgroup per row with parallel max/sum reductions (real GPUs, large V).
// LANES must be a power of two dividing WG. All reductions have a fixed order: deterministic.
// Bindings: @binding(0) params; (1) z, (2) zt, (3) targets, (4) losses, (5) dz as each entry uses.
// Dispatch: ceil(rows / (WG/LANES)) workgroups, folded 2-D by gpu.grid(); wg = wid.x + wid.y*nwg.x.
// CPU reference: src/engine/ref/loss.ts
override WG: u32 = 64;
override LANES: u32 = 1;

const IGNORE: u32 = 0xFFFFFFFFu;
const NEG: f32 = -3.0e38;
const PFLOOR: f32 = 1e-12;

struct Params { rows: u32, V: u32, T: u32, _p: u32, temp: f32, scale: f32, _q: u32, _r: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;        // student logits / probs / a
@group(0) @binding(2) var<storage, read> zt: array<f32>;       // teacher logits / probs / b
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;

var<workgroup> red: array<vec4f, WG>;

struct Row { r: u32, lane: u32, base: u32, valid: bool }

fn rowOf(wid: vec3u, nwg: vec3u, lid: u32) -> Row {
  let w = wid.x + wid.y * nwg.x;
  let r = w * (WG / LANES) + lid / LANES;
  return Row(r, lid % LANES, r * p.V, r < p.rows);
}

// (max, Σ exp(x − max)) pairs: merge two partial log-sum-exps.
fn comb(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// Tree reduction over the LANES threads of a row of two (max, sum) pairs at once (.xy, .zw).
fn reduceLse(lid: u32, v: vec4f) -> vec4f {
  if (LANES == 1u) { return v; }
  red[lid] = v;
  workgroupBarrier();
  let lane = lid % LANES;
  for (var s = LANES / 2u; s > 0u; s = s / 2u) {
    if (lane < s) {
      let a = red[lid];
      let b = red[lid + s];
      red[lid] = vec4f(comb(a.xy, b.xy), comb(a.zw, b.zw));
    }
    workgroupBarrier();
  }
  let out = red[lid - lane];
  workgroupBarrier();
  return out;
}

fn reduceSum(lid: u32, v: f32) -> f32 {
  if (LANES == 1u) { return v; }
  red[lid] = vec4f(v, 0.0, 0.0, 0.0);
  workgroupBarrier();
  let lane = lid % LANES;
  for (var s = LANES / 2u; s > 0u; s = s / 2u) {
    if (lane < s) { red[lid].x = red[lid].x + red[lid + s].x; }
    workgroupBarrier();
  }
  let out = red[lid - lane].x;
  workgroupBarrier();
  return out;
}

// This lane's (max, Σ exp(x − max)) of x = z·invT (and of zt·invT) over its share of n entries:
// two branch-free passes (SIMD lanes of CPU drivers are slow on divergent branches), then one
// cross-lane reduction of the pairs. lse1: log Σ exp(z) (cross-entropy binds no zt);
// lse2: log Σ exp for student (.x) and teacher (.y).
fn lse1(lid: u32, base: u32, n: u32, lane: u32) -> f32 {
  var m = NEG;
  for (var i = lane; i < n; i += LANES) { m = max(m, z[base + i]); }
  var s = 0.0;
  for (var i = lane; i < n; i += LANES) { s += exp(z[base + i] - m); }
  let l = reduceLse(lid, vec4f(m, s, NEG, 0.0));
  return l.x + log(l.y);
}
fn lse2(lid: u32, base: u32, n: u32, lane: u32, invT: f32) -> vec2f {
  var ms = NEG;
  var mt = NEG;
  for (var i = lane; i < n; i += LANES) {
    ms = max(ms, z[base + i] * invT);
    mt = max(mt, zt[base + i] * invT);
  }
  var ss = 0.0;
  var st = 0.0;
  for (var i = lane; i < n; i += LANES) {
    ss += exp(z[base + i] * invT - ms);
    st += exp(zt[base + i] * invT - mt);
  }
  let l = reduceLse(lid, vec4f(ms, ss, mt, st));
  return vec2f(l.x + log(l.y), l.z + log(l.w));
}

// ---------------------------------------------------------------- cross-entropy

@compute @workgroup_size(WG)
fn ce_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  var tgt = IGNORE;
  if (rw.valid) { tgt = targets[rw.r]; }
  let n = select(0u, p.V, rw.valid && tgt < p.V);
  let lse = lse1(lid, rw.base, n, rw.lane);
  if (rw.valid && rw.lane == 0u) {
    if (tgt == IGNORE) {
      losses[rw.r] = 0.0;
    } else if (tgt >= p.V) {
      losses[rw.r] = bitcast<f32>(0x7FC00000u | p._p); // NaN (p._p = 0; a runtime value, since
                                                         // WGSL rejects a constant NaN)
    } else {
      losses[rw.r] = lse - z[rw.base + tgt];
    }
  }
}

// dz = scale·(softmax(z) − onehot(target))                    (assigns; 0 on ignored rows)
@compute @workgroup_size(WG)
fn ce_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  var tgt = IGNORE;
  if (rw.valid) { tgt = targets[rw.r]; }
  let counted = rw.valid && tgt < p.V;
  let n = select(0u, p.V, counted);
  let lse = lse1(lid, rw.base, n, rw.lane);
  let nw = select(0u, p.V, rw.valid);
  for (var i = rw.lane; i < nw; i += LANES) {
    let g = exp(z[rw.base + i] - lse) - select(0.0, 1.0, i == tgt);
    dz[rw.base + i] = select(0.0, p.scale * g, counted); // select, not 0·g: g is NaN on skipped rows
  }
}

// ---------------------------------------------------------------- KL on logits with temperature
// a = zt/T, b = z/T: KL = Σ p_t·(log p_t − log p_s) = Σ p_t·(a − b) − lse(a) + lse(b)  (Σ p_t = 1)

@compute @workgroup_size(WG)
fn kl_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  let n = select(0u, p.V, rw.valid);
  let invT = 1.0 / p.temp;
  let l = lse2(lid, rw.base, n, rw.lane, invT);
  var acc = 0.0;
  for (var i = rw.lane; i < n; i += LANES) {
    let a = zt[rw.base + i] * invT;
    let b = z[rw.base + i] * invT;
    acc += exp(a - l.y) * (a - b);
  }
  let kl = reduceSum(lid, acc) - l.y + l.x;
  if (rw.valid && rw.lane == 0u) { losses[rw.r] = p.temp * p.temp * kl; }
}

// dz = scale·T·(p_s − p_t)                                    (assigns)
@compute @workgroup_size(WG)
fn kl_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  let n = select(0u, p.V, rw.valid);
  let invT = 1.0 / p.temp;
  let l = lse2(lid, rw.base, n, rw.lane, invT);
  let k = p.scale * p.temp;
  for (var i = rw.lane; i < n; i += LANES) {
    let ps = exp(z[rw.base + i] * invT - l.x);
    let pt = exp(zt[rw.base + i] * invT - l.y);
    dz[rw.base + i] = k * (ps - pt);
  }
}

// ---------------------------------------------------------------- attention-map KL (causal rows)

@compute @workgroup_size(WG)
fn attnkl_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  // valid keys 0..t of query t = r % T (never more than the row length)
  let n = select(0u, min(rw.r % p.T + 1u, p.V), rw.valid);
  var acc = 0.0;
  for (var j = rw.lane; j < n; j += LANES) {
    let pt = zt[rw.base + j];
    if (pt > 0.0) { acc += pt * (log(pt) - log(max(z[rw.base + j], PFLOOR))); }
  }
  let kl = reduceSum(lid, acc);
  if (rw.valid && rw.lane == 0u) { losses[rw.r] = kl; }
}

// dps = −scale·pt / max(ps, 1e-12) on valid keys with pt > 0, else 0       (assigns, whole row)
@compute @workgroup_size(WG)
fn attnkl_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  let nw = select(0u, p.V, rw.valid);
  let t = rw.r % p.T;
  for (var j = rw.lane; j < nw; j += LANES) {
    var g = 0.0;
    if (j <= t) {
      let pt = zt[rw.base + j];
      if (pt > 0.0) { g = -p.scale * pt / max(z[rw.base + j], PFLOOR); }
    }
    dz[rw.base + j] = g;
  }
}

// ---------------------------------------------------------------- MSE

@compute @workgroup_size(WG)
fn mse_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  let n = select(0u, p.V, rw.valid);
  var acc = 0.0;
  for (var i = rw.lane; i < n; i += LANES) { let d = z[rw.base + i] - zt[rw.base + i]; acc += d * d; }
  let s = reduceSum(lid, acc);
  if (rw.valid && rw.lane == 0u) { losses[rw.r] = s / f32(p.V); }
}

// da = scale·2(a − b)/C                                       (assigns)
@compute @workgroup_size(WG)
fn mse_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let rw = rowOf(wid, nwg, lid);
  let n = select(0u, p.V, rw.valid);
  let k = p.scale * 2.0 / f32(p.V);
  for (var i = rw.lane; i < n; i += LANES) { dz[rw.base + i] = k * (z[rw.base + i] - zt[rw.base + i]); }
}
