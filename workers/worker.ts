// The worker process: workflows and host-free activities on the shared queue, this
// host's login and credential activities on `slots.<host>`, and the activities that
// reach the PTYs this process holds on its own queue `slots.<host>.<workerId>`.
import { Client, Connection } from '@temporalio/client';
import { startAgentTokenService } from '../host/agent-token-service';
import { refreshNowSignal } from '../common/messages';
// CommonJS: Node's ESM loader cannot see its named exports.
import proto from '@temporalio/proto';
import { NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { createDeviceWaitActivities, createHostActivities, createPacedActivities, createSessionActivities, createSharedActivities } from '../activities/index';
import { ProviderPauses } from '../activities/provider-pause';
import { providerNames } from '../providers';
import type { IncidentSettings } from '../common/incidents';
import { DEFAULT_PROVIDER_PACE, SendSpacing, type ProviderPace } from '../common/pacing';
import { LoginSessions } from '../activities/login-session';
import { LoginCapacity, loginMemoryBudgetBytes } from '../activities/login-capacity';
import type { CredentialBackup } from '../activities/credential-backup';
import { PostgresBackupStore } from '../activities/postgres-backup-store';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { SHARED_TASK_QUEUE, deviceWaitTaskQueue, hostTaskQueue, providerTaskQueue, sessionTaskQueue, slotWorkflowId } from '../common/slot';
import type { DataConverter } from '@temporalio/common';
import { ConfigError, TemporalTransportError } from '../common/failures';
import { DEFAULT_MAX_CACHED_WORKFLOWS, loadConfigOrExit, temporalAddress, temporalConnectionOptions, type Config } from '../host/config';
import { slotDataConverter } from '../client/encryption';
import { createLogger, installRuntimeLogger } from './logger';
import { explainTlsFailure } from '../client/tls-handshake';
import { cachedWorkflowBundle } from './workflow-bundle';
import { checkLoginClis, logLoginClis } from './cli-versions';
import { outboundProxyProblems } from '../providers/outbound';
import { metricsPlan, SlotMetrics, startMetricsServer, type MetricsServer } from './metrics';
import type { SlotTracing } from '../host/tracing';
import { WORKFLOW_TRACING_MODULE } from '../host/workflow-tracing-module';

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
  /** Device logins' user codes in notices (NOTIFY_USER_CODE). @default false */
  readonly notifyUserCode?: boolean;
  /** Encrypts payloads when keys are configured (see client/encryption.ts). */
  readonly dataConverter?: DataConverter;
  /** Workflows cached in memory. @default DEFAULT_MAX_CACHED_WORKFLOWS (500) */
  readonly maxCachedWorkflows?: number;
  /**
   * Names this process's session queue, `slots.<host>.<workerId>`; unique per process
   * of a host (letters, digits, `-`, `_`). @default `<pid>-<8 random hex digits>`
   */
  readonly workerId?: string;
  /**
   * What this process serves: `workflows` (the shared queue: slot workflows and
   * notices, any process of the deployment) and `host` (the host and session queues:
   * the slot's PTYs and files, only on the slot's host). @default both
   */
  readonly roles?: readonly WorkerRole[];
  /** Counts what the activities observe (workers/metrics.ts). */
  readonly metrics?: SlotMetrics;
  /** Traces workflows and activities; a `workflowBundle` must then be built with WORKFLOW_TRACING_MODULE. */
  readonly tracing?: SlotTracing;
  /** The agent token service's URL, written into agents' env and files; unset: none runs. */
  readonly agentTokenServiceUrl?: string;
  /** The credential backup store, the backup keys that seal for it and the restore policy (SLOT_BACKUP_*); unset: no backups. */
  readonly backup?: Omit<CredentialBackup, 'host' | 'namespace'>;
  /** Each provider's pace on this host (PROVIDER_PACE). @default DEFAULT_PROVIDER_PACE for every provider */
  readonly pace?: Readonly<Record<string, ProviderPace>>;
  /** When failing slots make an incident, for the failures this process reports (INCIDENT_*). @default DEFAULT_INCIDENT_SETTINGS */
  readonly incidents?: IncidentSettings;
  /**
   * Activities one process runs at once on the host's queue (files, status, verification,
   * backups). Device-flow waits and token requests have queues of their own and never count here.
   * @default the SDK's (100)
   */
  readonly maxConcurrentHostActivities?: number;
}

export const WORKER_ROLES = ['workflows', 'host'] as const;
export type WorkerRole = (typeof WORKER_ROLES)[number];

