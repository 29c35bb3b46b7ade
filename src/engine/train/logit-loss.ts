// Losses on the logits — KL(teacher‖student) with temperature (×T²) and next-token CE — and their
// gradient into d(final-norm output), chunk by chunk of rows, so that neither model ever holds
// B·T·V logits (49152 × 1024 rows is 201 MB, more than one binding on lavapipe): for each chunk of
// R rows the teacher's and the student's logits are recomputed from their final hidden states
// (LlamaModel.logitsRows), the per-row losses copied into a (B*T) row buffer, the chunk's dlogits
// written and immediately taken back through the classifier (d lm_head += dlogitsᵀ·xnf rows,
// dxnf rows = dlogits·W). With R = B*T it is the unchunked computation.
import type { Gpu, Tensor } from '../gpu/runtime';
import type { Activations, LlamaModel } from '../model/llama';
import { axpy } from '../ops/elementwise';
import { crossEntropyBackward, crossEntropyForward, klBackward, klForward } from '../ops/loss';
import { sum } from '../ops/optim';

import { TRAIN_LOGIT_CHUNK_BYTES, trainLogitRows } from './memory';

/** Rows per chunk on this adapter (memory.ts trainLogitRows), at most B*T. */
export function logitChunkRows(gpu: Gpu, BT: number, V: number, chunkBytes = TRAIN_LOGIT_CHUNK_BYTES): number {
  return trainLogitRows(BT, V, gpu.device.limits.maxStorageBufferBindingSize, chunkBytes);
}

export interface LogitLossArgs {
  student: LlamaModel;
  sa: Activations; // after the forward (final norm done, classifier skipped); logitRows = R
  teacher?: LlamaModel; // KL only
  ta?: Activations; // the teacher's, same B, T and logitRows
  targets?: Tensor; // (B*T) u32 next tokens (IGNORE_INDEX rows count 0), CE only
  temperature: number;
  /** gradient scales: d(loss)/d(per-row KL) and d(loss)/d(per-row CE); 0 = term off */
  klScale: number;
  ceScale: number;
  /** out[klIndex] = Σ per-row KL, out[ceIndex] = Σ per-row CE (assigns; only for terms that are on) */
  out: Tensor;
  klIndex: number;
  ceIndex: number;
  /** (B*T, C) d(loss)/d(final-norm output) of the student (assigns) */
  dxnf: Tensor;
}

/** Scratch of one chunk size; reused across steps. */
export class LogitLoss {
  private readonly scratch = new Map<string, Tensor>();
  constructor(private readonly gpu: Gpu) {}
  private t(name: string, shape: number[], dtype: 'f32' | 'u32' = 'f32'): Tensor {
    const key = `${name}:${shape.join('x')}`;
    let x = this.scratch.get(key);
    if (!x) this.scratch.set(key, (x = this.gpu.tensor(`logitloss.${name}`, shape, dtype)));
    return x;
  }

  run(a: LogitLossArgs): void {
    const { gpu } = this;
    const { student, sa } = a;
    const BT = sa.B * sa.T, V = student.cfg.vocabSize, R = sa.logitRows;
    const kl = a.klScale !== 0, ce = a.ceScale !== 0;
    if (kl && (!a.teacher || !a.ta || a.ta.logitRows !== R)) throw new Error('LogitLoss: the KL term needs the teacher and its activations with the same logit rows');
    if (ce && !a.targets) throw new Error('LogitLoss: the CE term needs targets');
    const rowLoss = this.t('rowloss', [R]); // (R) per-row loss of one chunk
    const klRows = kl ? this.t('klrows', [BT]) : null; // (B*T) per-row KL
    const ceRows = ce ? this.t('cerows', [BT]) : null; // (B*T) per-row CE
    const tchunk = ce ? this.t('targets', [R], 'u32') : null; // (R) targets of the chunk
    const dl = this.t('dlogits', [R, V]); // (R, V) d loss / d student logits of the chunk
    const dl2 = kl && ce ? this.t('dlogits2', [R, V]) : null; // (R, V) the CE part, added to dl
    for (let r0 = 0; r0 < BT; r0 += R) {
      const n = Math.min(R, BT - r0);
      student.logitsRows(sa, r0, n);
      if (kl) {
        a.teacher!.logitsRows(a.ta!, r0, n);
        klForward(gpu, rowLoss, sa.logits, a.ta!.logits, n, V, a.temperature);
        gpu.copy(rowLoss, klRows!, n * 4, 0, r0 * 4);
        klBackward(gpu, dl, sa.logits, a.ta!.logits, n, V, a.temperature, a.klScale);
      }
      if (ce) {
        gpu.copy(a.targets!, tchunk!, n * 4, r0 * 4, 0);
        crossEntropyForward(gpu, rowLoss, sa.logits, tchunk!, n, V);
        gpu.copy(rowLoss, ceRows!, n * 4, 0, r0 * 4);
        crossEntropyBackward(gpu, dl2 ?? dl, sa.logits, tchunk!, n, V, a.ceScale);
        if (dl2) axpy(gpu, dl, 1, dl2);
      }
      if (!kl && !ce) gpu.zero(dl);
      student.classifierBackwardRows(sa, dl, r0, n, a.dxnf);
    }
    if (klRows) sum(gpu, a.out, a.klIndex, klRows, BT);
    if (ceRows) sum(gpu, a.out, a.ceIndex, ceRows, BT);
  }

  free(): void {
    for (const t of this.scratch.values()) this.gpu.free(t);
    this.scratch.clear();
  }
}
