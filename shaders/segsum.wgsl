// Segment sums: out[outIndex + s] = Σ_{i < len} x[s·stride + i] for segments s = 0..nSeg-1
// (assigns). One thread per segment, in index order with Kahan compensation, so a segment of a few
// thousand f32 terms keeps about f32 precision (not len·eps) and the order is fixed: deterministic.
// Used by evaluation to turn per-token NLLs (B·T rows, 0 on padding) into per-document sums, so
// only B numbers are read back.
// Params: one = 1.0 (see the loop). Bindings: 0 params, 1 x (read), 2 out (read_write).   Dispatch: ceil(nSeg / WG).
// CPU reference: src/engine/ref/loss.ts (segmentSumsRef)
override WG: u32 = 64;

struct Params { nSeg: u32, len: u32, stride: u32, outIndex: u32, one: f32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let s = gid.x;
  if (s >= p.nSeg) { return; }
  var sum = 0.0;
  var c = 0.0; // running compensation: the low-order bits lost by the last addition
  let base = s * p.stride;
  for (var i = 0u; i < p.len; i++) {
    let y = x[base + i] - c;
    // p.one = 1.0 from a uniform: the compiler cannot prove (sum + y) - sum = y and fold the
    // compensation away (Mesa does that to plain WGSL: Kahan then degrades to a naive sum)
    let t = (sum + y) * p.one;
    c = (t - sum) * p.one - y;
    sum = t;
  }
  out[p.outIndex + s] = sum;
}
