// Token embedding gather and its backward.
// forward: out[t, c] = table[tokens[t], c], one thread per (t, c). Token ids >= V read row 0
// (the wrapper validates ids on the host; the kernel never reads out of bounds).
// backward: dtable[v, c] += Σ_{t: tokens[t] = v} dout[t, c] (accumulates). No float atomics in
// WGSL: one thread per (v, c) scans the token list — deterministic, O(V·C·N).
// CPU reference: src/engine/ref/embedding.ts
override WG: u32 = 256;
struct Params { nTokens: u32, V: u32, C: u32, _p: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.nTokens * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  var tok = tokens[t];
  if (tok >= p.V) { tok = 0u; }
  out[i] = table[tok * p.C + c];
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.V * p.C) { return; }
  let v = i / p.C;
  let c = i % p.C;
  var s = 0.0;
  var hit = false;
  for (var t = 0u; t < p.nTokens; t++) {
    if (tokens[t] == v) { s += dout[t * p.C + c]; hit = true; }
  }
  if (hit) { dtable[i] = dtable[i] + s; }
}
