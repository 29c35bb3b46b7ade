// Low-bit dequant-matmul that reads packed codes directly (layout: src/engine/quant/pack.ts):
//   y (M, N) = x (M, K) · dequant(W)ᵀ,   dequant(W)[n, k] = (code[n, k] − zero[n, g]) · scale[n, g]
//   dX (M, K) (=, or += with p.accumulate) dY (M, N) · dequant(W) (N, K)
// The weight is never expanded to fp32 in GPU memory: codes are unpacked in registers (or, in the
// workgroup-memory kernels, into a 64×16 / 16×64 tile in workgroup memory).
// Code j of row n is the weight at column k = j (blocks are contiguous; only the last block has
// padding, after K). Kernels walk K in chunks of 8 codes aligned to 8 (absolute index): for every
// bit width such a chunk spans at most two u32 words (lo, hi), so a chunk costs 2 loads per row.
// Group scales are applied once per group: y += scale·Σ_k x·(code − zero).
// Entries (bits 2, 3, 4 or 8 is a uniform; cpw = floor(32 / bits) codes per word). Checked on
// lavapipe (tests) and on an H100 through Dawn/Vulkan (same cases, all variants exact to 2e-4):
//   gemm       (8, 8) threads, each a 4 (m) × 8 (n) register tile, no workgroup memory (CPU Vulkan;
//              4×8 measured 1.5x faster than 4×4 and 8×8 on lavapipe). dispatch (ceil(N/64), ceil(M/32)).
//   gemm_wg    (16, 16) threads, 64 × 64 output tile, x and dequantized W staged through workgroup
//              memory 16 columns of K at a time (real GPUs). dispatch (ceil(N/64), ceil(M/64)).
//   gemv       M = 1: one workgroup of WG threads per output row, threads stride over 8-code
//              chunks, tree reduction in workgroup memory (real GPUs). dispatch gpu.grid(N).
//   gemv_rows  M = 1: one thread per 8 output rows walking K, no barriers (CPU Vulkan).
//              dispatch gpu.grid(ceil(N / (8·WG))).
//   dx         (8, 8) threads, each an 8 (m) × 8 (k) register tile (one code chunk), loops over n,
//              no workgroup memory (CPU Vulkan). Needs every 8-chunk inside one group (group % 8
//              = 0, or per-channel); the wrapper runs dx_wg otherwise. dispatch (ceil(K/64), ceil(M/64)).
//   dx_wg      the same through workgroup memory: 64 × 64 tile, (16, 16) threads (real GPUs).
//              dispatch (ceil(K/64), ceil(M/64)).
//   gemm_wg8, dx_wg8  the same products with the 8x8 register tiles of tile8.wgsl (128 × 128
//              blocks, 8-deep slabs; real GPUs): each 8-code chunk of W is loaded and unpacked once
//              per slab (gemm_wg reads a word, a scale and a zero per code). Need every chunk inside
//              one group, as dx (the wrapper runs gemm_wg / dx_wg otherwise). dispatch
//              (ceil(N/128), ceil(M/128)) / (ceil(K/128), ceil(M/128)). With PREFETCH (variants
//              gemm_wg8p, dx_wg8p) each thread loads and unpacks its share of the next slab into
//              registers before the current slab's FMAs (bit-identical to PREFETCH off).
//   The dX entries assign, or accumulate (+=) with p.accumulate (an activation gradient).
// Bindings: 0 params, 1 x / dY (read), 2 codes u32 (read), 3 scales f32 (read), 4 zeros f32
// (read), 5 y / dX (read_write).
// CPU reference: src/engine/ref/quant.ts (qmatmulRef, qmatmulDxRef).
override WG: u32 = 64u;
override PREFETCH: bool = false; // gemm_wg8 / dx_wg8: load the next slab into registers during this one's FMAs

//#include "qmatmul_layout"

// Code t (t < 8) of a chunk whose first code sits at bit `off` of word lo (the rest run on into hi).
fn unpack4(lo: vec4u, hi: vec4u, off: u32, t: u32) -> vec4f {
  let pos = off + t * p.bits;
  let inHi = pos >= p.span;
  let w = select(lo, hi, inHi);
  return vec4f((w >> vec4u(select(pos, pos - p.span, inHi))) & vec4u(p.mask));
}

