// Causal scaled-dot-product attention with grouped-query heads (head h reads kv head h / (NH/NKV)).
// Layouts: q (B, Tq, NH, HS); k, v (B, TkMax, NKV, HS) (TkMax = row capacity: T when training,
// the KV cache size when decoding); out (B, Tq, NH, HS); probs (B, NH, Tq, Tk) (zero above the
// causal diagonal). Query t sits at absolute position pos0 + t and sees keys 0..pos0+t.
// forward: one thread per (b, h, t); online softmax (fp32, max-subtracted), HS <= 128.
// backward (training: Tq = Tk = T, pos0 = 0), from the saved probs P:
//   dP = dout·vᵀ (+ dprobsExtra),  dS = P ∘ (dP − rowsum(P ∘ dP)),  dq = scale·dS·k,
//   dk = scale·dSᵀ·q, dv = Pᵀ·dout, summed over the query heads sharing a kv head (all assign).
//   backward_q: one thread per (b, h, t): writes dS (B, NH, T, T) scratch and dq.
//   backward_kv: one thread per (b, kvh, j): dk, dv — no atomics, deterministic.
// CPU reference: src/engine/ref/attention.ts
override WG: u32 = 64;
const MAX_HS: u32 = 128u;

struct Params { B: u32, Tq: u32, Tk: u32, TkMax: u32, NH: u32, NKV: u32, HS: u32, pos0: u32, scale: f32, writeProbs: u32, hasExtra: u32, _p: u32 }
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
