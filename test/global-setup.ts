// One Temporal dev server for the whole test run; test files connect to it.
// The time-skipping server is started per file by the tests that need it.
import type { TestProject } from 'vitest/node';
import { startDevServer } from '../workers/dev-server';
import { obtainTemporalCli } from '../workers/temporal-binaries';
import { obtainTestServer } from './temporal-test-server';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * PostgreSQL for the credential backup tests (Debian's package), by the cluster path's own
 * script: quick when installed. Missing and not installable: those tests skip, or fail with CI set.
 */
function obtainPostgres(): void {
  const script = fileURLToPath(new URL('../scripts/cluster/obtain.sh', import.meta.url));
  const result = spawnSync('bash', [script, '--postgres-only', '--or-skip'], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 15 * 60_000 });
  if (result.status !== 0) throw new Error(`${script} --postgres-only failed (${result.status ?? result.signal ?? result.error?.message}); see .temporal/cluster/obtain.log`);
}

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    /** Path of the time-skipping test server, or '' for the SDK's download. */
    testServerPath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  obtainPostgres();
  const [cli, testServer] = await Promise.all([obtainTemporalCli(), obtainTestServer()]);
  const server = await startDevServer({ executable: cli });
  project.provide('temporalAddress', server.address);
  project.provide('testServerPath', testServer.type === 'existing-path' ? testServer.path : '');
  return () => server.stop();
}
