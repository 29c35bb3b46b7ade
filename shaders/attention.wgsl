// Causal scaled-dot-product attention with grouped-query heads (head h reads kv head h / (NH/NKV)).
// Layouts: q (B, Tq, NH, HS); k, v (B, TkMax, NKV, HS) (TkMax = row capacity: T when training,
// the KV cache size when decoding; Tk <= TkMax rows are valid); out (B, Tq, NH, HS);
// probs (B, NH, Tq, Tk) (zero above the causal diagonal). Query t sits at absolute position
// pos0 + t and sees keys 0..min(pos0 + t, Tk - 1). scale = 1/sqrt(HS). Softmax in fp32 with the
// running max subtracted (online softmax).
// forward (assigns out, probs): dispatch B·NH·Tq threads.
// backward (training: Tq = Tk = TkMax = T, pos0 = 0), from the saved probs P (all assign):
//   dP = dout·vᵀ (+ dprobsExtra),  dS = P ∘ (dP − rowsum(P ∘ dP)),  dq = scale·dS·k,
//   dk = scale·dSᵀ·q, dv = Pᵀ·dout, summed over the NH/NKV query heads sharing a kv head.
//   backward_q: one thread per (b, h, t): writes dS (B, NH, T, T) scratch (only t >= j is read
//     back; the per-thread entry writes zeros above the diagonal, the workgroup entry skips them)
//     and dq. backward_kv: one thread per (b, kvh, j): dk, dv — each output written by exactly
//     one thread, fixed summation order: no atomics, deterministic.
// Per-thread entries (forward, backward_q, backward_kv): barrier-free, HS <= MAX_HS; best on CPU
// Vulkan. Workgroup entries (*_wg, below): one workgroup per row; best on real GPUs.
// Bindings: @binding(0) Params; each entry uses the subset of @binding(1..12) it touches.
// CPU reference: src/engine/ref/attention.ts
override WG: u32 = 64;
const MAX_HS: u32 = 128u;

struct Params { B: u32, Tq: u32, Tk: u32, TkMax: u32, NH: u32, NKV: u32, HS: u32, pos0: u32, scale: f32, writeProbs: u32, hasExtra: u32, writeLse: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> probs: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.B * p.NH * p.Tq) { return; }
  let t = idx % p.Tq;
  let h = (idx / p.Tq) % p.NH;
  let b = idx / (p.Tq * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let qbase = ((b * p.Tq + t) * p.NH + h) * p.HS;
  let nkeys = min(p.pos0 + t + 1u, p.Tk);
  var m = -3.0e38;
  var l = 0.0;
  var acc: array<f32, MAX_HS>;
  for (var d = 0u; d < p.HS; d++) { acc[d] = 0.0; }
  for (var j = 0u; j < nkeys; j++) {
    let kbase = ((b * p.TkMax + j) * p.NKV + kvh) * p.HS;
    var s = 0.0;
    for (var d = 0u; d < p.HS; d++) { s += q[qbase + d] * k[kbase + d]; }
    s *= p.scale;
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let e = exp(s - mNew);
    l = l * corr + e;
    for (var d = 0u; d < p.HS; d++) { acc[d] = acc[d] * corr + e * v[kbase + d]; }
    m = mNew;
  }
  let inv = 1.0 / l;
  for (var d = 0u; d < p.HS; d++) { out[qbase + d] = acc[d] * inv; }
  if (p.writeProbs != 0u) {
    let pbase = ((b * p.NH + h) * p.Tq + t) * p.Tk;
    for (var j = 0u; j < p.Tk; j++) {
      var pr = 0.0;
      if (j < nkeys) {
        let kbase = ((b * p.TkMax + j) * p.NKV + kvh) * p.HS;
        var s = 0.0;
        for (var d = 0u; d < p.HS; d++) { s += q[qbase + d] * k[kbase + d]; }
        pr = exp(s * p.scale - m) * inv;
      }
      probs[pbase + j] = pr;
    }
  }
}

