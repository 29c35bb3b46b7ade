// Deterministic reductions of whole tensors: sum (mode 0) and sum of squares (mode 1).
// Two passes, no atomics (WGSL has no float atomics), fixed summation order for a given n:
//   partial: G workgroups (G = num_workgroups.x <= SEG); workgroup g sums chunks g, g+G, g+2G, ... of
//            CHUNK = WG·PER elements of x[0..n) (each thread PER strided elements, then a tree in
//            workgroup memory) and writes partials[base + g]. Workgroup 0 also zeroes
//            partials[base+G .. base+SEG), so a segment always holds exactly SEG valid partials.
//            Bindings: 0 params, 1 x (read), 2 partials (read_write).   Dispatch (G).
//   finish:  workgroup s sums segment s, partials[s·SEG .. s·SEG+SEG), into out[outIndex + s]
//            (assigns). Many tensors' partial passes write segments 0, 1, 2, ... of one scratch
//            buffer and a single finish dispatch reduces them all (per-layer gradient norms).
//            Bindings: 0 params, 2 partials (read), 3 out (read_write).   Dispatch (nSegments).
// CPU reference: src/engine/ref/optim.ts (sumRef, sumSquaresRef)
override WG: u32 = 256;   // threads per workgroup, a power of two <= 256
override PER: u32 = 4u;   // elements per thread per chunk
override SEG: u32 = 256u; // partial slots per tensor (the most workgroups one partial pass uses)

struct Params { n: u32, mode: u32, base: u32, outIndex: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> sh: array<f32, 256>;

fn tree(lid: u32, s: f32) -> f32 {
  sh[lid] = s;
  workgroupBarrier();
  for (var h = WG / 2u; h > 0u; h = h / 2u) {
    if (lid < h) { sh[lid] += sh[lid + h]; }
    workgroupBarrier();
  }
  return sh[0];
}

@compute @workgroup_size(WG)
fn partial(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let g = wid.x;
  let G = nwg.x;
  let chunk = WG * PER;
  var s = 0.0;
  for (var c0 = g * chunk; c0 < p.n; c0 += G * chunk) {
    for (var t = 0u; t < PER; t++) {
      let i = c0 + t * WG + lid.x;
      if (i < p.n) {
        let v = x[i];
        if (p.mode == 1u) { s += v * v; } else { s += v; }
      }
    }
  }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { partials[p.base + g] = total; }
  if (g == 0u) {
    for (var k = G + lid.x; k < SEG; k += WG) { partials[p.base + k] = 0.0; }
  }
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let base = wid.x * SEG;
  var s = 0.0;
  for (var k = lid.x; k < SEG; k += WG) { s += partials[base + k]; }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { out[p.outIndex + wid.x] = total; }
}
