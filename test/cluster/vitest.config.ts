// The scale-out tests on a real Temporal cluster on PostgreSQL (npm run test:cluster, the last step of npm test).
// A run of their own: the cluster takes ~a minute to set up, and its binaries
// are built by scripts/cluster/obtain.sh.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../../', import.meta.url)),
  test: {
    include: ['test/cluster/**/*.cluster-test.ts'],
    setupFiles: ['test/setup-runtime.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    maxWorkers: 1,
    pool: 'forks',
  },
});
