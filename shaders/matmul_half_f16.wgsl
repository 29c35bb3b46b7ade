// fp32 x times f16 weights with f16 multiplies (shader-f16 devices only; a frozen teacher's forward):
//   y (M,N) = x (M,K) · Wᵀ, W (N,K) IEEE binary16 (two per u32, read as vec4<f16>), K % 4 == 0.
// Entry half_wg8h: the 8x8 register tiles of matmul_half.wgsl's half_wg8 (16x16 threads, a 128x128
//   block of y, 8-deep slabs), but both slabs live in workgroup memory as vec4<f16> (x rounded to f16
//   when it is staged; half the workgroup bytes and loads) and the products run as vec4<f16>
//   multiply-adds (packed half2 FMAs on GPUs that have them: twice the f32 rate).
//   Accumulation: f16 only within a slab (8 products per output, summed into a vec4<f16> partial),
//   then each slab's partial is widened and added into f32 accumulators. f16 sums over the whole K
//   (1536 for SmolLM2's down projection) would lose too much: f16 has 11 significant bits, so once
//   a running sum is 2^11 times a product, that product is rounded away. Error bound against the
//   float64 reference on f16-rounded x and W: halfForwardErrorBound in src/engine/ops/matmul-half.ts.
//   x beyond f16's range (|x| > 65504) is clamped to ±65504 (the teacher's projections take
//   normalised activations, far inside it). Assigns, or += when p.accumulate != 0.
// Bindings: 0 uniform Params, 1 x (M*K f32), 2 W (N*K/4 vec4<f16>), 3 y (M*N f32, read_write).
// With PREFETCH (half_wg8hp) each thread loads its share of the next slab into registers before
// the current slab's multiply-adds (bit-identical to PREFETCH off).
// Dispatch: (ceil(N/128), ceil(M/128)).
// CPU reference: src/engine/ref/matmul.ts (matmulForwardRef) on f16-rounded x and W.
enable f16;

override PREFETCH: bool = false; // half_wg8h: load the next slab into registers during this one's FMAs (variant half_wg8hp)

struct Params { I: u32, J: u32, R: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> wh: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// tile8.wgsl's slab layout, in f16: Ah[rr·32 + q] = x rows 4q..4q+3 of the block at k = r0 + rr,
// Bh[rr·32 + q] = W rows (y's columns) 4q..4q+3 at k = r0 + rr. (Its f32 As8/Bs8 are declared but
// not used by this entry, so they take no workgroup memory.)
//#include "tile8"
var<workgroup> Ah: array<vec4<f16>, 256>;
var<workgroup> Bh: array<vec4<f16>, 256>;

fn put1(i: u32, j: u32, v: f32) {
  if (i >= p.I || j >= p.J) { return; }
  let idx = i * p.J + j;
  if (p.accumulate != 0u) { c[idx] = c[idx] + v; } else { c[idx] = v; }
}

fn put4(i: u32, j0: u32, v: vec4f) {
  put1(i, j0, v.x);
  put1(i, j0 + 1u, v.y);
  put1(i, j0 + 2u, v.z);
  put1(i, j0 + 3u, v.w);
}

// x rows i0 + 4q + {0..3} at column k, rounded to f16 (zero outside x).
fn xslab(i0: u32, q: u32, k: u32) -> vec4<f16> {
  var v = vec4f(0.0);
  for (var t = 0u; t < 4u; t++) {
    let i = i0 + 4u * q + t;
    if (i < p.I && k < p.R) { v[t] = a[i * p.R + k]; }
  }
  return vec4<f16>(clamp(v, vec4f(-65504.0), vec4f(65504.0)));
}

// W rows j0 + 4q + {0..3} at columns r0 + 4h + {0..3} (wq[c]: row j0 + 4q + c); zero outside W.
fn wquad(j0: u32, q: u32, r0: u32, h: u32) -> array<vec4<f16>, 4> {
  var wq = array<vec4<f16>, 4>();
  let k4 = r0 / 4u + h;
  if (k4 * 4u >= p.R) { return wq; }
  let R4 = p.R / 4u;
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + 4u * q + c;
    if (j < p.J) { wq[c] = wh[j * R4 + k4]; }
  }
  return wq;
}

@compute @workgroup_size(16, 16)
fn half_wg8h(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let i0 = wid.y * 128u;
  let j0 = wid.x * 128u;
  let tid = lid.y * 16u + lid.x;
  let sa = tile8_slot(tid, true);
  var acc = array<vec4f, 16>(); // f32 sums over slabs; acc[t]: tile8_row(lid.y, t), tile8_col(lid.x, t)
  let q = tid % 32u;
  let h = tid / 32u;
  // PREFETCH: this thread's share of the next slab, loaded before the multiply-adds that precede its use
  var na = vec4<f16>(0.0);
  var nw = array<vec4<f16>, 4>();
  if (PREFETCH) {
    na = xslab(i0, sa.x, sa.y);
    if (tid < 64u) { nw = wquad(j0, q, 0u, h); }
  }
  for (var r0 = 0u; r0 < p.R; r0 += 8u) {
    var wq = nw;
    if (PREFETCH) { Ah[sa.y * 32u + sa.x] = na; } else { Ah[sa.y * 32u + sa.x] = xslab(i0, sa.x, r0 + sa.y); }
    if (tid < 64u) { // as half_wg8: threads 0..63 transpose 4 rows × 4 k each, one writer per vec4
      if (!PREFETCH) { wq = wquad(j0, q, r0, h); }
      for (var t = 0u; t < 4u; t++) { Bh[(4u * h + t) * 32u + q] = vec4<f16>(wq[0][t], wq[1][t], wq[2][t], wq[3][t]); }
    }
    workgroupBarrier();
    if (PREFETCH && r0 + 8u < p.R) {
      na = xslab(i0, sa.x, r0 + 8u + sa.y);
      if (tid < 64u) { nw = wquad(j0, q, r0 + 8u, h); }
    }
    var s = array<vec4<f16>, 16>(); // this slab's partial sums (at most 8 products each), f16
    for (var rr = 0u; rr < 8u; rr++) {
      let a0 = Ah[rr * 32u + lid.y];
      let a1 = Ah[rr * 32u + 16u + lid.y];
      let b0 = Bh[rr * 32u + lid.x];
      let b1 = Bh[rr * 32u + 16u + lid.x];
      s[0] += a0.x * b0; s[1] += a0.y * b0; s[2] += a0.z * b0; s[3] += a0.w * b0;
      s[4] += a1.x * b0; s[5] += a1.y * b0; s[6] += a1.z * b0; s[7] += a1.w * b0;
      s[8] += a0.x * b1; s[9] += a0.y * b1; s[10] += a0.z * b1; s[11] += a0.w * b1;
      s[12] += a1.x * b1; s[13] += a1.y * b1; s[14] += a1.z * b1; s[15] += a1.w * b1;
    }
    for (var t = 0u; t < 16u; t++) { acc[t] += vec4f(s[t]); }
    workgroupBarrier();
  }
  for (var t = 0u; t < 16u; t++) { put4(i0 + tile8_row(lid.y, t), j0 + tile8_col(lid.x, t), acc[t]); }
}
