// `npm start`: the embedded default. Starts a local Temporal dev server (SQLite
// under DATA_DIR, Web UI) and a worker; with TEMPORAL_ADDRESS, only the worker.
import { loadConfigOrExit, type Config } from './config';
import { startCodecServer, type CodecServer } from './codec-server';
import { startDevServer, type DevServer } from './dev-server';
import { AesGcmPayloadCodec } from './encryption';
import { createLogger, installRuntimeLogger } from './logger';
import { obtainTemporalCli } from './temporal-binaries';
import { runWorker } from './worker';

async function main(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  installRuntimeLogger(log);
  let server: DevServer | undefined;
  let codec: CodecServer | undefined;
  if (config.encryptionKeys) {
    // The UI runs in the operator's browser and asks this server to decode what it shows.
    const uiOrigins = [`http://localhost:${config.devServer.uiPort}`, `http://127.0.0.1:${config.devServer.uiPort}`];
    codec = await startCodecServer({
      codec: new AesGcmPayloadCodec(config.encryptionKeys),
      corsOrigins: uiOrigins,
      host: config.devServer.ip,
      port: config.codec.port,
      ...(config.codec.bearerToken ? { bearerToken: config.codec.bearerToken } : {}),
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
      ...(codec ? { uiCodecEndpoint: codec.url } : {}),
    });
    process.stderr.write(
      [
        '',
        `  Temporal server   ${server.address}  (state in ${config.devServer.dbFile})`,
        `  Web UI            ${server.uiUrl}`,
        `  Slots             ${config.slotsDir}  (host ${config.slotHost})`,
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

await main(loadConfigOrExit());
