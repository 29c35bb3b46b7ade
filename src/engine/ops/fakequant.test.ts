import { describe, expect, it } from 'vitest';
import { expectClose, randn, testGpu, toF64 } from '../testing';
import { allocPacked, dequantize, freePacked, packMultiWidth, quantizePack, quantizePackMany, steBackward, steLsqBackward } from './fakequant';
import type { GpuPacked } from './qmatmul';
import type { Gpu, Tensor } from '../gpu/runtime';
import { dequantizeHost, getCode, layoutOf, quantizeHost, type Bits } from '../format/pack';
import { lsqForwardRef, lsqScaleGradRef, steRef } from '../ref/quant';

/** dscale += the LSQ step-size gradient (through the fused kernel, its dw into a scratch). */
function lsqBackward(gpu: Gpu, dscale: Tensor, dwq: Tensor, w: Tensor, p: GpuPacked): void {
  const dw = gpu.tensor('dw.scratch', [p.layout.N, p.layout.K]);
  steLsqBackward(gpu, dw, dscale, dwq, w, p);
  gpu.free(dw);
}

describe('GPU quantization', () => {
  for (const [N, K, bits, group, sym, clip] of [
    [5, 172, 4, 32, false, 1], [3, 64, 4, 64, true, 1], [4, 100, 8, 0, false, 0.9], [2, 96, 2, 32, false, 1], [3, 172, 3, 32, true, 0.8],
  ] as [number, number, Bits, number, boolean, number][]) {
    it(`quantizePack = host quantizer, N=${N} K=${K} bits=${bits} group=${group || 'K'} ${sym ? 'sym' : 'asym'} clip=${clip}`, async () => {
      const gpu = await testGpu();
      const w = randn(N * K, N * K + bits);
      const host = quantizeHost(w, N, K, { bits, group, sym }, clip);
      const p = allocPacked(gpu, 'q', layoutOf(N, K, bits, group));
      const tw = gpu.tensor('w', [N, K], 'f32', w);
      quantizePack(gpu, p, tw, { sym, clip });
      expectClose('scales', await gpu.readF32(p.scales), host.scales, { atol: 0, rtol: 1e-6 });
      expectClose('zeros', await gpu.readF32(p.zeros), host.zeros, { atol: 0, rtol: 0 });
      const codes = (await gpu.read(p.codes)) as Uint32Array;
      // Codes agree except where w/scale sits within float32 rounding of a .5 tie (GPU division
      // may differ by an ulp); count those and require them to be rare.
      let ties = 0;
      const gpuP = { ...host, codes };
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) {
          const a = getCode(gpuP, n, k), b = getCode(host, n, k);
          if (a !== b) {
            const s = host.scales[n * host.nBlocks + Math.floor(k / host.group)];
            const frac = Math.abs(((w[n * K + k] / s) % 1 + 1) % 1 - 0.5);
            expect(frac, `code mismatch at (${n}, ${k}) not at a tie`).toBeLessThan(1e-4);
            expect(Math.abs(a - b)).toBe(1);
            ties++;
          }
        }
      expect(ties).toBeLessThanOrEqual(2);
      const wq = gpu.tensor('wq', [N, K]);
      dequantize(gpu, wq, p);
      expectClose('dequant', await gpu.readF32(wq), dequantizeHost(gpuP), { atol: 0, rtol: 1e-6 });
      freePacked(gpu, p);
      gpu.free(tw);
      gpu.free(wq);
    });
  }

  it('STE passes the gradient inside the clipping range and blocks it outside (definition)', async () => {
    const gpu = await testGpu();
    const N = 4, K = 96;
    const w = randn(N * K, 5);
    // clip 0.6: the largest weights of each group fall outside the range
    const host = quantizeHost(w, N, K, { bits: 4, group: 32, sym: false }, 0.6);
    const p = allocPacked(gpu, 'q', host);
    const tw = gpu.tensor('w', [N, K], 'f32', w);
    quantizePack(gpu, p, tw, { sym: false, clip: 0.6 });
    const dwq = randn(N * K, 6), dw0 = randn(N * K, 7);
    const tdwq = gpu.tensor('dwq', [N, K], 'f32', dwq), tdw = gpu.tensor('dw', [N, K], 'f32', dw0);
    steBackward(gpu, tdw, tdwq, tw, p);
    const ref = steRef(dwq, w, { ...host, scales: await gpu.readF32(p.scales), zeros: await gpu.readF32(p.zeros) });
    const blocked = ref.filter((v, i) => v === 0 && dwq[i] !== 0).length;
    expect(blocked).toBeGreaterThan(0);
    expect(blocked).toBeLessThan(N * K / 2);
    expectClose('dw += ste(dwq)', await gpu.readF32(tdw), ref.map((v, i) => v + dw0[i]), { atol: 0, rtol: 1e-7 });
    freePacked(gpu, p);
    for (const t of [tw, tdwq, tdw]) gpu.free(t);
  });

  it('LSQ step-size gradient: reference formula vs finite differences, GPU vs reference', async () => {
    // LSQ differentiates s·clamp(round(w/s)) with round's straight-through estimate: the function
    // whose derivative it is treats c = round(w/s) − w/s as a constant (and the clamp set as
    // fixed): g(s') = s'·(w/s' + c) = w + s'·c inside, s'·qn or s'·qp at the clamps.
    const w = toF64(randn(16, 8, 0.3));
    const s = 0.05, qn = -8, qp = 7, eps = 1e-6;
    const up = toF64(randn(16, 9));
    const r0 = Array.from(w, (x) => Math.round(x / s));
    const clamped = r0.map((r) => r < qn || r > qp);
    const c = Array.from(w, (x, i) => r0[i] - x / s);
    const g = (ss: number) => r0.reduce((acc, r, i) => acc + up[i] * (clamped[i] ? ss * Math.min(qp, Math.max(qn, r)) : w[i] + ss * c[i]), 0);
    const fd = (g(s + eps) - g(s - eps)) / (2 * eps);
    expect(clamped.some((x) => x)).toBe(true);
    // and g agrees with the real forward at s (it is the same function value there)
    expect(Math.abs(g(s) - lsqForwardRef(w, s, qn, qp).reduce((a, v, i) => a + v * up[i], 0))).toBeLessThan(1e-9);
    const p = { ...quantizeHost(w, 1, 16, { bits: 4, group: 16, sym: true }), scales: Float32Array.of(s), zeros: Float32Array.of(8) };
    const analytic = lsqScaleGradRef(up, w, p)[0] * Math.sqrt(16 * qp); // undo the gradient scale
    expect(Math.abs(analytic - fd)).toBeLessThan(1e-5 * Math.max(1, Math.abs(fd)));

    const gpu = await testGpu();
    const N = 3, K = 100;
    const wl = randn(N * K, 10, 0.5);
    const host = quantizeHost(wl, N, K, { bits: 4, group: 32, sym: true }, 0.7);
    const pg = allocPacked(gpu, 'q', host);
    gpu.write(pg.scales, host.scales);
    gpu.write(pg.zeros, host.zeros);
    const tw = gpu.tensor('w', [N, K], 'f32', wl);
    quantizePack(gpu, pg, tw, { sym: true, keepScales: true });
    const dwq = randn(N * K, 11), ds0 = randn(N * host.nBlocks, 12);
    const tdwq = gpu.tensor('dwq', [N, K], 'f32', dwq), tds = gpu.tensor('ds', [N, host.nBlocks], 'f32', ds0);
    lsqBackward(gpu, tds, tdwq, tw, pg);
    const ref = lsqScaleGradRef(dwq, wl, host);
    expectClose('dscale', await gpu.readF32(tds), ref.map((v, i) => v + ds0[i]), { atol: 1e-5, rtol: 1e-4 });
    freePacked(gpu, pg);
    for (const t of [tw, tdwq, tds]) gpu.free(t);
  });
  it('LSQ step-size gradient stays finite where an asymmetric zero sits at qmax (2 bits, a group with no positive weight)', async () => {
    const gpu = await testGpu();
    const N = 2, K = 44; // ragged last group of 12
    const wl = randn(N * K, 13, 0.5);
    for (let k = 32; k < 44; k++) wl[k] = -Math.abs(wl[k]) - 0.01; // row 0, last group: all negative
    const host = quantizeHost(wl, N, K, { bits: 2, group: 32, sym: false });
    expect(host.zeros[1]).toBe(3);
    const pg = allocPacked(gpu, 'q2', host);
    const tw = gpu.tensor('w', [N, K], 'f32', wl);
    quantizePack(gpu, pg, tw, { sym: false });
    const dwq = randn(N * K, 14);
    const tdwq = gpu.tensor('dwq', [N, K], 'f32', dwq), tds = gpu.tensor('ds', [N, host.nBlocks]);
    lsqBackward(gpu, tds, tdwq, tw, pg);
    const got = await gpu.readF32(tds);
    expect(got.every(Number.isFinite)).toBe(true);
    expectClose('dscale', got, lsqScaleGradRef(dwq, wl, host), { atol: 1e-5, rtol: 1e-4 });
    freePacked(gpu, pg);
    for (const t of [tw, tdwq, tds]) gpu.free(t);
  });
  // awkward shapes: ragged last groups, a group longer than K, 2/3/4 bits, clipped codes both ways
  for (const [N, K, bits, group] of [[3, 45, 4, 16], [5, 172, 3, 32], [2, 20, 2, 32], [7, 64, 4, 64]] as [number, number, Bits, number][]) {
    it(`fused STE + LSQ: dw = the STE kernel's bit for bit, dw and dscale = the references, N=${N} K=${K} bits=${bits} group=${group}`, async () => {
      const gpu = await testGpu();
      const wl = randn(N * K, 20 + K);
      const L = layoutOf(N, K, bits, group);
      const pg = allocPacked(gpu, 'qf', L);
      const tw = gpu.tensor('w', [N, K], 'f32', wl);
      quantizePack(gpu, pg, tw, { sym: true });
      // learned scales moved off the min/max ones (smaller: some codes clamp at qn and at qp)
      const scales = (await gpu.readF32(pg.scales)).map((s, i) => s * (0.55 + 0.1 * (i % 5)));
      gpu.write(pg.scales, scales);
      const dwq = randn(N * K, 21), dw0 = randn(N * K, 22), ds0 = randn(N * L.nBlocks, 23);
      const tdwq = gpu.tensor('dwq', [N, K], 'f32', dwq);
      const sep = { dw: gpu.tensor('dw1', [N, K], 'f32', dw0) };
      const fused = { dw: gpu.tensor('dw2', [N, K], 'f32', dw0), ds: gpu.tensor('ds2', [N, L.nBlocks], 'f32', ds0) };
      steBackward(gpu, sep.dw, tdwq, tw, pg);
      steLsqBackward(gpu, fused.dw, fused.ds, tdwq, tw, pg);
      const [dw1, dw2, ds2] = [await gpu.readF32(sep.dw), await gpu.readF32(fused.dw), await gpu.readF32(fused.ds)];
      expect(Array.from(dw2)).toEqual(Array.from(dw1));
      const host = { ...quantizeHost(wl, N, K, { bits, group, sym: true }), scales, zeros: await gpu.readF32(pg.zeros) };
      const steR = steRef(dwq, wl, host);
      expect(steR.filter((v, i) => v === 0 && dwq[i] !== 0).length, 'some gradients blocked by the clamp').toBeGreaterThan(0);
      expectClose('dw', dw2, steR.map((v, i) => v + dw0[i]), { atol: 1e-6, rtol: 1e-6 });
      expectClose('dscale', ds2, lsqScaleGradRef(dwq, wl, host).map((v, i) => v + ds0[i]), { atol: 1e-5, rtol: 1e-4 });
      freePacked(gpu, pg);
      for (const t of [tw, tdwq, sep.dw, fused.dw, fused.ds]) gpu.free(t);
    });
  }
});

