// Packed low-bit GEMV for CPU Vulkan with 8-wide subgroups (lavapipe): y (1, N) = x (1, K) · dequant(W)ᵀ.
// Same layout, uniform and bindings as shaders/qmatmul.wgsl (codes: src/engine/quant/pack.ts).
// Why: lavapipe runs 8 invocations as the lanes of one SIMD register and turns every storage load
// with a non-constant address into a loop over the lanes (one scalar load each), so loads, not
// arithmetic, set the speed. Here a lane loads one word per owned row per 8-code chunk (the second
// word only where a chunk straddles two, e.g. 3 bits) and unpacks the codes in registers; x is
// loaded once per subgroup (lane l loads x[kc + l]) and shared with subgroupBroadcast, instead of
// every lane loading all 8 values. The fp32 GEMV loads 4 bytes per weight; this loads 1/2 byte.
// Entries:
//   gemv_sg   one thread per 4 consecutive output rows, walking K in 8-code chunks aligned to 8,
//             group scales applied once per group. No barriers, no workgroup memory.
//             dispatch gpu.grid(ceil(N / (4·WG))). Needs a subgroup size of 8 (the wrapper checks).
// CPU reference: src/engine/ref/quant.ts (qmatmulRef).
enable subgroups;
override WG: u32 = 8u;

struct Params { M: u32, N: u32, K: u32, group: u32, nBlocks: u32, wordsPerRow: u32, accumulate: u32, bits: u32, cpw: u32, span: u32, mask: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> zeros: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// Code t (t < 8) of a chunk whose first code sits at bit `off` of word lo (the rest run on into hi).
fn unpack4(lo: vec4u, hi: vec4u, off: u32, t: u32) -> vec4f {
  let pos = off + t * p.bits;
  let inHi = pos >= p.span;
  let w = select(lo, hi, inHi);
  return vec4f((w >> vec4u(select(pos, pos - p.span, inHi))) & vec4u(p.mask));
}

@compute @workgroup_size(WG)
fn gemv_sg(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sl: u32) {
  // no early return: every lane must take part in the broadcasts; rows past N are clamped, not stored
  let n0 = (gid.x + gid.y * nwg.x * WG) * 4u;
  let nr = min(vec4u(n0) + vec4u(0u, 1u, 2u, 3u), vec4u(p.N - 1u));
  let rw = nr * p.wordsPerRow;
  let rs = nr * p.nBlocks;
  var acc = vec4f(0.0);
  for (var g = 0u; g < p.nBlocks; g++) {
    let k0 = g * p.group;
    let k1 = min(p.K, k0 + p.group);
    let zv = vec4f(zeros[rs.x + g], zeros[rs.y + g], zeros[rs.z + g], zeros[rs.w + g]);
    var d = vec4f(0.0);
    // chunks aligned to 8; a chunk straddling a group edge (odd group sizes only) is masked through x
    for (var kc = k0 & ~7u; kc < k1; kc += 8u) {
      let lw = kc / p.cpw;
      let off = (kc - lw * p.cpw) * p.bits;
      let lo = vec4u(codes[rw.x + lw], codes[rw.y + lw], codes[rw.z + lw], codes[rw.w + lw]);
      var hi = lo;
      if (off + 7u * p.bits >= p.span) { // uniform: the same chunk in every lane
        hi = vec4u(codes[rw.x + lw + 1u], codes[rw.y + lw + 1u], codes[rw.z + lw + 1u], codes[rw.w + lw + 1u]);
      }
      let j = kc + sl;
      let xl = select(0.0, x[min(j, p.K - 1u)], j >= k0 && j < k1);
      d += subgroupBroadcast(xl, 0u) * (unpack4(lo, hi, off, 0u) - zv);
      d += subgroupBroadcast(xl, 1u) * (unpack4(lo, hi, off, 1u) - zv);
      d += subgroupBroadcast(xl, 2u) * (unpack4(lo, hi, off, 2u) - zv);
      d += subgroupBroadcast(xl, 3u) * (unpack4(lo, hi, off, 3u) - zv);
      d += subgroupBroadcast(xl, 4u) * (unpack4(lo, hi, off, 4u) - zv);
      d += subgroupBroadcast(xl, 5u) * (unpack4(lo, hi, off, 5u) - zv);
      d += subgroupBroadcast(xl, 6u) * (unpack4(lo, hi, off, 6u) - zv);
      d += subgroupBroadcast(xl, 7u) * (unpack4(lo, hi, off, 7u) - zv);
    }
    acc += vec4f(scales[rs.x + g], scales[rs.y + g], scales[rs.z + g], scales[rs.w + g]) * d;
  }
  for (var b = 0u; b < 4u; b++) {
    if (n0 + b < p.N) { y[n0 + b] = acc[b]; }
  }
}