fn code_at(n: u32, j: u32) -> f32 {
  return f32((codes[n * p.wordsPerRow + j / p.cpw] >> ((j % p.cpw) * p.bits)) & p.mask);
}

// Output stores of register tiles (one row of 4 or 8 values), bounds-checked. Kept small: a large
// unrolled, branchy epilogue (e.g. an 8×8 tile with an accumulate branch per element) cost lavapipe
// several seconds of compile time per pipeline.
fn store4(m: u32, n0: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var b = 0u; b < 4u; b++) {
    if (n0 + b < p.N) { y[m * p.N + n0 + b] = v[b]; }
  }
}

fn store8(m: u32, n0: u32, lo: vec4f, hi: vec4f) {
  if (m >= p.M) { return; }
  for (var b = 0u; b < 4u; b++) {
    if (n0 + b < p.N) { y[m * p.N + n0 + b] = lo[b]; }
    if (n0 + 4u + b < p.N) { y[m * p.N + n0 + 4u + b] = hi[b]; }
  }
}

// dX rows (width K), assigning or accumulating. Branch-free (the branch made lavapipe compile the
// dx kernel 3x longer); select() ignores the old value, even NaN, when assigning.
fn put(idx: u32, v: f32) {
  y[idx] = v + select(0.0, y[idx], p.accumulate != 0u);
}

fn store_dx4(m: u32, k0: u32, v: vec4f) {
  if (m >= p.M) { return; }
  for (var b = 0u; b < 4u; b++) {
    if (k0 + b < p.K) { put(m * p.K + k0 + b, v[b]); }
  }
}

@compute @workgroup_size(8, 8)
fn gemm(@builtin(global_invocation_id) gid: vec3u) {
  let n0 = gid.x * 8u;
  let m0 = gid.y * 4u;
  if (n0 >= p.N || m0 >= p.M) { return; }
  // out-of-range rows are clamped to valid ones; their results are discarded
  let xr = vec4u(min(vec4u(m0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.M - 1u))) * p.K;
  let nr = min(vec4u(n0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.N - 1u));
  let nr2 = min(vec4u(n0) + vec4u(4u, 5u, 6u, 7u), vec4u(p.N - 1u));
  let rw = nr * p.wordsPerRow;
  let rw2 = nr2 * p.wordsPerRow;
  let rs = nr * p.nBlocks;
  let rs2 = nr2 * p.nBlocks;
  var acc: array<vec4f, 8>;
  for (var g = 0u; g < p.nBlocks; g++) {
    let k0 = g * p.group;
    let k1 = min(p.K, k0 + p.group);
    let zv = vec4f(zeros[rs.x + g], zeros[rs.y + g], zeros[rs.z + g], zeros[rs.w + g]);
    let zv2 = vec4f(zeros[rs2.x + g], zeros[rs2.y + g], zeros[rs2.z + g], zeros[rs2.w + g]);
    var d: array<vec4f, 8>;
    for (var i = 0u; i < 8u; i++) { d[i] = vec4f(0.0); }
    // chunks aligned to 8; a chunk straddling a group edge (odd group sizes only) is masked
    for (var kc = k0 & ~7u; kc < k1; kc += 8u) {
      let lw = kc / p.cpw;
      let off = (kc - lw * p.cpw) * p.bits;
      let hw = lw + select(0u, 1u, off + 7u * p.bits >= p.span);
      let lo = vec4u(codes[rw.x + lw], codes[rw.y + lw], codes[rw.z + lw], codes[rw.w + lw]);
      let hi = vec4u(codes[rw.x + hw], codes[rw.y + hw], codes[rw.z + hw], codes[rw.w + hw]);
      let lo2 = vec4u(codes[rw2.x + lw], codes[rw2.y + lw], codes[rw2.z + lw], codes[rw2.w + lw]);
      let hi2 = vec4u(codes[rw2.x + hw], codes[rw2.y + hw], codes[rw2.z + hw], codes[rw2.w + hw]);
      for (var t = 0u; t < 8u; t++) {
        let j = kc + t;
        let cv = unpack4(lo, hi, off, t) - zv;
        let cv2 = unpack4(lo2, hi2, off, t) - zv2;
        let xv = select(vec4f(0.0), vec4f(x[xr.x + j], x[xr.y + j], x[xr.z + j], x[xr.w + j]), j >= k0 && j < k1);
        d[0] += xv.x * cv; d[1] += xv.x * cv2;
        d[2] += xv.y * cv; d[3] += xv.y * cv2;
        d[4] += xv.z * cv; d[5] += xv.z * cv2;
        d[6] += xv.w * cv; d[7] += xv.w * cv2;
      }
    }
    let sv = vec4f(scales[rs.x + g], scales[rs.y + g], scales[rs.z + g], scales[rs.w + g]);
    let sv2 = vec4f(scales[rs2.x + g], scales[rs2.y + g], scales[rs2.z + g], scales[rs2.w + g]);
    for (var a = 0u; a < 4u; a++) { acc[2u * a] += sv * d[2u * a]; acc[2u * a + 1u] += sv2 * d[2u * a + 1u]; }
  }
  for (var a = 0u; a < 4u; a++) { store8(m0 + a, n0, acc[2u * a], acc[2u * a + 1u]); }
}

