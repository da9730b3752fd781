// `npm start`: the embedded default. Starts a local Temporal dev server (SQLite
// under DATA_DIR, Web UI) and a worker, and supervises what it started: a dev server
// or codec server that ends is started again; one that cannot come back ends `npm start`.
import { ConfigError, loadConfigOrExit, type Config } from '../host/config';
import { startCodecServerProcess, type CodecServerRun } from './codec-server-process';
import { startDevServer, type DevServer } from './dev-server';
import { startDevServerProcess, type DevServerRun } from './dev-server-process';
import { createLogger, installRuntimeLogger } from './logger';
import { supervise, SupervisorGaveUpError, type Supervision } from './supervisor';
import { obtainTemporalCli } from './temporal-binaries';
import { runWorker } from './worker';
import { DEFAULT_METRICS_PORT, metricsPlan } from './metrics';

/** The operator's console: one line each, plain words. */
const say = (line: string): void => void process.stderr.write(`[npm start] ${line}\n`);

type Log = ReturnType<typeof createLogger>;

/** What `npm start` started and stops: the dev server (supervised, or the SDK's download) and the codec server. */
interface Started {
  server?: Supervision<DevServerRun>;
  unsupervised?: DevServer;
  codec?: Supervision<CodecServerRun>;
}

async function main(loaded: Config): Promise<number> {
  // Metrics are on unless METRICS_PORT=off: `npm start` is what an operator runs and watches.
  const config: Config = { ...loaded, metrics: { ...loaded.metrics, port: loaded.metrics.port ?? DEFAULT_METRICS_PORT } };
  const metrics = metricsPlan(config.metrics);
  const log = createLogger(config.logLevel);
  installRuntimeLogger(log, metrics?.coreBindAddress);
  const started: Started = {};
  started.codec = await startCodecServer(config, log);
  const codecUrl = started.codec?.current().url;
  if (!config.temporalAddress) {
    const { address, server, unsupervised } = await startTemporalDevServer(config, log, codecUrl);
    Object.assign(started, server ? { server } : {}, unsupervised ? { unsupervised } : {});
    process.stderr.write(devServerBanner(config, address, started, codecUrl));
  } else {
    // No server of ours to show, but where the metrics and the codec server are is still news.
    process.stderr.write(clusterBanner(config, started, codecUrl));
  }
  // A shutdown has begun (Ctrl-C reaches the dev server too): what ends now is not restarted.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      started.server?.stopRestarting();
      started.codec?.stopRestarting();
    });
  }
  try {
    return await runWorkerUntilStopped(config, log, started);
  } finally {
    await started.codec?.stop();
    await started.server?.stop();
    if (started.unsupervised) await started.unsupervised.stop();
    if (started.server || started.unsupervised) log.info('Temporal dev server stopped');
  }
}

/**
 * With encryption keys, the codec server the Web UI decodes through. The UI runs in the
 * operator's browser and asks this server to decode what it shows: it holds the keys, so it
 * needs a token (ConfigError naming CODEC_SERVER_TOKEN without one). A process of its own
 * (workers/codec-server-process.ts): when it ends it is started again on the same port.
 */
async function startCodecServer(config: Config, log: Log): Promise<Supervision<CodecServerRun> | undefined> {
  if (!config.encryptionKeys) return undefined;
  const codec = await supervise({
    name: 'codec server',
    say,
    maxAttempts: config.supervisorMaxRestarts,
    start: () => startCodecServerProcess({ token: config.codec.bearerToken }),
    onRestarted: (run) => say(`codec server (pid ${run.pid}) serves ${run.url} again; the Web UI decodes through it as before`),
  });
  log.info({ url: codec.current().url, pid: codec.current().pid }, 'codec server for the Web UI');
  return codec;
}

