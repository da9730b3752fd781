// What every benchmark stands on: its own Temporal dev server, the production
// worker in a child process (so its RSS and CPU are its own), the fixture CLIs,
// the local token server, a deadline, and cleanup of everything it started.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { ensureSlotHome, writeSecretFileAtomic } from '../activities/credential-store';
import { SlotClient } from '../client/slot-client';
import { hostTaskQueue } from '../common/slot';
import { startDevServer } from '../workers/dev-server';
import { findClusterBinaries, startCluster } from '../test/cluster/cluster';
import { obtainTemporalCli } from '../workers/temporal-binaries';
import { startTokenServer, type TokenServer, type TokenServerOptions } from '../test/peers/token-server';
import { childrenMatching, cpuSecondsOf, cpuWithChildrenOf, machineBusySeconds, processesWithEnv, sampleRss } from './process-stats';
import { emit, machine, note, type BenchmarkDocument } from './report';
import type { WorkerRequest, WorkerStats } from './worker-entry';

export const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const FIXTURE_BIN = join(PROJECT_ROOT, 'test', 'fixtures', 'bin');
/** Claude Code's public client id: the token server only refreshes grants of this client for Claude slots. */
export const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
/** TaskQueueType in the Temporal API. */
const WORKFLOW_QUEUE = 1;
const ACTIVITY_QUEUE = 2;

/** `dev` (default): the `temporal` CLI's dev server; `cluster`: temporal-server v1.29.1 on PostgreSQL. */
export const BENCH_TEMPORAL: 'dev' | 'cluster' = (() => {
  const raw = process.env.BENCH_TEMPORAL ?? 'dev';
  if (raw !== 'dev' && raw !== 'cluster') throw new Error(`BENCH_TEMPORAL=${JSON.stringify(raw)}: must be dev or cluster`);
  return raw;
})();