// ---------------------------------------------------------------- workgroup-memory GEMM
// Tiles in workgroup memory, column-major: xs[kk·64 + i] holds x row mBase + i at column kb + kk,
// ws[kk·64 + j] the dequantized W row nBase + j (a thread reads 4 consecutive floats of each).
// Flat f32 arrays: writing vec4 components by a dynamic index made lavapipe compile for 10+ s.
var<workgroup> xs: array<f32, 1024>;
var<workgroup> ws: array<f32, 1024>;

fn xs4(i: u32) -> vec4f { return vec4f(xs[i], xs[i + 1u], xs[i + 2u], xs[i + 3u]); }
fn ws4(i: u32) -> vec4f { return vec4f(ws[i], ws[i + 1u], ws[i + 2u], ws[i + 3u]); }

@compute @workgroup_size(16, 16)
fn gemm_wg(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let li = lid.y * 16u + lid.x;
  let mBase = wid.y * 64u;
  let nBase = wid.x * 64u;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var kb = 0u; kb < p.K; kb += 16u) {
    // 1024 elements of each tile, 4 per thread; 16 consecutive threads read 16 consecutive columns
    for (var r = 0u; r < 4u; r++) {
      let e = li + 256u * r;
      let row = e / 16u;
      let kk = e % 16u;
      let k = kb + kk;
      let m = mBase + row;
      let n = nBase + row;
      var xv = 0.0;
      if (m < p.M && k < p.K) { xv = x[m * p.K + k]; }
      var wv = 0.0;
      if (n < p.N && k < p.K) {
        let sb = n * p.nBlocks + k / p.group;
        wv = (code_at(n, k) - zeros[sb]) * scales[sb];
      }
      xs[kk * 64u + row] = xv;
      ws[kk * 64u + row] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let av = xs4(kk * 64u + lid.y * 4u);
      let bv = ws4(kk * 64u + lid.x * 4u);
      acc0 += av.x * bv;
      acc1 += av.y * bv;
      acc2 += av.z * bv;
      acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let m0 = mBase + lid.y * 4u;
  let n0 = nBase + lid.x * 4u;
  store4(m0, n0, acc0);
  store4(m0 + 1u, n0, acc1);
  store4(m0 + 2u, n0, acc2);
  store4(m0 + 3u, n0, acc3);
}

// ---------------------------------------------------------------- 8x8 register tiles (real GPUs)
//#include "tile8"

// The 8 codes of row n from column kc (a multiple of 8, inside one group), dequantized: columns
// kc..kc+3 and kc+4..kc+7. Zero for rows past N (padding codes past K dequantize to 0).
fn chunk8(n: u32, kc: u32) -> array<vec4f, 2> {
  if (n >= p.N || kc >= p.K) { return array<vec4f, 2>(vec4f(0.0), vec4f(0.0)); }
  let rw = n * p.wordsPerRow;
  let lw = kc / p.cpw;
  let off = (kc - lw * p.cpw) * p.bits;
  let lo = codes[rw + lw];
  var hi = lo;
  if (off + 7u * p.bits >= p.span) { hi = codes[rw + lw + 1u]; }
  let sb = n * p.nBlocks + kc / p.group;
  let z = zeros[sb];
  let s = scales[sb];
  return array<vec4f, 2>(
    (vec4f(unpack1(lo, hi, off, 0u), unpack1(lo, hi, off, 1u), unpack1(lo, hi, off, 2u), unpack1(lo, hi, off, 3u)) - z) * s,
    (vec4f(unpack1(lo, hi, off, 4u), unpack1(lo, hi, off, 5u), unpack1(lo, hi, off, 6u), unpack1(lo, hi, off, 7u)) - z) * s);
}

// x (or dY) rows row0 + 4q + {0..3} at column c of its R columns, as a vec4 (zero outside).
fn xslab(row0: u32, q: u32, c: u32, R: u32) -> vec4f {
  var v = vec4f(0.0);
  for (var t = 0u; t < 4u; t++) {
    let m = row0 + 4u * q + t;
    if (m < p.M && c < R) { v[t] = x[m * R + c]; }
  }
  return v;
}

// One 128 × 128 block of y = x · dequant(W)ᵀ (dxMode false: A = x, r = k; B = W's rows n; dispatch
// over (N, M)) or of dX = dY · dequant(W) (dxMode true: A = dY, r = n; B(j = k, r = n) = W[n, k];
// over (K, M)). A's slab: one vec4 per thread (A is contiguous along r). W's slab, forward: threads
// 0..31 each unpack one 8-code chunk of 4 rows n (a quad) and transpose it into 8 vec4s; dX: threads
// 0..127 each unpack one chunk of row n = r0 + rr, 8 consecutive columns k (2 vec4s).
// This thread's share of W's slab at r0, as the vec4s it stores (see wslab_put): forward, threads
// 0..31: 8 transposed vec4s of rows j0 + 4·tid + {0..3}; dX, threads 0..127: 2 vec4s (w[0], w[1]).
fn wslab(j0: u32, r0: u32, tid: u32, dxMode: bool) -> array<vec4f, 8> {
  var out = array<vec4f, 8>();
  if (dxMode && tid < 128u) {
    let rr = tid / 16u;
    let ch = tid % 16u;
    if (r0 + rr < p.N) {
      let w = chunk8(r0 + rr, j0 + 8u * ch);
      out[0] = w[0];
      out[1] = w[1];
    }
  } else if (!dxMode && tid < 32u) {
    let w0 = chunk8(j0 + 4u * tid, r0);
    let w1 = chunk8(j0 + 4u * tid + 1u, r0);
    let w2 = chunk8(j0 + 4u * tid + 2u, r0);
    let w3 = chunk8(j0 + 4u * tid + 3u, r0);
    for (var t = 0u; t < 4u; t++) {
      out[t] = vec4f(w0[0][t], w1[0][t], w2[0][t], w3[0][t]);
      out[t + 4u] = vec4f(w0[1][t], w1[1][t], w2[1][t], w3[1][t]);
    }
  }
  return out;
}

fn wslab_put(tid: u32, dxMode: bool, w: array<vec4f, 8>) {
  if (dxMode && tid < 128u) {
    let rr = tid / 16u;
    let ch = tid % 16u;
    Bs8[rr * 32u + 2u * ch] = w[0];
    Bs8[rr * 32u + 2u * ch + 1u] = w[1];
  } else if (!dxMode && tid < 32u) {
    for (var t = 0u; t < 8u; t++) { Bs8[t * 32u + tid] = w[t]; }
  }
}

fn tile8_q(lid: vec3u, wid: vec3u, dxMode: bool) {
  let m0 = wid.y * 128u;
  let j0 = wid.x * 128u;
  let R = select(p.K, p.N, dxMode);
  let tid = lid.y * 16u + lid.x;
  let sa = tile8_slot(tid, true);
  var acc = array<vec4f, 16>();
  // PREFETCH: this thread's share of the next slab, loaded (and unpacked) before the FMAs that precede its use
  var na = vec4f(0.0);
  var nw = array<vec4f, 8>();
  if (PREFETCH) {
    na = xslab(m0, sa.x, sa.y, R);
    nw = wslab(j0, 0u, tid, dxMode);
  }
  for (var r0 = 0u; r0 < R; r0 += 8u) {
    if (PREFETCH) {
      As8[sa.y * 32u + sa.x] = na;
      wslab_put(tid, dxMode, nw);
    } else {
      As8[sa.y * 32u + sa.x] = xslab(m0, sa.x, r0 + sa.y, R);
      wslab_put(tid, dxMode, wslab(j0, r0, tid, dxMode));
    }
    workgroupBarrier();
    if (PREFETCH && r0 + 8u < R) {
      na = xslab(m0, sa.x, r0 + 8u + sa.y, R);
      nw = wslab(j0, r0 + 8u, tid, dxMode);
    }
    tile8_slab(lid.x, lid.y, &acc);
    workgroupBarrier();
  }
  for (var t = 0u; t < 16u; t++) {
    let m = m0 + tile8_row(lid.y, t);
    let j = j0 + tile8_col(lid.x, t);
    if (dxMode) { store_dx4(m, j, acc[t]); } else { store4(m, j, acc[t]); }
  }
}

@compute @workgroup_size(16, 16)
fn gemm_wg8(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) { tile8_q(lid, wid, false); }

@compute @workgroup_size(16, 16)
fn dx_wg8(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) { tile8_q(lid, wid, true); }

// ---------------------------------------------------------------- GEMV (M = 1)
var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(WG)
fn gemv(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = wid.x + wid.y * nwg.x;
  var s = 0.0;
  if (n < p.N) {
    let rw = n * p.wordsPerRow;
    let rs = n * p.nBlocks;
    for (var kc = lid.x * 8u; kc < p.K; kc += WG * 8u) {
      let lw = kc / p.cpw;
      let off = (kc - lw * p.cpw) * p.bits;
      let kEnd = min(kc + 8u, p.K);
      let lo = codes[rw + lw];
      // the next word only where the chunk's valid codes reach into it (never past the row)
      let hi = codes[rw + lw + select(0u, 1u, off + (kEnd - 1u - kc) * p.bits >= p.span)];
      let g = kc / p.group;
      if ((kEnd - 1u) / p.group == g) {
        // the whole chunk lies in one group
        let z = zeros[rs + g];
        var d = 0.0;
        for (var t = 0u; t < 8u; t++) {
          let j = kc + t;
          d += select(0.0, x[j], j < kEnd) * (unpack1(lo, hi, off, t) - z);
        }
        s += scales[rs + g] * d;
      } else {
        for (var t = 0u; t < kEnd - kc; t++) {
          let gt = rs + (kc + t) / p.group;
          s += x[kc + t] * (unpack1(lo, hi, off, t) - zeros[gt]) * scales[gt];
        }
      }
    }
  }
  part[lid.x] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid.x < h) { part[lid.x] += part[lid.x + h]; }
    workgroupBarrier();
  }
  if (lid.x == 0u && n < p.N) { y[n] = part[0]; }
}