@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read> pin: array<f32>;
@group(0) @binding(8) var<storage, read> dpExtra: array<f32>;
@group(0) @binding(9) var<storage, read_write> ds: array<f32>;
@group(0) @binding(10) var<storage, read_write> dq: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<f32>;
@group(0) @binding(12) var<storage, read_write> dv: array<f32>;

@compute @workgroup_size(WG)
fn backward_q(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let T = p.Tq;
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.B * p.NH * T) { return; }
  let t = idx % T;
  let h = (idx / T) % p.NH;
  let b = idx / (T * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let obase = ((b * T + t) * p.NH + h) * p.HS;
  let pbase = ((b * p.NH + h) * T + t) * T;
  // D = Σ_j P_j dP_j
  var D = 0.0;
  for (var j = 0u; j <= t; j++) {
    let vbase = ((b * T + j) * p.NKV + kvh) * p.HS;
    var dp = 0.0;
    for (var d = 0u; d < p.HS; d++) { dp += dout[obase + d] * v[vbase + d]; }
    if (p.hasExtra != 0u) { dp += dpExtra[pbase + j]; }
    D += pin[pbase + j] * dp;
  }
  var acc: array<f32, MAX_HS>;
  for (var d = 0u; d < p.HS; d++) { acc[d] = 0.0; }
  for (var j = 0u; j < T; j++) {
    var dsj = 0.0;
    if (j <= t) {
      let vbase = ((b * T + j) * p.NKV + kvh) * p.HS;
      var dp = 0.0;
      for (var d = 0u; d < p.HS; d++) { dp += dout[obase + d] * v[vbase + d]; }
      if (p.hasExtra != 0u) { dp += dpExtra[pbase + j]; }
      dsj = pin[pbase + j] * (dp - D);
      for (var d = 0u; d < p.HS; d++) { acc[d] += dsj * k[vbase + d]; }
    }
    ds[pbase + j] = dsj;
  }
  for (var d = 0u; d < p.HS; d++) { dq[obase + d] = acc[d] * p.scale; }
}

@compute @workgroup_size(WG)
fn backward_kv(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let T = p.Tq;
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.B * p.NKV * T) { return; }
  let j = idx % T;
  let kvh = (idx / T) % p.NKV;
  let b = idx / (T * p.NKV);
  let group = p.NH / p.NKV;
  var ak: array<f32, MAX_HS>;
  var av: array<f32, MAX_HS>;
  for (var d = 0u; d < p.HS; d++) { ak[d] = 0.0; av[d] = 0.0; }
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var t = j; t < T; t++) {
      let pidx = ((b * p.NH + h) * T + t) * T + j;
      let dsv = ds[pidx];
      let pv = pin[pidx];
      let obase = ((b * T + t) * p.NH + h) * p.HS;
      for (var d = 0u; d < p.HS; d++) {
        ak[d] += dsv * q[obase + d];
        av[d] += pv * dout[obase + d];
      }
    }
  }
  let kbase = ((b * T + j) * p.NKV + kvh) * p.HS;
  for (var d = 0u; d < p.HS; d++) {
    dk[kbase + d] = ak[d] * p.scale;
    dv[kbase + d] = av[d];
  }
}

// ----------------------------------------------------------------------------------------------
// Workgroup variants (real GPUs): one workgroup of WG threads per row, keys in chunks of WG, tree
// reductions in workgroup memory; HS <= 2·WG (each thread owns output dims lid and lid + WG).
// Dispatch: forward_wg / backward_q_wg: B·NH·Tq workgroups; backward_kv_wg: B·NKV·T workgroups,
// folded 2-D by gpu.grid(); row = wid.x + wid.y·nwg.x (workgroup-uniform, so barriers are legal).
// Same math and the same outputs (assigns) as the per-thread entries above.
var<workgroup> shv: array<f32, MAX_HS>; // the row's q (pre-scaled) or dout
var<workgroup> red: array<f32, WG>;     // reduction scratch
var<workgroup> cha: array<f32, WG>;     // per-chunk weights (probs / dS)
var<workgroup> chb: array<f32, WG>;     // per-chunk probs (backward_kv_wg)

