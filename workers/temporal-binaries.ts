// Finds or builds the Temporal dev server (the `temporal` CLI) and the
// time-skipping test server. The SDK's own download needs the internet, which
// many build machines lack, so we build both from registries we can reach.
import { spawn } from 'node:child_process';
import { access, chmod, constants, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TemporalSetupError } from '../common/failures';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where builds are cached (git-ignored). */
export const TEMPORAL_DIR = join(PROJECT_ROOT, '.temporal');

/** The `temporal` CLI release whose module builds with `go install` (later tags carry a `replace`). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
/** Maven coordinates of the time-skipping test server; its version lives in the pom beside this file. */
const TEST_SERVER_POM = join(dirname(fileURLToPath(import.meta.url)), 'temporal-test-server.pom.xml');

/** An executable to give `@temporalio/testing`, or the SDK's download when nothing local exists. */
export type ServerExecutable =
  | { type: 'existing-path'; path: string; source: string }
  | { type: 'cached-download'; source: string };

export { TemporalSetupError };

type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[temporal-setup] ${line}\n`);

export async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on `pathEnv`, then in `alsoIn` (a package's sbin, not on every PATH). */
export async function onPath(name: string, pathEnv = process.env.PATH ?? '', alsoIn: readonly string[] = []): Promise<string | undefined> {
  for (const dir of [...pathEnv.split(delimiter), ...alsoIn]) {
    if (dir && (await isExecutable(join(dir, name)))) return join(dir, name);
  }
  return undefined;
}

/** How often a build step that runs long says it is still at work. */
export const PROGRESS_EVERY_MS = 30_000;

/**
 * Runs a build step, streaming its output as progress lines; whatever the step prints (or
 * does not: Go is silent while it compiles), a line with the elapsed time comes at least
 * every `progressEveryMs`.
 */
export function runBuildStep(
  command: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; log: Log; what: string; progressEveryMs?: number },
): Promise<void> {
  const started = Date.now();
  const every = opts.progressEveryMs ?? PROGRESS_EVERY_MS;
  let lastSaid = started;
  const log: Log = (line) => {
    lastSaid = Date.now();
    opts.log(line);
  };
  const elapsed = (): string => {
    const s = Math.round((Date.now() - started) / 1000);
    return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  };
  // Checked often, said only after `every` of silence: a chatty step is not doubled, a silent one is never silent long.
  const ticker = setInterval(() => {
    if (Date.now() - lastSaid >= every) log(`… still ${opts.what}: ${elapsed()} elapsed`);
  }, Math.max(50, Math.min(every / 4, 5000)));
  return run(command, args, { ...opts, log: (line) => log(`${line} (${elapsed()})`) }).finally(() => clearInterval(ticker));
}

/** Runs a build step, streaming its output as progress lines. */
function run(command: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; log: Log }): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const onChunk = (chunk: Buffer): void => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4000);
      // Maven colours its output even when piped; keep the words only.
      for (const line of text.replace(/\u001b\[[0-9;]*m/g, '').split('\n')) if (line.trim()) opts.log(`  ${line.trim()}`);
    };
    child.stdout.on('data', onChunk);
    child.stderr.on('data', onChunk);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise();
      else reject(new TemporalSetupError(`${command} ${args.join(' ')} exited with ${code}:\n${tail}`));
    });
  });
}

/**
 * The dev server, in this order: `TEMPORAL_CLI` → `temporal` on PATH → the copy
 * built into `.temporal/bin` (built now with Go when missing) → the SDK's download.
 */
export async function obtainTemporalCli(opts: { env?: NodeJS.ProcessEnv; build?: boolean; log?: Log } = {}): Promise<ServerExecutable> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;
  if (env.TEMPORAL_CLI) {
    if (!(await isExecutable(env.TEMPORAL_CLI))) {
      throw new TemporalSetupError(`TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file`);
    }
    return { type: 'existing-path', path: env.TEMPORAL_CLI, source: 'TEMPORAL_CLI' };
  }
  const fromPath = await onPath('temporal', env.PATH);
  if (fromPath) return { type: 'existing-path', path: fromPath, source: 'PATH' };

  const built = join(TEMPORAL_DIR, 'bin', 'temporal');
  if (await isExecutable(built)) return { type: 'existing-path', path: built, source: '.temporal/bin' };
  if (opts.build === false) return { type: 'cached-download', source: 'SDK download (no local build requested)' };

  const go = await onPath('go', env.PATH);
  if (!go) {
    log('no `temporal` on PATH and no Go toolchain to build one: falling back to the SDK download (needs internet).');
    log('  To avoid this, install Go (https://go.dev/dl) or put a `temporal` binary on PATH, or set TEMPORAL_CLI.');
    return { type: 'cached-download', source: 'SDK download' };
  }
  log(`building the temporal CLI: go install ${TEMPORAL_CLI_MODULE} (first time only, a few minutes)…`);
  const started = Date.now();
  const staging = join(TEMPORAL_DIR, `bin.tmp-${process.pid}`);
  await mkdir(staging, { recursive: true });
  try {
    let downloads = 0;
    await runBuildStep(go, ['install', TEMPORAL_CLI_MODULE], {
      cwd: PROJECT_ROOT,
      env: { ...env, GOBIN: staging, GOFLAGS: `${env.GOFLAGS ?? ''} -mod=mod`.trim() },
      what: 'building the temporal CLI with go install (about 8 minutes on 2 cores the first time)',
      log: (line) => {
        // `go install` lists every module it downloads; one line in ten is progress enough.
        if (!line.includes('go: downloading') || ++downloads % 10 === 1) log(line);
      },
    });
    await mkdir(join(TEMPORAL_DIR, 'bin'), { recursive: true });
    await rename(join(staging, 'temporal'), built);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  log(`built ${built} in ${Math.round((Date.now() - started) / 1000)} s`);
  return { type: 'existing-path', path: built, source: '.temporal/bin (built now)' };
}

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
      '#!/bin/sh\n# Built by workers/temporal-binaries.ts; the SDK passes <port>.\n' +
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

/** `@temporalio/testing`'s executable option for a resolved server. */
export function sdkExecutable(exe: ServerExecutable): { type: 'existing-path'; path: string } | { type: 'cached-download' } {
  return exe.type === 'existing-path' ? { type: 'existing-path', path: exe.path } : { type: 'cached-download' };
}

// `npm run setup:temporal`: build both ahead of time and say where they are.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  const cli = await obtainTemporalCli();
  const testServer = await obtainTestServer();
  defaultLog(`temporal CLI: ${cli.type === 'existing-path' ? cli.path : 'SDK download'} (${cli.source})`);
  defaultLog(`test server:  ${testServer.type === 'existing-path' ? testServer.path : 'SDK download'} (${testServer.source})`);
  defaultLog(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
