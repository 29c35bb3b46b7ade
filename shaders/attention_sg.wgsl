// Flash attention forward for CPU Vulkan with 8-wide subgroups (lavapipe): out = softmax(q·kᵀ·scale,
// causal) · v without the T×T matrix, and lse = m + log l per row (the flash backward's saved
// state). Same Params, bindings and results as flash_forward / flash_forward_tiled in
// shaders/attention.wgsl (online softmax; keys j <= pos0 + t, j < Tk).
// Why: lavapipe runs the 8 invocations of a subgroup as the lanes of one SIMD register and turns
// every load whose address it cannot prove uniform into a loop over the lanes, one scalar load each
// (README, "Kernel speed"): flash_forward_tiled's K/V tile reads (workgroup memory at a loop index)
// pay that per key. Here a workgroup is one subgroup of 8 query rows of one (b, h); for each block
// of 8 keys lane i loads key c0 + i's k and v once and the block is shared by subgroupBroadcast
// (register moves), 8 keys' scores are taken first and (m, l, acc) rescaled once per block (one exp
// per key, FlashAttention-2's order). No barriers, no workgroup memory.
// Entries: flash_forward_sg; flash_backward_q_sg and flash_backward_kv_sg (end of file).
// The wrapper runs these below Tq (T) = 32; from 32 it runs their 32-row forms in
// shaders/attention_sg4.wgsl (4 rows per lane, the same per-row operations).
// flash_forward_sg: dispatch gpu.grid(B·NH·ceil(Tq / 8)) workgroups of 8 (subgroup size 8:
// the wrapper checks). Unrolled by hand 8x: subgroupBroadcast needs a constant lane.
// CPU reference: src/engine/ref/attention.ts
//#include "attention_sg_common"

@compute @workgroup_size(8)
fn flash_forward_sg(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let hs4 = headVec4s();
  let nqt = (p.Tq + 7u) / 8u; // query blocks per (b, h)
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.B * p.NH * nqt) { return; } // the whole subgroup: broadcasts stay in uniform control flow
  let t0 = (tile % nqt) * 8u;
  let h = (tile / nqt) % p.NH;
  let b = tile / (nqt * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let t = t0 + sl;
  let live = t < p.Tq;
  let tq = min(t, p.Tq - 1u); // dead lanes compute a copy of the last row and store nothing
  let qbase = ((b * p.Tq + tq) * p.NH + h) * HSC;
  let nkeys = min(p.pos0 + tq + 1u, p.Tk);
  let kmax = min(p.pos0 + min(t0 + 8u, p.Tq), p.Tk); // keys any lane sees (uniform)
  let ks = p.NKV * HSC; // k/v row stride
  var qv: array<vec4f, MAX_HS4>;
  var acc: array<vec4f, MAX_HS4>;
  var kl: array<vec4f, MAX_HS4>;
  var vl: array<vec4f, MAX_HS4>;
  for (var d4 = 0u; d4 < hs4; d4++) { qv[d4] = ld4q(qbase, d4) * p.scale; acc[d4] = vec4f(0.0); }
  var m = NEG;
  var l = 0.0;
  let kb0 = b * p.TkMax * ks + kvh * HSC;
  for (var c0 = 0u; c0 < kmax; c0 += 8u) {
    // lane sl holds key c0 + sl (clamped into range past kmax; masked below)
    let kb = kb0 + min(c0 + sl, kmax - 1u) * ks;
    for (var d4 = 0u; d4 < hs4; d4++) { kl[d4] = ld4k(kb, d4); vl[d4] = ld4v(kb, d4); }
    var a0 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a0 += qv[d4] * subgroupBroadcast(kl[d4], 0u); }
    let ok0 = c0 + 0u < nkeys;
    let s0 = select(NEG, hsum(a0), ok0);
    var a1 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a1 += qv[d4] * subgroupBroadcast(kl[d4], 1u); }
    let ok1 = c0 + 1u < nkeys;
    let s1 = select(NEG, hsum(a1), ok1);
    var a2 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a2 += qv[d4] * subgroupBroadcast(kl[d4], 2u); }
    let ok2 = c0 + 2u < nkeys;
    let s2 = select(NEG, hsum(a2), ok2);
    var a3 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a3 += qv[d4] * subgroupBroadcast(kl[d4], 3u); }
    let ok3 = c0 + 3u < nkeys;
    let s3 = select(NEG, hsum(a3), ok3);
    var a4 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a4 += qv[d4] * subgroupBroadcast(kl[d4], 4u); }
    let ok4 = c0 + 4u < nkeys;
    let s4 = select(NEG, hsum(a4), ok4);
    var a5 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a5 += qv[d4] * subgroupBroadcast(kl[d4], 5u); }
    let ok5 = c0 + 5u < nkeys;
    let s5 = select(NEG, hsum(a5), ok5);
    var a6 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a6 += qv[d4] * subgroupBroadcast(kl[d4], 6u); }
    let ok6 = c0 + 6u < nkeys;
    let s6 = select(NEG, hsum(a6), ok6);
    var a7 = vec4f(0.0);
    for (var d4 = 0u; d4 < hs4; d4++) { a7 += qv[d4] * subgroupBroadcast(kl[d4], 7u); }
    let ok7 = c0 + 7u < nkeys;
    let s7 = select(NEG, hsum(a7), ok7);
    let mt = max(m, max(max(max(s0, s1), max(s2, s3)), max(max(s4, s5), max(s6, s7))));
    let corr = exp(m - mt);
    let e0 = select(0.0, exp(s0 - mt), ok0);
    let e1 = select(0.0, exp(s1 - mt), ok1);
    let e2 = select(0.0, exp(s2 - mt), ok2);
    let e3 = select(0.0, exp(s3 - mt), ok3);
    let e4 = select(0.0, exp(s4 - mt), ok4);
    let e5 = select(0.0, exp(s5 - mt), ok5);
    let e6 = select(0.0, exp(s6 - mt), ok6);
    let e7 = select(0.0, exp(s7 - mt), ok7);
    l = l * corr + (((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7)));
    for (var d4 = 0u; d4 < hs4; d4++) {
      acc[d4] = acc[d4] * corr + e0 * subgroupBroadcast(vl[d4], 0u) + e1 * subgroupBroadcast(vl[d4], 1u) + e2 * subgroupBroadcast(vl[d4], 2u) + e3 * subgroupBroadcast(vl[d4], 3u) + e4 * subgroupBroadcast(vl[d4], 4u) + e5 * subgroupBroadcast(vl[d4], 5u) + e6 * subgroupBroadcast(vl[d4], 6u) + e7 * subgroupBroadcast(vl[d4], 7u);
    }
    m = mt;
  }
  if (live) {
    let inv = 1.0 / l;
    for (var d4 = 0u; d4 < hs4; d4++) { st4out(qbase, d4, acc[d4] * inv); }
    if (p.writeLse != 0u) { lse[(b * p.NH + h) * p.Tq + t] = m + log(l); }
  }
}

