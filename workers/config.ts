// Process configuration, parsed once at start-up from the environment. A bad
// value stops the process with a message naming every offending variable.
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { loadEncryptionKeys, type EncryptionKey } from './encryption';
import { PROJECT_ROOT } from './temporal-binaries';
import { ConfigError } from '../common/failures';

const port = z.coerce.number().int().min(1).max(65535);
const hostName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be letters, digits, dots, dashes or underscores (it names a task queue)');

export const ConfigSchema = z.object({
  /** host:port of an existing Temporal frontend; when set, `npm start` runs only the worker. */
  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port').optional(),
  /** @default "default" */
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Frontend port of the embedded dev server. @default 7233 */
  TEMPORAL_PORT: port.default(7233),
  /** Web UI port of the embedded dev server. @default 8233 */
  TEMPORAL_UI_PORT: port.default(8233),
  /** Interface the embedded dev server binds to. @default "127.0.0.1" */
  TEMPORAL_IP: z.string().min(1).default('127.0.0.1'),
  /** Where the embedded server keeps its SQLite file and slot homes default to. @default ".data" */
  DATA_DIR: z.string().min(1).default('.data'),
  /** Parent of every slot's home directory. @default "$DATA_DIR/slots" */
  SLOTS_DIR: z.string().min(1).optional(),
  /** This host's name; its worker serves the `slots.<host>` task queue. @default os.hostname() */
  SLOT_HOST: hostName.default(hostname().split('.')[0] || 'localhost'),
  /** Task queue of the slot workflows (all workers and clients of one deployment agree on it). @default "slot-provisioner" */
  SLOTS_TASK_QUEUE: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be letters, digits, dots, dashes or underscores').default('slot-provisioner'),
  /** Worker variables passed to login CLIs, comma-separated names or `PREFIX_*` patterns. @default "" */
  LOGIN_ENV_PASSTHROUGH: z.string().default(''),
  /** Operator notices (a slot needs a person) are POSTed here as JSON; unset: logged only. */
  NOTIFY_WEBHOOK_URL: z.url('must be a URL').optional(),
  /** Payload encryption keys, `<keyId>:<base64 of 32 bytes>[,…]`, the first one encrypting. Unset: no encryption. */
  SLOTS_ENCRYPTION_KEYS: z.string().optional(),
  /** A file holding the keys in the same form (one per line allowed). */
  SLOTS_ENCRYPTION_KEYS_FILE: z.string().optional(),
  /** Port of the codec server `npm start` runs for the Web UI when keys are set. @default 8234 */
  CODEC_PORT: port.default(8234),
  /** When set, the codec server requires `Authorization: Bearer <token>`. */
  CODEC_SERVER_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /**
   * Workflows kept in the worker's memory between tasks. Each sleeping slot held
   * there costs memory; one evicted is replayed from history when it wakes. @default the SDK's (by memory)
   */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).optional(),
  /** @default "info" */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Variables whose values are never repeated in an error. */
const SECRET_VARIABLES = ['SLOTS_ENCRYPTION_KEYS', 'CODEC_SERVER_TOKEN'];

export interface Config {
  readonly temporalAddress: string | undefined;
  readonly namespace: string;
  readonly devServer: { readonly ip: string; readonly port: number; readonly uiPort: number; readonly dbFile: string };
  readonly dataDir: string;
  readonly slotsDir: string;
  readonly slotHost: string;
  readonly taskQueue: string;
  readonly maxCachedWorkflows: number | undefined;
  readonly notifyWebhookUrl: string | undefined;
  /** Secret: never log the config object whole. */
  readonly encryptionKeys: readonly EncryptionKey[] | undefined;
  readonly codec: { readonly port: number; readonly bearerToken: string | undefined };
  readonly loginEnvPassthrough: readonly string[];
  readonly logLevel: z.infer<typeof ConfigSchema>['LOG_LEVEL'];
}

export { ConfigError };

const absolute = (path: string): string => (isAbsolute(path) ? path : resolve(PROJECT_ROOT, path));

/** Parses the environment; throws ConfigError naming each bad variable and why. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings count as unset, as shells and compose files often produce them.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = ConfigSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        const shown = SECRET_VARIABLES.includes(name) ? '(hidden)' : JSON.stringify(present[name] ?? '');
        return `${name}=${shown}: ${issue.message}`;
      }),
    );
  }
  const c = parsed.data;
  const dataDir = absolute(c.DATA_DIR);
  let encryptionKeys: EncryptionKey[] | undefined;
  try {
    encryptionKeys = loadEncryptionKeys(present);
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  if (c.TEMPORAL_PORT === c.TEMPORAL_UI_PORT) {
    throw new ConfigError([`TEMPORAL_UI_PORT=${c.TEMPORAL_UI_PORT}: must differ from TEMPORAL_PORT`]);
  }
  return {
    temporalAddress: c.TEMPORAL_ADDRESS,
    namespace: c.TEMPORAL_NAMESPACE,
    devServer: { ip: c.TEMPORAL_IP, port: c.TEMPORAL_PORT, uiPort: c.TEMPORAL_UI_PORT, dbFile: resolve(dataDir, 'temporal.sqlite') },
    dataDir,
    slotsDir: absolute(c.SLOTS_DIR ?? resolve(dataDir, 'slots')),
    slotHost: c.SLOT_HOST,
    taskQueue: c.SLOTS_TASK_QUEUE,
    maxCachedWorkflows: c.WORKER_MAX_CACHED_WORKFLOWS,
    notifyWebhookUrl: c.NOTIFY_WEBHOOK_URL,
    encryptionKeys,
    codec: { port: c.CODEC_PORT, bearerToken: c.CODEC_SERVER_TOKEN },
    loginEnvPassthrough: c.LOGIN_ENV_PASSTHROUGH.split(',').map((s) => s.trim()).filter(Boolean),
    logLevel: c.LOG_LEVEL,
  };
}

/** The address clients and workers dial. */
export const temporalAddress = (config: Config): string =>
  config.temporalAddress ?? `${config.devServer.ip}:${config.devServer.port}`;

/** For process entry points: the configuration, or a message naming what is wrong and exit code 2. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
