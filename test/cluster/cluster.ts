// A real Temporal cluster for the scale-out tests: PostgreSQL (Debian's package) run
// as our own instance under a temporary directory, the schema created by
// temporal-sql-tool, and temporal-server (frontend, history, matching, worker) on
// 127.0.0.1 with SQL visibility. The binaries come from scripts/cluster/obtain.sh
// (cached under .temporal/cluster/). No system service is used or needed.
//
//   npx tsx test/cluster/cluster.ts      # start one, print its address, Ctrl-C stops it
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { registerSearchAttributes } from '../../workers/worker';

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TEMPORAL_SERVER_VERSION = process.env.TEMPORAL_SERVER_VERSION ?? 'v1.29.1';
const CLUSTER_DIR = join(PROJECT_ROOT, '.temporal', 'cluster');
const DB_USER = 'temporal';
const DB_PASSWORD = 'temporal';
export const NAMESPACE = 'default';

export interface ClusterBinaries {
  readonly pgBin: string;
  readonly temporalServer: string;
  readonly sqlTool: string;
  readonly schemaDir: string;
}

/** What obtain.sh would have to provide and has not: empty when the cluster can run. */
export function findClusterBinaries(): { binaries?: ClusterBinaries; missing: string[] } {
  const missing: string[] = [];
  const versions = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .filter((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const pgBin = versions[0] ? join('/usr/lib/postgresql', versions[0], 'bin') : '';
  if (!pgBin) missing.push('PostgreSQL (initdb under /usr/lib/postgresql/*/bin)');
  const temporalServer = join(CLUSTER_DIR, 'bin', 'temporal-server');
  const sqlTool = join(CLUSTER_DIR, 'bin', 'temporal-sql-tool');
  const schemaDir = join(CLUSTER_DIR, 'schema', TEMPORAL_SERVER_VERSION);
  const stamp = join(CLUSTER_DIR, 'bin', '.version');
  const built = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
  if (!existsSync(temporalServer) || built !== TEMPORAL_SERVER_VERSION) missing.push(`${temporalServer} ${TEMPORAL_SERVER_VERSION}`);
  if (!existsSync(sqlTool)) missing.push(sqlTool);
  if (!existsSync(join(schemaDir, 'temporal', 'versioned'))) missing.push(join(schemaDir, 'temporal', 'versioned'));
  if (missing.length > 0) return { missing };
  return { binaries: { pgBin, temporalServer, sqlTool, schemaDir }, missing };
}

/** Whether `port` can be bound on 127.0.0.1 now. */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();
/**
 * A free TCP port on 127.0.0.1 (free when asked; the server binds it soon after), below
 * 32768: Temporal stores membership ports in a PostgreSQL smallint, and the kernel's
 * ephemeral ports (what port 0 gives) start at 32768.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port in 20000-31999 on 127.0.0.1');
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function run(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, ...opts.env }, timeout: 120_000 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal ?? result.error?.message}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user. */
export function asPostgres(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

export interface Cluster {
  /** host:port of the frontend. */
  readonly address: string;
  readonly pgPort: number;
  readonly dir: string;
  readonly binaries: ClusterBinaries;
  /** Runs SQL on one of the cluster's databases and returns psql's unaligned rows. */
  psql(database: 'temporal' | 'temporal_visibility', sql: string): string[];
  /** The server's own log so far (for failures). */
  serverLog(): string;
  /** Kills the Temporal server (SIGKILL by default) and waits for it; PostgreSQL keeps running. */
  killServer(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the Temporal server again on the same ports and database, and waits until it serves. */
  restartServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  /** Keep the data directory after stop (default: removed). */
  readonly keepDir?: boolean;
  /** Progress lines (default: silent). */
  readonly log?: (line: string) => void;
  /** How long to wait for the frontend and the namespace. @default 120 s */
  readonly readyTimeoutMs?: number;
}

function serverConfig(p: {
  pgPort: number;
  ports: Record<'frontend' | 'frontendMembership' | 'frontendHttp' | 'history' | 'historyMembership' | 'matching' | 'matchingMembership' | 'worker' | 'workerMembership', number>;
  dynamicConfigPath: string;
}): string {
  const store = (database: string, maxConns: number): string => `
      sql:
        pluginName: "postgres12"
        databaseName: "${database}"
        connectAddr: "127.0.0.1:${p.pgPort}"
        connectProtocol: "tcp"
        user: "${DB_USER}"
        password: "${DB_PASSWORD}"
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: "1h"`;
  const service = (grpc: number, membership: number, extra = ''): string => `
    rpc:
      grpcPort: ${grpc}
      membershipPort: ${membership}
      bindOnLocalHost: true${extra}`;
  return `# Written by test/cluster/cluster.ts: one Temporal cluster on PostgreSQL, all services in one process.
log:
  stdout: true
  level: warn

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: 4
  datastores:
    postgres-default:${store('temporal', 20)}
    postgres-visibility:${store('temporal_visibility', 4)}

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "127.0.0.1"

services:
  frontend:${service(p.ports.frontend, p.ports.frontendMembership, `\n      httpPort: ${p.ports.frontendHttp}`)}
  history:${service(p.ports.history, p.ports.historyMembership)}
  matching:${service(p.ports.matching, p.ports.matchingMembership)}
  worker:${service(p.ports.worker, p.ports.workerMembership)}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "127.0.0.1:${p.ports.frontend}"

dcRedirectionPolicy:
  policy: "noop"

dynamicConfigClient:
  filepath: "${p.dynamicConfigPath}"
  pollInterval: "10s"
`;
}

// Search attributes added by the workers are seen at once (the default cache would lag a minute).
/** The cluster's dynamic configuration: the file docker-compose.yml mounts too. */
export const DYNAMIC_CONFIG_FILE = join(PROJECT_ROOT, 'temporal', 'dynamicconfig.yaml');

/** Starts PostgreSQL and a Temporal server on it, with the namespace `default` and the project's search attributes. */
export async function startCluster(opts: StartClusterOptions = {}): Promise<Cluster> {
  const { binaries, missing } = findClusterBinaries();
  if (!binaries) throw new Error(`cluster components missing (run scripts/cluster/obtain.sh): ${missing.join(', ')}`);
  const log = opts.log ?? (() => {});
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const dir = await mkdtemp(join(tmpdir(), 'temporal-cluster-'));
  const pgData = join(dir, 'pgdata');
  const pgSock = join(dir, 'pgsock');
  await mkdir(pgSock);
  if (process.getuid?.() === 0) {
    const uid = Number(run('id', ['-u', 'postgres']).trim());
    const gid = Number(run('id', ['-g', 'postgres']).trim());
    await chown(dir, uid, gid);
    await chown(pgSock, uid, gid);
  }
  const pg = (name: string): string => join(binaries.pgBin, name);
  const pgPort = await freePort();
  let pgStarted = false;
  let server: ChildProcess | undefined;
  const serverLogPath = join(dir, 'temporal-server.log');

  const stopPostgres = (): void => {
    if (!pgStarted) return;
    const [cmd, args] = asPostgres(pg('pg_ctl'), ['-D', pgData, '-m', 'fast', '-w', 'stop']);
    spawnSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
    pgStarted = false;
  };
  const killServer = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await Promise.race([exited, sleep(30_000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  try {
    // 1. PostgreSQL, our own instance.
    log(`initdb ${pgData}`);
    const pwFile = join(dir, 'pwfile');
    await writeFile(pwFile, `${DB_PASSWORD}\n`, { mode: 0o644 });
    let [cmd, args] = asPostgres(pg('initdb'), ['-D', pgData, '-U', DB_USER, `--pwfile=${pwFile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync']);
    run(cmd, args);
    [cmd, args] = asPostgres(pg('pg_ctl'), [
      '-D', pgData, '-l', join(dir, 'postgresql.log'), '-w', '-t', '60',
      '-o', `-p ${pgPort} -c listen_addresses=127.0.0.1 -k ${pgSock} -c max_connections=200`,
      'start',
    ]);
    log(`pg_ctl start on 127.0.0.1:${pgPort}`);
    run(cmd, args);
    pgStarted = true;

    // 2. The schema, by the server's own tool.
    const sql = (database: string, ...rest: string[]): void => {
      run(binaries.sqlTool, [
        '--plugin', 'postgres12', '--endpoint', '127.0.0.1', '--port', String(pgPort),
        '--user', DB_USER, '--password', DB_PASSWORD, '--database', database, ...rest,
      ]);
    };
    for (const [database, schema] of [['temporal', 'temporal'], ['temporal_visibility', 'visibility']] as const) {
      log(`temporal-sql-tool: ${database}`);
      sql(database, 'create-database');
      sql(database, 'setup-schema', '-v', '0.0');
      sql(database, 'update-schema', '-d', join(binaries.schemaDir, schema, 'versioned'));
    }

    // 3. The Temporal server.
    const names = ['frontend', 'frontendMembership', 'frontendHttp', 'history', 'historyMembership', 'matching', 'matchingMembership', 'worker', 'workerMembership'] as const;
    const ports = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await freePort()] as const))) as Record<(typeof names)[number], number>;
    await mkdir(join(dir, 'config'));
    const dynamicConfigPath = join(dir, 'config', 'dynamicconfig.yaml');
    await writeFile(dynamicConfigPath, readFileSync(DYNAMIC_CONFIG_FILE, 'utf8'));
    await writeFile(join(dir, 'config', 'development.yaml'), serverConfig({ pgPort, ports, dynamicConfigPath }));
    const address = `127.0.0.1:${ports.frontend}`;

    const startServer = (): void => {
      const out = openSync(serverLogPath, 'a');
      log(`temporal-server start (frontend ${address})`);
      server = spawn(binaries.temporalServer, ['--root', dir, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'], {
        stdio: ['ignore', out, out],
      });
    };
    const readServerLog = (): string => spawnSync('tail', ['-c', '20000', serverLogPath], { encoding: 'utf8' }).stdout ?? '';

    /** Waits until the frontend answers and the namespace serves its workflows' visibility. */
    const untilServing = async (register: boolean): Promise<void> => {
      const started = Date.now();
      let lastError: unknown;
      while (Date.now() - started < readyTimeoutMs) {
        if (server && (server.exitCode !== null || server.signalCode !== null)) {
          throw new Error(`temporal-server exited (${server.exitCode ?? server.signalCode}):\n${readServerLog()}`);
        }
        let connection: Connection | undefined;
        try {
          connection = await Connection.connect({ address, connectTimeout: 2000 });
          await connection.workflowService.getSystemInfo({});
          if (register) {
            await connection.workflowService
              .registerNamespace({ namespace: NAMESPACE, workflowExecutionRetentionPeriod: msToTs('1 day') })
              .catch((err: { code?: number }) => {
                if (err.code !== 6 /* ALREADY_EXISTS */) throw err;
              });
            await registerSearchAttributes(connection, NAMESPACE);
          }
          await connection.workflowService.describeNamespace({ namespace: NAMESPACE });
          await connection.workflowService.listWorkflowExecutions({ namespace: NAMESPACE, pageSize: 1, query: "SlotPhase = 'active'" });
          log(`serving after ${Date.now() - started} ms`);
          return;
        } catch (err) {
          lastError = err;
          await sleep(500);
        } finally {
          await connection?.close().catch(() => {});
        }
      }
      throw new Error(`temporal-server not serving at ${address} within ${readyTimeoutMs} ms (${String(lastError)}):\n${readServerLog()}`);
    };

    startServer();
    await untilServing(true);

    return {
      address,
      pgPort,
      dir,
      binaries,
      psql(database, query) {
        const out = run(pg('psql'), ['-h', '127.0.0.1', '-p', String(pgPort), '-U', DB_USER, '-d', database, '-v', 'ON_ERROR_STOP=1', '-Atc', query], {
          env: { PGPASSWORD: DB_PASSWORD },
        });
        return out.split('\n').filter((line) => line !== '');
      },
      serverLog: readServerLog,
      killServer,
      async restartServer() {
        await killServer();
        startServer();
        await untilServing(false);
      },
      async stop() {
        await killServer('SIGTERM');
        stopPostgres();
        if (!opts.keepDir) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await killServer();
    stopPostgres();
    if (!opts.keepDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// `tsx test/cluster/cluster.ts`: a cluster for manual use (scripts/cluster/start.sh).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cluster = await startCluster({ log: (line) => console.error(`[cluster] ${line}`), keepDir: process.env.CLUSTER_KEEP_DIR === '1' });
  console.log(`TEMPORAL_ADDRESS=${cluster.address}`);
  console.log(`PGPORT=${cluster.pgPort} (user ${DB_USER}, password ${DB_PASSWORD}, databases temporal, temporal_visibility)`);
  console.log(`data: ${cluster.dir}`);
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.error('[cluster] stopping');
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  setInterval(() => {}, 1 << 30);
}
