import { afterAll } from 'vitest';
import { releaseTestGpu } from './testing';

afterAll(async () => {
  await releaseTestGpu();
});
