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
//            array of bindings, so tensor j is bound at 10+j and has its own block, guarded by
//            g < G_j (uniform per workgroup) with constant indices into the uniform table (a switch
//            on a looked-up tensor index measured ~2x slower on lavapipe): workgroup g computes
//            partial g of every tensor that has one, exactly as partial does (same loop, same
//            tree: the same partials bit for bit) into segment base t[j].z.
//            t[j] = (n, 0, base, G_j); unused slots have G = 0 and are bound to a small dummy.
//            Bindings: 0 params (PMulti), 2 partials (read_write), 10+j x_j (read).
//            Dispatch (max G_j). Storage bindings: 1 + K (K = 7 fits WebGPU's default 8).
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
struct PMulti { count: u32, mode: u32, _q0: u32, _q1: u32, t: array<vec4u, KMAX> } // (n, 0, base, G) per tensor
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

@compute @workgroup_size(WG)
fn partial_multi3(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let g = wid.x;
  let chunk = WG * PER;
  if (g < pm.t[0].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[0].x;
    let G = pm.t[0].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x0[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[0].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[0].z + k] = 0.0; }
    }
  }
  if (g < pm.t[1].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[1].x;
    let G = pm.t[1].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x1[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[1].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[1].z + k] = 0.0; }
    }
  }
  if (g < pm.t[2].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[2].x;
    let G = pm.t[2].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x2[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[2].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[2].z + k] = 0.0; }
    }
  }
}

@compute @workgroup_size(WG)
fn partial_multi7(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let g = wid.x;
  let chunk = WG * PER;
  if (g < pm.t[0].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[0].x;
    let G = pm.t[0].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x0[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[0].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[0].z + k] = 0.0; }
    }
  }
  if (g < pm.t[1].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[1].x;
    let G = pm.t[1].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x1[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[1].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[1].z + k] = 0.0; }
    }
  }
  if (g < pm.t[2].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[2].x;
    let G = pm.t[2].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x2[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[2].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[2].z + k] = 0.0; }
    }
  }
  if (g < pm.t[3].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[3].x;
    let G = pm.t[3].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x3[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[3].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[3].z + k] = 0.0; }
    }
  }
  if (g < pm.t[4].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[4].x;
    let G = pm.t[4].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x4[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[4].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[4].z + k] = 0.0; }
    }
  }
  if (g < pm.t[5].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[5].x;
    let G = pm.t[5].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x5[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[5].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[5].z + k] = 0.0; }
    }
  }
  if (g < pm.t[6].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[6].x;
    let G = pm.t[6].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x6[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[6].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[6].z + k] = 0.0; }
    }
  }
}

@compute @workgroup_size(WG)
fn partial_multi15(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let g = wid.x;
  let chunk = WG * PER;
  if (g < pm.t[0].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[0].x;
    let G = pm.t[0].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x0[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[0].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[0].z + k] = 0.0; }
    }
  }
  if (g < pm.t[1].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[1].x;
    let G = pm.t[1].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x1[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[1].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[1].z + k] = 0.0; }
    }
  }
  if (g < pm.t[2].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[2].x;
    let G = pm.t[2].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x2[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[2].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[2].z + k] = 0.0; }
    }
  }
  if (g < pm.t[3].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[3].x;
    let G = pm.t[3].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x3[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[3].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[3].z + k] = 0.0; }
    }
  }
  if (g < pm.t[4].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[4].x;
    let G = pm.t[4].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x4[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[4].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[4].z + k] = 0.0; }
    }
  }
  if (g < pm.t[5].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[5].x;
    let G = pm.t[5].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x5[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[5].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[5].z + k] = 0.0; }
    }
  }
  if (g < pm.t[6].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[6].x;
    let G = pm.t[6].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x6[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[6].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[6].z + k] = 0.0; }
    }
  }
  if (g < pm.t[7].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[7].x;
    let G = pm.t[7].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x7[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[7].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[7].z + k] = 0.0; }
    }
  }
  if (g < pm.t[8].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[8].x;
    let G = pm.t[8].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x8[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[8].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[8].z + k] = 0.0; }
    }
  }
  if (g < pm.t[9].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[9].x;
    let G = pm.t[9].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x9[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[9].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[9].z + k] = 0.0; }
    }
  }
  if (g < pm.t[10].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[10].x;
    let G = pm.t[10].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x10[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[10].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[10].z + k] = 0.0; }
    }
  }
  if (g < pm.t[11].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[11].x;
    let G = pm.t[11].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x11[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[11].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[11].z + k] = 0.0; }
    }
  }
  if (g < pm.t[12].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[12].x;
    let G = pm.t[12].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x12[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[12].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[12].z + k] = 0.0; }
    }
  }
  if (g < pm.t[13].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[13].x;
    let G = pm.t[13].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x13[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[13].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[13].z + k] = 0.0; }
    }
  }
  if (g < pm.t[14].w) {
    workgroupBarrier(); // the previous block's tree is read before sh is reused
    let n = pm.t[14].x;
    let G = pm.t[14].w;
    var s = 0.0;
    for (var c0 = g * chunk; c0 < n; c0 += G * chunk) {
      for (var t = 0u; t < PER; t++) {
        let i = c0 + t * WG + lid.x;
        if (i < n) {
          let v = x14[i];
          if (pm.mode == 1u) { s += v * v; } else { s += v; }
        }
      }
    }
    let total = tree(lid.x, s);
    if (lid.x == 0u) { partials[pm.t[14].z + g] = total; }
    if (g == 0u) {
      for (var k = G + lid.x; k < SEG; k += WG) { partials[pm.t[14].z + k] = 0.0; }
    }
  }
}
