// Token embedding gather and its backward (scatter-add), deterministic without atomics.
//   forward:  out[t, c] = table[tokens[t] - v0, c], one thread per (t, c)              (assigns)
//             for the ids of this table's rows [v0, v0 + V); other ids write zeros when `first`
//             is set and are left alone otherwise (a vocabulary split into chunks of rows, one
//             buffer each under the binding limit: one dispatch per chunk, the first with `first`,
//             so an id of no chunk - >= the vocabulary - gives a zero row; the wrapper validates
//             host data; the kernel never reads out of bounds).
//   forward4: the same with one thread per (t, 4 channels) and vec4 loads and stores (table4 and
//             out4: the views of bindings 2 and 3; no entry uses both views); needs C % 4 == 0.
//             A quarter of the threads and of the token loads (CPU Vulkan pays per load).
//   link:     one thread per position t: next[t] = the next position t' > t with the same token
//             (NONE at the end of the chain); bit 31 set when t is the first occurrence (the head).
//             Out-of-range ids are never heads. O(N²) compares in all, N = nTokens.
//   scatter:  one thread per (t, c) where t is a head of an id in [v0, v0 + V): walks the chain
//             in position order, dtable[v - v0, c] += Σ dout[t', c] over the positions t' of
//             token v (accumulates). link runs once over the whole vocabulary (v0 = 0, V = all
//             rows), scatter once per chunk of rows.
//             Each (v, c) has exactly one writer and a fixed summation order: deterministic.
//             O(N·C) adds in all, independent of V.
// Bindings: @binding(0) params {nTokens, V, C, v0, first}; (1) tokens u32 (N), (2) table (V, C),
// (3) out (N, C), (4) dout (N, C), (5) dtable (V, C), (6) next u32 (N) scratch, as each entry uses.
// Dispatch: forward/scatter ceil(N·C / WG), forward4 ceil(N·C / 4 / WG), link ceil(N / WG);
// folded 2-D by gpu.grid().
// CPU reference: src/engine/ref/embedding.ts
override WG: u32 = 256;

const NONE: u32 = 0x7FFFFFFFu;
const HEAD: u32 = 0x80000000u;

struct Params { nTokens: u32, V: u32, C: u32, v0: u32, first: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dtable: array<f32>;
@group(0) @binding(6) var<storage, read_write> next: array<u32>;
@group(0) @binding(2) var<storage, read> table4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.nTokens * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let lt = tokens[t] - p.v0; // u32: ids below v0 wrap to >= V
  if (lt < p.V) { out[i] = table[lt * p.C + c]; }
  else if (p.first != 0u) { out[i] = 0.0; }
}

@compute @workgroup_size(WG)
fn forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let C4 = p.C / 4u;
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.nTokens * C4) { return; }
  let t = i / C4;
  let lt = tokens[t] - p.v0; // u32: ids below v0 wrap to >= V
  if (lt < p.V) { out4[i] = table4[lt * C4 + i % C4]; }
  else if (p.first != 0u) { out4[i] = vec4f(0.0); }
}

@compute @workgroup_size(WG)
fn link(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= p.nTokens) { return; }
  let tok = tokens[t];
  if (tok >= p.V) { next[t] = NONE; return; }
  var nxt = NONE;
  for (var u = t + 1u; u < p.nTokens; u++) {
    if (tokens[u] == tok) { nxt = u; break; }
  }
  var head = HEAD;
  for (var u = 0u; u < t; u++) {
    if (tokens[u] == tok) { head = 0u; break; }
  }
  next[t] = nxt | head;
}

@compute @workgroup_size(WG)
fn scatter(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.nTokens * p.C) { return; }
  let t = i / p.C;
  let c = i % p.C;
  let nt = next[t];
  if ((nt & HEAD) == 0u) { return; }
  let lt = tokens[t] - p.v0;
  if (lt >= p.V) { return; }
  var s = dout[i];
  var u = nt & NONE;
  while (u < p.nTokens) {
    s += dout[u * p.C + c];
    u = next[u] & NONE;
  }
  let j = lt * p.C + c;
  dtable[j] = dtable[j] + s;
}