fn reduce_max(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

fn reduce_sum(lid: u32, x: f32) -> f32 {
  red[lid] = x;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn forward_wg(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.B * p.NH * p.Tq) { return; }
  let t = row % p.Tq;
  let h = (row / p.Tq) % p.NH;
  let b = row / (p.Tq * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let qbase = ((b * p.Tq + t) * p.NH + h) * p.HS;
  let nkeys = min(p.pos0 + t + 1u, p.Tk);
  for (var d = lid; d < p.HS; d += WG) { shv[d] = q[qbase + d] * p.scale; }
  workgroupBarrier();
  var m = -3.0e38;
  var l = 0.0;
  var a0 = 0.0;
  var a1 = 0.0;
  let d0 = lid;
  let d1 = lid + WG;
  for (var c0 = 0u; c0 < nkeys; c0 += WG) {
    let j = c0 + lid;
    var s = -3.0e38;
    if (j < nkeys) {
      let kbase = ((b * p.TkMax + j) * p.NKV + kvh) * p.HS;
      s = 0.0;
      for (var d = 0u; d < p.HS; d++) { s += shv[d] * k[kbase + d]; }
    }
    let mNew = max(m, reduce_max(lid, s));
    let corr = exp(m - mNew);
    var e = 0.0;
    if (j < nkeys) { e = exp(s - mNew); }
    cha[lid] = e;
    l = l * corr + reduce_sum(lid, e); // the barriers inside also publish cha
    a0 *= corr;
    a1 *= corr;
    let cn = min(WG, nkeys - c0);
    for (var jj = 0u; jj < cn; jj++) {
      let w = cha[jj];
      let vbase = ((b * p.TkMax + c0 + jj) * p.NKV + kvh) * p.HS;
      if (d0 < p.HS) { a0 += w * v[vbase + d0]; }
      if (d1 < p.HS) { a1 += w * v[vbase + d1]; }
    }
    m = mNew;
    workgroupBarrier(); // cha is rewritten by the next chunk
  }
  let inv = 1.0 / l;
  if (d0 < p.HS) { out[qbase + d0] = a0 * inv; }
  if (d1 < p.HS) { out[qbase + d1] = a1 * inv; }
  if (p.writeProbs != 0u) {
    let pbase = ((b * p.NH + h) * p.Tq + t) * p.Tk;
    for (var j = lid; j < p.Tk; j += WG) {
      var pr = 0.0;
      if (j < nkeys) {
        let kbase = ((b * p.TkMax + j) * p.NKV + kvh) * p.HS;
        var s = 0.0;
        for (var d = 0u; d < p.HS; d++) { s += shv[d] * k[kbase + d]; }
        pr = exp(s - m) * inv;
      }
      probs[pbase + j] = pr;
    }
  }
}

// dP_j = dout·v_j (+ dprobsExtra), reading dout from shv
fn dprob(b: u32, h: u32, kvh: u32, t: u32, j: u32, T: u32) -> f32 {
  let vbase = ((b * T + j) * p.NKV + kvh) * p.HS;
  var dp = 0.0;
  for (var d = 0u; d < p.HS; d++) { dp += shv[d] * v[vbase + d]; }
  if (p.hasExtra != 0u) { dp += dpExtra[((b * p.NH + h) * T + t) * T + j]; }
  return dp;
}

@compute @workgroup_size(WG)
fn backward_q_wg(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let T = p.Tq;
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.B * p.NH * T) { return; }
  let t = row % T;
  let h = (row / T) % p.NH;
  let b = row / (T * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let obase = ((b * T + t) * p.NH + h) * p.HS;
  let pbase = ((b * p.NH + h) * T + t) * T;
  for (var d = lid; d < p.HS; d += WG) { shv[d] = dout[obase + d]; }
  workgroupBarrier();
  var part = 0.0;
  for (var j = lid; j <= t; j += WG) { part += pin[pbase + j] * dprob(b, h, kvh, t, j, T); }
  let D = reduce_sum(lid, part);
  var a0 = 0.0;
  var a1 = 0.0;
  let d0 = lid;
  let d1 = lid + WG;
  for (var c0 = 0u; c0 <= t; c0 += WG) {
    let j = c0 + lid;
    var dsj = 0.0;
    if (j <= t) {
      dsj = pin[pbase + j] * (dprob(b, h, kvh, t, j, T) - D);
      ds[pbase + j] = dsj;
    }
    cha[lid] = dsj;
    workgroupBarrier();
    let cn = min(WG, t + 1u - c0);
    for (var jj = 0u; jj < cn; jj++) {
      let w = cha[jj];
      let kbase = ((b * T + c0 + jj) * p.NKV + kvh) * p.HS;
      if (d0 < p.HS) { a0 += w * k[kbase + d0]; }
      if (d1 < p.HS) { a1 += w * k[kbase + d1]; }
    }
    workgroupBarrier();
  }
  if (d0 < p.HS) { dq[obase + d0] = a0 * p.scale; }
  if (d1 < p.HS) { dq[obase + d1] = a1 * p.scale; }
}

@compute @workgroup_size(WG)
fn backward_kv_wg(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let T = p.Tq;
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.B * p.NKV * T) { return; }
  let j = row % T;
  let kvh = (row / T) % p.NKV;
  let b = row / (T * p.NKV);
  let group = p.NH / p.NKV;
  var k0 = 0.0;
  var k1 = 0.0;
  var v0 = 0.0;
  var v1 = 0.0;
  let d0 = lid;
  let d1 = lid + WG;
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var c0 = j; c0 < T; c0 += WG) {
      let t = c0 + lid;
      var dsv = 0.0;
      var pv = 0.0;
      if (t < T) {
        let pidx = ((b * p.NH + h) * T + t) * T + j;
        dsv = ds[pidx];
        pv = pin[pidx];
      }
      cha[lid] = dsv;
      chb[lid] = pv;
      workgroupBarrier();
      let cn = min(WG, T - c0);
      for (var tt = 0u; tt < cn; tt++) {
        let obase = ((b * T + c0 + tt) * p.NH + h) * p.HS;
        let wds = cha[tt];
        let wp = chb[tt];
        if (d0 < p.HS) { k0 += wds * q[obase + d0]; v0 += wp * dout[obase + d0]; }
        if (d1 < p.HS) { k1 += wds * q[obase + d1]; v1 += wp * dout[obase + d1]; }
      }
      workgroupBarrier();
    }
  }
  let kbase = ((b * T + j) * p.NKV + kvh) * p.HS;
  if (d0 < p.HS) { dk[kbase + d0] = k0 * p.scale; dv[kbase + d0] = v0; }
  if (d1 < p.HS) { dk[kbase + d1] = k1 * p.scale; dv[kbase + d1] = v1; }
}

