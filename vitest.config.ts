import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup-runtime.ts'],
    testTimeout: 60_000,
    hookTimeout: 300_000,
    // Two cores: PTYs, workers and the Temporal servers share them.
    maxWorkers: 2,
    pool: 'forks',
  },
});