describe('quantizePackMany (pack_multi: many tensors per dispatch)', () => {
  // layouts that differ in every field: bits 2, 3, 4, 8; ragged last groups; per-channel; a group
  // smaller than a word's codes (2-bit: 16 per word, group 8); sizes that end mid-workgroup
  const shapes: [number, number, Bits, number, boolean][] = [
    [5, 172, 4, 32, false], [3, 64, 4, 64, true], [4, 100, 8, 0, false], [2, 96, 2, 32, false], [3, 172, 3, 32, true],
    [7, 40, 2, 8, false], [1, 4, 4, 0, false], [6, 130, 3, 0, true], [9, 33, 8, 16, false],
  ];
  for (const n of [1, 2, 3, 5, 9]) {
    it(`${n} tensors: codes, scales and zeros bit-identical to quantizePack on each (fewer dispatches)`, async () => {
      const gpu = await testGpu();
      const set = shapes.slice(0, n);
      const ws = set.map(([N, K], i) => gpu.tensor(`w${i}`, [N, K], 'f32', randn(N * K, 40 + i)));
      const one = set.map(([N, K, bits, group], i) => allocPacked(gpu, `one${i}`, layoutOf(N, K, bits, group)));
      const many = set.map(([N, K, bits, group], i) => allocPacked(gpu, `many${i}`, layoutOf(N, K, bits, group)));
      // every other tensor keeps (learned) scales: give both sides the same ones first
      set.forEach(([, , , , sym], i) => quantizePack(gpu, one[i], ws[i], { sym, clip: 0.9 }));
      set.forEach(([, , , , sym], i) => quantizePack(gpu, many[i], ws[i], { sym, clip: 0.9 }));
      // move the latents, as a step does, so the re-pack has work to do
      for (const [i, [N, K]] of set.entries()) gpu.write(ws[i], randn(N * K, 90 + i));
      set.forEach(([, , , , sym], i) => quantizePack(gpu, one[i], ws[i], { sym, clip: 0.9, keepScales: i % 2 === 1 }));
      const d0 = gpu.counts.dispatches;
      quantizePackMany(gpu, set.map(([, , , , sym], i) => ({ out: many[i], w: ws[i], sym, clip: 0.9, keepScales: i % 2 === 1 })));
      const groupParams = set.filter((_, i) => i % 2 === 0).length;
      expect(gpu.counts.dispatches - d0).toBe(groupParams + Math.ceil(n / packMultiWidth(gpu)));
      for (let i = 0; i < n; i++) {
        expect([...((await gpu.read(many[i].codes)) as Uint32Array)], `codes of tensor ${i}`).toEqual([...((await gpu.read(one[i].codes)) as Uint32Array)]);
        expect([...(await gpu.readF32(many[i].scales))], `scales of tensor ${i}`).toEqual([...(await gpu.readF32(one[i].scales))]);
        expect([...(await gpu.readF32(many[i].zeros))], `zeros of tensor ${i}`).toEqual([...(await gpu.readF32(one[i].zeros))]);
      }
      for (const p of [...one, ...many]) freePacked(gpu, p);
      for (const t of ws) gpu.free(t);
    });
  }
});
