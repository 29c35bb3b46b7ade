// Packed low-bit GEMV with 16-byte code loads, for real GPUs (no subgroups needed):
//   y (1, N) = x (1, K) · dequant(W)ᵀ,   dequant(W)[n, k] = (code[n, k] − zero[n, g]) · scale[n, g]
// Same layout (src/engine/format/pack.ts), uniform and bindings as shaders/qmatmul.wgsl, and the
// codes bound a second time as vec4u (binding 7, the same buffer).
// Why: a 4096² int4 GEMV is a pure memory stream, and HBM only streams at full rate with megabytes
// of loads in flight (bandwidth × latency: ~3 MB on an H200). 'gemv' and 'gemv_red' load one u32
// (8 codes) per thread per step; here each thread loads a vec4u of codes (4 words: 32 int4 codes)
// for each of RB rows at once before it multiplies, so a thread has RB × 16 bytes outstanding,
// and the RB rows share the thread's x loads (x is read from cache at 8/RB × the code bytes for
// int4, which would otherwise make the L1, not HBM, the bound).
// Work: a workgroup of WG invocations holds WG / TPR row blocks of RB consecutive rows; the TPR
// threads of a block stride over its rows' 4-word chunks (adjacent threads, adjacent 16 bytes:
// coalesced), and sum through workgroup memory (log2(TPR) barriers per workgroup, once).
// Needs wordsPerRow % 4 == 0 (every row starts on a 16-byte boundary; for int4 K a multiple of
// 32 after group padding): the wrapper runs 'gemv' otherwise.
// Per word (cpw codes): where every word lies in one group (group % cpw == 0) and cpw % 4 == 0
// (2, 4 and 8 bits) the word's x values come in cpw/4 vec4 loads and the word adds
// scale·(Σ x·code − zero·Σ x) with Σ x shared by the RB rows; the scale and zero are read once
// per run of words in the same group. Otherwise (3 bits, groups that split words) each code takes
// its own group's scale and zero. Codes past K (group padding) meet x = 0.
// Entry:
//   gemv_wide  @workgroup_size(WG), TPR threads per block (a power of two dividing WG), RB rows per
//              block (1..4) (override constants); dispatch gpu.grid(ceil(N / (RB · WG / TPR))).
//              Assigns y.
// Bindings: 0 params, 1 x f32 (read), 3 scales, 4 zeros, 5 y (read_write), 6 x as vec4f (read; the
// buffer of binding 1, at least 16 bytes), 7 codes as vec4u (read; the codes buffer).
// CPU reference: src/engine/ref/quant.ts (qmatmulRef).

override WG: u32 = 128u;
override TPR: u32 = 32u;
override RB: u32 = 2u; // 1..4

//#include "qmatmul_layout"
@group(0) @binding(6) var<storage, read> xv: array<vec4f>;
@group(0) @binding(7) var<storage, read> codes4: array<vec4u>;

var<workgroup> part: array<vec4f, WG>;

// Codes 4q .. 4q+3 of a word, as a vec4.
fn codes_at(w: u32, q: u32) -> vec4f {
  let sh = (vec4u(0u, 1u, 2u, 3u) + vec4u(4u * q)) * p.bits;
  return vec4f((vec4u(w) >> sh) & vec4u(p.mask));
}

// This thread's share of rows n0 .. n0 + RB − 1 (rows past N clamped to N − 1; the caller drops
// them): chunks t, t + TPR, ... of 4 words each.
fn block_part(n0: u32, t: u32) -> vec4f {
  var acc = vec4f(0.0);
  let chunks = p.wordsPerRow / 4u;
  let kEndRow = p.nBlocks * p.group; // codes in a row, with group padding
  let fast = p.cpw % 4u == 0u && p.group % p.cpw == 0u;
  var rowChunk = vec4u(0u);
  var rowScale = vec4u(0u);
  for (var r = 0u; r < 4u; r++) {
    let n = min(n0 + r, p.N - 1u);
    rowChunk[r] = n * chunks;
    rowScale[r] = n * p.nBlocks;
  }
  for (var c = t; c < chunks; c += TPR) {
    // the RB rows' 16 bytes first: RB loads in flight before any arithmetic
    var cw: array<vec4u, 4>;
    for (var r = 0u; r < RB; r++) { cw[r] = codes4[rowChunk[r] + c]; }
    if (fast) {
      // per run of words in one group: d[r] = Σ x·code, sx = Σ x; flushed at the group's end
      var d = vec4f(0.0);
      var sx = 0.0;
      var g = (c * 4u * p.cpw) / p.group;
      for (var j = 0u; j < 4u; j++) {
        let k0 = (c * 4u + j) * p.cpw;
        if (k0 >= kEndRow) { break; }
        let gj = k0 / p.group;
        if (gj != g) {
          for (var r = 0u; r < RB; r++) { acc[r] += scales[rowScale[r] + g] * (d[r] - zeros[rowScale[r] + g] * sx); }
          d = vec4f(0.0);
          sx = 0.0;
          g = gj;
        }
        for (var q = 0u; q < p.cpw / 4u; q++) {
          let k = k0 + 4u * q;
          var xs: vec4f;
          if (k + 4u <= p.K) { xs = xv[k / 4u]; } else { xs = x4(k); }
          sx += dot(xs, vec4f(1.0));
          for (var r = 0u; r < RB; r++) { d[r] += dot(xs, codes_at(cw[r][j], q)); }
        }
      }
      for (var r = 0u; r < RB; r++) { acc[r] += scales[rowScale[r] + g] * (d[r] - zeros[rowScale[r] + g] * sx); }
    } else {
      // 3 bits, or groups that split words: each code its own group
      for (var j = 0u; j < 4u; j++) {
        let k0 = (c * 4u + j) * p.cpw;
        for (var i = 0u; i < p.cpw; i++) {
          let k = k0 + i;
          if (k >= p.K) { break; }
          let xk = x[k];
          let g = k / p.group;
          for (var r = 0u; r < RB; r++) {
            let code = f32((cw[r][j] >> (i * p.bits)) & p.mask);
            acc[r] += xk * (code - zeros[rowScale[r] + g]) * scales[rowScale[r] + g];
          }
        }
      }
    }
  }
  return acc;
}

@compute @workgroup_size(WG)
fn gemv_wide(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blk = lid / TPR;
  let t = lid % TPR;
  let n0 = ((wid.x + wid.y * nwg.x) * (WG / TPR) + blk) * RB;
  var s = vec4f(0.0);
  if (n0 < p.N) { s = block_part(n0, t); }
  part[lid] = s;
  workgroupBarrier();
  for (var h = TPR / 2u; h > 0u; h = h / 2u) {
    if (t < h) { part[lid] += part[lid + h]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let tot = part[lid];
    for (var r = 0u; r < RB; r++) {
      if (n0 + r < p.N) { y[n0 + r] = tot[r]; }
    }
  }
}