// ----------------------------------------------------------------------------------------------
// Flash (online-softmax) entries: no T×T matrix, O(T) memory. Used when no loss or metric needs
// the probabilities. The head size is the compile-time constant HSC (= p.HS), so the loops over
// the head dimension unroll and q, the accumulators and the scores stay in registers.
//   flash_forward (per thread, barrier-free): one thread per (b, h, t), keys in blocks of 4 (one
//     max/rescale per block: 5 exps per 4 keys, not 8). Dispatch B·NH·Tq threads. (Measured slower
//     than flash_forward_tiled even on lavapipe and SwiftShader: kept selectable, not the default.)
//   flash_forward_tiled (real GPUs): one workgroup of WG threads = WG consecutive query rows of one
//     (b, h); K/V tiles of KT keys are loaded once into workgroup memory and read by all WG rows.
//     Dispatch B·NH·ceil(Tq/WG) workgroups (folded 2-D by gpu.grid()).
//   Both optionally write lse[b, h, t] = max + log(sum) (scaled scores) when p.writeLse != 0, for the flash backward.
//   flash_backward_q (per thread (b, h, t); training: Tq = Tk = TkMax = T, pos0 = 0):
//     D_t = dout_t·out_t (= rowsum(P∘dP)), written to drow; P_tj = exp(scale·q_t·k_j − lse_t)
//     recomputed; dS = P(dout·v_j − D); dq = scale·Σ_j dS_tj k_j (assigns).
//   flash_backward_kv (per thread (b, kvh, j), after flash_backward_q): dk = scale·Σ dS q_t,
//     dv = Σ P dout_t over t >= j and the NH/NKV query heads (assigns). Deterministic, no atomics.
override HSC: u32 = 8u;
override HS4: u32 = (HSC + 3u) / 4u;
override KT: u32 = 32u; // flash_forward_tiled: keys per tile (KT·HSC·8 bytes of workgroup memory)
const MAX_HS4: u32 = 32u;
// flash_forward, flash_backward_q/kv: heads larger than UNROLL_HS run their vec4 loops to the
// uniform head size instead of the compiled-in HS4, so the compiler cannot unroll them fully. The
// wrapper sets 32 on CPU Vulkan: lavapipe's LLVM took 193 s to compile the fully unrolled forward
// at HS 128 and 37 s the backward at HS 64 (cold shader cache), 0.6 s and 1 s looped, at the same
// run time there. Real GPUs keep 128 (unrolled: the per-thread arrays stay in registers).
override UNROLL_HS: u32 = 128u;