// ---------------------------------------------------------------------------------------------
// The flash backward in the same layout (training: Tq = Tk = TkMax = T, pos0 = 0). Same results
// as flash_backward_q / flash_backward_kv in shaders/attention.wgsl (there: the formulas).
//   flash_backward_q_sg: a subgroup = 8 query rows of one (b, h); for each block of 8 keys lane i
//     loads key c0 + i's k and v, shared by broadcast. Writes drow (D_t) and dq (assigns).
//     Dispatch gpu.grid(B·NH·ceil(T / 8)) workgroups of 8.
//   flash_backward_kv_sg (after flash_backward_q_sg: reads drow): a subgroup = 8 keys of one
//     (b, kvh); for each block of 8 queries lane i loads query c0 + i's q, dout, lse and D, shared
//     by broadcast; the NH/NKV query heads in turn. dk, dv (assigns).
//     Dispatch gpu.grid(B·NKV·ceil(T / 8)) workgroups of 8.
@compute @workgroup_size(8)
fn flash_backward_q_sg(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let hs4 = headVec4s();
  let T = p.Tq;
  let nqt = (T + 7u) / 8u;
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.B * p.NH * nqt) { return; } // the whole subgroup
  let t0 = (tile % nqt) * 8u;
  let h = (tile / nqt) % p.NH;
  let b = tile / (nqt * p.NH);
  let kvh = h / (p.NH / p.NKV);
  let t = t0 + sl;
  let live = t < T;
  let tq = min(t, T - 1u);
  let obase = ((b * T + tq) * p.NH + h) * HSC;
  let row = (b * p.NH + h) * T + tq;
  let ks = p.NKV * HSC;
  var qv: array<vec4f, MAX_HS4>;
  var gv: array<vec4f, MAX_HS4>;
  var acc: array<vec4f, MAX_HS4>;
  var kl: array<vec4f, MAX_HS4>;
  var vl: array<vec4f, MAX_HS4>;
  var D4 = vec4f(0.0);
  for (var d4 = 0u; d4 < hs4; d4++) {
    qv[d4] = ld4q(obase, d4) * p.scale;
    gv[d4] = ld4dout(obase, d4);
    D4 += gv[d4] * ld4o(obase, d4);
    acc[d4] = vec4f(0.0);
  }
  let D = hsum(D4);
  if (live) { drow[row] = D; }
  let L = lse[row];
  let kmax = min(t0 + 8u, T); // keys any lane sees (uniform)
  let kb0 = b * T * ks + kvh * HSC;
  for (var c0 = 0u; c0 < kmax; c0 += 8u) {
    let kb = kb0 + min(c0 + sl, kmax - 1u) * ks;
    for (var d4 = 0u; d4 < hs4; d4++) { kl[d4] = ld4k(kb, d4); vl[d4] = ld4v(kb, d4); }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 0u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 0u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 0u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 0u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 1u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 1u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 1u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 1u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 2u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 2u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 2u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 2u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 3u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 3u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 3u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 3u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 4u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 4u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 4u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 4u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 5u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 5u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 5u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 5u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 6u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 6u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 6u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 6u); }
    }
    {
      var s4 = vec4f(0.0);
      var g4 = vec4f(0.0);
      for (var d4 = 0u; d4 < hs4; d4++) { s4 += qv[d4] * subgroupBroadcast(kl[d4], 7u); g4 += gv[d4] * subgroupBroadcast(vl[d4], 7u); }
      let pr = select(0.0, exp(hsum(s4) - L), c0 + 7u <= tq);
      let dsj = pr * (hsum(g4) - D);
      for (var d4 = 0u; d4 < hs4; d4++) { acc[d4] += dsj * subgroupBroadcast(kl[d4], 7u); }
    }
  }
  if (live) {
    for (var d4 = 0u; d4 < hs4; d4++) {
      for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < HSC) { dq[obase + d4 * 4u + c] = acc[d4][c] * p.scale; } }
    }
  }
}