export interface BenchServer {
  readonly server: { readonly address: string };
  /** The Temporal server's process (its CPU is measured); PostgreSQL's are not included. */
  readonly pid: number | undefined;
  readonly client: Client;
  readonly slots: (taskQueue: string) => SlotClient;
  readonly kind: 'dev-server' | 'cluster';
  /** What the server's database holds on disk now, or null when it is in memory. */
  databaseBytes(): Promise<number | null>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A number from the environment (`BENCH_…`), for shorter trial runs; the default is what the issue asks. */
export function param(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name}=${JSON.stringify(raw)}: must be a non-negative number`);
  return value;
}

export function listParam(name: string, fallback: readonly number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return [...fallback];
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isInteger(v) || v <= 0)) throw new Error(`${name}=${JSON.stringify(raw)}: must be positive integers, comma-separated`);
  return values;
}

/** Runs `work` on every item with at most `concurrency` in flight; results in item order. */
export async function inPool<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return results;
}

export interface BenchWorker {
  readonly pid: number;
  readonly child: ChildProcess;
  /** The worker's own view: heap, external memory, CPU; after a full GC of its main isolate when `gc`. */
  stats(gc?: boolean): Promise<WorkerStats>;
  /** What the worker printed lately, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface WorkerSetup {
  readonly address: string;
  readonly host: string;
  readonly taskQueue: string;
  readonly slotsDir: string;
  /** Extra environment: fixture knobs, token endpoint. */
  readonly env?: Record<string, string>;
  /** Write V8 CPU profiles of every thread of the worker here when it stops. */
  readonly cpuProfDir?: string;
}

export class Rig {
  private readonly cleanups: Array<() => Promise<void>> = [];
  private cleaning: Promise<void> | undefined;

  constructor(readonly benchmark: string) {}

  note(message: string): void {
    note(this.benchmark, message);
  }

  /** Registers `fn` to run at the end (last registered, first run), even on failure or a signal. */
  defer(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      for (const fn of this.cleanups.splice(0).reverse()) {
        try {
          await Promise.race([fn(), sleep(30_000)]);
        } catch (err) {
          this.note(`cleanup step failed: ${String(err)}`);
        }
      }
    })();
    return this.cleaning;
  }

  async tempDir(prefix: string, parent = tmpdir()): Promise<string> {
    const dir = await mkdtemp(join(parent, `bench-${prefix}-`));
    this.defer(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  /**
   * The Temporal server a benchmark runs on: a dev server on a free port (in memory,
   * or on `dbFile`, SQLite, when given), or with `BENCH_TEMPORAL=cluster` a
   * temporal-server on PostgreSQL (test/cluster/cluster.ts, binaries from
   * scripts/cluster/obtain.sh), which ignores `dbFile`.
   */
  async startServer(opts: { dbFile?: string } = {}): Promise<BenchServer> {
    if (BENCH_TEMPORAL === 'cluster') return this.startCluster();
    const executable = await obtainTemporalCli();
    // BENCH_SQLITE_PRAGMAS=journal_mode=wal,synchronous=normal: experiments with the dev server's SQLite file.
    const pragmas = Object.fromEntries((process.env.BENCH_SQLITE_PRAGMAS ?? '').split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
    // BENCH_DEV_SERVER_CONFIG=matching.numTaskqueueReadPartitions=1,…: dynamic config experiments.
    const dynamicConfig = Object.fromEntries((process.env.BENCH_DEV_SERVER_CONFIG ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.lastIndexOf('=')), kv.slice(kv.lastIndexOf('=') + 1)] as [string, string]));
    const server = await startDevServer({ executable, dynamicConfig, ...(opts.dbFile ? { dbFile: opts.dbFile, sqlitePragmas: pragmas } : {}) });
    this.defer(() => server.stop());
    const [pid] = await childrenMatching(process.pid, 'start-dev');
    const connection = await Connection.connect({ address: server.address });
    this.defer(() => connection.close());
    const client = new Client({ connection, namespace: 'default' });
    this.note(`dev server at ${server.address}${opts.dbFile ? ` (SQLite ${opts.dbFile})` : ' (in memory)'}, pid ${pid ?? '?'}`);
    const databaseBytes = async (): Promise<number | null> => (opts.dbFile ? (await sqliteBytes(opts.dbFile)).total : null);
    return { server, pid, client, slots: (taskQueue) => new SlotClient(client, taskQueue), kind: 'dev-server', databaseBytes };
  }

  private async startCluster(): Promise<BenchServer> {
    const { missing } = findClusterBinaries();
    if (missing.length > 0) throw new Error(`BENCH_TEMPORAL=cluster: ${missing.join(', ')} missing; run scripts/cluster/obtain.sh`);
    const cluster = await startCluster({ log: (line) => this.note(`cluster: ${line}`) });
    this.defer(() => cluster.stop());
    const [pid] = await childrenMatching(process.pid, 'temporal-server');
    const connection = await Connection.connect({ address: cluster.address });
    this.defer(() => connection.close());
    const client = new Client({ connection, namespace: 'default' });
    this.note(`temporal-server on PostgreSQL at ${cluster.address}, pid ${pid ?? '?'}`);
    // Both databases: executions and histories, and the SQL visibility store.
    const databaseBytes = async (): Promise<number> =>
      Number(cluster.psql('temporal', "SELECT pg_database_size('temporal') + pg_database_size('temporal_visibility')")[0] ?? NaN);
    return { server: cluster, pid, client, slots: (taskQueue) => new SlotClient(client, taskQueue), kind: 'cluster', databaseBytes };
  }

  async startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
    const server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, ...opts });
    this.defer(() => server.close());
    return server;
  }

  /** The production worker (runWorker) as a child process in a process group of its own, polling when this resolves. */
  async startWorker(client: Client, setup: WorkerSetup): Promise<BenchWorker> {
    // BENCH_WORKER_NODE_FLAGS: extra node flags for the worker, for experiments (`--max-semi-space-size=32`).
    const extraFlags = (process.env.BENCH_WORKER_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
    const execArgv = ['--import', 'tsx', '--expose-gc', ...extraFlags, ...(setup.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${setup.cpuProfDir}`] : [])];
    const child = fork(join(PROJECT_ROOT, 'bench', 'worker-entry.ts'), [], {
      cwd: PROJECT_ROOT,
      execArgv,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: setup.address,
        SLOT_HOST: setup.host,
        SLOTS_TASK_QUEUE: setup.taskQueue,
        SLOTS_DIR: setup.slotsDir,
        CLAUDE_BIN: join(FIXTURE_BIN, 'claude'),
        CODEX_BIN: join(FIXTURE_BIN, 'codex'),
        LOGIN_ENV_PASSTHROUGH: 'FIXTURE_*',
        LOG_LEVEL: 'warn',
        // The bench's token server listens on loopback, which a worker contacts only when allow-listed.
        SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1',
        // The highest pace allowed: adoption checks and login starts take turns at it. The paced benchmarks set their own.
        PROVIDER_PACE: 'claude=10/s:10,codex=10/s:10',
        ...setup.env,
      },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    if (child.pid === undefined) throw new Error('the worker process did not start');
    const pid = child.pid;
    let output = '';
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

    const pending: Array<(stats: WorkerStats) => void> = [];
    child.on('message', (message: WorkerStats) => {
      if (message.type === 'stats') pending.shift()?.(message);
    });

    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM: the SDK shuts the workers down and runWorker closes every PTY it opened.
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(20_000)]);
        if (child.exitCode === null && child.signalCode === null) {
          this.note(`worker ${pid} ignored SIGTERM for 20 s: killing its process group`);
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // already gone
          }
          await Promise.race([exited, sleep(5000)]);
        }
      }
      // Login CLIs run in sessions of their own (node-pty); any the worker left behind go now.
      for (const stray of await processesWithEnv('HOME', `${setup.slotsDir}/`)) {
        try {
          process.kill(stray, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    };
    this.defer(stop);

    const worker: BenchWorker = {
      pid,
      child,
      output: () => output,
      stats: (gc = false) =>
        new Promise<WorkerStats>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('the worker did not answer a stats request within 10 s')), 10_000);
          pending.push((stats) => {
            clearTimeout(timer);
            resolve(stats);
          });
          const request: WorkerRequest = { type: 'stats', gc };
          child.send(request);
        }),
      stop,
    };

    const started = Date.now();
    const identity = `${pid}@`;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`worker exited (${child.exitCode ?? child.signalCode}) before polling:\n${output.slice(-5000)}`);
      }
      if (Date.now() - started > 90_000) throw new Error(`worker ${pid} did not poll within 90 s:\n${output.slice(-5000)}`);
      const polling = await Promise.all([
        client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: hostTaskQueue(setup.host) }, taskQueueType: ACTIVITY_QUEUE }),
        client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: setup.taskQueue }, taskQueueType: WORKFLOW_QUEUE }),
      ]);
      if (polling.every(({ pollers }) => pollers.some((p) => p.identity?.startsWith(identity)))) break;
      await sleep(200);
    }
    this.note(`worker pid ${pid} polling after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return worker;
  }
}

/**
 * Runs one benchmark. The Temporal dev server prints a banner on the stdout it
 * inherits, so the benchmark itself runs in a child process whose stdout is our
 * stderr, and hands its one JSON document back over IPC; this process prints it.
 * The child has a deadline (cleanup included) and cleans up on SIGINT/SIGTERM;
 * this process kills the child's process group if it outlives the deadline.
 */
export async function runBenchmark(
  benchmark: string,
  deadlineMs: number,
  body: (rig: Rig) => Promise<Omit<BenchmarkDocument, 'benchmark' | 'machine' | 'date'>>,
): Promise<void> {
  if (process.env.BENCH_INNER !== '1') return superviseBenchmark(benchmark, deadlineMs);
  const rig = new Rig(benchmark);
  const date = new Date().toISOString();
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  // Read before the worker starts: the code it loads is the work tree's at this moment.
  const codeAtStart = codeVersion();
  const abort = (why: string, code: number): void => {
    rig.note(`${why}: cleaning up`);
    void rig.cleanup().finally(() => process.exit(code));
  };
  const deadline = setTimeout(() => abort(`deadline of ${deadlineMs / 1000} s reached`, 3), deadlineMs);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(`got ${signal}`, 130));
  let code = 0;
  try {
    const doc = await body(rig);
    const full: BenchmarkDocument = {
      benchmark,
      machine: machine(),
      date,
      code: codeAtStart,
      // 1, 5 and 15 min load averages (/proc/loadavg): the machine is shared, and these include the benchmark itself.
      loadAverage: { atStart: loadAtStart, atEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
      ...doc,
    };
    await new Promise<void>((resolve, reject) => process.send?.(full, (err: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    rig.note(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    code = 1;
  } finally {
    clearTimeout(deadline);
    await rig.cleanup();
  }
  // Connections and the SDK's runtime would keep the process alive.
  process.exit(code);
}

/** The commit the benchmark ran on, and whether the work tree had changes. */
function codeVersion(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return 'unknown';
  }
}

async function superviseBenchmark(benchmark: string, deadlineMs: number): Promise<void> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, BENCH_INNER: '1' },
    // The child's stdout (and the dev server's banner) goes to our stderr.
    stdio: ['ignore', 2, 2, 'ipc'],
    detached: true,
  });
  let doc: BenchmarkDocument | undefined;
  child.on('message', (message: BenchmarkDocument) => (doc = message));
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const forward = (signal: NodeJS.Signals) => () => killGroup(signal);
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  // The child's own deadline fires first; this one is for a child that hangs in its cleanup.
  const hardStop = setTimeout(() => {
    note(benchmark, 'still running 60 s past its deadline: killing its process group');
    killGroup('SIGKILL');
  }, deadlineMs + 60_000);
  const code = await new Promise<number>((resolve) => child.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
  clearTimeout(hardStop);
  if (doc) emit(doc);
  process.exit(doc ? code : code || 1);
}

export interface CpuSnapshot {
  readonly at: number;
  readonly worker: { self: number; children: number } | undefined;
  readonly server: number | undefined;
  readonly driver: NodeJS.CpuUsage;
  /** Busy CPU seconds of the whole machine (every process, ours and others'). */
  readonly machine: number | undefined;
}

/** CPU used so far by the worker (and the CLIs it ran), the Temporal server and this process. */
export async function cpuSnapshot(workerPid: number, serverPid: number | undefined): Promise<CpuSnapshot> {
  return {
    at: Date.now(),
    worker: await cpuWithChildrenOf(workerPid),
    server: serverPid !== undefined ? await cpuSecondsOf(serverPid) : undefined,
    driver: process.cpuUsage(),
    machine: await machineBusySeconds(),
  };
}

/** CPU seconds spent between two snapshots, per process, and the wall time; utilisation is per core. */
export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): Record<string, number | null> {
  const r = (x: number): number => Math.round(x * 100) / 100;
  const wall = (b.at - a.at) / 1000;
  const worker = a.worker && b.worker ? b.worker.self - a.worker.self : NaN;
  const clis = a.worker && b.worker ? b.worker.children - a.worker.children : NaN;
  const server = a.server !== undefined && b.server !== undefined ? b.server - a.server : NaN;
  const driver = (b.driver.user - a.driver.user + b.driver.system - a.driver.system) / 1e6;
  const ours = worker + (Number.isFinite(clis) ? clis : 0) + (Number.isFinite(server) ? server : 0) + driver;
  const machine = a.machine !== undefined && b.machine !== undefined ? b.machine - a.machine : NaN;
  return {
    wallSeconds: r(wall),
    worker: r(worker),
    loginClisExited: r(clis),
    temporalServer: Number.isFinite(server) ? r(server) : null,
    driver: r(driver),
    coresBusy: r(ours / wall),
    /** The whole machine, every process: what else ran on the 2 cores meanwhile is the difference (it includes CLIs still running). */
    machineCoresBusy: Number.isFinite(machine) ? r(machine / wall) : null,
    otherCoresBusy: Number.isFinite(machine) ? r(Math.max(machine - ours, 0) / wall) : null,
  };
}

/** Workflows matching a visibility query (the dev server's SQLite visibility). */
export async function countWorkflows(client: Client, query: string): Promise<number> {
  return (await client.workflow.count(query)).count;
}

/** Polls a visibility count until it reaches `want`, or `timeoutMs`; returns the last count. */
export async function untilCount(client: Client, query: string, want: number, opts: { timeoutMs: number; everyMs?: number; onCount?: (n: number) => void }): Promise<number> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = -1;
  for (;;) {
    const n = await countWorkflows(client, query);
    if (n !== last) opts.onCount?.(n);
    last = n;
    if (n >= want || Date.now() >= deadline) return n;
    await sleep(opts.everyMs ?? 250);
  }
}

/** Writes a Claude credential as the CLI would, with tokens the token server issued. */
export async function seedClaudeCredential(slotsDir: string, slotId: string, tokens: { accessToken: string; refreshToken: string }, expiresAt: number): Promise<void> {
  const home = await ensureSlotHome(slotsDir, slotId);
  await writeSecretFileAtomic(
    home,
    '.claude/.credentials.json',
    JSON.stringify({
      claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt, scopes: ['user:inference'], subscriptionType: 'max' },
    }),
  );
}

/** Size of a SQLite database with its write-ahead log and shared-memory index. */
export async function sqliteBytes(file: string): Promise<{ db: number; wal: number; shm: number; total: number }> {
  const size = (p: string): Promise<number> => stat(p).then((s) => s.size, () => 0);
  const [db, wal, shm] = await Promise.all([size(file), size(`${file}-wal`), size(`${file}-shm`)]);
  return { db, wal, shm, total: db + wal + shm };
}


/** Median RSS (KiB) over a few seconds after a GC of the worker's main isolate: one number that noise does not move much. */
export async function settledRss(worker: BenchWorker, seconds: number): Promise<number> {
  await worker.stats(true);
  const sampler = sampleRss(worker.pid, 250);
  await sleep(seconds * 1000);
  const samples = sampler.stop().sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? NaN;
}
