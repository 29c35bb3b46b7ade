// Packed low-bit dX for CPU Vulkan with 8-wide subgroups (lavapipe): dX (M, K) = dY (M, N) · dequant(W)
// (assigns, or += with accumulate). Same layout, Params and bindings as `dx` in shaders/qmatmul.wgsl
// (x holds dY, y receives dX; codes: src/engine/format/pack.ts).
// Why: in `dx` the 8 lanes of a subgroup own 8 neighbouring column chunks of the same 8 rows, so
// every lane loads the same 8 dY values per n, and lavapipe turns each of those loads into a loop
// over the lanes (README, "Kernel speed"). Here, per block of 8 n, lane i loads dY[m0..m0+7, n0+i]
// once and the block is shared by subgroupBroadcast: per n a lane loads its code words, scale and
// zero and nothing else. Each lane keeps dx's 8 × 8 register tile (8 rows, 8 columns of one 8-code
// chunk). No barriers, no workgroup memory. Unrolled by hand 8x: subgroupBroadcast needs a constant
// lane. Needs groups that are a multiple of 8 (or one group per row), as `dx`.
// Entry: dx_sg. Dispatch (ceil(K / 64), ceil(M / 8)) workgroups of 8 (one subgroup each).
// CPU reference: src/engine/ref/quant.ts (qmatmulDxRef).
enable subgroups;

//#include "qmatmul_layout"
// (x is dY (M, N), y is dX (M, K))

// WORD_CHUNK (1, 2 and 4 bits: 32 % bits == 0 and 8·bits <= 32): an aligned 8-code chunk lies inside
// one word, so there is no second word to load and the 4 codes come out by one vector shift and mask
// (~1.1-1.3x on lavapipe at 256x1024² and 256x2048²). Otherwise (3 and 8 bits) a chunk may run on
// into the next word: one code at a time, as unpack1.
override WORD_CHUNK: bool = false;

fn hiWord(i: u32) -> u32 {
  if (WORD_CHUNK) { return 0u; }
  return codes[i];
}

// codes t0..t0+3 of the chunk, as f32
fn codes4(lo: u32, hi: u32, off: u32, t0: u32) -> vec4f {
  if (WORD_CHUNK) { return vec4f((vec4u(lo) >> (vec4u(off + t0 * p.bits) + vec4u(0u, 1u, 2u, 3u) * p.bits)) & vec4u(p.mask)); }
  return vec4f(unpack1(lo, hi, off, t0), unpack1(lo, hi, off, t0 + 1u), unpack1(lo, hi, off, t0 + 2u), unpack1(lo, hi, off, t0 + 3u));
}

fn put(idx: u32, v: f32) {
  y[idx] = v + select(0.0, y[idx], p.accumulate != 0u);
}

@compute @workgroup_size(8)
fn dx_sg(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  // no early return: every lane takes part in the broadcasts; chunks past K are clamped, not stored
  let kc = (wid.x * 8u + sl) * 8u;
  let m0 = wid.y * 8u;
  let kcc = min(kc, (p.K - 1u) & ~7u);
  let g = kcc / p.group;
  let lwc = kcc / p.cpw;
  let off = (kcc - lwc * p.cpw) * p.bits;
  let straddle = select(0u, 1u, off + 7u * p.bits >= p.span);
  let hiOk = select(0u, straddle, lwc + 1u < p.wordsPerRow);
  let yr = vec4u(min(vec4u(m0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.M - 1u))) * p.N;
  let yr2 = vec4u(min(vec4u(m0) + vec4u(4u, 5u, 6u, 7u), vec4u(p.M - 1u))) * p.N;
  var a0l = vec4f(0.0); var a0h = vec4f(0.0);
  var a1l = vec4f(0.0); var a1h = vec4f(0.0);
  var a2l = vec4f(0.0); var a2h = vec4f(0.0);
  var a3l = vec4f(0.0); var a3h = vec4f(0.0);
  var a4l = vec4f(0.0); var a4h = vec4f(0.0);
  var a5l = vec4f(0.0); var a5h = vec4f(0.0);
  var a6l = vec4f(0.0); var a6h = vec4f(0.0);
  var a7l = vec4f(0.0); var a7h = vec4f(0.0);
  for (var n0 = 0u; n0 < p.N; n0 += 8u) {
    // lane sl loads column n0 + sl of dY's 8 rows (clamped into range; blocks past N are skipped below)
    let nl = min(n0 + sl, p.N - 1u);
    let yl = vec4f(x[yr.x + nl], x[yr.y + nl], x[yr.z + nl], x[yr.w + nl]);
    let yh = vec4f(x[yr2.x + nl], x[yr2.y + nl], x[yr2.z + nl], x[yr2.w + nl]);
    {
      let n = n0 + 0u; // uniform
      let dl = subgroupBroadcast(yl, 0u);
      let dh = subgroupBroadcast(yh, 0u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 1u; // uniform
      let dl = subgroupBroadcast(yl, 1u);
      let dh = subgroupBroadcast(yh, 1u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 2u; // uniform
      let dl = subgroupBroadcast(yl, 2u);
      let dh = subgroupBroadcast(yh, 2u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 3u; // uniform
      let dl = subgroupBroadcast(yl, 3u);
      let dh = subgroupBroadcast(yh, 3u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 4u; // uniform
      let dl = subgroupBroadcast(yl, 4u);
      let dh = subgroupBroadcast(yh, 4u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 5u; // uniform
      let dl = subgroupBroadcast(yl, 5u);
      let dh = subgroupBroadcast(yh, 5u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 6u; // uniform
      let dl = subgroupBroadcast(yl, 6u);
      let dh = subgroupBroadcast(yh, 6u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
    {
      let n = n0 + 7u; // uniform
      let dl = subgroupBroadcast(yl, 7u);
      let dh = subgroupBroadcast(yh, 7u);
      if (n < p.N) {
        let rw = n * p.wordsPerRow;
        let lo = codes[rw + lwc];
        let hi = hiWord(rw + lwc + hiOk);
        let rs = n * p.nBlocks + g;
        let s = scales[rs];
        let z = zeros[rs];
        let wl = (codes4(lo, hi, off, 0u) - z) * s;
        let wh = (codes4(lo, hi, off, 4u) - z) * s;
        a0l += dl.x * wl; a0h += dl.x * wh;
        a1l += dl.y * wl; a1h += dl.y * wh;
        a2l += dl.z * wl; a2h += dl.z * wh;
        a3l += dl.w * wl; a3h += dl.w * wh;
        a4l += dh.x * wl; a4h += dh.x * wh;
        a5l += dh.y * wl; a5h += dh.y * wh;
        a6l += dh.z * wl; a6h += dh.z * wh;
        a7l += dh.w * wl; a7h += dh.w * wh;
      }
    }
  }
  if (kc < p.K) {
    // runtime trip counts keep the store loop rolled (as in dx: an unrolled epilogue compiles slowly)
    var acc = array<vec4f, 16>(a0l, a0h, a1l, a1h, a2l, a2h, a3l, a3h, a4l, a4h, a5l, a5h, a6l, a6h, a7l, a7h);
    let rows = min(8u, p.M - m0);
    let cols = min(8u, p.K - kc);
    for (var a = 0u; a < rows; a++) {
      let base = (m0 + a) * p.K + kc;
      for (var t = 0u; t < cols; t++) { put(base + t, acc[2u * a + t / 4u][t % 4u]); }
    }
  }
}
