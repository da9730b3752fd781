// `npm run setup:temporal`: builds or finds the Temporal binaries the project runs
// (the `temporal` CLI for the dev server, the time-skipping test server) ahead of
// the first `npm start` / `npm test`, and says where they are.
import { obtainTemporalCli, TemporalSetupError } from '../workers/temporal-binaries';
import { obtainTestServer } from '../test/temporal-test-server';

const describe = (found: Awaited<ReturnType<typeof obtainTemporalCli>>): string =>
  found.type === 'existing-path' ? found.path : "the SDK's download (no local build)";

try {
  const [cli, testServer] = await Promise.all([obtainTemporalCli(), obtainTestServer()]);
  process.stdout.write(`temporal CLI: ${describe(cli)}\ntime-skipping test server: ${describe(testServer)}\n`);
} catch (err) {
  if (!(err instanceof TemporalSetupError)) throw err;
  process.stderr.write(`setup:temporal: ${err.message}\n`);
  process.exitCode = 1;
}
