// `npm start`: the embedded default. Starts a local Temporal dev server (SQLite
// under DATA_DIR, Web UI) and a worker; with TEMPORAL_ADDRESS, only the worker.
import { ConfigError, loadConfigOrExit, type Config } from './config';
import { startCodecServer, type CodecServer } from './codec-server';
import { startDevServer, type DevServer } from './dev-server';
import { AesGcmPayloadCodec } from './encryption';
import { createLogger, installRuntimeLogger } from './logger';
import { obtainTemporalCli } from './temporal-binaries';
import { runWorker } from './worker';
import { DEFAULT_METRICS_PORT, metricsPlan } from './metrics';

async function main(loaded: Config): Promise<void> {
  // Metrics are on unless METRICS_PORT=off: `npm start` is what an operator runs and watches.
  const config: Config = { ...loaded, metrics: { ...loaded.metrics, port: loaded.metrics.port ?? DEFAULT_METRICS_PORT } };
  const metrics = metricsPlan(config.metrics);
  const log = createLogger(config.logLevel);
  installRuntimeLogger(log, metrics?.coreBindAddress);
  let server: DevServer | undefined;
  let codec: CodecServer | undefined;
  if (config.encryptionKeys) {
    // The UI runs in the operator's browser and asks this server to decode what it shows.
    // It holds the keys: it needs a token (ConfigError naming CODEC_SERVER_TOKEN without one).
    codec = await startCodecServer({
      codec: new AesGcmPayloadCodec(config.encryptionKeys),
      corsOrigins: config.codec.uiOrigins,
      host: config.devServer.ip,
      port: config.codec.port,
      bearerToken: config.codec.bearerToken ?? '',
      enableEncode: config.codec.enableEncode,
      ...(config.codec.allowedHosts ? { allowedHosts: config.codec.allowedHosts } : {}),
    });
    log.info({ url: codec.url }, 'codec server for the Web UI');
  }
  if (!config.temporalAddress) {
    const executable = await obtainTemporalCli();
    log.info({ executable: executable.type === 'existing-path' ? executable.path : 'SDK download', source: executable.source }, 'starting the Temporal dev server');
    server = await startDevServer({
      executable,
      ip: config.devServer.ip,
      port: config.devServer.port,
      uiPort: config.devServer.uiPort,
      dbFile: config.devServer.dbFile,
      namespace: config.namespace,
      // The UI cannot send a fixed Authorization header: the token rides in the endpoint's path.
      ...(codec && config.codec.bearerToken ? { uiCodecEndpoint: `${codec.url}/${config.codec.bearerToken}` } : {}),
    });
    process.stderr.write(
      [
        '',
        `  Temporal server   ${server.address}  (state in ${config.devServer.dbFile})`,
        `  Web UI            ${server.uiUrl}`,
        `  Slots             ${config.slotsDir}  (host ${config.slotHost})`,
        `  Metrics           ${metrics ? `http://${metrics.host}:${metrics.port}/metrics  (Prometheus; the SDK core's included)` : 'off (METRICS_PORT=off)'}`,
        `  Traces            ${[config.tracing.otlpEndpoint && `OTLP ${config.tracing.otlpEndpoint}`, config.tracing.zipkinEndpoint && `Zipkin ${config.tracing.zipkinEndpoint}`].filter(Boolean).join(', ') || 'off (set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_ZIPKIN_ENDPOINT)'}`,
        `  Payloads          ${codec ? `encrypted (key "${config.encryptionKeys?.[0]?.id}"); the UI decodes them through ${codec.url}` : 'not encrypted (set SLOTS_ENCRYPTION_KEYS)'}`,
        '',
        '  Provision a slot:  npx slotctl provision my-slot --provider claude --wait',
        '  Watch slots:       npx slotctl status',
        '  Stop:              Ctrl-C',
        '',
      ].join('\n') + '\n',
    );
  }
  try {
    await runWorker(config, log, server?.env.nativeConnection);
  } finally {
    await codec?.close();
    if (server) {
      await server.stop();
      log.info('Temporal dev server stopped');
    }
  }
}

await main(loadConfigOrExit()).catch((err: unknown) => {
  // A configuration found wrong at start (the codec server's token): its message, exit code 2.
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
});