@compute @workgroup_size(WG)
fn gemv_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n0 = (gid.x + gid.y * nwg.x * WG) * 8u;
  if (n0 >= p.N) { return; }
  let nr = min(vec4u(n0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.N - 1u));
  let nr2 = min(vec4u(n0) + vec4u(4u, 5u, 6u, 7u), vec4u(p.N - 1u));
  let rw = nr * p.wordsPerRow;
  let rw2 = nr2 * p.wordsPerRow;
  let rs = nr * p.nBlocks;
  let rs2 = nr2 * p.nBlocks;
  var acc = vec4f(0.0);
  var acc2 = vec4f(0.0);
  for (var g = 0u; g < p.nBlocks; g++) {
    let k0 = g * p.group;
    let k1 = min(p.K, k0 + p.group);
    let zv = vec4f(zeros[rs.x + g], zeros[rs.y + g], zeros[rs.z + g], zeros[rs.w + g]);
    let zv2 = vec4f(zeros[rs2.x + g], zeros[rs2.y + g], zeros[rs2.z + g], zeros[rs2.w + g]);
    var d = vec4f(0.0);
    var d2 = vec4f(0.0);
    for (var kc = k0 & ~7u; kc < k1; kc += 8u) {
      let lw = kc / p.cpw;
      let off = (kc - lw * p.cpw) * p.bits;
      let hw = lw + select(0u, 1u, off + 7u * p.bits >= p.span);
      let lo = vec4u(codes[rw.x + lw], codes[rw.y + lw], codes[rw.z + lw], codes[rw.w + lw]);
      let hi = vec4u(codes[rw.x + hw], codes[rw.y + hw], codes[rw.z + hw], codes[rw.w + hw]);
      let lo2 = vec4u(codes[rw2.x + lw], codes[rw2.y + lw], codes[rw2.z + lw], codes[rw2.w + lw]);
      let hi2 = vec4u(codes[rw2.x + hw], codes[rw2.y + hw], codes[rw2.z + hw], codes[rw2.w + hw]);
      for (var t = 0u; t < 8u; t++) {
        let j = kc + t;
        let xv = select(0.0, x[j], j >= k0 && j < k1);
        d += xv * (unpack4(lo, hi, off, t) - zv);
        d2 += xv * (unpack4(lo2, hi2, off, t) - zv2);
      }
    }
    acc += vec4f(scales[rs.x + g], scales[rs.y + g], scales[rs.z + g], scales[rs.w + g]) * d;
    acc2 += vec4f(scales[rs2.x + g], scales[rs2.y + g], scales[rs2.z + g], scales[rs2.w + g]) * d2;
  }
  store8(0u, n0, acc, acc2);
}

