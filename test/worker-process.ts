// The worker as a real process (`npm run worker`), for tests that kill it or
// read everything it logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { hostTaskQueue } from '../common/slot';

const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url));
const FIXTURE_BIN = fileURLToPath(new URL('./fixtures/bin/', import.meta.url));
/** Every test peer listens on loopback, which a worker contacts only when allow-listed. */
export const TEST_ALLOWED_ENDPOINT_HOSTS = '127.0.0.1,localhost';
/** The test OAuth servers listen on loopback at random ports: a test that attacks the list names its own. */
export const TEST_OIDC_SERVERS = 'http://127.0.0.1:*,http://localhost:*';

/** The environment of `npm run worker` for a host whose CLIs are the fixture CLIs (fast, input logged). */
export function fixtureWorkerEnv(opts: { temporalAddress: string; host: string; sharedQueue: string; slotsDir: string }): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: opts.temporalAddress,
    SLOT_HOST: opts.host,
    SLOTS_TASK_QUEUE: opts.sharedQueue,
    SLOTS_DIR: opts.slotsDir,
    CLAUDE_BIN: `${FIXTURE_BIN}claude`,
    CODEX_BIN: `${FIXTURE_BIN}codex`,
    FIXTURE_SPEED: '0.2',
    FIXTURE_INPUT_LOG: `${opts.slotsDir}/.input.log`,
    LOGIN_ENV_PASSTHROUGH: 'FIXTURE_*',
    LOG_LEVEL: 'warn',
    // Worker processes of a test run would race for the token service's default port.
    AGENT_TOKEN_SERVICE: 'off',
  };
}
/** TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY in the Temporal API. */
const ACTIVITY_QUEUE = 2;

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Everything the worker printed (stdout and stderr), up to `keepBytes`. */
  output(): string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts `workers/worker.ts` in a process group of its own, so it can be killed whole. */
export function spawnWorkerProcess(env: Record<string, string>, keepBytes = 20_000_000): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/worker.ts'], {
    cwd: PROJECT_ROOT,
    env: { SLOTS_ALLOWED_ENDPOINT_HOSTS: TEST_ALLOWED_ENDPOINT_HOSTS, SLOTS_OIDC_SERVERS: TEST_OIDC_SERVERS, ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-keepBytes);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => output };
}

/** Resolves once the worker polls its host's activity queue (found by its identity, `<pid>@<hostname>`). */
export async function untilPolling(worker: WorkerProcess, client: Client, host: string, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  const identity = `${worker.child.pid}@`;
  while (Date.now() - started < timeoutMs) {
    if (worker.child.exitCode !== null || worker.child.signalCode !== null) {
      throw new Error(`worker exited (${worker.child.exitCode ?? worker.child.signalCode}) before polling:\n${worker.output().slice(-5000)}`);
    }
    const { pollers } = await client.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: hostTaskQueue(host) },
      taskQueueType: ACTIVITY_QUEUE,
    });
    if (pollers.some((p) => p.identity?.startsWith(identity))) return Date.now() - started;
    await sleep(200);
  }
  throw new Error(`worker ${worker.child.pid} did not poll ${hostTaskQueue(host)} within ${timeoutMs} ms:\n${worker.output().slice(-5000)}`);
}

/** Ends the worker's whole process group (SIGKILL: an OOM kill or a power cut; SIGTERM: a clean stop) and waits for it. */
export async function stopWorkerProcess(worker: WorkerProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const { child } = worker;
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: already gone
  }
  await Promise.race([exited, sleep(10_000)]);
}
