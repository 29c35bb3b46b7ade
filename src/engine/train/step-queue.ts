// The in-flight window of asynchronous training steps, shared by KD-QAT (Distiller), distillation
// into another shape (StudentDistiller) and pretraining (Pretrainer). A step records its work,
// starts one async readback of its figures (Gpu.readAsync) and is pushed here; the queue hands the
// readbacks to `land` strictly in step order, as they arrive:
//   - push() returns every step whose readback has landed since the last call (often none);
//   - at most `maxInFlight` steps stay in flight: past that, push() waits for the oldest (a
//     "throttle wait", counted in `throttleWaits` and in the Gpu's counts when it really waited —
//     as a full launch queue makes a CUDA loop wait);
//   - drain() waits for every step in flight (before checkpoints, pauses and the end);
//   - when `land` throws (a non-finite loss), the steps submitted after that one are discarded —
//     they trained on top of a broken step, nothing of theirs is worth reporting — and the error
//     propagates. A readback that rejects (a GPU error) leaves its step at the head of the queue.
import type { AsyncRead, Gpu } from '../gpu/runtime';

export type ReadWait = Pick<Gpu, 'awaitRead'>;

export class StepQueue<E extends { read: AsyncRead }, R> {
  /** steps that may stay in flight ahead of the last landed one */
  maxInFlight: number;
  /** throttle lands that found the oldest readback not landed (the loop really waited) */
  throttleWaits = 0;
  private readonly entries: E[] = [];

  /** waiter: the Gpu (its awaitRead counts host and throttle waits); land: turns a landed step's
   *  readback (one ArrayBuffer per part) into its result */
  constructor(private readonly waiter: ReadWait, private readonly land: (entry: E, bufs: ArrayBuffer[]) => R, maxInFlight = 2) {
    this.maxInFlight = maxInFlight;
  }

  /** Steps in flight: pushed, not landed yet. */
  get pending(): number {
    return this.entries.length;
  }

  /** Add a submitted step; returns the results of the steps that have landed, in step order. */
  async push(entry: E): Promise<R[]> {
    this.entries.push(entry);
    const out: R[] = [];
    while (this.entries.length > this.maxInFlight) out.push(await this.landOldest('throttle'));
    while (this.entries.length && this.entries[0].read.landed) out.push(await this.landOldest('wait'));
    return out;
  }

  /** Wait for every step in flight; their results in step order. */
  async drain(): Promise<R[]> {
    const out: R[] = [];
    while (this.entries.length) out.push(await this.landOldest('wait'));
    return out;
  }

  private async landOldest(why: 'wait' | 'throttle'): Promise<R> {
    const e = this.entries[0];
    if (why === 'throttle' && !e.read.landed) this.throttleWaits++;
    const bufs = await this.waiter.awaitRead(e.read, why);
    this.entries.shift();
    try {
      return this.land(e, bufs);
    } catch (err) {
      this.entries.length = 0; // later steps trained on top of a broken one: nothing to report
      throw err;
    }
  }
}
