// One Temporal dev server for the whole test run; test files connect to it.
// The time-skipping server is started per file by the tests that need it.
import type { TestProject } from 'vitest/node';
import { startDevServer } from '../workers/dev-server';
import { obtainTemporalCli, obtainTestServer } from '../workers/temporal-binaries';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    /** Path of the time-skipping test server, or '' for the SDK's download. */
    testServerPath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [cli, testServer] = await Promise.all([obtainTemporalCli(), obtainTestServer()]);
  const server = await startDevServer({ executable: cli });
  project.provide('temporalAddress', server.address);
  project.provide('testServerPath', testServer.type === 'existing-path' ? testServer.path : '');
  return () => server.stop();
}
