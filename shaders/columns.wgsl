// A block of columns copied between two row-major matrices (the vocabulary-chunked classifier,
// src/engine/model/vocab.ts: each chunk's logits (M, Vk) into columns [v0, v0 + Vk) of the (M, V)
// logits, and a chunk's columns of d(logits) back out for its matmuls).
//   main: dst[r * dstStride + dstCol + c] = src[r * srcStride + srcCol + c]
//         for r < rows, c < cols; one thread per (r, c)                                  (assigns)
// Bindings: @binding(0) params {rows, cols, srcStride, srcCol, dstStride, dstCol}; (1) src f32,
// (2) dst f32. Dispatch: ceil(rows·cols / WG), folded 2-D by gpu.grid().
// CPU reference: src/engine/ref/embedding.ts copyColumnsRef
override WG: u32 = 256;

struct Params { rows: u32, cols: u32, srcStride: u32, srcCol: u32, dstStride: u32, dstCol: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  dst[r * p.dstStride + p.dstCol + c] = src[r * p.srcStride + p.srcCol + c];
}
