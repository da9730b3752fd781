// The worker process: workflows and host-free activities on the shared queue, this
// host's login and credential activities on `slots.<host>`, and the activities that
// reach the PTYs this process holds on its own queue `slots.<host>.<workerId>`.
import { Connection } from '@temporalio/client';
// CommonJS: Node's ESM loader cannot see its named exports.
import proto from '@temporalio/proto';
import { NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { createHostActivities, createSessionActivities, createSharedActivities } from '../activities/index';
import { LoginSessions } from '../activities/login-session';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { SHARED_TASK_QUEUE, hostTaskQueue, sessionTaskQueue } from '../common/slot';
import type { DataConverter } from '@temporalio/common';
import { TemporalTransportError } from '../common/failures';
import { loadConfigOrExit, temporalAddress, temporalConnectionOptions, type Config } from './config';
import { slotDataConverter } from './encryption';
import { createLogger, installRuntimeLogger } from './logger';
import { explainTlsFailure } from './tls-handshake';
import { cachedWorkflowBundle } from './workflow-bundle';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/**
 * A cancellation (cancelLogin, relogin, retire) reaches a running activity only with
 * the answer to a heartbeat, and the SDK sends heartbeats at most this often
 * (otherwise 80% of the heartbeat timeout): this bounds how long a cancelled login takes to stop.
 */
const HEARTBEAT_THROTTLE = '2 seconds';

const WORKER_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface SlotWorkerOptions {
  readonly connection: NativeConnection;
  readonly namespace: string;
  readonly slotsDir: string;
  readonly host: string;
  /** @default SHARED_TASK_QUEUE */
  readonly sharedTaskQueue?: string;
  /** Environment for provider binaries (`CLAUDE_BIN` …) and what CLIs may see. @default process.env */
  readonly env?: NodeJS.ProcessEnv;
  /** Worker variables passed to login CLIs besides the basics (names or `PREFIX_*`). */
  readonly envPassthrough?: readonly string[];
  /** A pre-built bundle saves seconds per worker in tests. */
  readonly workflowBundle?: WorkflowBundle;
  readonly heartbeatMs?: number;
  /** The least time between device-flow polls, whatever a server asks (tests lower it). @default 5000 */
  readonly minPollIntervalMs?: number;
  /** Logger for operator notices. */
  readonly log?: PinoLogger;
  /** Operator notices are POSTed here as JSON. */
  readonly notifyWebhookUrl?: string;
  /** Encrypts payloads when keys are configured (see workers/encryption.ts). */
  readonly dataConverter?: DataConverter;
  /** Workflows cached in memory; the SDK's default when omitted. */
  readonly maxCachedWorkflows?: number;
  /**
   * Names this process's session queue, `slots.<host>.<workerId>`; unique per process
   * of a host (letters, digits, `-`, `_`). @default `<pid>-<8 random hex digits>`
   */
  readonly workerId?: string;
}

export interface SlotWorkers {
  readonly shared: Worker;
  readonly host: Worker;
  /** Polls `sessionQueue`: the activities that reach a PTY this process holds. */
  readonly session: Worker;
  readonly workerId: string;
  readonly sessionQueue: string;
  readonly sessions: LoginSessions;
  /** Runs all three until shutdown, then closes every PTY this worker opened. */
  run(): Promise<void>;
  shutdown(): void;
}

export async function createSlotWorkers(opts: SlotWorkerOptions): Promise<SlotWorkers> {
  const workerId = opts.workerId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
  if (!WORKER_ID.test(workerId)) throw new RangeError(`workerId must be 1-64 letters, digits, dashes or underscores, got ${JSON.stringify(workerId)}`);
  const sessionQueue = sessionTaskQueue(opts.host, workerId);
  const sessions = new LoginSessions();
  const deps = {
    slotsDir: opts.slotsDir,
    sessions,
    sessionQueue,
    env: opts.env ?? process.env,
    envPassthrough: opts.envPassthrough ?? [],
    ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
    ...(opts.minPollIntervalMs !== undefined ? { minPollIntervalMs: opts.minPollIntervalMs } : {}),
  };
  const shared = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.sharedTaskQueue ?? SHARED_TASK_QUEUE,
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    ...(opts.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: opts.maxCachedWorkflows } : {}),
    activities: createSharedActivities({
      log: opts.log ?? createLogger('warn'),
      ...(opts.notifyWebhookUrl ? { webhookUrl: opts.notifyWebhookUrl } : {}),
    }),
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
  });
  const host = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: hostTaskQueue(opts.host),
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    activities: createHostActivities(deps),
  });
  const session = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: sessionQueue,
    ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
    activities: createSessionActivities(deps),
  });
  const workers = [shared, host, session];
  return {
    shared,
    host,
    session,
    workerId,
    sessionQueue,
    sessions,
    async run() {
      try {
        await Promise.all(workers.map((worker) => worker.run()));
      } finally {
        await sessions.closeAll();
      }
    },
    shutdown() {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
    },
  };
}

