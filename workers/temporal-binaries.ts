// Finds or builds the Temporal dev server (the `temporal` CLI) `npm start` runs. The
// SDK's own download needs the internet, which many build machines lack, so we build it
// from registries we can reach (the tests' time-skipping server: test/temporal-test-server.ts).
import { spawn } from 'node:child_process';
import { access, constants, mkdir, rename, rm } from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TemporalSetupError } from '../common/failures';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where builds are cached (git-ignored). */
export const TEMPORAL_DIR = join(PROJECT_ROOT, '.temporal');

/** The `temporal` CLI release whose module builds with `go install` (later tags carry a `replace`). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

/** An executable to give `@temporalio/testing`, or the SDK's download when nothing local exists. */
export type ServerExecutable =
  | { type: 'existing-path'; path: string; source: string }
  | { type: 'cached-download'; source: string };

export { TemporalSetupError };

export type Log = (line: string) => void;
export const defaultLog: Log = (line) => process.stderr.write(`[temporal-setup] ${line}\n`);

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

/** `@temporalio/testing`'s executable option for a resolved server. */
export function sdkExecutable(exe: ServerExecutable): { type: 'existing-path'; path: string } | { type: 'cached-download' } {
  return exe.type === 'existing-path' ? { type: 'existing-path', path: exe.path } : { type: 'cached-download' };
}
