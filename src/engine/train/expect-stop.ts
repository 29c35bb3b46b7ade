// Test helper (imported by tests only): the stop on a non-finite loss that every asynchronous trainer shares.
import { expect } from 'vitest';

/** A trainer that submits steps asynchronously (Distiller, StudentDistiller) and must stop on a
 *  non-finite loss: the error names the loss, no more than maxInFlight + 1 steps were submitted, no
 *  metrics landed and nothing is left in flight. Its weights must already make step 0's loss NaN. */
export async function expectStopsOnNonFinite(
  d: { submitStep(): Promise<unknown>; drain(): Promise<unknown>; step: number; maxInFlight: number; history: unknown[]; pendingSteps: number },
  steps: number,
  message: RegExp,
): Promise<void> {
  let err: Error | null = null;
  try {
    for (let i = 0; i < steps; i++) await d.submitStep();
    await d.drain();
  } catch (e) {
    err = e as Error;
  }
  expect(err?.message).toMatch(message);
  expect(d.step).toBeLessThanOrEqual(d.maxInFlight + 1);
  expect(d.history.length).toBe(0);
  expect(d.pendingSteps).toBe(0);
}