/** Registers the project's search attributes where they are missing (an existing cluster, the test server). */
export async function registerSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  // The time-skipping test server can add search attributes but not list them.
  const listed = await connection.operatorService.listSearchAttributes({ namespace }).catch((err: { code?: number }) => {
    if (err.code === 12 /* UNIMPLEMENTED */) return { customAttributes: {} };
    throw err;
  });
  const have: Record<string, unknown> = { ...listed.customAttributes };
  const missing = ALL_SEARCH_ATTRIBUTES.filter((key) => !(key.name in have));
  if (missing.length === 0) return [];
  const { IndexedValueType } = proto.temporal.api.enums.v1;
  const types: Record<string, proto.temporal.api.enums.v1.IndexedValueType> = {
    TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  };
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((key) => {
        const type = types[key.type];
        if (type === undefined) throw new Error(`search attribute ${key.name} has a type we do not register: ${key.type}`);
        return [key.name, type];
      }),
    ),
  });
  return missing.map((key) => key.name);
}

async function ensureSearchAttributes(config: Config, log: PinoLogger): Promise<void> {
  const namespace = config.namespace;
  const connection = await Connection.connect(temporalConnectionOptions(config));
  try {
    const added = await registerSearchAttributes(connection, namespace);
    if (added.length > 0) log.info({ added }, 'registered search attributes');
  } finally {
    await connection.close();
  }
}

/** Runs a worker against `config`'s server until SIGINT/SIGTERM. */
export async function runWorker(
  config: Config,
  log: PinoLogger,
  connection?: NativeConnection,
  /** Modules loaded once per worker thread instead of once per workflow (benchmark experiments). */
  bundle: { preloadModules?: string[] } = {},
): Promise<void> {
  const address = temporalAddress(config);
  let conn: NativeConnection;
  try {
    await ensureSearchAttributes(config, log);
    conn = connection ?? (await NativeConnection.connect(temporalConnectionOptions(config)));
  } catch (err) {
    // The gRPC errors do not say which side of a TLS handshake refused what; the handshake on its own does.
    const reason = await explainTlsFailure(address, temporalConnectionOptions(config).tls);
    throw reason ? new TemporalTransportError(address, reason, { cause: err }) : err;
  }
  const dataConverter = slotDataConverter(config.encryptionKeys);
  // Built once per set of sources and cached (.cache/workflow-bundles): a restart polls in
  // a second instead of webpacking for several. Webpack's report goes to debug.
  const started = Date.now();
  const { bundle: workflowBundle, built, file: bundleFile } = await cachedWorkflowBundle({
    workflowsPath: WORKFLOWS_PATH,
    // Failures raised in workflow code are converted in the sandbox: with keys, their messages are sealed too.
    ...(dataConverter.failureConverterPath ? { failureConverterPath: dataConverter.failureConverterPath } : {}),
    ...(bundle.preloadModules?.length ? { preloadModules: bundle.preloadModules } : {}),
    logger: {
      log: (level, message) => log.debug({ level }, message),
      trace: (m) => log.trace(m),
      debug: (m) => log.debug(m),
      info: (m) => log.debug(m),
      warn: (m) => log.warn(m),
      error: (m) => log.error(m),
    },
  });
  log.debug({ bundleFile, built, ms: Date.now() - started }, built ? 'workflow bundle built and cached' : 'workflow bundle from the cache');
  const workers = await createSlotWorkers({
    workflowBundle,
    connection: conn,
    namespace: config.namespace,
    slotsDir: config.slotsDir,
    host: config.slotHost,
    sharedTaskQueue: config.taskQueue,
    envPassthrough: config.loginEnvPassthrough,
    log,
    ...(config.notifyWebhookUrl ? { notifyWebhookUrl: config.notifyWebhookUrl } : {}),
    dataConverter,
    ...(config.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: config.maxCachedWorkflows } : {}),
  });
  log.info(
    { address, tls: Boolean(config.temporalTransport.tls), apiKey: config.temporalTransport.apiKey !== undefined, namespace: config.namespace, sharedQueue: config.taskQueue, hostQueue: hostTaskQueue(config.slotHost), sessionQueue: workers.sessionQueue, slotsDir: config.slotsDir },
    `worker polling${config.encryptionKeys ? ` (payloads encrypted with key "${config.encryptionKeys[0]?.id}")` : ''}`,
  );
  await workers.run();
  log.info('worker stopped; every login CLI it started is closed');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const config = loadConfigOrExit();
  const log = createLogger(config.logLevel);
  installRuntimeLogger(log);
  await runWorker(config, log).catch((err: unknown) => {
    if (!(err instanceof TemporalTransportError)) throw err;
    // A configuration problem, not a crash: say it in one line.
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  });
}
