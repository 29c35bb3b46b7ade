// fp32 matmul family for linear layers (PyTorch layout, W (N, K) = (out, in), y = x·Wᵀ).
// Every entry computes C (I, J) row-major:  C[i, j] (=, or += when p.accumulate != 0) Σ_r A(i, r)·B(j, r).
// The wrapper (src/engine/ops/matmul.ts) maps the three linear-layer products onto it:
//   forward         y (M,N)  = x (M,K) · Wᵀ        I=M J=N R=K  A=x  (i,r)->i*K+r  B=W  (j,r)->j*K+r  "NT"
//   backward input  dx (M,K) = dy (M,N) · W (N,K)  I=M J=K R=N  A=dy (i,r)->i*N+r  B=W  (j,r)->r*K+j  "NN"
//   backward weight dW (N,K) += dyᵀ (N,M) · x (M,K) I=N J=K R=M  A=dy (i,r)->r*N+i  B=x  (j,r)->r*K+j  "TN"
// Activation gradients assign (=, or += on request: summing q/k/v input grads); dW always accumulates.
//
// Entries (all share the uniform Params; bindings 1 = A, 2 = B (read), 3 = C (read_write)):
//   regtile      generic strides, scalar loads; each thread a 4x4 register tile; no workgroup memory
//                (CPU Vulkan punishes barriers). Any shape.             dispatch (ceil(J/4/WGX), ceil(I/4/WGY))
//   regtile_nt4  forward layout, vec4 loads along r; needs R % 4 == 0.    same dispatch
//   regtile_nn4  backward-input layout, vec4 loads; needs R % 4 == 0 and J % 4 == 0.
//   regtile_tn4  backward-weight layout, vec4 loads; needs I % 4 == 0 and J % 4 == 0.
//   tiled        workgroup-memory tiled GEMM (what real GPUs want): a WGY·4 x WGX·4 block of C per
//                workgroup, BK-deep slabs of A and B staged in workgroup memory; generic strides,
//                any shape.                                             dispatch (ceil(J/4/WGX), ceil(I/4/WGY))
//   tiled8       the same for large products on real GPUs: 16x16 threads, each an 8x8 register tile
//                (4 vec4 workgroup loads per 64 FMAs, against tiled's 8 scalar loads per 16), a
//                128x128 block of C, 8-deep slabs. Generic strides, any shape. With PREFETCH (the
//                'shared8p' variant) each thread loads its share of the next slab into registers
//                before the current slab's FMAs, so the global loads' latency hides behind them
//                (the same sums in the same order: bit-identical to PREFETCH off).
//                                                                       dispatch (ceil(J/128), ceil(I/128))
//   gemv_wg      I = 1 forward (decode): one workgroup of WG1 threads per output j splits R, then a
//                tree reduction in workgroup memory (real GPUs).        dispatch gpu.grid(J)
//   gemv_wg4     the same with vec4 loads (a quarter of the load instructions, the same coalescing:
//                thread t reads vec4s t, t + WG1, ...); needs R % 4 == 0.  dispatch gpu.grid(J)
//   gemv_rows    I = 1 forward, barrier-free: one thread per 4 outputs j (CPU Vulkan).
//   gemv_rows4   the same with vec4 loads; needs R % 4 == 0.           dispatch gpu.grid(ceil(J/4/WG1))
// The vec4 entries bind A and B as array<vec4f> (a4, b4: same binding numbers as a, b; no entry uses both).
// CPU reference: src/engine/ref/matmul.ts
override WGX: u32 = 8;   // threads per workgroup along J
override WGY: u32 = 8;   // threads per workgroup along I
override BK: u32 = 16;   // tiled: depth of the workgroup-memory slab
override PREFETCH: bool = false; // tiled8: load the next slab into registers during this one's FMAs
override WG1: u32 = 64;  // gemv entries: threads per workgroup (a power of two <= 256 for gemv_wg)