// ---------------------------------------------------------------- dX = dY · dequant(W)
// x holds dY (M, N) here, y receives dX (M, K). Each thread: 8 rows m × 8 columns k (one 8-code
// chunk of a row of W), summed over n; the second code word is read only where a chunk straddles
// two (3 bits). (Loading dY as vec4 along n measured no faster on lavapipe: 68.7 vs 67.4 ms per
// stories260K KD-QAT step; dY's loads are not what bounds this kernel.)

// One n of the 8×8 tile: dequantize W's chunk (8 codes of row n at column kc) and add dy·w to the
// 16 accumulators (row a: acc[2a] columns 0..3, acc[2a+1] columns 4..7); dya / dyb = dY[m0+0..3, n]
// / dY[m0+4..7, n].
fn dx_step(n: u32, lw: u32, off: u32, g: u32, cross: bool, dya: vec4f, dyb: vec4f, acc: ptr<function, array<vec4f, 16>>) {
  let rw = n * p.wordsPerRow;
  let lo = codes[rw + lw];
  var hi = lo;
  if (cross) { hi = codes[rw + lw + 1u]; }
  let rs = n * p.nBlocks;
  let s = scales[rs + g];
  let z = zeros[rs + g];
  let wl = (vec4f(unpack1(lo, hi, off, 0u), unpack1(lo, hi, off, 1u), unpack1(lo, hi, off, 2u), unpack1(lo, hi, off, 3u)) - z) * s;
  let wh = (vec4f(unpack1(lo, hi, off, 4u), unpack1(lo, hi, off, 5u), unpack1(lo, hi, off, 6u), unpack1(lo, hi, off, 7u)) - z) * s;
  (*acc)[0] += dya.x * wl; (*acc)[1] += dya.x * wh;
  (*acc)[2] += dya.y * wl; (*acc)[3] += dya.y * wh;
  (*acc)[4] += dya.z * wl; (*acc)[5] += dya.z * wh;
  (*acc)[6] += dya.w * wl; (*acc)[7] += dya.w * wh;
  (*acc)[8] += dyb.x * wl; (*acc)[9] += dyb.x * wh;
  (*acc)[10] += dyb.y * wl; (*acc)[11] += dyb.y * wh;
  (*acc)[12] += dyb.z * wl; (*acc)[13] += dyb.z * wh;
  (*acc)[14] += dyb.w * wl; (*acc)[15] += dyb.w * wh;
}

