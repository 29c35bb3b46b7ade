// Quantization on the GPU, for QAT (the student re-quantizes its fp32 latent weights every step)
// and for PTQ. Layout and scale rules: src/engine/quant/pack.ts. Rounding: round() = ties to even.
//   group_params: one thread per (n, block): min/max (or absmax) over the block's valid elements,
//                 times clip ratio → scale, zero (skipped when scales are learned: LSQ).
//   pack:         one thread per (n, word): codes = clamp(round(w/scale) + zero, 0, qmax), packed;
//                 padding codes of a ragged last block = zero point.
//   dequant:      one thread per element: wq = (code − zero)·scale (assigns).
//   ste:          dw += dwq where the weight's rounded code is inside [0, qmax] before clamping
//                 (PyTorch fake_quantize's mask), else nothing (accumulates).
//   ste_lsq:      the LSQ student's weight backward, one thread per (n, block): ste's dw, and
//                 dscale += gscale · Σ dwq·(round(w/s) − w/s inside; qn or qp at the clamps),
//                 with qn = −zero, qp = qmax − zero, gscale = 1/sqrt(nValid · qp) (LSQ, Esser et
//                 al. 2020) (both accumulate); one pass reads w and dwq once.
// CPU reference: src/engine/ref/quant.ts
override WG: u32 = 64;
struct Params { N: u32, K: u32, group: u32, nBlocks: u32, wordsPerRow: u32, bits: u32, cpw: u32, sym: u32, clip: f32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> codes: array<u32>;
@group(0) @binding(3) var<storage, read_write> scales: array<f32>;
@group(0) @binding(4) var<storage, read_write> zeros: array<f32>;
@group(0) @binding(5) var<storage, read_write> wq: array<f32>;
@group(0) @binding(6) var<storage, read> dwq: array<f32>;
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;
@group(0) @binding(8) var<storage, read_write> dscale: array<f32>;

fn lin(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }
fn qmax() -> u32 { return (1u << p.bits) - 1u; }

@compute @workgroup_size(WG)
fn group_params(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= p.N * p.nBlocks) { return; }
  let n = i / p.nBlocks;
  let b = i % p.nBlocks;
  let k0 = b * p.group;
  let k1 = min(p.K, k0 + p.group);
  let qm = f32(qmax());
  var scale = 1.0;
  var zero = 0.0;
  if (p.sym != 0u) {
    var amax = 0.0;
    for (var k = k0; k < k1; k++) { amax = max(amax, abs(w[n * p.K + k])); }
    amax = amax * p.clip;
    let half = f32(1u << (p.bits - 1u));
    if (amax > 0.0) { scale = amax / (half - 1.0); }
    zero = half;
  } else {
    var lo = 0.0;
    var hi = 0.0;
    for (var k = k0; k < k1; k++) { let v = w[n * p.K + k]; lo = min(lo, v); hi = max(hi, v); }
    lo = lo * p.clip;
    hi = hi * p.clip;
    if (hi - lo > 0.0) {
      scale = (hi - lo) / qm;
      zero = clamp(round(-lo / scale), 0.0, qm);
    }
  }
  scales[i] = scale;
  zeros[i] = zero;
}

@compute @workgroup_size(WG)
fn pack(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= p.N * p.wordsPerRow) { return; }
  let n = i / p.wordsPerRow;
  let wi = i % p.wordsPerRow;
  let qm = f32(qmax());
  var word = 0u;
  for (var t = 0u; t < p.cpw; t++) {
    let j = wi * p.cpw + t;
    let b = j / p.group;
    if (b >= p.nBlocks) { break; }
    let s = scales[n * p.nBlocks + b];
    let z = zeros[n * p.nBlocks + b];
    var c = z;
    if (j < p.K) { c = clamp(round(w[n * p.K + j] / s) + z, 0.0, qm); }
    word = word | (u32(c) << (t * p.bits));
  }
  codes[i] = word;
}

fn code_of(n: u32, j: u32) -> f32 {
  let word = codes[n * p.wordsPerRow + j / p.cpw];
  return f32((word >> ((j % p.cpw) * p.bits)) & qmax());
}

@compute @workgroup_size(WG)
fn dequant(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= p.N * p.K) { return; }
  let n = i / p.K;
  let k = i % p.K;
  let sb = n * p.nBlocks + k / p.group;
  wq[i] = (code_of(n, k) - zeros[sb]) * scales[sb];
}

@compute @workgroup_size(WG)
fn ste(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= p.N * p.K) { return; }
  let n = i / p.K;
  let k = i % p.K;
  let sb = n * p.nBlocks + k / p.group;
  let q = round(w[i] / scales[sb]) + zeros[sb];
  if (q >= 0.0 && q <= f32(qmax())) { dw[i] = dw[i] + dwq[i]; }
}

@compute @workgroup_size(WG)
fn ste_lsq(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = lin(gid, nwg);
  if (i >= p.N * p.nBlocks) { return; }
  let n = i / p.nBlocks;
  let b = i % p.nBlocks;
  let k0 = b * p.group;
  let k1 = min(p.K, k0 + p.group);
  let s = scales[i];
  let z = zeros[i];
  let qm = f32(qmax());
  let qn = -z;
  let qp = qm - z;
  var acc = 0.0;
  for (var k = k0; k < k1; k++) {
    let e = n * p.K + k;
    let v = w[e] / s;
    let r = round(v);
    let g = dwq[e];
    // ste's mask (round(w/s) + z inside [0, qmax])
    let q = r + z;
    if (q >= 0.0 && q <= qm) { dw[e] = dw[e] + g; }
    var d = r - v;
    if (r < qn) { d = qn; } else if (r > qp) { d = qp; }
    acc += g * d;
  }
  dscale[i] = dscale[i] + acc / sqrt(f32(k1 - k0) * max(qp, 1.0));
}
