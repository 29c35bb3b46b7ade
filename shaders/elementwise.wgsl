// Element-wise kernels: residual add, accumulate, scale.
// Bindings: @binding(0) params {n}, then storage buffers as each entry lists.
// Dispatch: ceil(n / WG) workgroups, folded 2-D by gpu.grid(); linear id = gid.x + gid.y*nwg.x*WG.
// The *4 entries (n % 4 == 0) take 4 elements per invocation through vec4 views of the same
// bindings (dispatch ceil(n / 4 / WG)): lavapipe loads each lane's address in a loop, so a vec4
// load brings 4 elements for the price of one (measured 2-2.5x the scalar add); same float ops.
// CPU reference: src/engine/ref/elementwise.ts
override WG: u32 = 256;

struct Params { n: u32, alpha: f32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;

// out = a + b                                   (assigns)
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  out[i] = a[i] + b[i];
}

// out += alpha * a                              (accumulates)
@compute @workgroup_size(WG)
fn axpy(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  out[i] = out[i] + p.alpha * a[i];
}

// out = alpha * out                             (in place)
@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  out[i] = p.alpha * out[i];
}


@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;

@compute @workgroup_size(WG)
fn add4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n / 4u) { return; }
  out4[i] = a4[i] + b4[i];
}

@compute @workgroup_size(WG)
fn axpy4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n / 4u) { return; }
  out4[i] = out4[i] + p.alpha * a4[i];
}

@compute @workgroup_size(WG)
fn scale4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n / 4u) { return; }
  out4[i] = p.alpha * out4[i];
}