@compute @workgroup_size(8)
fn flash_backward_kv_sg(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  let hs4 = headVec4s();
  let T = p.Tq;
  let nkt = (T + 7u) / 8u;
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= p.B * p.NKV * nkt) { return; } // the whole subgroup
  let j0 = (tile % nkt) * 8u;
  let kvh = (tile / nkt) % p.NKV;
  let b = tile / (nkt * p.NKV);
  let group = p.NH / p.NKV;
  let j = j0 + sl;
  let live = j < T;
  let jq = min(j, T - 1u);
  let kbase = ((b * T + jq) * p.NKV + kvh) * HSC;
  var kv: array<vec4f, MAX_HS4>;
  var vv: array<vec4f, MAX_HS4>;
  var ak: array<vec4f, MAX_HS4>;
  var av: array<vec4f, MAX_HS4>;
  var ql: array<vec4f, MAX_HS4>;
  var gl: array<vec4f, MAX_HS4>;
  for (var d4 = 0u; d4 < hs4; d4++) {
    kv[d4] = ld4k(kbase, d4) * p.scale;
    vv[d4] = ld4v(kbase, d4);
    ak[d4] = vec4f(0.0);
    av[d4] = vec4f(0.0);
  }
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var c0 = j0; c0 < T; c0 += 8u) {
      // lane sl holds query c0 + sl (clamped into range past T; masked below)
      let tl = min(c0 + sl, T - 1u);
      let ob = ((b * T + tl) * p.NH + h) * HSC;
      let rl = (b * p.NH + h) * T + tl;
      for (var d4 = 0u; d4 < hs4; d4++) { ql[d4] = ld4q(ob, d4); gl[d4] = ld4dout(ob, d4); }
      let lsl = lse[rl];
      let dl = drow[rl];
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 0u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 0u); }
        let tt = c0 + 0u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 0u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 0u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 0u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 0u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 1u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 1u); }
        let tt = c0 + 1u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 1u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 1u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 1u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 1u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 2u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 2u); }
        let tt = c0 + 2u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 2u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 2u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 2u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 2u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 3u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 3u); }
        let tt = c0 + 3u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 3u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 3u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 3u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 3u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 4u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 4u); }
        let tt = c0 + 4u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 4u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 4u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 4u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 4u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 5u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 5u); }
        let tt = c0 + 5u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 5u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 5u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 5u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 5u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 6u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 6u); }
        let tt = c0 + 6u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 6u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 6u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 6u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 6u);
        }
      }
      {
        var s4 = vec4f(0.0);
        var g4 = vec4f(0.0);
        for (var d4 = 0u; d4 < hs4; d4++) { s4 += kv[d4] * subgroupBroadcast(ql[d4], 7u); g4 += vv[d4] * subgroupBroadcast(gl[d4], 7u); }
        let tt = c0 + 7u;
        let pr = select(0.0, exp(hsum(s4) - subgroupBroadcast(lsl, 7u)), tt >= jq && tt < T);
        let dsv = pr * (hsum(g4) - subgroupBroadcast(dl, 7u));
        for (var d4 = 0u; d4 < hs4; d4++) {
          ak[d4] += dsv * subgroupBroadcast(ql[d4], 7u);
          av[d4] += pr * subgroupBroadcast(gl[d4], 7u);
        }
      }
    }
  }
  if (live) {
    for (var d4 = 0u; d4 < hs4; d4++) {
      for (var c = 0u; c < 4u; c++) {
        if (d4 * 4u + c < HSC) { dk[kbase + d4 * 4u + c] = ak[d4][c] * p.scale; dv[kbase + d4 * 4u + c] = av[d4][c]; }
      }
    }
  }
}