/** The local Temporal dev server: supervised when it is an executable of ours, else the SDK's download (which reports no exit). */
async function startTemporalDevServer(config: Config, log: Log, codecUrl: string | undefined): Promise<{ address: string } & Omit<Started, 'codec'>> {
  const executable = await obtainTemporalCli();
  log.info({ executable: executable.type === 'existing-path' ? executable.path : 'SDK download', source: executable.source }, 'starting the Temporal dev server');
  // The UI cannot send a fixed Authorization header: the token rides in the endpoint's path.
  const uiCodecEndpoint = codecUrl && config.codec.bearerToken ? `${codecUrl}/${config.codec.bearerToken}` : undefined;
  const where = {
    ip: config.devServer.ip,
    port: config.devServer.port,
    uiPort: config.devServer.uiPort,
    dbFile: config.devServer.dbFile,
    namespace: config.namespace,
    ...(uiCodecEndpoint ? { uiCodecEndpoint } : {}),
  };
  if (executable.type === 'existing-path') {
    const { path } = executable;
    const server = await supervise({
      name: 'Temporal dev server',
      say,
      maxAttempts: config.supervisorMaxRestarts,
      start: () => startDevServerProcess({ path, ...where }),
      onRestarted: (run) => say(`Temporal dev server (pid ${run.pid}) serves ${run.address} again, state from ${config.devServer.dbFile}; the worker reconnects by itself`),
    });
    return { address: server.current().address, server };
  }
  // The SDK's download runs inside the SDK, which reports no exit: it cannot be supervised.
  const unsupervised = await startDevServer({ executable, ...where });
  say('the Temporal dev server is the SDK download: it is not restarted if it dies (set TEMPORAL_CLI, or install Go, for a supervised one)');
  return { address: unsupervised.address, unsupervised };
}

const metricsLine = (config: Config): string => {
  const metrics = metricsPlan(config.metrics);
  return `  Metrics           ${metrics ? `http://${metrics.host}:${metrics.port}/metrics  (Prometheus; the SDK core's included)` : 'off (METRICS_PORT=off)'}`;
};

/** What `npm start` started and where, and the first commands to run. */
function devServerBanner(config: Config, address: string, { server, codec }: Started, codecUrl: string | undefined): string {
  const uiUrl = `http://${config.devServer.ip === '0.0.0.0' ? 'localhost' : config.devServer.ip}:${config.devServer.uiPort}`;
  return (
    [
      '',
      `  Temporal server   ${address}  (${server ? `pid ${server.current().pid}, ` : ''}state in ${config.devServer.dbFile})`,
      `  Web UI            ${uiUrl}`,
      `  Slots             ${config.slotsDir}  (host ${config.slotHost})`,
      metricsLine(config),
      `  Traces            ${[config.tracing.otlpEndpoint && `OTLP ${config.tracing.otlpEndpoint}`, config.tracing.zipkinEndpoint && `Zipkin ${config.tracing.zipkinEndpoint}`].filter(Boolean).join(', ') || 'off (set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_ZIPKIN_ENDPOINT)'}`,
      `  Payloads          ${codec ? `encrypted (key "${config.encryptionKeys?.[0]?.id}"); the UI decodes them through ${codecUrl} (codec server pid ${codec.current().pid})` : 'not encrypted (set SLOTS_ENCRYPTION_KEYS)'}`,
      '',
      '  Provision a slot:  npx slotctl provision my-slot --provider claude --wait',
      '  Watch slots:       npx slotctl status',
      '  Stop:              Ctrl-C',
      '',
    ].join('\n') + '\n'
  );
}

/** With TEMPORAL_ADDRESS: the server is not ours, but the metrics and the codec server are. */
function clusterBanner(config: Config, { codec }: Started, codecUrl: string | undefined): string {
  return (
    [
      '',
      `  Temporal server   ${config.temporalAddress}  (TEMPORAL_ADDRESS; not started by npm start)`,
      metricsLine(config),
      ...(codec ? [`  Codec server      ${codecUrl}  (pid ${codec.current().pid})`] : []),
      '',
    ].join('\n') + '\n'
  );
}

/**
 * Runs the worker until it stops (Ctrl-C), or until a supervised server cannot come back:
 * then the worker stops as on Ctrl-C and `npm start` exits 1.
 */
async function runWorkerUntilStopped(config: Config, log: Log, { server, codec, unsupervised }: Started): Promise<number> {
  const worker = runWorker(config, log, unsupervised?.env.nativeConnection);
  const gaveUp = Promise.race([server?.failed, codec?.failed].filter((p): p is Promise<never> => p !== undefined));
  const outcome = await Promise.race([worker.then(() => undefined), gaveUp.catch((err: unknown) => err)]);
  if (outcome === undefined) return 0;
  if (!(outcome instanceof SupervisorGaveUpError)) throw outcome;
  say(`stopping: ${outcome.message}`);
  // The worker stops as on Ctrl-C (the SDK shuts down on SIGTERM), closing every login CLI it started.
  process.kill(process.pid, 'SIGTERM');
  const settled = await Promise.race([worker.then(() => true, () => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000))]);
  if (!settled) say('the worker did not stop within 20 s; exiting anyway');
  return 1;
}

const code = await main(loadConfigOrExit()).catch((err: unknown) => {
  // A configuration found wrong at start (the codec server's token): its message, exit code 2.
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  return 2;
});
process.exit(code);
