// Every attention kernel this adapter runs, against the float64 reference, on the adapter itself.
// `quench kernels` prints it beside the matmul checks (and bench/gpu.sh runs `quench kernels`), so
// a kernel that is wrong on a GPU we have never seen is reported before its speed is: a
// workgroup-memory race that lavapipe's lockstep lanes hide, say. Shapes: a prefill with partial
// 64-row tiles, several key tiles and GQA at HS 64 (every forward; every backward, flash and
// materialized), and decoding one row against 300 cached keys of a 320-row cache.
// Operands are peaked (|q|, |k| up to 1.5): near-uniform probabilities would hide a wrong score.
import type { Gpu, Tensor } from '../gpu/runtime';
import { attentionCachedForwardRef, attentionBackwardRef } from '../ref/attention';
import { ATTENTION_VARIANTS, attentionBackward, attentionBackwardFlash, attentionForward } from './attention';
import { hasSubgroup8 } from './matmul';
import { seeded } from './seeded';

export interface AttentionCheck {
  /** e.g. "forward flash_split", "flash backward sg", "backward workgroup" */
  kernel: string;
  /** which pass was checked: a prefill forward, a backward, or a decoding forward */
  stage: 'forward' | 'backward' | 'decode';
  /** the kernel's variant (forwards: the AttentionVariant; backwards: thread, sg, workgroup) */
  variant: string;
  /** B×Tq×Tk NH/NKV HS */
  shape: string;
  /** max |got − ref| over max |ref| */
  relError: number;
  ok: boolean;
}

/** Forward outputs within 1e-4 of the largest |ref|, gradients within 1e-3: fp32 sums of up to 300
 *  terms err by ~1e-6 relative; a wrong mask, tile or merge moves outputs by ~1e-2 or more. */
export const ATTENTION_CHECK_TOL = { forward: 1e-4, backward: 1e-3 };

/** max |got − ref| / max |ref| (Infinity where got has a non-finite value). */
export function relError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let e = 0, m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Number.isFinite(got[i]) ? Math.abs(got[i] - ref[i]) : Infinity;
    e = Math.max(e, d);
    m = Math.max(m, Math.abs(ref[i]));
  }
  return e / Math.max(m, 1e-30);
}

const scaled = (n: number, seed: number, s: number) => seeded(n, seed).map((x) => x * s);

export async function checkAttentionVariants(gpu: Gpu): Promise<AttentionCheck[]> {
  const out: AttentionCheck[] = [];
  const tensors: Tensor[] = [];
  const t = (label: string, n: number, data?: Float32Array) => {
    const x = gpu.tensor(`check.${label}`, [n], 'f32', data ?? new Float32Array(n).fill(Number.NaN)); // every output must be written
    tensors.push(x);
    return x;
  };
  const forwards = ATTENTION_VARIANTS.filter((v) => v !== 'flash_sg' || hasSubgroup8(gpu));
  const record = async (stage: AttentionCheck['stage'], variant: string, kernel: string, shape: string, got: Tensor, ref: ArrayLike<number>, tol: number) => {
    const e = relError(await gpu.readF32(got), ref);
    out.push({ kernel, stage, variant, shape, relError: e, ok: e <= tol });
  };
  try {
    // prefill (training's case, Tq = Tk = T): forward, then the backward from each forward's state
    {
      const [B, T, NH, NKV, HS] = [2, 70, 4, 2, 64];
      const nq = B * T * NH * HS, nk = B * T * NKV * HS, shape = `${B}×${T}×${T} ${NH}/${NKV} HS ${HS}`;
      const q = scaled(nq, 21, 15), k = scaled(nk, 22, 15), v = scaled(nk, 23, 10), dout = scaled(nq, 24, 10);
      const tq = t('q', nq, q), tk = t('k', nk, k), tv = t('v', nk, v), tdo = t('dout', nq, dout);
      const s = { B, Tq: T, Tk: T, TkMax: T, NH, NKV, HS, pos0: 0 };
      const ref = attentionCachedForwardRef(q, k, v, s);
      const g = attentionBackwardRef(dout, q, k, v, { B, T, NH, NKV, HS });
      for (const variant of forwards) {
        const flash = variant.startsWith('flash');
        const o = t('out', nq), lse = t('lse', B * NH * T), probs = flash ? undefined : t('probs', B * NH * T * T);
        attentionForward(gpu, { out: o, q: tq, k: tk, v: tv, B, Tq: T, NH, NKV, HS, pos0: 0, variant, ...(flash ? { lse } : { probs }) });
        await record('forward', variant, `forward ${variant}`, shape, o, ref.out, ATTENTION_CHECK_TOL.forward);
        // the backwards: flash from flash_tiled's state (both forms), materialized from each materializing forward
        const backs: { name: string; variant: string; run: (dq: Tensor, dk: Tensor, dv: Tensor) => void }[] = [];
        if (variant === 'flash_tiled') {
          for (const bv of hasSubgroup8(gpu) ? (['thread', 'sg'] as const) : (['thread'] as const)) {
            backs.push({ name: `flash backward ${bv}`, variant: bv, run: (dq, dk, dv) => attentionBackwardFlash(gpu, { dq, dk, dv, drow: t('drow', B * NH * T), dout: tdo, q: tq, k: tk, v: tv, out: o, lse, B, T, NH, NKV, HS, variant: bv }) });
          }
        }
        if (!flash) backs.push({ name: `backward ${variant}`, variant, run: (dq, dk, dv) => attentionBackward(gpu, { dq, dk, dv, dscores: t('dscores', B * NH * T * T), dout: tdo, q: tq, k: tk, v: tv, probs: probs!, B, T, NH, NKV, HS, variant }) });
        for (const b of backs) {
          const dq = t('dq', nq), dk = t('dk', nk), dv = t('dv', nk);
          b.run(dq, dk, dv);
          for (const [name, got, r] of [['dq', dq, g.dq], ['dk', dk, g.dk], ['dv', dv, g.dv]] as const) await record('backward', b.variant, `${b.name} ${name}`, shape, got, r, ATTENTION_CHECK_TOL.backward);
        }
      }
    }
    // decoding: one query row at position 299 against a 320-row cache (rows past Tk hold garbage)
    {
      const [B, Tk, TkMax, NH, NKV, HS] = [1, 300, 320, 4, 2, 64];
      const nq = B * NH * HS, nk = B * TkMax * NKV * HS, shape = `${B}×1×${Tk} ${NH}/${NKV} HS ${HS}`;
      const q = scaled(nq, 31, 15), k = scaled(nk, 32, 15), v = scaled(nk, 33, 10);
      for (let i = Tk * NKV * HS; i < nk; i++) k[i] = v[i] = 1e4; // garbage rows: any read of them shows
      const tq = t('q', nq, q), tk = t('k', nk, k), tv = t('v', nk, v);
      const s = { B, Tq: 1, Tk, TkMax, NH, NKV, HS, pos0: Tk - 1 };
      const ref = attentionCachedForwardRef(q, k, v, s);
      for (const variant of forwards) {
        const flash = variant.startsWith('flash');
        const o = t('out', nq);
        attentionForward(gpu, { out: o, q: tq, k: tk, v: tv, ...s, variant, ...(flash ? {} : { probs: t('probs', B * NH * Tk) }) });
        await record('decode', variant, `decode ${variant}`, shape, o, ref.out, ATTENTION_CHECK_TOL.forward);
      }
    }
  } finally {
    for (const x of tensors) gpu.free(x);
  }
  return out;
}
