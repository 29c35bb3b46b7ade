// The packed low-bit matmuls' uniform, bindings, one-code unpack and masked x load, shared by
// qmatmul.wgsl, qmatmul_sg.wgsl, qmatmul_dx_sg.wgsl, qmatmul_gemv.wgsl and qmatmul_gemv_wide.wgsl
// (one wrapper, src/engine/ops/qmatmul.ts, binds them all the same way; layout:
// src/engine/format/pack.ts).
// bits, cpw = floor(32 / bits), span = cpw·bits (bits used per word), mask = 2^bits − 1 are
// uniforms, not overrides: one pipeline per entry serves every bit width (CPU Vulkan compiles
// each pipeline for seconds). Divisions by cpw happen once per 8-code chunk, not per code.
// Bindings: 0 params, 1 x / dY (read), 2 codes u32 (read), 3 scales f32 (read), 4 zeros f32
// (read), 5 y / dX (read_write).
struct Params { M: u32, N: u32, K: u32, group: u32, nBlocks: u32, wordsPerRow: u32, accumulate: u32, bits: u32, cpw: u32, span: u32, mask: u32, _a: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> codes: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<f32>;
@group(0) @binding(4) var<storage, read> zeros: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// Code t (t < 8) of a chunk whose first code sits at bit `off` of word lo (the rest run on into hi).
fn unpack1(lo: u32, hi: u32, off: u32, t: u32) -> f32 {
  let pos = off + t * p.bits;
  let inHi = pos >= p.span;
  return f32((select(lo, hi, inHi) >> select(pos, pos - p.span, inHi)) & p.mask);
}

// x[j..j+3] by scalar loads, zero at and past K (a vec4 load there may run past the buffer).
fn x4(j: u32) -> vec4f {
  let last = p.K - 1u;
  let jv = vec4u(j) + vec4u(0u, 1u, 2u, 3u);
  return select(vec4f(0.0), vec4f(x[min(jv.x, last)], x[min(jv.y, last)], x[min(jv.z, last)], x[min(jv.w, last)]), jv < vec4u(p.K));
}
