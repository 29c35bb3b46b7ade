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
//   partial_multi{3,7,15}: the partial pass of up to K tensors in one dispatch (per-tensor gradient
//            norms of ~80 tensors in a few dispatches). WGSL binds whole buffers and cannot index an
//            array of bindings, so tensor j is bound at 10+j and picked by a switch on j (uniform per
//            workgroup); it owns workgroups [t[j].y, t[j].y + t[j].w), G = t[j].w of them, and
//            writes segment base t[j].z exactly as partial does (same loop, same tree: the same
//            partials bit for bit). Unused slots are bound to a small dummy, never read.
//            Bindings: 0 params (PMulti), 2 partials (read_write), 10+j x_j (read).
//            Dispatch (Σ G_j). Storage bindings: 1 + K (K = 7 fits WebGPU's default 8).
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

// ---- partial passes of several tensors in one dispatch
const KMAX = 15u;
struct PMulti { count: u32, mode: u32, _q0: u32, _q1: u32, t: array<vec4u, KMAX> } // (n, first workgroup, base, G) per tensor
@group(0) @binding(0) var<uniform> pm: PMulti;
@group(0) @binding(10) var<storage, read> x0: array<f32>;
@group(0) @binding(11) var<storage, read> x1: array<f32>;
@group(0) @binding(12) var<storage, read> x2: array<f32>;
@group(0) @binding(13) var<storage, read> x3: array<f32>;
@group(0) @binding(14) var<storage, read> x4: array<f32>;
@group(0) @binding(15) var<storage, read> x5: array<f32>;
@group(0) @binding(16) var<storage, read> x6: array<f32>;
@group(0) @binding(17) var<storage, read> x7: array<f32>;
@group(0) @binding(18) var<storage, read> x8: array<f32>;
@group(0) @binding(19) var<storage, read> x9: array<f32>;
@group(0) @binding(20) var<storage, read> x10: array<f32>;
@group(0) @binding(21) var<storage, read> x11: array<f32>;
@group(0) @binding(22) var<storage, read> x12: array<f32>;
@group(0) @binding(23) var<storage, read> x13: array<f32>;
@group(0) @binding(24) var<storage, read> x14: array<f32>;

/** The workgroup's tensor: the last j whose first workgroup is <= wg. */
fn tensorOf(wg: u32) -> u32 {
  var j = 0u;
  for (var k = 1u; k < pm.count; k++) { if (wg >= pm.t[k].y) { j = k; } }
  return j;
}

fn load3(j: u32, i: u32) -> f32 {
  switch j {
    case 0u: { return x0[i]; }
    case 1u: { return x1[i]; }
    default: { return x2[i]; }
  }
}

@compute @workgroup_size(WG)
fn partial_multi3(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let j = tensorOf(wid.x);
  let n = pm.t[j].x;
  let base = pm.t[j].z;
  let g = wid.x - pm.t[j].y;
  let G = pm.t[j].w;
  let chunk = WG * PER;
  var s = 0.0;
  for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
    for (var t = 0u; t < PER; t++) {
      let i = c0 + t * WG + lid.x;
      if (i < n) {
        let v = load3(j, i);
        if (pm.mode == 1u) { s += v * v; } else { s += v; }
      }
    }
  }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { partials[base + g] = total; }
  if (g == 0u) {
    for (var k = G + lid.x; k < SEG; k += WG) { partials[base + k] = 0.0; }
  }
}

fn load7(j: u32, i: u32) -> f32 {
  switch j {
    case 0u: { return x0[i]; }
    case 1u: { return x1[i]; }
    case 2u: { return x2[i]; }
    case 3u: { return x3[i]; }
    case 4u: { return x4[i]; }
    case 5u: { return x5[i]; }
    default: { return x6[i]; }
  }
}

@compute @workgroup_size(WG)
fn partial_multi7(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let j = tensorOf(wid.x);
  let n = pm.t[j].x;
  let base = pm.t[j].z;
  let g = wid.x - pm.t[j].y;
  let G = pm.t[j].w;
  let chunk = WG * PER;
  var s = 0.0;
  for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
    for (var t = 0u; t < PER; t++) {
      let i = c0 + t * WG + lid.x;
      if (i < n) {
        let v = load7(j, i);
        if (pm.mode == 1u) { s += v * v; } else { s += v; }
      }
    }
  }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { partials[base + g] = total; }
  if (g == 0u) {
    for (var k = G + lid.x; k < SEG; k += WG) { partials[base + k] = 0.0; }
  }
}

fn load15(j: u32, i: u32) -> f32 {
  switch j {
    case 0u: { return x0[i]; }
    case 1u: { return x1[i]; }
    case 2u: { return x2[i]; }
    case 3u: { return x3[i]; }
    case 4u: { return x4[i]; }
    case 5u: { return x5[i]; }
    case 6u: { return x6[i]; }
    case 7u: { return x7[i]; }
    case 8u: { return x8[i]; }
    case 9u: { return x9[i]; }
    case 10u: { return x10[i]; }
    case 11u: { return x11[i]; }
    case 12u: { return x12[i]; }
    case 13u: { return x13[i]; }
    default: { return x14[i]; }
  }
}

@compute @workgroup_size(WG)
fn partial_multi15(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let j = tensorOf(wid.x);
  let n = pm.t[j].x;
  let base = pm.t[j].z;
  let g = wid.x - pm.t[j].y;
  let G = pm.t[j].w;
  let chunk = WG * PER;
  var s = 0.0;
  for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
    for (var t = 0u; t < PER; t++) {
      let i = c0 + t * WG + lid.x;
      if (i < n) {
        let v = load15(j, i);
        if (pm.mode == 1u) { s += v * v; } else { s += v; }
      }
    }
  }
  let total = tree(lid.x, s);
  if (lid.x == 0u) { partials[base + g] = total; }
  if (g == 0u) {
    for (var k = G + lid.x; k < SEG; k += WG) { partials[base + k] = 0.0; }
  }
}