struct Params { I: u32, J: u32, R: u32, sAi: u32, sAr: u32, sBj: u32, sBr: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;

fn put1(i: u32, j: u32, v: f32) {
  if (i >= p.I || j >= p.J) { return; }
  let idx = i * p.J + j;
  if (p.accumulate != 0u) { c[idx] = c[idx] + v; } else { c[idx] = v; }
}

// Row i, columns j0..j0+3 (those < J).
fn put4(i: u32, j0: u32, v: vec4f) {
  put1(i, j0, v.x);
  put1(i, j0 + 1u, v.y);
  put1(i, j0 + 2u, v.z);
  put1(i, j0 + 3u, v.w);
}

@compute @workgroup_size(WGX, WGY)
fn regtile(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.I || j0 >= p.J) { return; }
  // Out-of-range rows/cols are clamped to a valid index; their results are discarded by put4.
  let ia0 = min(i0, p.I - 1u) * p.sAi;
  let ia1 = min(i0 + 1u, p.I - 1u) * p.sAi;
  let ia2 = min(i0 + 2u, p.I - 1u) * p.sAi;
  let ia3 = min(i0 + 3u, p.I - 1u) * p.sAi;
  let jb0 = min(j0, p.J - 1u) * p.sBj;
  let jb1 = min(j0 + 1u, p.J - 1u) * p.sBj;
  let jb2 = min(j0 + 2u, p.J - 1u) * p.sBj;
  let jb3 = min(j0 + 3u, p.J - 1u) * p.sBj;
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var r = 0u; r < p.R; r++) {
    let ra = r * p.sAr;
    let rb = r * p.sBr;
    let bv = vec4f(b[jb0 + rb], b[jb1 + rb], b[jb2 + rb], b[jb3 + rb]);
    c0 += a[ia0 + ra] * bv;
    c1 += a[ia1 + ra] * bv;
    c2 += a[ia2 + ra] * bv;
    c3 += a[ia3 + ra] * bv;
  }
  put4(i0, j0, c0);
  put4(i0 + 1u, j0, c1);
  put4(i0 + 2u, j0, c2);
  put4(i0 + 3u, j0, c3);
}

// Forward ("NT"): A (I, R), B (J, R), both contiguous along r; R % 4 == 0.
@compute @workgroup_size(WGX, WGY)
fn regtile_nt4(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.I || j0 >= p.J) { return; }
  let R4 = p.R / 4u;
  let ia0 = min(i0, p.I - 1u) * R4;
  let ia1 = min(i0 + 1u, p.I - 1u) * R4;
  let ia2 = min(i0 + 2u, p.I - 1u) * R4;
  let ia3 = min(i0 + 3u, p.I - 1u) * R4;
  let jb0 = min(j0, p.J - 1u) * R4;
  let jb1 = min(j0 + 1u, p.J - 1u) * R4;
  let jb2 = min(j0 + 2u, p.J - 1u) * R4;
  let jb3 = min(j0 + 3u, p.J - 1u) * R4;
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var r = 0u; r < R4; r++) {
    let b0 = b4[jb0 + r];
    let b1 = b4[jb1 + r];
    let b2 = b4[jb2 + r];
    let b3 = b4[jb3 + r];
    let a0 = a4[ia0 + r];
    c0 += vec4f(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
    let a1 = a4[ia1 + r];
    c1 += vec4f(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
    let a2 = a4[ia2 + r];
    c2 += vec4f(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
    let a3 = a4[ia3 + r];
    c3 += vec4f(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
  }
  put4(i0, j0, c0);
  put4(i0 + 1u, j0, c1);
  put4(i0 + 2u, j0, c2);
  put4(i0 + 3u, j0, c3);
}

// Backward input ("NN"): A (I, R) contiguous along r, B (R, J) contiguous along j; R % 4 == 0, J % 4 == 0.
@compute @workgroup_size(WGX, WGY)
fn regtile_nn4(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.I || j0 >= p.J) { return; }
  let R4 = p.R / 4u;
  let J4 = p.J / 4u;
  let ia0 = min(i0, p.I - 1u) * R4;
  let ia1 = min(i0 + 1u, p.I - 1u) * R4;
  let ia2 = min(i0 + 2u, p.I - 1u) * R4;
  let ia3 = min(i0 + 3u, p.I - 1u) * R4;
  let jc = j0 / 4u;
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var r = 0u; r < R4; r++) {
    let rb = 4u * r * J4 + jc;
    let b0 = b4[rb];
    let b1 = b4[rb + J4];
    let b2 = b4[rb + 2u * J4];
    let b3 = b4[rb + 3u * J4];
    let a0 = a4[ia0 + r];
    c0 += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
    let a1 = a4[ia1 + r];
    c1 += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
    let a2 = a4[ia2 + r];
    c2 += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
    let a3 = a4[ia3 + r];
    c3 += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
  }
  put4(i0, j0, c0);
  put4(i0 + 1u, j0, c1);
  put4(i0 + 2u, j0, c2);
  put4(i0 + 3u, j0, c3);
}

// Backward weight ("TN"): A (R, I) contiguous along i, B (R, J) contiguous along j; I % 4 == 0, J % 4 == 0.
@compute @workgroup_size(WGX, WGY)
fn regtile_tn4(@builtin(global_invocation_id) gid: vec3u) {
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.I || j0 >= p.J) { return; }
  let I4 = p.I / 4u;
  let J4 = p.J / 4u;
  let ic = i0 / 4u;
  let jc = j0 / 4u;
  var c0 = vec4f(0.0);
  var c1 = vec4f(0.0);
  var c2 = vec4f(0.0);
  var c3 = vec4f(0.0);
  for (var r = 0u; r < p.R; r++) {
    let av = a4[r * I4 + ic];
    let bv = b4[r * J4 + jc];
    c0 += av.x * bv;
    c1 += av.y * bv;
    c2 += av.z * bv;
    c3 += av.w * bv;
  }
  put4(i0, j0, c0);
  put4(i0 + 1u, j0, c1);
  put4(i0 + 2u, j0, c2);
  put4(i0 + 3u, j0, c3);
}

