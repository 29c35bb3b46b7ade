// 8x8 register tiles over workgroup-memory slabs, shared by matmul.wgsl (tiled8) and qmatmul.wgsl
// (gemm_wg8, dx_wg8): real GPUs. A (16, 16) workgroup computes a 128 (i) × 128 (j) block of C;
// each slab holds 8 r × 128 rows as vec4s of 4 consecutive rows: As8[rr·32 + q] = A rows
// 4q..4q+3 of the block at r0 + rr, Bs8 likewise for B's rows (C's columns). Thread (tx, ty) owns
// rows 4ty + {0..3} and 64 + 4ty + {0..3}, columns 4tx + {0..3} and 64 + 4tx + {0..3}: per rr it
// reads 2 vec4s of A (two addresses per 32 threads: broadcasts) and 2 of B (16 consecutive vec4s:
// no bank conflicts) for 64 FMAs (the 4x4 tiles of tiled / gemm_wg: 8 scalar reads per 16 FMAs).
// acc[4h + c]: row 4ty + 64h + c, columns 4tx..4tx+3; acc[8 + 4h + c]: columns 64 + 4tx.. .
var<workgroup> As8: array<vec4f, 256>;
var<workgroup> Bs8: array<vec4f, 256>;

fn tile8_slab(tx: u32, ty: u32, acc: ptr<function, array<vec4f, 16>>) {
  for (var rr = 0u; rr < 8u; rr++) {
    let a0 = As8[rr * 32u + ty];
    let a1 = As8[rr * 32u + 16u + ty];
    let b0 = Bs8[rr * 32u + tx];
    let b1 = Bs8[rr * 32u + 16u + tx];
    (*acc)[0] += a0.x * b0; (*acc)[1] += a0.y * b0; (*acc)[2] += a0.z * b0; (*acc)[3] += a0.w * b0;
    (*acc)[4] += a1.x * b0; (*acc)[5] += a1.y * b0; (*acc)[6] += a1.z * b0; (*acc)[7] += a1.w * b0;
    (*acc)[8] += a0.x * b1; (*acc)[9] += a0.y * b1; (*acc)[10] += a0.z * b1; (*acc)[11] += a0.w * b1;
    (*acc)[12] += a1.x * b1; (*acc)[13] += a1.y * b1; (*acc)[14] += a1.z * b1; (*acc)[15] += a1.w * b1;
  }
}

// The block row and first column of acc[t] (add the block's origin).
fn tile8_row(ty: u32, t: u32) -> u32 { return 4u * ty + 64u * ((t / 4u) % 2u) + t % 4u; }
fn tile8_col(tx: u32, t: u32) -> u32 { return 4u * tx + 64u * (t / 8u); }

// This thread's slot in a slab for an operand: r fastest across threads where the operand is
// contiguous along r (coalesced reads), else its rows fastest. Returns (q, rr).
fn tile8_slot(tid: u32, alongR: bool) -> vec2u {
  if (alongR) { return vec2u(tid / 8u, tid % 8u); }
  return vec2u(tid % 32u, tid / 32u);
}
