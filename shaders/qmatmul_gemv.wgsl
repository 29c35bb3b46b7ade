// Packed low-bit GEMV with subgroup reductions, for real GPUs of any subgroup width:
//   y (1, N) = x (1, K) · dequant(W)ᵀ,   dequant(W)[n, k] = (code[n, k] − zero[n, g]) · scale[n, g]
// Same layout (src/engine/format/pack.ts), uniform and bindings as shaders/qmatmul.wgsl.
// Why: 'gemv' (qmatmul.wgsl) gives each row a workgroup and reduces through workgroup memory with
// log2(WG) barriers; the *_sg kernels need exactly 8 lanes (lavapipe). Here a workgroup owns RPW
// consecutive rows in blocks of RB; its subgroups take the blocks in turn (subgroup s: blocks s,
// s + num_subgroups, ...); the lanes of a subgroup stride over the rows' 8-code chunks (adjacent
// lanes read adjacent words: coalesced) and one subgroupAdd per row sums it. No workgroup memory,
// no barriers. The RB rows of a block share each lane's x loads: x is read from L1 at 8× the bytes
// of the int4 codes it multiplies, 8/RB× with RB rows (RB = 2 by default; 1..4 allowed).
// x is bound twice, as f32 (binding 1) and as vec4f (binding 6, the same buffer): a full chunk
// takes its 8 x values in two vec4 loads, the ragged last chunk of a row (K % 8) scalar ones (its
// vec4 may run past the buffer).
// Any subgroup size: rows are split by the subgroup_id builtin (WGSL language feature
// `subgroup_id`, Chrome 144+, Dawn), and the lanes are numbered densely over the invocations
// actually present (subgroupExclusiveAdd(1)), so a subgroup that is not full, or whose
// subgroup_invocation_id values are not 0..n−1, still covers every chunk exactly once.
// Chunks: 8 codes aligned to 8 (absolute index) span at most two u32 words for every bit width
// (2, 3, 4, 8); the second word is read only where the chunk's valid codes reach into it. A chunk
// inside one group takes its scale and zero once: y += scale · Σ_t x·(code − zero); a chunk that
// straddles a group edge (group not a multiple of 8) takes each code's own group.
// Entry:
//   gemv_red   @workgroup_size(WG), RPW rows per workgroup, RB rows per block (override constants;
//              the wrapper picks RPW from the adapter's subgroup sizes so no subgroup idles).
//              dispatch gpu.grid(ceil(N / RPW)). Assigns y.
// Bindings: 0 params, 1 x f32 (read), 2 codes u32 (read), 3 scales f32 (read), 4 zeros f32 (read),
// 5 y (read_write), 6 x as vec4f (read; the buffer of binding 1, at least 16 bytes).
// CPU reference: src/engine/ref/quant.ts (qmatmulRef).
enable subgroups;
requires subgroup_id;

override WG: u32 = 128u;
override RPW: u32 = 8u;
override RB: u32 = 2u; // 1..4

//#include "qmatmul_layout"
@group(0) @binding(6) var<storage, read> xv: array<vec4f>;

// Codes t0..t0+3 of the chunk, as a vec4.
fn unpack4(lo: u32, hi: u32, off: u32, t0: u32) -> vec4f {
  return vec4f(unpack1(lo, hi, off, t0), unpack1(lo, hi, off, t0 + 1u), unpack1(lo, hi, off, t0 + 2u), unpack1(lo, hi, off, t0 + 3u));
}

// This lane's share of rows n0 .. n0 + RB − 1 (rows past N are clamped to N − 1; the caller drops
// them): chunks lane, lane + lanes, ... (8 codes each).
fn block_part(n0: u32, lane: u32, lanes: u32) -> array<f32, 4> {
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var kc = lane * 8u; kc < p.K; kc += lanes * 8u) {
    let lw = kc / p.cpw;
    let off = (kc - lw * p.cpw) * p.bits;
    let kEnd = min(kc + 8u, p.K);
    // the last valid code of the chunk lies in the next word (3 and 8 bits): read that word too
    let cross = off + (kEnd - 1u - kc) * p.bits >= p.span;
    let g = kc / p.group;
    let oneGroup = (kEnd - 1u) / p.group == g;
    var xa: vec4f;
    var xb: vec4f;
    if (kEnd == kc + 8u) {
      xa = xv[kc / 4u];
      xb = xv[kc / 4u + 1u];
    } else {
      xa = x4(kc);
      xb = x4(kc + 4u);
    }
    for (var r = 0u; r < RB; r++) {
      let n = min(n0 + r, p.N - 1u);
      let rw = n * p.wordsPerRow;
      let rs = n * p.nBlocks;
      let lo = codes[rw + lw];
      var hi = lo;
      if (cross) { hi = codes[rw + lw + 1u]; }
      if (oneGroup) {
        // the whole chunk lies in one group: its scale and zero once
        let z = zeros[rs + g];
        acc[r] += scales[rs + g] * (dot(xa, unpack4(lo, hi, off, 0u) - z) + dot(xb, unpack4(lo, hi, off, 4u) - z));
      } else {
        // the chunk straddles a group edge (group not a multiple of 8): each code its own group
        for (var t = 0u; t < kEnd - kc; t++) {
          let gt = rs + (kc + t) / p.group;
          acc[r] += x[kc + t] * (unpack1(lo, hi, off, t) - zeros[gt]) * scales[gt];
        }
      }
    }
  }
  return acc;
}

@compute @workgroup_size(WG)
fn gemv_red(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32) {
  // dense lane numbers over the invocations present in this subgroup
  let lane = subgroupExclusiveAdd(1u);
  let lanes = subgroupAdd(1u);
  let row0 = (wid.x + wid.y * nwg.x) * RPW;
  let blocks = (RPW + RB - 1u) / RB;
  // the same trip counts in every subgroup (uniform control flow around subgroupAdd); a subgroup
  // past its last block adds zeros and stores nothing
  let steps = (blocks + nsg - 1u) / nsg;
  for (var i = 0u; i < steps; i++) {
    let r0 = (sg + i * nsg) * RB;
    let n0 = row0 + r0;
    // rows of this block to store: inside the workgroup's RPW and inside N
    var rows = 0u;
    if (r0 < RPW && n0 < p.N) { rows = min(min(RB, RPW - r0), p.N - n0); }
    var part = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    if (rows > 0u) { part = block_part(n0, lane, lanes); }
    for (var r = 0u; r < RB; r++) {
      let total = subgroupAdd(part[r]);
      if (lane == 0u && r < rows) { y[n0 + r] = total; }
    }
  }
}