@group(0) @binding(13) var<storage, read_write> lse: array<f32>; // (B, NH, Tq)
@group(0) @binding(14) var<storage, read_write> drow: array<f32>; // (B, NH, T) D_t

fn ld4q(i: u32, d4: u32) -> vec4f {
  let o = i + d4 * 4u;
  if (HSC % 4u == 0u || d4 * 4u + 4u <= HSC) { return vec4f(q[o], q[o + 1u], q[o + 2u], q[o + 3u]); }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { r[c] = q[o + c]; } }
  return r;
}
fn ld4k(i: u32, d4: u32) -> vec4f {
  let o = i + d4 * 4u;
  if (HSC % 4u == 0u || d4 * 4u + 4u <= HSC) { return vec4f(k[o], k[o + 1u], k[o + 2u], k[o + 3u]); }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { r[c] = k[o + c]; } }
  return r;
}
fn ld4v(i: u32, d4: u32) -> vec4f {
  let o = i + d4 * 4u;
  if (HSC % 4u == 0u || d4 * 4u + 4u <= HSC) { return vec4f(v[o], v[o + 1u], v[o + 2u], v[o + 3u]); }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { r[c] = v[o + c]; } }
  return r;
}
fn ld4dout(i: u32, d4: u32) -> vec4f {
  let o = i + d4 * 4u;
  if (HSC % 4u == 0u || d4 * 4u + 4u <= HSC) { return vec4f(dout[o], dout[o + 1u], dout[o + 2u], dout[o + 3u]); }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { r[c] = dout[o + c]; } }
  return r;
}
fn ld4out(i: u32, d4: u32) -> vec4f {
  let o = i + d4 * 4u;
  if (HSC % 4u == 0u || d4 * 4u + 4u <= HSC) { return vec4f(out[o], out[o + 1u], out[o + 2u], out[o + 3u]); }
  var r = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { r[c] = out[o + c]; } }
  return r;
}
fn st4out(i: u32, d4: u32, x: vec4f) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { out[i + d4 * 4u + c] = x[c]; } }
}
fn st4dq(i: u32, d4: u32, x: vec4f) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { dq[i + d4 * 4u + c] = x[c]; } }
}
fn st4dk(i: u32, d4: u32, x: vec4f) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { dk[i + d4 * 4u + c] = x[c]; } }
}
fn st4dv(i: u32, d4: u32, x: vec4f) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { dv[i + d4 * 4u + c] = x[c]; } }
}
fn hsum(x: vec4f) -> f32 { return (x.x + x.y) + (x.z + x.w); }

