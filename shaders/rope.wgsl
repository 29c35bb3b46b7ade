// Rotary position embedding, Hugging Face rotate_half convention, in place on x (B, T, NHx, HS):
// within a head, dim i pairs with i + HS/2 (i < HS/2), angle = (pos0 + t) · theta^(-2i/HS).
// forward rotates by +angle; backward (the transpose) by -angle: dx = Rᵀ dy (assigns, in place).
// One thread per (b, t, head, i). CPU reference: src/engine/ref/rope.ts
override WG: u32 = 64;
struct Params { BT: u32, T: u32, nHeads: u32, HS: u32, theta: f32, pos0: u32, sign: f32, _p: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let half = p.HS / 2u;
  let idx = gid.x + gid.y * nwg.x * WG;
  if (idx >= p.BT * p.nHeads * half) { return; }
  let i = idx % half;
  let h = (idx / half) % p.nHeads;
  let bt = idx / (half * p.nHeads);
  let pos = f32(p.pos0 + bt % p.T);
  // inv_freq as HF computes it: 1 / theta^(2i/HS)
  let freq = 1.0 / pow(p.theta, f32(2u * i) / f32(p.HS));
  let ang = pos * freq;
  let c = cos(ang);
  let s = p.sign * sin(ang);
  let base = (bt * p.nHeads + h) * p.HS;
  let a = x[base + i];
  let b = x[base + i + half];
  x[base + i] = a * c - b * s;
  x[base + i + half] = b * c + a * s;
}
