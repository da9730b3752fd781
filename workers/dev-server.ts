// Runs the Temporal dev server (the `temporal` CLI's `server start-dev`) for
// `npm start` and the tests, with the project's search attributes registered.
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ALL_SEARCH_ATTRIBUTES } from '../common/search-attributes';
import { devServerDynamicConfigArgs } from './dev-server-config';
import { sdkExecutable, type ServerExecutable } from './temporal-binaries';

export interface DevServerOptions {
  readonly executable: ServerExecutable;
  readonly ip?: string;
  /** Frontend port; a free one when omitted. */
  readonly port?: number;
  /** Web UI port; no UI when omitted. */
  readonly uiPort?: number;
  /** SQLite file that keeps state across restarts; in memory when omitted. */
  readonly dbFile?: string;
  readonly namespace?: string;
  /** The Web UI asks this codec server to decode payloads. */
  readonly uiCodecEndpoint?: string;
  /** `--sqlite-pragma` values for the SQLite file (`journal_mode: 'wal'`). */
  readonly sqlitePragmas?: Readonly<Record<string, string>>;
  /** `--dynamic-config-value` pairs beyond the project's own (DEV_SERVER_DYNAMIC_CONFIG), values as JSON. */
  readonly dynamicConfig?: Readonly<Record<string, string>>;
}

export interface DevServer {
  readonly address: string;
  readonly uiUrl: string | undefined;
  readonly env: TestWorkflowEnvironment;
  stop(): Promise<void>;
}

/** Fails early, naming the port, instead of letting the server die with a bind error in its log. */
export async function assertPortFree(ip: string, port: number, variable: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `port ${port} on ${ip} is already in use (${variable}): another Temporal server may be running; ` +
                `stop it, choose another port, or set TEMPORAL_ADDRESS to use it`
            : `cannot listen on ${ip}:${port} (${variable}): ${err.message}`,
        ),
      ),
    );
    probe.listen(port, ip, () => probe.close(() => resolve()));
  });
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  if (opts.port !== undefined) await assertPortFree(ip, opts.port, 'TEMPORAL_PORT');
  if (opts.uiPort !== undefined) await assertPortFree(ip, opts.uiPort, 'TEMPORAL_UI_PORT');
  if (opts.dbFile) await mkdir(dirname(opts.dbFile), { recursive: true });
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: sdkExecutable(opts.executable),
      ip,
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      ...(opts.uiPort !== undefined ? { ui: true, uiPort: opts.uiPort } : { ui: false }),
      ...(opts.dbFile ? { dbFilename: opts.dbFile } : {}),
      namespace: opts.namespace ?? 'default',
      searchAttributes: [...ALL_SEARCH_ATTRIBUTES],
      log: { format: 'pretty', level: 'warn' },
      extraArgs: [
        ...(opts.uiCodecEndpoint ? ['--ui-codec-endpoint', opts.uiCodecEndpoint] : []),
        ...Object.entries(opts.sqlitePragmas ?? {}).flatMap(([key, value]) => ['--sqlite-pragma', `${key}=${value}`]),
        ...devServerDynamicConfigArgs(opts.dynamicConfig),
      ],
    },
  });
  const address = env.address;
  return {
    address,
    uiUrl: opts.uiPort !== undefined ? `http://${ip === '0.0.0.0' ? 'localhost' : ip}:${opts.uiPort}` : undefined,
    env,
    stop: () => env.teardown(),
  };
}
