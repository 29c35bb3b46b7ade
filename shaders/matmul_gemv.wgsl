// fp32 GEMV with subgroup reductions, for real GPUs of any subgroup width:
//   y (1, N) (=, or += when p.accumulate != 0) x (1, K) · Wᵀ,  W (N, K) row-major.
// Same Params and bindings as shaders/matmul.wgsl (I = 1, J = N, R = K, W's row stride sBj = K).
// Why: matmul.wgsl's gemv_wg / gemv_wg4 give each output a workgroup of 64 and reduce through
// workgroup memory with 6 barriers; at a decoder's K (576 for SmolLM2) each thread loads 2-3 vec4s
// before that reduction, so the barriers and the per-workgroup start-up, not memory, bound it. Here
// a workgroup owns RPW consecutive rows in blocks of RB; its subgroups take the blocks in turn
// (subgroup s: blocks s, s + num_subgroups, ...); the lanes of a subgroup stride over a row's
// elements (adjacent lanes read adjacent vec4s: coalesced) and one subgroupAdd per row sums it. No
// workgroup memory, no barriers. The RB rows of a block share each lane's x loads.
// Any subgroup size: rows are split by the subgroup_id builtin (WGSL language feature
// `subgroup_id`), and the lanes are numbered densely over the invocations actually present
// (subgroupExclusiveAdd(1)), so a subgroup that is not full still covers every element exactly once
// (the same scheme as shaders/qmatmul_gemv.wgsl's int4 gemv_red).
// Entries:
//   gemv_red    scalar loads, any K.
//   gemv_red4   vec4 loads; needs K % 4 == 0 (every row starts on a vec4).
//   @workgroup_size(WG), RPW rows per workgroup, RB rows per block (override constants; the wrapper
//   picks RPW from the adapter's subgroup sizes so no subgroup idles). dispatch gpu.grid(ceil(N / RPW)).
// Bindings: 0 params, 1 x (read), 2 W (read), 3 y (read_write); the vec4 entry binds x and W as
// array<vec4f> at the same numbers (no entry uses both views).
// CPU reference: src/engine/ref/matmul.ts (matmulRef).
enable subgroups;
requires subgroup_id;

override WG: u32 = 128u;
override RPW: u32 = 8u;
override RB: u32 = 2u; // 1..4

struct Params { I: u32, J: u32, R: u32, sAi: u32, sAr: u32, sBj: u32, sBr: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4f>;
@group(0) @binding(2) var<storage, read> w4: array<vec4f>;

// This lane's share of rows n0 .. n0 + RB − 1 (rows past N are clamped to N − 1; the caller drops
// them): elements lane, lane + lanes, ...
fn part_scalar(n0: u32, lane: u32, lanes: u32) -> vec4f {
  var acc = vec4f(0.0);
  var rb = vec4u(0u);
  for (var r = 0u; r < RB; r++) { rb[r] = min(n0 + r, p.J - 1u) * p.sBj; }
  for (var k = lane; k < p.R; k += lanes) {
    let xk = x[k];
    for (var r = 0u; r < RB; r++) { acc[r] += xk * w[rb[r] + k]; }
  }
  return acc;
}

// The same over vec4s k4 = lane, lane + lanes, ... (K % 4 == 0).
fn part_vec4(n0: u32, lane: u32, lanes: u32) -> vec4f {
  var acc = vec4f(0.0);
  let R4 = p.R / 4u;
  var rb = vec4u(0u);
  for (var r = 0u; r < RB; r++) { rb[r] = min(n0 + r, p.J - 1u) * R4; }
  for (var k4 = lane; k4 < R4; k4 += lanes) {
    let xk = x4[k4];
    for (var r = 0u; r < RB; r++) { acc[r] += dot(xk, w4[rb[r] + k4]); }
  }
  return acc;
}

// Block i of this subgroup: (its first row n0, the rows of it to store: inside the workgroup's RPW
// and inside N, 0 past the last block). Every subgroup runs the same number of blocks, steps()
// (uniform control flow around subgroupAdd): a subgroup past its last block adds zeros and stores
// nothing.
fn block(wid: vec3u, nwg: vec3u, sg: u32, nsg: u32, i: u32) -> vec2u {
  let r0 = (sg + i * nsg) * RB;
  let n0 = (wid.x + wid.y * nwg.x) * RPW + r0;
  var rows = 0u;
  if (r0 < RPW && n0 < p.J) { rows = min(min(RB, RPW - r0), p.J - n0); }
  return vec2u(n0, rows);
}

fn steps(nsg: u32) -> u32 { return ((RPW + RB - 1u) / RB + nsg - 1u) / nsg; }

// The block's row sums over the subgroup, stored by its first lane.
fn reduce_store(b: vec2u, part: vec4f, lane: u32) {
  for (var r = 0u; r < RB; r++) {
    let total = subgroupAdd(part[r]);
    if (lane == 0u && r < b.y) {
      let n = b.x + r;
      if (p.accumulate != 0u) { y[n] = y[n] + total; } else { y[n] = total; }
    }
  }
}

// Lanes are numbered densely over the invocations present in the subgroup (subgroupExclusiveAdd).
@compute @workgroup_size(WG)
fn gemv_red(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32) {
  let lane = subgroupExclusiveAdd(1u);
  let lanes = subgroupAdd(1u);
  for (var i = 0u; i < steps(nsg); i++) {
    let b = block(wid, nwg, sg, nsg, i);
    var part = vec4f(0.0);
    if (b.y > 0u) { part = part_scalar(b.x, lane, lanes); }
    reduce_store(b, part, lane);
  }
}

// gemv_red's body with the vec4 part: one entry may not use both views of a binding, and WGSL has
// no function parameters of function type, so the 9 lines are written twice
@compute @workgroup_size(WG)
fn gemv_red4(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_id) sg: u32, @builtin(num_subgroups) nsg: u32) {
  let lane = subgroupExclusiveAdd(1u);
  let lanes = subgroupAdd(1u);
  for (var i = 0u; i < steps(nsg); i++) {
    let b = block(wid, nwg, sg, nsg, i);
    var part = vec4f(0.0);
    if (b.y > 0u) { part = part_vec4(b.x, lane, lanes); }
    reduce_store(b, part, lane);
  }
}