// Workgroup-memory tiled GEMM. Thread (tx, ty) owns rows i0 + ty + t·WGY and columns j0 + tx + u·WGX
// (t, u < 4): interleaved so that neighbouring threads touch neighbouring words of workgroup memory
// and of C. Slabs are stored r-major with one word of padding per r-row against bank conflicts.
const BMAX: u32 = 64u;   // WGX·4 and WGY·4 must not exceed this (the wrapper checks)
const BKMAX: u32 = 32u;  // BK must not exceed this
var<workgroup> As: array<f32, 2112>; // BKMAX · (BMAX + 1)
var<workgroup> Bs: array<f32, 2112>;

@compute @workgroup_size(WGX, WGY)
fn tiled(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let BM = 4u * WGY;
  let BN = 4u * WGX;
  let i0 = wid.y * BM;
  let j0 = wid.x * BN;
  let tid = lid.y * WGX + lid.x;
  let nthr = WGX * WGY;
  // Load with the contiguous dimension fastest across threads (coalesced global reads).
  let aAlongR = p.sAr == 1u;
  let bAlongR = p.sBr == 1u;
  var acc: array<vec4f, 4>;
  for (var r0 = 0u; r0 < p.R; r0 += BK) {
    for (var e = tid; e < BK * BM; e += nthr) {
      var ii: u32; var rr: u32;
      if (aAlongR) { rr = e % BK; ii = e / BK; } else { ii = e % BM; rr = e / BM; }
      let gi = i0 + ii;
      let gr = r0 + rr;
      var v = 0.0;
      if (gi < p.I && gr < p.R) { v = a[gi * p.sAi + gr * p.sAr]; }
      As[rr * (BM + 1u) + ii] = v;
    }
    for (var e = tid; e < BK * BN; e += nthr) {
      var jj: u32; var rr: u32;
      if (bAlongR) { rr = e % BK; jj = e / BK; } else { jj = e % BN; rr = e / BN; }
      let gj = j0 + jj;
      let gr = r0 + rr;
      var v = 0.0;
      if (gj < p.J && gr < p.R) { v = b[gj * p.sBj + gr * p.sBr]; }
      Bs[rr * (BN + 1u) + jj] = v;
    }
    workgroupBarrier();
    for (var rr = 0u; rr < BK; rr++) {
      let ab = rr * (BM + 1u) + lid.y;
      let bb = rr * (BN + 1u) + lid.x;
      let bv = vec4f(Bs[bb], Bs[bb + WGX], Bs[bb + 2u * WGX], Bs[bb + 3u * WGX]);
      acc[0] += As[ab] * bv;
      acc[1] += As[ab + WGY] * bv;
      acc[2] += As[ab + 2u * WGY] * bv;
      acc[3] += As[ab + 3u * WGY] * bv;
    }
    workgroupBarrier();
  }
  for (var t = 0u; t < 4u; t++) {
    let i = i0 + lid.y + t * WGY;
    for (var u = 0u; u < 4u; u++) { put1(i, j0 + lid.x + u * WGX, acc[t][u]); }
  }
}

// tiled8: the 8x8 register tiles of tile8.wgsl; each of the 256 threads fills one vec4 of each slab
// (its 4 rows strided in global memory).
//#include "tile8"

// Rows row0 + 4q + {0..3} of A (fromA) or B at r = gr as a vec4 (nRows, sRow, sR: that operand's
// rows, row stride and r stride), zero outside the matrix.
fn slab(fromA: bool, row0: u32, nRows: u32, sRow: u32, sR: u32, q: u32, gr: u32) -> vec4f {
  var v = vec4f(0.0);
  for (var c = 0u; c < 4u; c++) {
    let gi = row0 + 4u * q + c;
    if (gi < nRows && gr < p.R) {
      let idx = gi * sRow + gr * sR;
      if (fromA) { v[c] = a[idx]; } else { v[c] = b[idx]; }
    }
  }
  return v;
}