// One key (row kb of K and V) into a query row's online softmax: score s = q·k, then the running
// max m, normaliser l and output accumulator rescaled to the new max (flash_forward's ragged tail,
// flash_split's per-thread keys).
fn online_key(kb: u32, hs4: u32, qv: ptr<function, array<vec4f, MAX_HS4>>, acc: ptr<function, array<vec4f, MAX_HS4>>, m: ptr<function, f32>, l: ptr<function, f32>) {
  var s4 = vec4f(0.0);
  for (var d4 = 0u; d4 < hs4; d4++) { s4 += (*qv)[d4] * ld4k(kb, d4); }
  let s = hsum(s4);
  let mNew = max(*m, s);
  let corr = exp(*m - mNew);
  let e = exp(s - mNew);
  *l = *l * corr + e;
  for (var d4 = 0u; d4 < hs4; d4++) { (*acc)[d4] = (*acc)[d4] * corr + e * ld4v(kb, d4); }
  *m = mNew;
}

@compute @workgroup_size(WG)
fn flash_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.B * p.NH * p.Tq) { return; }
  let t = idx % p.Tq;
  let h = (idx / p.Tq) % p.NH;
  let b = idx / (p.Tq * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let qbase = ((b * p.Tq + t) * p.NH + h) * HSC;
  let nkeys = min(p.pos0 + t + 1u, p.Tk);
  let ks = p.NKV * HSC; // k/v row stride
  let hs4 = select(HS4, (p.HS + 3u) / 4u, HSC > UNROLL_HS);
  var qv: array<vec4f, MAX_HS4>;
  var acc: array<vec4f, MAX_HS4>;
  for (var d4 = 0u; d4 < hs4; d4++) { qv[d4] = ld4q(qbase, d4) * p.scale; acc[d4] = vec4f(0.0); }
  var m = -3.0e38;
  var l = 0.0;
  var kb = b * p.TkMax * ks + kvh * HSC;
  var j = 0u;
  for (; j + 4u <= nkeys; j += 4u) {
    var s0 = vec4f(0.0);
    var s1 = vec4f(0.0);
    var s2 = vec4f(0.0);
    var s3 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) {
      let qd = qv[d4];
      s0 += qd * ld4k(kb, d4);
      s1 += qd * ld4k(kb + ks, d4);
      s2 += qd * ld4k(kb + 2u * ks, d4);
      s3 += qd * ld4k(kb + 3u * ks, d4);
    }
    let s = vec4f(hsum(s0), hsum(s1), hsum(s2), hsum(s3));
    let mNew = max(m, max(max(s.x, s.y), max(s.z, s.w)));
    let corr = exp(m - mNew);
    let e = exp(s - vec4f(mNew));
    l = l * corr + hsum(e);
    for (var d4 = 0u; d4 < hs4; d4++) {
      acc[d4] = acc[d4] * corr + e.x * ld4v(kb, d4) + e.y * ld4v(kb + ks, d4) + e.z * ld4v(kb + 2u * ks, d4) + e.w * ld4v(kb + 3u * ks, d4);
    }
    m = mNew;
    kb += 4u * ks;
  }
  for (; j < nkeys; j++) {
    online_key(kb, hs4, &qv, &acc, &m, &l);
    kb += ks;
  }
  let inv = 1.0 / l;
  for (var d4 = 0u; d4 < hs4; d4++) { st4out(qbase, d4, acc[d4] * inv); }
  if (p.writeLse != 0u) { lse[(b * p.NH + h) * p.Tq + t] = m + log(l); }
}

var<workgroup> tk: array<vec4f, KT * HS4>;
var<workgroup> tv: array<vec4f, KT * HS4>;