// The tile's stores. Runtime trip counts keep the store loop rolled (an unrolled 64-store
// epilogue costs seconds of lavapipe compile time).
fn dx_store(m0: u32, kc: u32, acc: ptr<function, array<vec4f, 16>>) {
  let rows = min(8u, p.M - m0);
  let cols = min(8u, p.K - kc);
  for (var a = 0u; a < rows; a++) {
    let base = (m0 + a) * p.K + kc;
    for (var t = 0u; t < cols; t++) { put(base + t, (*acc)[2u * a + t / 4u][t % 4u]); }
  }
}

@compute @workgroup_size(8, 8)
fn dx(@builtin(global_invocation_id) gid: vec3u) {
  let kc = gid.x * 8u;
  let m0 = gid.y * 8u;
  if (kc >= p.K || m0 >= p.M) { return; }
  let yr = vec4u(min(vec4u(m0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.M - 1u))) * p.N;
  let yr2 = vec4u(min(vec4u(m0) + vec4u(4u, 5u, 6u, 7u), vec4u(p.M - 1u))) * p.N;
  let g = kc / p.group;
  let lw = kc / p.cpw;
  let off = (kc - lw * p.cpw) * p.bits;
  let cross = off + 7u * p.bits >= p.span;
  var acc = array<vec4f, 16>();
  for (var n = 0u; n < p.N; n++) {
    dx_step(n, lw, off, g, cross, vec4f(x[yr.x + n], x[yr.y + n], x[yr.z + n], x[yr.w + n]), vec4f(x[yr2.x + n], x[yr2.y + n], x[yr2.z + n], x[yr2.w + n]), &acc);
  }
  dx_store(m0, kc, &acc);
}

