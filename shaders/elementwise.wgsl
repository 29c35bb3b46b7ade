// Element-wise kernels: residual add, accumulate, scale.
// Bindings: @binding(0) params {n}, then storage buffers as each entry lists.
// Dispatch: ceil(n / WG) workgroups, folded 2-D by gpu.grid(); linear id = gid.x + gid.y*nwg.x*WG.
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