export interface SlotWorkers {
  /** Polls the shared queue; undefined without the `workflows` role. */
  readonly shared: Worker | undefined;
  /** Polls `slots.<host>`; undefined without the `host` role. */
  readonly host: Worker | undefined;
  /** Polls `sessionQueue`: the activities that reach a PTY this process holds; undefined without the `host` role. */
  readonly session: Worker | undefined;
  /** Poll each provider's paced queue of the host and the device-wait queue; empty without the `host` role. */
  readonly paced: readonly Worker[];
  readonly workerId: string;
  readonly sessionQueue: string;
  readonly sessions: LoginSessions;
  /** Runs all three until shutdown, then closes every PTY this worker opened. */
  run(): Promise<void>;
  shutdown(): void;
}

/** Logins one worker process holds at once (each a PTY, a screen and a heartbeating activity, ~1.2 MiB). */
const MAX_LIVE_LOGINS = 1000;

export async function createSlotWorkers(opts: SlotWorkerOptions): Promise<SlotWorkers> {
  const workerId = opts.workerId ?? `${process.pid}-${randomUUID().slice(0, 8)}`;
  if (!WORKER_ID.test(workerId)) throw new RangeError(`workerId must be 1-64 letters, digits, dashes or underscores, got ${JSON.stringify(workerId)}`);
  const sessionQueue = sessionTaskQueue(opts.host, workerId);
  // Live login CLIs by memory (each ~85-140 MiB, bench/login-cli-memory.ts), at most the session worker's slots.
  const sessions = new LoginSessions(new LoginCapacity(loginMemoryBudgetBytes(opts.env ?? process.env), MAX_LIVE_LOGINS));
  const deps = {
    slotsDir: opts.slotsDir,
    sessions,
    sessionQueue,
    env: opts.env ?? process.env,
    envPassthrough: opts.envPassthrough ?? [],
    ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
    ...(opts.minPollIntervalMs !== undefined ? { minPollIntervalMs: opts.minPollIntervalMs } : {}),
    ...(opts.agentTokenServiceUrl ? { agentTokenServiceUrl: opts.agentTokenServiceUrl } : {}),
    ...(opts.backup ? { backup: { ...opts.backup, host: opts.host, namespace: opts.namespace } } : {}),
    host: opts.host,
    // One per process: the host queue's and the paced queues' activities share it.
    spacing: new SendSpacing(opts.pace),
  };
  const roles = new Set<WorkerRole>(opts.roles ?? WORKER_ROLES);
  if (roles.size === 0) throw new RangeError('a worker needs at least one role: workflows, host');
  const activityInterceptors = [opts.tracing?.activityInterceptor, opts.metrics?.activityInterceptor].filter((f) => f !== undefined);
  const interceptors = activityInterceptors.length > 0 ? { interceptors: { activity: activityInterceptors } } : {};
  // The three are made at once: each asks the server about the namespace, and the workflow
  // worker's thread loads the bundle meanwhile (a start-up in ~2 s instead of ~2.3 s here).
  const [shared, host, session, paced] = await Promise.all([
    !roles.has('workflows') ? undefined : Worker.create({
      ...interceptors,
      ...(opts.tracing
        ? {
            interceptors: { activity: activityInterceptors, ...(opts.workflowBundle ? {} : { workflowModules: [WORKFLOW_TRACING_MODULE] }) },
            sinks: opts.tracing.sinks,
          }
        : {}),
      connection: opts.connection,
      namespace: opts.namespace,
      taskQueue: opts.sharedTaskQueue ?? SHARED_TASK_QUEUE,
      ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
      maxCachedWorkflows: opts.maxCachedWorkflows ?? DEFAULT_MAX_CACHED_WORKFLOWS,
      activities: createSharedActivities({
        log: opts.log ?? createLogger('warn'),
        ...(opts.notifyWebhookUrl ? { webhookUrl: opts.notifyWebhookUrl } : {}),
        ...(opts.notifyUserCode === true ? { includeUserCode: true } : {}),
        ...(opts.incidents ? { incidents: opts.incidents } : {}),
      }),
      ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    }),
    !roles.has('host') ? undefined : Worker.create({
      ...interceptors,
      connection: opts.connection,
      namespace: opts.namespace,
      taskQueue: hostTaskQueue(opts.host),
      ...(opts.maxConcurrentHostActivities !== undefined ? { maxConcurrentActivityTaskExecutions: opts.maxConcurrentHostActivities } : {}),
      ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
      maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
      defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
      activities: createHostActivities(deps),
    }),
    !roles.has('host') ? undefined : Worker.create({
      ...interceptors,
      connection: opts.connection,
      namespace: opts.namespace,
      taskQueue: sessionQueue,
      // Every live login holds one `watchLogin` here for as long as its CLI waits for the
      // operator (mostly idle): the SDK's default of 100 capped a worker at 100 logins at once.
      maxConcurrentActivityTaskExecutions: MAX_LIVE_LOGINS,
      ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
      maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
      defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
      activities: createSessionActivities(deps),
    }),
    // Token requests and login starts, one queue per provider: the server hands out at most the
    // provider's rate per second there (all processes of the host together), each process runs
    // at most its concurrency at once. A waiting request is a task in the queue: no history event.
    !roles.has('host')
      ? []
      : Promise.all([
          ...providerNames().map((provider) => {
            const pace = opts.pace?.[provider] ?? DEFAULT_PROVIDER_PACE;
            return Worker.create({
              ...interceptors,
              connection: opts.connection,
              namespace: opts.namespace,
              taskQueue: providerTaskQueue(opts.host, provider),
              maxTaskQueueActivitiesPerSecond: pace.requestsPerSecond,
              maxActivitiesPerSecond: pace.requestsPerSecond,
              maxConcurrentActivityTaskExecutions: pace.concurrency,
              ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
              maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
              defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
              activities: createPacedActivities(deps),
            });
          }),
          // Device-flow waits (each up to an hour) on their own queue: they never hold a slot a refresh or a restore needs.
          Worker.create({
            ...interceptors,
            connection: opts.connection,
            namespace: opts.namespace,
            taskQueue: deviceWaitTaskQueue(opts.host),
            maxConcurrentActivityTaskExecutions: MAX_LIVE_LOGINS,
            ...(opts.dataConverter ? { dataConverter: opts.dataConverter } : {}),
            maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
            defaultHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
            activities: createDeviceWaitActivities(deps),
          }),
        ]),
  ]);
  if (opts.metrics && roles.has('host')) opts.metrics.watchProviderPauses(new ProviderPauses(opts.slotsDir));
  const workers = [shared, host, session, ...paced].filter((w): w is Worker => w !== undefined);
  return {
    shared,
    host,
    session,
    paced,
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
  // The proxy variables matter to the worker alone (slotctl makes no outbound request): checked here.
  const proxyProblems = outboundProxyProblems(process.env);
  if (proxyProblems.length > 0) throw new ConfigError(proxyProblems);
  const address = temporalAddress(config);
  let conn: NativeConnection;
  // Both at once: each waits a round trip or two on the server.
  const connecting = connection ? Promise.resolve(connection) : NativeConnection.connect(temporalConnectionOptions(config));
  connecting.catch(() => undefined);
  try {
    await ensureSearchAttributes(config, log).catch(async (err: unknown) => {
      if (!connection) await connecting.then((c) => c.close(), () => undefined);
      throw err;
    });
    conn = await connecting;
  } catch (err) {
    // The gRPC errors do not say which side of a TLS handshake refused what; the handshake on its own does.
    const reason = await explainTlsFailure(address, temporalConnectionOptions(config).tls);
    throw reason ? new TemporalTransportError(address, reason, { cause: err }) : err;
  }
  const dataConverter = slotDataConverter(config.encryptionKeys);
  // OpenTelemetry and its exporters load only when an endpoint is configured (a few hundred ms at start).
  const tracing = config.tracing.otlpEndpoint || config.tracing.zipkinEndpoint ? (await import('../host/tracing')).startTracing(config.tracing) : undefined;
  const observing = startObservability(config, log);
  observing.catch(() => undefined);
  // The login CLIs of a host that serves slots, asked their versions while the rest starts.
  const cliChecks = config.roles.includes('host') ? checkLoginClis(process.env) : Promise.resolve([]);
  cliChecks.catch(() => undefined);
  // Built once per set of sources and cached (.cache/workflow-bundles): a restart polls in
  // a second instead of webpacking for several. Webpack's report goes to debug.
  const started = Date.now();
  const { bundle: workflowBundle, built, file: bundleFile } = await cachedWorkflowBundle({
    workflowsPath: WORKFLOWS_PATH,
    // Failures raised in workflow code are converted in the sandbox: with keys, their messages are sealed too.
    ...(dataConverter.failureConverterPath ? { failureConverterPath: dataConverter.failureConverterPath } : {}),
    ...(bundle.preloadModules?.length ? { preloadModules: bundle.preloadModules } : {}),
    // The workflow side of the tracing interceptors lives in the bundle: a bundle of its own (cached too).
    ...(tracing ? { workflowInterceptorModules: [WORKFLOW_TRACING_MODULE] } : {}),
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
  const observed = await observing;
  void cliChecks.then(
    (checks) => {
      logLoginClis(checks, log);
      for (const c of checks) for (const provider of c.providers) observed?.metrics.loginCli.set({ provider, version: c.version ?? '', checked_version: c.checked, status: c.status }, 1);
    },
    (err: unknown) => log.warn({ err }, 'could not check the login CLIs\' versions'),
  );
  // The token service answers from this host's slot files: only a process serving the host runs it.
  const tokenService = config.roles.includes('host') ? await startConfiguredTokenService(config, log) : undefined;
  // The backup store is the host's: its table is created on first use, so a database that is down does not stop the worker.
  const backupStore = config.roles.includes('host') && config.backupUrl && config.backup ? new PostgresBackupStore({ url: config.backupUrl, retiredKeepMs: config.backup.retiredKeepMs }) : undefined;
  const workers = await createSlotWorkers({
    ...(tokenService ? { agentTokenServiceUrl: tokenService.advertised } : {}),
    workflowBundle,
    connection: conn,
    namespace: config.namespace,
    slotsDir: config.slotsDir,
    host: config.slotHost,
    sharedTaskQueue: config.taskQueue,
    envPassthrough: config.loginEnvPassthrough,
    log,
    ...(config.notifyWebhookUrl ? { notifyWebhookUrl: config.notifyWebhookUrl } : {}),
    ...(config.notifyUserCode ? { notifyUserCode: true } : {}),
    dataConverter,
    maxCachedWorkflows: config.maxCachedWorkflows,
    roles: config.roles,
    ...(observed ? { metrics: observed.metrics } : {}),
    ...(tracing ? { tracing } : {}),
    ...(backupStore && config.backup
      ? { backup: { store: backupStore, keys: config.backup.keys, restoreFromHosts: config.backup.restoreFromHosts, restoreReconfigured: config.backup.restoreReconfigured } }
      : {}),
    pace: config.pace,
    incidents: config.incidents,
  });
  if (backupStore) log.info({ store: backupStore.description }, 'credentials are backed up, sealed, after every login and refresh');
  log.info(
    { address, tls: Boolean(config.temporalTransport.tls), apiKey: config.temporalTransport.apiKey !== undefined, namespace: config.namespace, roles: config.roles, ...(workers.shared ? { sharedQueue: config.taskQueue } : {}), ...(workers.host ? { hostQueue: hostTaskQueue(config.slotHost), sessionQueue: workers.sessionQueue, slotsDir: config.slotsDir } : {}) },
    `worker polling${config.encryptionKeys ? ` (payloads encrypted with key "${config.encryptionKeys[0]?.id}")` : ''}`,
  );
  try {
    await workers.run();
  } finally {
    await observed?.close();
    await tracing?.shutdown();
    await tokenService?.close();
    await backupStore?.close().catch(() => undefined);
  }
  log.info('worker stopped; every login CLI it started is closed');
}

/** The metrics endpoint (when configured) and the client that lists slots for it. */
async function startObservability(config: Config, log: PinoLogger): Promise<{ metrics: SlotMetrics; server: MetricsServer; close(): Promise<void> } | undefined> {
  const plan = metricsPlan(config.metrics);
  if (!plan) return undefined;
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const metrics = new SlotMetrics({
    client: new Client({ connection, namespace: config.namespace }),
    taskQueue: config.taskQueue,
    perSlotSeries: config.metrics.perSlotSeries,
    warn: (fields, message) => log.warn(fields, message),
  });
  const server = await startMetricsServer({ metrics, host: plan.host, port: plan.port, coreMetricsUrl: plan.coreUrl });
  log.info({ url: server.url, sdkCore: plan.coreUrl }, 'metrics endpoint');
  return {
    metrics,
    server,
    async close() {
      await server.close();
      await connection.close();
    },
  };
}

/**
 * The agent token service of this host (AGENT_TOKEN_SERVICE), asking slots to refresh
 * through a Temporal client. Another worker process of the host holding the port
 * serves the same files: this one then runs without, and says so.
 */
async function startConfiguredTokenService(config: Config, log: PinoLogger): Promise<{ advertised: string; close(): Promise<void> } | undefined> {
  const wanted = config.agentTokenService;
  if (!wanted) return undefined;
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.namespace, dataConverter: slotDataConverter(config.encryptionKeys) });
  try {
    const service = await startAgentTokenService({
      slotsDir: config.slotsDir,
      host: wanted.host,
      port: wanted.port,
      log,
      requestRefresh: (slotId) => client.workflow.getHandle(slotWorkflowId(slotId)).signal(refreshNowSignal),
    });
    log.info({ url: service.url }, 'agent token service listening');
    return {
      advertised: wanted.url ?? service.url,
      close: async () => {
        await service.close();
        await connection.close();
      },
    };
  } catch (err) {
    await connection.close();
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    log.warn({ host: wanted.host, port: wanted.port }, 'agent token service port in use (another worker of this host serves it); agents are told its URL');
    return { advertised: wanted.url ?? `http://${wanted.host}:${wanted.port}`, close: async () => undefined };
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const config = loadConfigOrExit();
  const log = createLogger(config.logLevel);
  installRuntimeLogger(log, metricsPlan(config.metrics)?.coreBindAddress);
  await runWorker(config, log).catch((err: unknown) => {
    if (!(err instanceof TemporalTransportError) && !(err instanceof ConfigError)) throw err;
    // A configuration problem, not a crash: say it in one line.
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  });
}