@compute @workgroup_size(WG)
fn flash_forward_tiled(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let nqt = (p.Tq + WG - 1u) / WG; // query tiles per (b, h)
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.B * p.NH * nqt) { return; } // workgroup-uniform
  let t0 = (tile % nqt) * WG;
  let h = (tile / nqt) % p.NH;
  let b = tile / (nqt * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let t = t0 + lid;
  let live = t < p.Tq;
  let tq = min(t, p.Tq - 1u);
  let qbase = ((b * p.Tq + tq) * p.NH + h) * HSC;
  let nkeys = min(p.pos0 + tq + 1u, p.Tk);
  let kmax = min(p.pos0 + min(t0 + WG, p.Tq), p.Tk); // keys any row of the tile sees (uniform)
  let ks = p.NKV * HSC;
  var qv: array<vec4f, MAX_HS4>;
  var acc: array<vec4f, MAX_HS4>;
  for (var d4 = 0u; d4 < HS4; d4++) { qv[d4] = ld4q(qbase, d4) * p.scale; acc[d4] = vec4f(0.0); }
  var m = -3.0e38;
  var l = 0.0;
  let kb0 = b * p.TkMax * ks + kvh * HSC;
  for (var c0 = 0u; c0 < kmax; c0 += KT) {
    let cn = min(KT, kmax - c0);
    for (var i = lid; i < cn * HS4; i += WG) {
      let jj = i / HS4;
      let d4 = i % HS4;
      let o = kb0 + (c0 + jj) * ks;
      tk[i] = ld4k(o, d4);
      tv[i] = ld4v(o, d4);
    }
    workgroupBarrier();
    let mine = min(cn, select(0u, nkeys - c0, nkeys > c0));
    for (var jj = 0u; jj < mine; jj++) {
      var s4 = vec4f(0.0);
      for (var d4 = 0u; d4 < HS4; d4++) { s4 += qv[d4] * tk[jj * HS4 + d4]; }
      let s = hsum(s4);
      let mNew = max(m, s);
      let corr = exp(m - mNew);
      let e = exp(s - mNew);
      l = l * corr + e;
      for (var d4 = 0u; d4 < HS4; d4++) { acc[d4] = acc[d4] * corr + e * tv[jj * HS4 + d4]; }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (live) {
    let inv = 1.0 / l;
    for (var d4 = 0u; d4 < HS4; d4++) { st4out(qbase, d4, acc[d4] * inv); }
    if (p.writeLse != 0u) { lse[(b * p.NH + h) * p.Tq + t] = m + log(l); }
  }
}

@compute @workgroup_size(WG)
fn flash_backward_q(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let hs4 = select(HS4, (p.HS + 3u) / 4u, HSC > UNROLL_HS);
  let T = p.Tq;
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.B * p.NH * T) { return; }
  let t = idx % T;
  let h = (idx / T) % p.NH;
  let b = idx / (T * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let obase = ((b * T + t) * p.NH + h) * HSC;
  let row = (b * p.NH + h) * T + t;
  let ks = p.NKV * HSC;
  var qv: array<vec4f, MAX_HS4>;
  var gv: array<vec4f, MAX_HS4>;
  var acc: array<vec4f, MAX_HS4>;
  var D4 = vec4f(0.0);
  for (var d4 = 0u; d4 < hs4; d4++) {
    qv[d4] = ld4q(obase, d4) * p.scale;
    gv[d4] = ld4dout(obase, d4);
    D4 += gv[d4] * ld4out(obase, d4);
    acc[d4] = vec4f(0.0);
  }
  let D = hsum(D4);
  drow[row] = D;
  let L = lse[row];
  var kb = b * T * ks + kvh * HSC;
  for (var j = 0u; j <= t; j++) {
    var s4 = vec4f(0.0);
    var g4 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * ld4k(kb, d4); g4 += gv[d4] * ld4v(kb, d4); }
    let pr = exp(hsum(s4) - L);
    let dsj = pr * (hsum(g4) - D);
    for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * ld4k(kb, d4); }
    kb += ks;
  }
  for (var d4 = 0u; d4 < hs4; d4++) { st4dq(obase, d4, acc[d4] * p.scale); }
}

