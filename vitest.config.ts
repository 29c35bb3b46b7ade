import { defineConfig } from 'vitest/config';

// Engine tests run in Node against real Dawn (lavapipe or SwiftShader, see src/engine/gpu/node.ts).
// One fork at a time: the machine has 2 cores and a software Vulkan driver already uses both.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    setupFiles: ['src/engine/test-setup.ts'],
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
