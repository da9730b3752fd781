// The time-skipping test server the timer-heavy tests run against (`@temporalio/testing`),
// found or built with Maven from the pom beside this file: only tests (test/global-setup.ts)
// and `npm run setup:temporal` ask for it, so it lives under test/, not with npm start's binaries.
import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultLog, isExecutable, onPath, runBuildStep, TEMPORAL_DIR, TemporalSetupError, type Log, type ServerExecutable } from '../workers/temporal-binaries';

/** Maven coordinates of the time-skipping test server; its version lives in the pom beside this file. */
const TEST_SERVER_POM = join(dirname(fileURLToPath(import.meta.url)), 'temporal-test-server.pom.xml');

/**
 * The time-skipping test server, in this order: `TEMPORAL_TEST_SERVER` → the
 * Maven-built copy in `.temporal/test-server` (built now with Java + Maven when
 * missing) → the SDK's download.
 */
export async function obtainTestServer(opts: { env?: NodeJS.ProcessEnv; build?: boolean; log?: Log } = {}): Promise<ServerExecutable> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  if (env.TEMPORAL_TEST_SERVER) {
    if (!(await isExecutable(env.TEMPORAL_TEST_SERVER))) {
      throw new TemporalSetupError(`TEMPORAL_TEST_SERVER=${env.TEMPORAL_TEST_SERVER} is not an executable file`);
    }
    return { type: 'existing-path', path: env.TEMPORAL_TEST_SERVER, source: 'TEMPORAL_TEST_SERVER' };
  }
  const home = join(TEMPORAL_DIR, 'test-server');
  const wrapper = join(home, 'temporal-test-server');
  if (await isExecutable(wrapper)) return { type: 'existing-path', path: wrapper, source: '.temporal/test-server' };
  if (opts.build === false) return { type: 'cached-download', source: 'SDK download (no local build requested)' };

  const java = await onPath('java', env.PATH);
  const mvn = await onPath('mvn', env.PATH);
  if (!java || !mvn) {
    log(`no ${!java ? 'Java' : 'Maven'} to build the time-skipping test server: falling back to the SDK download (needs internet).`);
    log('  To avoid this, install a JDK (17+) and Maven, or set TEMPORAL_TEST_SERVER to a test server executable.');
    return { type: 'cached-download', source: 'SDK download' };
  }
  log('fetching io.temporal:temporal-test-server and its dependencies with Maven (first time only)…');
  const started = Date.now();
  const staging = join(TEMPORAL_DIR, `test-server.tmp-${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    await runBuildStep(mvn, ['-B', '-q', '-f', TEST_SERVER_POM, 'dependency:copy-dependencies', `-DoutputDirectory=${join(staging, 'lib')}`], {
      cwd: staging,
      env,
      log,
      what: 'fetching the time-skipping test server with Maven',
    });
    const jars = await readdir(join(staging, 'lib'));
    if (!jars.some((jar) => jar.startsWith('temporal-test-server'))) {
      throw new TemporalSetupError('Maven finished but no temporal-test-server jar was copied');
    }
    // The SDK starts the server as `<path> <port>`; exec keeps one process to kill.
    await writeFile(
      join(staging, 'temporal-test-server'),
      '#!/bin/sh\n# Built by test/temporal-test-server.ts; the SDK passes <port>.\n' +
        'here=$(cd "$(dirname "$0")" && pwd)\n' +
        'exec java ${TEMPORAL_TEST_SERVER_JAVA_OPTS:--Xmx512m} -cp "$here/lib/*" io.temporal.testserver.TestServer "$@"\n',
    );
    await chmod(join(staging, 'temporal-test-server'), 0o755);
    await rm(home, { recursive: true, force: true });
    await rename(staging, home);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  log(`built ${wrapper} in ${Math.round((Date.now() - started) / 1000)} s`);
  return { type: 'existing-path', path: wrapper, source: '.temporal/test-server (built now)' };
}