@compute @workgroup_size(WG)
fn flash_backward_kv(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let hs4 = select(HS4, (p.HS + 3u) / 4u, HSC > UNROLL_HS);
  let T = p.Tq;
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.B * p.NKV * T) { return; }
  let j = idx % T;
  let kvh = (idx / T) % p.NKV;
  let b = idx / (T * p.NKV);
  let group = p.NH / p.NKV;
  let kbase = ((b * T + j) * p.NKV + kvh) * HSC;
  var kv: array<vec4f, MAX_HS4>;
  var vv: array<vec4f, MAX_HS4>;
  var ak: array<vec4f, MAX_HS4>;
  var av: array<vec4f, MAX_HS4>;
  for (var d4 = 0u; d4 < hs4; d4++) {
    kv[d4] = ld4k(kbase, d4) * p.scale;
    vv[d4] = ld4v(kbase, d4);
    ak[d4] = vec4f(0.0);
    av[d4] = vec4f(0.0);
  }
  let qs = p.NH * HSC;
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    var ob = ((b * T + j) * p.NH + h) * HSC;
    var row = (b * p.NH + h) * T + j;
    for (var t = j; t < T; t++) {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * ld4q(ob, d4); g4 += vv[d4] * ld4dout(ob, d4); }
      let pr = exp(hsum(s4) - lse[row]);
      let dsv = pr * (hsum(g4) - drow[row]);
      for (var d4 = 0u; d4 < hs4; d4++) {
        ak[d4] += dsv * ld4q(ob, d4);
        av[d4] += pr * ld4dout(ob, d4);
      }
      ob += qs;
      row += 1u;
    }
  }
  for (var d4 = 0u; d4 < hs4; d4++) {
    st4dk(kbase, d4, ak[d4] * p.scale);
    st4dv(kbase, d4, av[d4]);
  }
}

// flash_split (flash-decoding): one workgroup of WG threads per query row (b, t, h); thread i takes
// keys i, i + WG, ... with its own running max, sum and head accumulator (online softmax, as
// flash_forward), then the WG partial states merge in workgroup memory: weights exp(m_i − M) from
// the row's max M, the sums by tree reduction, the accumulators column by column. For decoding
// (Tq = 1) on GPUs: flash_tiled keeps one query row per thread, so at Tq = 1 one thread of its WG
// walks all Tk keys per (b, h) (B·NH threads in all); here B·NH·WG threads share them.
// WG·ceil(HS/4) vec4 of workgroup memory (the wrapper takes WG = 16 where 32 would not fit). Writes out and lse as
// flash_forward does. dispatch gpu.grid(B·NH·Tq) workgroups.
var<workgroup> sacc: array<vec4f, WG * HS4>;

@compute @workgroup_size(WG)
fn flash_split(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.B * p.NH * p.Tq) { return; } // workgroup-uniform
  let t = row % p.Tq;
  let h = (row / p.Tq) % p.NH;
  let b = row / (p.Tq * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let qbase = ((b * p.Tq + t) * p.NH + h) * HSC;
  let nkeys = min(p.pos0 + t + 1u, p.Tk);
  let ks = p.NKV * HSC;
  let hs4 = select(HS4, (p.HS + 3u) / 4u, HSC > UNROLL_HS); // looped above UNROLL_HS (CPU compile time)
  var qv: array<vec4f, MAX_HS4>;
  var acc: array<vec4f, MAX_HS4>;
  for (var d4 = 0u; d4 < hs4; d4++) { qv[d4] = ld4q(qbase, d4) * p.scale; acc[d4] = vec4f(0.0); }
  var m = -3.0e38; // a thread without keys keeps this: its weight below is exp(-3e38 - M) = 0
  var l = 0.0;
  let kb0 = b * p.TkMax * ks + kvh * HSC;
  for (var j = lid; j < nkeys; j += WG) { online_key(kb0 + j * ks, hs4, &qv, &acc, &m, &l); }
  let mRow = reduce_max(lid, m);
  let wgt = exp(m - mRow);
  let lRow = reduce_sum(lid, l * wgt);
  for (var d4 = 0u; d4 < hs4; d4++) { sacc[lid * hs4 + d4] = acc[d4] * wgt; }
  workgroupBarrier();
  let inv = 1.0 / lRow;
  for (var d4 = lid; d4 < hs4; d4 += WG) {
    var o = vec4f(0.0);
    for (var i = 0u; i < WG; i++) { o += sacc[i * hs4 + d4]; }
    st4out(qbase, d4, o * inv);
  }
  if (lid == 0u && p.writeLse != 0u) { lse[(b * p.NH + h) * p.Tq + t] = mRow + log(lRow); }
}
