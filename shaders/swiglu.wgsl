// SwiGLU (LLaMA MLP): out = silu(gate) * up, element-wise over n = rows*H.
//   forward:   out = g·σ(g)·u                                                    (assigns)
//   backward:  dgate = dout·u·σ(g)·(1 + g·(1 − σ(g))),  dup = dout·g·σ(g)        (both assign)
// σ is evaluated without overflow for large |g| (exp of a non-positive argument only).
// Bindings: @binding(0) params {n}; (1) gate, (2) up, (3) out, (4) dout, (5) dgate, (6) dup, as
// each entry uses. Dispatch: ceil(n/WG) workgroups folded 2-D by gpu.grid();
// i = gid.x + gid.y*nwg.x*WG. forward4 / backward4 (n % 4 == 0): the same float ops on vec4 views
// of the bindings, 4 elements per invocation (dispatch ceil(n/4/WG)): lavapipe loads each lane's
// address in a loop, so one vec4 load brings 4 elements for the price of one.
// CPU reference: src/engine/ref/swiglu.ts
override WG: u32 = 256;
struct Params { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(6) var<storage, read_write> dup: array<f32>;

fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, x >= 0.0);
}

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}

@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let g = gate[i];
  let s = sigmoid(g);
  let d = dout[i];
  dgate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
  dup[i] = d * g * s;
}

@group(0) @binding(1) var<storage, read> gate4: array<vec4f>;
@group(0) @binding(2) var<storage, read> up4: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4f>;
@group(0) @binding(4) var<storage, read> dout4: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> dgate4: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> dup4: array<vec4f>;

fn sigmoid4(x: vec4f) -> vec4f {
  let e = exp(-abs(x));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, x >= vec4f(0.0));
}

@compute @workgroup_size(WG)
fn forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n / 4u) { return; }
  let g = gate4[i];
  out4[i] = g * sigmoid4(g) * up4[i];
}

@compute @workgroup_size(WG)
fn backward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n / 4u) { return; }
  let g = gate4[i];
  let s = sigmoid4(g);
  let d = dout4[i];
  dgate4[i] = d * up4[i] * s * (1.0 + g * (1.0 - s));
  dup4[i] = d * g * s;
}