// dX through workgroup memory (real GPUs): (16, 16) threads, a 64 (m) × 64 (k) output tile per
// workgroup, N consumed 16 rows at a time: dY (64 m × 16 n) and dequantized W (16 n × 64 k) staged
// in xs / ws (as in gemm_wg), each thread a 4 × 4 register tile. dispatch (ceil(K/64), ceil(M/64)).
@compute @workgroup_size(16, 16)
fn dx_wg(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let li = lid.y * 16u + lid.x;
  let mBase = wid.y * 64u;
  let kBase = wid.x * 64u;
  var acc0 = vec4f(0.0);
  var acc1 = vec4f(0.0);
  var acc2 = vec4f(0.0);
  var acc3 = vec4f(0.0);
  for (var nb = 0u; nb < p.N; nb += 16u) {
    for (var r = 0u; r < 4u; r++) {
      let e = li + 256u * r;
      // dY tile: 16 consecutive threads read 16 consecutive n of one row m
      let row = e / 16u;
      let nn = e % 16u;
      let m = mBase + row;
      var dv = 0.0;
      if (m < p.M && nb + nn < p.N) { dv = x[m * p.N + nb + nn]; }
      xs[nn * 64u + row] = dv;
      // W tile: 64 consecutive threads read 64 consecutive k of one row n (8 words at 4 bits)
      let wn = e / 64u;
      let kk = e % 64u;
      let n = nb + wn;
      let k = kBase + kk;
      var wv = 0.0;
      if (n < p.N && k < p.K) {
        let sb = n * p.nBlocks + k / p.group;
        wv = (code_at(n, k) - zeros[sb]) * scales[sb];
      }
      ws[wn * 64u + kk] = wv;
    }
    workgroupBarrier();
    for (var nn = 0u; nn < 16u; nn++) {
      let av = xs4(nn * 64u + lid.y * 4u);
      let bv = ws4(nn * 64u + lid.x * 4u);
      acc0 += av.x * bv;
      acc1 += av.y * bv;
      acc2 += av.z * bv;
      acc3 += av.w * bv;
    }
    workgroupBarrier();
  }
  let m0 = mBase + lid.y * 4u;
  let k0 = kBase + lid.x * 4u;
  store_dx4(m0, k0, acc0);
  store_dx4(m0 + 1u, k0, acc1);
  store_dx4(m0 + 2u, k0, acc2);
  store_dx4(m0 + 3u, k0, acc3);
}