@compute @workgroup_size(16, 16)
fn tiled8(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i0 = wid.y * 128u;
  let j0 = wid.x * 128u;
  let tid = lid.y * 16u + lid.x;
  let sa = tile8_slot(tid, p.sAr == 1u);
  let sb = tile8_slot(tid, p.sBr == 1u);
  var acc = array<vec4f, 16>();
  // PREFETCH: this thread's vec4 of the next A and B slabs, loaded before the FMAs that precede their use
  var na = vec4f(0.0);
  var nb = vec4f(0.0);
  if (PREFETCH) {
    na = slab(true, i0, p.I, p.sAi, p.sAr, sa.x, sa.y);
    nb = slab(false, j0, p.J, p.sBj, p.sBr, sb.x, sb.y);
  }
  for (var r0 = 0u; r0 < p.R; r0 += 8u) {
    if (PREFETCH) {
      As8[sa.y * 32u + sa.x] = na;
      Bs8[sb.y * 32u + sb.x] = nb;
    } else {
      As8[sa.y * 32u + sa.x] = slab(true, i0, p.I, p.sAi, p.sAr, sa.x, r0 + sa.y);
      Bs8[sb.y * 32u + sb.x] = slab(false, j0, p.J, p.sBj, p.sBr, sb.x, r0 + sb.y);
    }
    workgroupBarrier();
    if (PREFETCH && r0 + 8u < p.R) {
      na = slab(true, i0, p.I, p.sAi, p.sAr, sa.x, r0 + 8u + sa.y);
      nb = slab(false, j0, p.J, p.sBj, p.sBr, sb.x, r0 + 8u + sb.y);
    }
    tile8_slab(lid.x, lid.y, &acc);
    workgroupBarrier();
  }
  for (var t = 0u; t < 16u; t++) { put4(i0 + tile8_row(lid.y, t), j0 + tile8_col(lid.x, t), acc[t]); }
}

// I = 1 forward: C[0, j] = Σ_r a[r] b[j·sBj + r] (B contiguous along r). One workgroup per j.
var<workgroup> part: array<f32, 256>;

// The workgroup's tree sum of each thread's partial s; thread 0 stores output j.
fn gemv_finish(t: u32, j: u32, s: f32) {
  part[t] = s;
  workgroupBarrier();
  for (var h = WG1 / 2u; h > 0u; h = h / 2u) {
    if (t < h) { part[t] += part[t + h]; }
    workgroupBarrier();
  }
  if (t == 0u) { put1(0u, j, part[0]); }
}

@compute @workgroup_size(WG1)
fn gemv_wg(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = wid.x + wid.y * nwg.x;
  var s = 0.0;
  if (j < p.J) {
    let base = j * p.sBj;
    for (var r = lid.x; r < p.R; r += WG1) { s += a[r] * b[base + r]; }
  }
  gemv_finish(lid.x, j, s);
}

@compute @workgroup_size(WG1)
fn gemv_wg4(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = wid.x + wid.y * nwg.x;
  var s = vec4f(0.0);
  if (j < p.J) {
    let R4 = p.R / 4u;
    let base = j * R4;
    for (var r = lid.x; r < R4; r += WG1) { s += a4[r] * b4[base + r]; }
  }
  gemv_finish(lid.x, j, (s.x + s.y) + (s.z + s.w));
}

@compute @workgroup_size(WG1)
fn gemv_rows(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j0 = 4u * (gid.x + gid.y * nwg.x * WG1);
  if (j0 >= p.J) { return; }
  let jb0 = min(j0, p.J - 1u) * p.sBj;
  let jb1 = min(j0 + 1u, p.J - 1u) * p.sBj;
  let jb2 = min(j0 + 2u, p.J - 1u) * p.sBj;
  let jb3 = min(j0 + 3u, p.J - 1u) * p.sBj;
  var acc = vec4f(0.0);
  for (var r = 0u; r < p.R; r++) {
    acc += a[r] * vec4f(b[jb0 + r], b[jb1 + r], b[jb2 + r], b[jb3 + r]);
  }
  put4(0u, j0, acc);
}

@compute @workgroup_size(WG1)
fn gemv_rows4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j0 = 4u * (gid.x + gid.y * nwg.x * WG1);
  if (j0 >= p.J) { return; }
  let R4 = p.R / 4u;
  let jb0 = min(j0, p.J - 1u) * R4;
  let jb1 = min(j0 + 1u, p.J - 1u) * R4;
  let jb2 = min(j0 + 2u, p.J - 1u) * R4;
  let jb3 = min(j0 + 3u, p.J - 1u) * R4;
  var acc = vec4f(0.0);
  for (var r = 0u; r < R4; r++) {
    let x = a4[r];
    acc += vec4f(dot(x, b4[jb0 + r]), dot(x, b4[jb1 + r]), dot(x, b4[jb2 + r]), dot(x, b4[jb3 + r]));
  }
  put4(0u, j0, acc);
}

