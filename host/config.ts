// Process configuration, parsed once at start-up from the environment. A bad
// value stops the process with a message naming every offending variable. The worker
// and slotctl read the same variables, so it sits in host/, below both.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CODEC_TOKEN_PATTERN } from '../client/codec-client';
import { loadEncryptionKeys, parseEncryptionKeys, type EncryptionKey } from '../client/encryption';
import { ConfigError } from '../common/failures';
import { parseAllowedEndpointHosts } from '../providers/oauth-http';
import { parseServerList } from '../providers/host-servers';
import { providerNames } from '../providers';
import { DEFAULT_INCIDENT_SETTINGS, type IncidentSettings } from '../common/incidents';
import { parseProviderPace, type ProviderPace } from '../common/pacing';
import { HOST_NAME_PATTERN, HOST_NAME_SOURCE } from '../common/slot';

/** An optional comma-separated list whose own parser names each bad entry. */
const checkedList = (parse: (value: string | undefined) => { ok: true } | { ok: false; problems: readonly string[] }) =>
  z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      const parsed = parse(value);
      if (!parsed.ok) for (const problem of parsed.problems) ctx.addIssue({ code: 'custom', message: problem });
    });
const port = z.coerce.number().int().min(1).max(65535);
const hostName = z
  .string()
  .regex(HOST_NAME_PATTERN, 'must be letters, digits, dots, dashes or underscores (it names a task queue)');

/**
 * Slot workflows a worker keeps cached by default: enough for every slot that is
 * logging in or refreshing at one time on a host, far fewer than the slots that
 * sleep (bench/RESULTS.md, "idle cost").
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 500;

export const ConfigSchema = z.object({
  /** host:port of an existing Temporal frontend; when set, `npm start` runs only the worker. */
  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port').optional(),
  /** @default "default" */
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Frontend port of the embedded dev server. @default 7233 */
  TEMPORAL_PORT: port.default(7233),
  /**
   * TLS to TEMPORAL_ADDRESS, `true` or `false`. @default true when another TEMPORAL_TLS_* variable or an API key is set
   * (as the Temporal CLI and SDKs do); `false` with an API key sends the key in plain text.
   */
  TEMPORAL_TLS: z.enum(['true', 'false'], 'must be true or false').optional(),
  /** PEM file of the CA that signed the server's certificate; unset: the system's roots. */
  TEMPORAL_TLS_CA_FILE: z.string().optional(),
  /** PEM client certificate for mTLS; needs TEMPORAL_TLS_KEY_FILE. */
  TEMPORAL_TLS_CERT_FILE: z.string().optional(),
  /** PEM private key of TEMPORAL_TLS_CERT_FILE. */
  TEMPORAL_TLS_KEY_FILE: z.string().optional(),
  /** Server name checked against the server's certificate (and sent as SNI) instead of the address's host. */
  TEMPORAL_TLS_SERVER_NAME: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a DNS name').optional(),
  /** API key sent as `Authorization: Bearer …` on every Temporal call (Temporal Cloud); or TEMPORAL_API_KEY_FILE. */
  TEMPORAL_API_KEY: z.string().regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces').optional(),
  /** A file holding the API key (surrounding whitespace ignored). */
  TEMPORAL_API_KEY_FILE: z.string().optional(),
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
  /**
   * What this process serves, comma-separated: `workflows` (the shared queue; any
   * process) and `host` (this host's PTYs and slot files). Scale out with processes
   * of one role each. @default "workflows,host"
   */
  WORKER_ROLES: z
    .string()
    .default('workflows,host')
    .transform((raw, ctx) => {
      const roles = [...new Set(raw.split(',').map((r) => r.trim()).filter(Boolean))];
      const unknown = roles.filter((r) => r !== 'workflows' && r !== 'host');
      if (unknown.length > 0 || roles.length === 0) {
        ctx.addIssue({ code: 'custom', message: `must be workflows, host or both (comma-separated)${unknown.length > 0 ? `; unknown: ${unknown.join(', ')}` : ''}` });
        return z.NEVER;
      }
      return roles as Array<'workflows' | 'host'>;
    }),
  /** Task queue of the slot workflows (all workers and clients of one deployment agree on it). @default "slot-provisioner" */
  SLOTS_TASK_QUEUE: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be letters, digits, dots, dashes or underscores').default('slot-provisioner'),
  /** Worker variables passed to login CLIs, comma-separated names or `PREFIX_*` patterns. @default "" */
  LOGIN_ENV_PASSTHROUGH: z.string().default(''),
  /** MiB live login CLIs of one worker process may hold (activities/login-capacity.ts reads it). @default half the host's or cgroup's memory */
  LOGIN_CLI_MEMORY_BUDGET_MB: z.string().regex(/^[1-9][0-9]{0,8}$/, 'must be a positive whole number of MiB').optional(),
  /**
   * OAuth endpoint hosts this worker may contact although they resolve to a private,
   * loopback or link-local address: comma-separated `host` or `host:port` (`[::1]:8443`).
   * Plain http is allowed only for such hosts on loopback. @default "" (public hosts only)
   */
  SLOTS_ALLOWED_ENDPOINT_HOSTS: checkedList(parseAllowedEndpointHosts),
  /**
   * The OAuth servers `oidc-device` slots may use, comma-separated URLs (`https://idp.example.com`,
   * `https://login.example.com/realms/team-b`): a slot's issuer, or each endpoint it configures,
   * must be one of them or below one. The host's own list: workflow input cannot widen it.
   * @default "" (none: every oidc-device slot is refused, naming this variable)
   */
  SLOTS_OIDC_SERVERS: checkedList(parseServerList),
  /** Operator notices (a slot needs a person) are POSTed here as JSON; unset: logged only. */
  NOTIFY_WEBHOOK_URL: z.url('must be a URL').optional(),
  /** `1`: a device login's user code goes into notices too (whoever approves it first binds the slot). @default 0 */
  NOTIFY_USER_CODE: z.enum(['0', '1'], { message: 'must be 0 or 1' }).default('0'),
  /** Payload encryption keys, `<keyId>:<base64 of 32 bytes>[,…]`, the first one encrypting. Unset: no encryption. */
  SLOTS_ENCRYPTION_KEYS: z.string().optional(),
  /** A file holding the keys in the same form (one per line allowed). */
  SLOTS_ENCRYPTION_KEYS_FILE: z.string().optional(),
  /**
   * The credential backup store: `postgres://user:password@host:port/database` (a table the worker
   * creates). After every login and refresh the host writes the credential through, sealed with the
   * backup keys (which it then requires). Unset: no backups, and `slotctl move` is refused.
   */
  SLOT_BACKUP_URL: z.string().regex(/^postgres(ql)?:\/\/[^\s]+$/, 'must be a URL like postgres://user:password@host:5432/database').optional(),
  /**
   * The host's backup keys, `<keyId>:<base64 of 32 bytes>[,…]`, the first one sealing, all of them
   * opening (rotation: put the new key first, keep the old ones). Per host or per team, never a
   * payload key: only host workers hold them. Required with SLOT_BACKUP_URL.
   */
  SLOT_BACKUP_KEYS: z.string().optional(),
  /** A file holding the backup keys in the same form (one per line allowed). */
  SLOT_BACKUP_KEYS_FILE: z.string().optional(),
  /**
   * Hosts whose backups this host restores besides its own (a move from them), comma-separated,
   * or `*` for any host holding the same backup key. @default "" (its own backups only)
   */
  SLOT_BACKUP_RESTORE_FROM_HOSTS: z
    .string()
    .regex(new RegExp(`^(\\*|${HOST_NAME_SOURCE}(\\s*,\\s*${HOST_NAME_SOURCE})*)$`), 'must be * or host names separated by commas')
    .optional(),
  /**
   * Slot ids whose backups this host restores although they were made for another provider
   * configuration (an intended change of endpoints), comma-separated. @default "" (none)
   */
  SLOT_BACKUP_RESTORE_RECONFIGURED: z.string().regex(/^[A-Za-z0-9._-]+(\s*,\s*[A-Za-z0-9._-]+)*$/, 'must be slot ids separated by commas').optional(),
  /** Days a retired slot's tombstoned backups are kept before they are deleted. @default 30 */
  SLOT_BACKUP_RETIRED_KEEP_DAYS: z.coerce.number().int().min(0).max(3650).default(30),
  /** Port of the codec server `npm start` runs for the Web UI when keys are set. @default 8234 */
  CODEC_PORT: port.default(8234),
  /**
   * The token the codec server requires (`Authorization: Bearer <token>`, or the UI's endpoint
   * `http://<host>:<port>/<token>`). Required by `npm start` when keys are set.
   */
  CODEC_SERVER_TOKEN: z
    .string()
    .min(16, 'must be at least 16 characters')
    .regex(CODEC_TOKEN_PATTERN, 'must be 16-512 letters, digits or ._~+=- (openssl rand -hex 32)')
    .optional(),
  /**
   * For slotctl and other operator clients without the keys: the codec server that opens and
   * seals payloads for them (what `npm start` prints; its token in CODEC_SERVER_TOKEN, or in
   * the URL's path as the Web UI's endpoint holds it). Ignored when the keys are set.
   */
  SLOTS_CODEC_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL like http://127.0.0.1:8234' })
    .optional(),
  /** `Host` values the codec server answers, comma-separated host:port. @default "127.0.0.1:<CODEC_PORT>,localhost:<CODEC_PORT>" */
  CODEC_ALLOWED_HOSTS: z.string().optional(),
  /** Origins (the Web UI's) allowed to call the codec server, comma-separated. @default "http://127.0.0.1:<TEMPORAL_UI_PORT>,http://localhost:<TEMPORAL_UI_PORT>" */
  CODEC_UI_ORIGINS: z.string().optional(),
  /** Serve the codec server's `/encode` (the UI encoding signal input). @default false */
  CODEC_ENABLE_ENCODE: z.enum(['true', 'false'], 'must be true or false').default('false'),
  /**
   * Workflows kept in the worker's memory between tasks. Each sleeping slot held
   * there costs memory (~0.2 MiB); one evicted is replayed from its history when it
   * wakes (continue-as-new keeps that short). The SDK's own default is sized by the
   * heap (thousands), which keeps every sleeping slot resident. @default 500
   */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).default(DEFAULT_MAX_CACHED_WORKFLOWS),
  /**
   * Port of the Prometheus endpoint (`/metrics`: the slots' metrics and the Temporal SDK core's), or `off`.
   * @default unset: off for `npm run worker`; 9464 for `npm start`
   */
  METRICS_PORT: z.union([z.literal('off'), port], 'must be a port (1-65535) or off').optional(),
  /** Interface the metrics endpoint binds to. @default "127.0.0.1" */
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** Loopback port where the SDK core serves its metrics for /metrics to include. @default METRICS_PORT + 1 */
  TEMPORAL_METRICS_PORT: port.optional(),
  /**
   * One series per slot (`slot_phase`, token expiry), read from a listing of every slot (docs/observability.md,
   * "What a scrape costs"); `off`: slot counts only, by phase and provider. @default "on"
   */
  METRICS_SLOT_SERIES: z.enum(['on', 'off'], 'must be on or off').default('on'),
  /** OTLP/HTTP endpoint for traces (base URL, `http://collector:4318`; spans go to `/v1/traces`). Unset: no OTLP export. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** Zipkin span intake (`http://zipkin:9411/api/v2/spans`). Unset: no Zipkin export. */
  OTEL_EXPORTER_ZIPKIN_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** `service.name` of this process's spans. @default "slot-provisioner" */
  OTEL_SERVICE_NAME: z.string().min(1).default('slot-provisioner'),
  /** Restarts in a row `npm start` tries for a dev server or codec server that ended, before it exits 1 with the reason. @default 5 */
  SUPERVISOR_MAX_RESTARTS: z.coerce.number().int().min(0).max(100).default(5),
  /**
   * Where the agent token service listens (host/agent-token-service.ts): `host:port`, or `off`.
   * Loopback by default: agents on this host (or containers given host networking) reach it. @default "127.0.0.1:7311"
   */
  AGENT_TOKEN_SERVICE: z
    .string()
    .regex(/^(off|[A-Za-z0-9.-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5})$/, 'must be host:port (127.0.0.1:7311) or off')
    .default('127.0.0.1:7311'),
  /** The URL agents are told to use for the token service, when they reach it under another name (a container's host gateway). @default "http://<AGENT_TOKEN_SERVICE>" */
  AGENT_TOKEN_SERVICE_URL: z.url('must be a URL').optional(),
  /**
   * The pace of each provider's token requests (refresh, probe, revocation) and login starts
   * from this host: comma-separated `<provider>=<rate>/s[:<concurrency>]`, e.g. `claude=1/s:2`.
   * The rate holds for all worker processes of the host together (at most 10/s), the
   * concurrency per process (at most 10). @default every provider 2/s, 2 at a time
   */
  PROVIDER_PACE: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      const parsed = parseProviderPace(value, providerNames());
      if (!parsed.ok) for (const problem of parsed.problems) ctx.addIssue({ code: 'custom', message: problem });
    }),
  /** Slots of one provider failing permanently within INCIDENT_WINDOW_MINUTES that make one incident. @default 5 */
  INCIDENT_THRESHOLD: z.coerce.number().int().min(2).max(100_000).default(DEFAULT_INCIDENT_SETTINGS.threshold),
  /** The incident window, and the quiet time after which an incident ends, in minutes. @default 10 */
  INCIDENT_WINDOW_MINUTES: z.coerce.number().min(1).max(7 * 24 * 60).default(DEFAULT_INCIDENT_SETTINGS.windowMs / 60_000),
  /** Hold an incident's automatic relogins from the moment it opens, until `slotctl incident release`. @default false */
  INCIDENT_HOLD_RELOGINS: z.enum(['true', 'false'], 'must be true or false').default('false'),
  /** @default "info" */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Variables whose values are never repeated in an error. */
const SECRET_VARIABLES = ['TEMPORAL_API_KEY', 'SLOTS_ENCRYPTION_KEYS', 'CODEC_SERVER_TOKEN', 'SLOTS_CODEC_URL', 'SLOT_BACKUP_URL', 'SLOT_BACKUP_KEYS'];

export interface Config {
  readonly temporalAddress: string | undefined;
  readonly namespace: string;
  /** How clients and workers reach TEMPORAL_ADDRESS; secret (a key, an API key): never log it. */
  readonly temporalTransport: TemporalTransport;
  readonly devServer: { readonly ip: string; readonly port: number; readonly uiPort: number; readonly dbFile: string };
  readonly dataDir: string;
  readonly slotsDir: string;
  readonly slotHost: string;
  /** The queues this process polls (WORKER_ROLES). */
  readonly roles: ReadonlyArray<'workflows' | 'host'>;
  readonly taskQueue: string;
  readonly maxCachedWorkflows: number;
  readonly notifyWebhookUrl: string | undefined;
  /** NOTIFY_USER_CODE: device logins' user codes in notices. */
  readonly notifyUserCode: boolean;
  /** Secret: never log the config object whole. */
  readonly encryptionKeys: readonly EncryptionKey[] | undefined;
  /** SLOT_BACKUP_URL (holds the database password: never log it); undefined: no backups. */
  readonly backupUrl: string | undefined;
  /** The credential backup's keys and restore policy; undefined when SLOT_BACKUP_URL is not set. Secret: never log it. */
  readonly backup:
    | {
        readonly keys: readonly EncryptionKey[];
        /** `'*'`: any host's backups; else these hosts' besides this one's. */
        readonly restoreFromHosts: readonly string[] | '*';
        readonly restoreReconfigured: readonly string[];
        readonly retiredKeepMs: number;
      }
    | undefined;
  readonly codec: {
    readonly port: number;
    readonly bearerToken: string | undefined;
    /** Host header values answered; undefined: 127.0.0.1 and localhost on `port`. */
    readonly allowedHosts: readonly string[] | undefined;
    readonly uiOrigins: readonly string[];
    readonly enableEncode: boolean;
  };
  /** How often `npm start` restarts what it supervises before giving up. */
  readonly supervisorMaxRestarts: number;
  /** SLOTS_CODEC_URL (may hold the codec token in its path: never log it). */
  readonly codecUrl: string | undefined;
  readonly loginEnvPassthrough: readonly string[];
  /** `port` undefined: the entry point's default (off for the worker, on for `npm start`). */
  readonly metrics: { readonly port: number | 'off' | undefined; readonly host: string; readonly temporalPort: number | undefined; readonly perSlotSeries: boolean };
  readonly tracing: { readonly otlpEndpoint: string | undefined; readonly zipkinEndpoint: string | undefined; readonly serviceName: string };
  /** Undefined when AGENT_TOKEN_SERVICE=off. */
  readonly agentTokenService: { readonly host: string; readonly port: number; readonly url: string | undefined } | undefined;
  readonly logLevel: z.infer<typeof ConfigSchema>['LOG_LEVEL'];
  /** Each provider's pace on this host (PROVIDER_PACE; common/pacing.ts). */
  readonly pace: Readonly<Record<string, ProviderPace>>;
  /** When many slots failing are one incident (INCIDENT_*); used by the process that reports failures (workflows role). */
  readonly incidents: IncidentSettings;
}

export { ConfigError };

export interface TemporalTransport {
  /** `false`: plain gRPC. */
  readonly tls:
    | false
    | {
        readonly serverRootCACertificate?: Buffer;
        readonly clientCertPair?: { readonly crt: Buffer; readonly key: Buffer };
        readonly serverNameOverride?: string;
      };
  readonly apiKey: string | undefined;
}

type ParsedEnv = z.infer<typeof ConfigSchema>;

/** Reads the TLS files and the API key now, so a missing file stops the process at start, naming it. */
function loadTemporalTransport(c: ParsedEnv): TemporalTransport {
  const problems: string[] = [];
  const read = (variable: string, path: string | undefined, mustContain: RegExp, what: string): Buffer | undefined => {
    if (path === undefined) return undefined;
    const file = absolute(path);
    let content: Buffer;
    try {
      content = readFileSync(file);
    } catch (err) {
      problems.push(`${variable}=${JSON.stringify(path)}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
    if (!mustContain.test(content.toString('latin1'))) {
      problems.push(`${variable}=${JSON.stringify(path)}: ${file} is not a PEM ${what}`);
      return undefined;
    }
    return content;
  };
  const ca = read('TEMPORAL_TLS_CA_FILE', c.TEMPORAL_TLS_CA_FILE, /-----BEGIN CERTIFICATE-----/, 'certificate');
  const crt = read('TEMPORAL_TLS_CERT_FILE', c.TEMPORAL_TLS_CERT_FILE, /-----BEGIN CERTIFICATE-----/, 'certificate');
  const key = read('TEMPORAL_TLS_KEY_FILE', c.TEMPORAL_TLS_KEY_FILE, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'private key');
  if ((c.TEMPORAL_TLS_CERT_FILE === undefined) !== (c.TEMPORAL_TLS_KEY_FILE === undefined)) {
    problems.push(
      c.TEMPORAL_TLS_CERT_FILE === undefined
        ? 'TEMPORAL_TLS_KEY_FILE is set without TEMPORAL_TLS_CERT_FILE: a client certificate needs both'
        : 'TEMPORAL_TLS_CERT_FILE is set without TEMPORAL_TLS_KEY_FILE: a client certificate needs both',
    );
  }
  let apiKey = c.TEMPORAL_API_KEY;
  if (apiKey !== undefined && c.TEMPORAL_API_KEY_FILE !== undefined) {
    problems.push('TEMPORAL_API_KEY and TEMPORAL_API_KEY_FILE are both set: use one');
  } else if (c.TEMPORAL_API_KEY_FILE !== undefined) {
    const file = absolute(c.TEMPORAL_API_KEY_FILE);
    try {
      apiKey = readFileSync(file, 'utf8').trim();
      if (!/^[\x21-\x7e]+$/.test(apiKey)) {
        problems.push(`TEMPORAL_API_KEY_FILE=${JSON.stringify(c.TEMPORAL_API_KEY_FILE)}: ${file} must hold one key of printable ASCII without spaces`);
      }
    } catch (err) {
      problems.push(`TEMPORAL_API_KEY_FILE=${JSON.stringify(c.TEMPORAL_API_KEY_FILE)}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const tlsFiles = [c.TEMPORAL_TLS_CA_FILE, c.TEMPORAL_TLS_CERT_FILE, c.TEMPORAL_TLS_KEY_FILE, c.TEMPORAL_TLS_SERVER_NAME].some((v) => v !== undefined);
  if (c.TEMPORAL_TLS === 'false' && tlsFiles) {
    problems.push('TEMPORAL_TLS=false contradicts the TEMPORAL_TLS_* variables that are set: remove one or the other');
  }
  // As the Temporal CLI and SDKs do: an API key turns TLS on unless it is explicitly off.
  const tlsOn = c.TEMPORAL_TLS === 'true' || (c.TEMPORAL_TLS === undefined && (tlsFiles || apiKey !== undefined));
  if ((tlsOn || apiKey !== undefined) && c.TEMPORAL_ADDRESS === undefined) {
    problems.push(
      `${tlsOn ? 'TEMPORAL_TLS' : 'TEMPORAL_API_KEY'}: needs TEMPORAL_ADDRESS; the embedded dev server of \`npm start\` is plain gRPC on ${c.TEMPORAL_IP}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    tls: tlsOn
      ? {
          ...(ca ? { serverRootCACertificate: ca } : {}),
          ...(crt && key ? { clientCertPair: { crt, key } } : {}),
          ...(c.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: c.TEMPORAL_TLS_SERVER_NAME } : {}),
        }
      : false,
    apiKey,
  };
}

const list = (value: string): string[] => value.split(',').map((s) => s.trim()).filter(Boolean);

/** The checkout (as workers/temporal-binaries.ts's PROJECT_ROOT): a relative path in the environment is taken from it, wherever the process started. */
const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const absolute = (path: string): string => (isAbsolute(path) ? path : resolve(CHECKOUT, path));

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
  const backup = backupOf(c, present, encryptionKeys);
  const temporalTransport = loadTemporalTransport(c);
  if (typeof c.METRICS_PORT === 'number' && c.TEMPORAL_METRICS_PORT === c.METRICS_PORT) {
    throw new ConfigError([`TEMPORAL_METRICS_PORT=${c.TEMPORAL_METRICS_PORT}: must differ from METRICS_PORT (the SDK core serves its metrics there, /metrics includes them)`]);
  }
  if (c.TEMPORAL_PORT === c.TEMPORAL_UI_PORT) {
    throw new ConfigError([`TEMPORAL_UI_PORT=${c.TEMPORAL_UI_PORT}: must differ from TEMPORAL_PORT`]);
  }
  return {
    temporalAddress: c.TEMPORAL_ADDRESS,
    namespace: c.TEMPORAL_NAMESPACE,
    temporalTransport,
    devServer: { ip: c.TEMPORAL_IP, port: c.TEMPORAL_PORT, uiPort: c.TEMPORAL_UI_PORT, dbFile: resolve(dataDir, 'temporal.sqlite') },
    dataDir,
    slotsDir: absolute(c.SLOTS_DIR ?? resolve(dataDir, 'slots')),
    slotHost: c.SLOT_HOST,
    roles: c.WORKER_ROLES,
    taskQueue: c.SLOTS_TASK_QUEUE,
    maxCachedWorkflows: c.WORKER_MAX_CACHED_WORKFLOWS,
    notifyWebhookUrl: c.NOTIFY_WEBHOOK_URL,
    notifyUserCode: c.NOTIFY_USER_CODE === '1',
    encryptionKeys,
    backupUrl: c.SLOT_BACKUP_URL,
    backup,
    codec: {
      port: c.CODEC_PORT,
      bearerToken: c.CODEC_SERVER_TOKEN,
      allowedHosts: c.CODEC_ALLOWED_HOSTS ? list(c.CODEC_ALLOWED_HOSTS) : undefined,
      uiOrigins: c.CODEC_UI_ORIGINS ? list(c.CODEC_UI_ORIGINS) : [`http://127.0.0.1:${c.TEMPORAL_UI_PORT}`, `http://localhost:${c.TEMPORAL_UI_PORT}`],
      enableEncode: c.CODEC_ENABLE_ENCODE === 'true',
    },
    codecUrl: c.SLOTS_CODEC_URL,
    supervisorMaxRestarts: c.SUPERVISOR_MAX_RESTARTS,
    loginEnvPassthrough: c.LOGIN_ENV_PASSTHROUGH.split(',').map((s) => s.trim()).filter(Boolean),
    metrics: { port: c.METRICS_PORT, host: c.METRICS_HOST, temporalPort: c.TEMPORAL_METRICS_PORT, perSlotSeries: c.METRICS_SLOT_SERIES === 'on' },
    tracing: { otlpEndpoint: c.OTEL_EXPORTER_OTLP_ENDPOINT, zipkinEndpoint: c.OTEL_EXPORTER_ZIPKIN_ENDPOINT, serviceName: c.OTEL_SERVICE_NAME },
    agentTokenService: agentTokenServiceOf(c),
    logLevel: c.LOG_LEVEL,
    // Checked by the schema above: parsing again cannot fail.
    pace: (parseProviderPace(c.PROVIDER_PACE, providerNames()) as { value: Config['pace'] }).value,
    incidents: { threshold: c.INCIDENT_THRESHOLD, windowMs: Math.round(c.INCIDENT_WINDOW_MINUTES * 60_000), holdRelogins: c.INCIDENT_HOLD_RELOGINS === 'true' },
  };
}

/** The backup keys (never a payload key: those are held by operators and workflow-only workers too) and the restore policy. */
function backupOf(c: ParsedEnv, env: Record<string, string | undefined>, payloadKeys: readonly EncryptionKey[] | undefined): Config['backup'] {
  const variables = ['SLOT_BACKUP_KEYS', 'SLOT_BACKUP_KEYS_FILE', 'SLOT_BACKUP_RESTORE_FROM_HOSTS', 'SLOT_BACKUP_RESTORE_RECONFIGURED', 'SLOT_BACKUP_RETIRED_KEEP_DAYS'];
  if (c.SLOT_BACKUP_URL === undefined) {
    const stray = variables.filter((v) => env[v] !== undefined);
    if (stray.length > 0) throw new ConfigError([`${stray.join(', ')} ${stray.length === 1 ? 'is' : 'are'} set but SLOT_BACKUP_URL is not: set the backup store too, or unset ${stray.length === 1 ? 'it' : 'them'}`]);
    return undefined;
  }
  if (c.SLOT_BACKUP_KEYS !== undefined && c.SLOT_BACKUP_KEYS_FILE !== undefined) throw new ConfigError(['SLOT_BACKUP_KEYS and SLOT_BACKUP_KEYS_FILE are both set: use one']);
  let keys: EncryptionKey[];
  try {
    if (c.SLOT_BACKUP_KEYS !== undefined) keys = parseEncryptionKeys(c.SLOT_BACKUP_KEYS, 'SLOT_BACKUP_KEYS');
    else if (c.SLOT_BACKUP_KEYS_FILE !== undefined) {
      const file = absolute(c.SLOT_BACKUP_KEYS_FILE);
      let contents: string;
      try {
        contents = readFileSync(file, 'utf8');
      } catch (err) {
        throw new Error(`SLOT_BACKUP_KEYS_FILE=${JSON.stringify(c.SLOT_BACKUP_KEYS_FILE)}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      keys = parseEncryptionKeys(contents, `SLOT_BACKUP_KEYS_FILE (${file})`);
    } else {
      throw new Error(
        'SLOT_BACKUP_URL is set but SLOT_BACKUP_KEYS (or SLOT_BACKUP_KEYS_FILE) is not: credential backups are sealed with a key only this host (or its team\'s hosts) holds, ' +
          'not with the payload keys; generate one (`echo "b1:$(openssl rand -base64 32)"`), or unset SLOT_BACKUP_URL',
      );
    }
  } catch (err) {
    throw new ConfigError([(err as Error).message]);
  }
  const shared = keys.filter((k) => payloadKeys?.some((p) => p.key.equals(k.key)));
  if (shared.length > 0) {
    throw new ConfigError([
      `SLOT_BACKUP_KEYS: backup key${shared.length === 1 ? '' : 's'} ${shared.map((k) => `"${k.id}"`).join(', ')} ${shared.length === 1 ? 'is' : 'are'} also a payload key (SLOTS_ENCRYPTION_KEYS): ` +
        'whoever holds the payload keys (operators\' slotctl, the codec server, workflow-only workers) could then open the backups; generate a separate key',
    ]);
  }
  const from = c.SLOT_BACKUP_RESTORE_FROM_HOSTS?.trim();
  return {
    keys,
    restoreFromHosts: from === '*' ? '*' : from ? list(from) : [],
    restoreReconfigured: c.SLOT_BACKUP_RESTORE_RECONFIGURED ? list(c.SLOT_BACKUP_RESTORE_RECONFIGURED) : [],
    retiredKeepMs: c.SLOT_BACKUP_RETIRED_KEEP_DAYS * 86_400_000,
  };
}

function agentTokenServiceOf(c: ParsedEnv): Config['agentTokenService'] {
  if (c.AGENT_TOKEN_SERVICE === 'off') return undefined;
  const at = c.AGENT_TOKEN_SERVICE.lastIndexOf(':');
  const port = Number(c.AGENT_TOKEN_SERVICE.slice(at + 1));
  if (port < 1 || port > 65535) throw new ConfigError([`AGENT_TOKEN_SERVICE=${JSON.stringify(c.AGENT_TOKEN_SERVICE)}: the port must be 1-65535`]);
  return { host: c.AGENT_TOKEN_SERVICE.slice(0, at).replace(/^\[|\]$/g, ''), port, url: c.AGENT_TOKEN_SERVICE_URL };
}

/** The address clients and workers dial. */
export const temporalAddress = (config: Config): string =>
  config.temporalAddress ?? `${config.devServer.ip}:${config.devServer.port}`;

/**
 * Connection options for `NativeConnection.connect` and `Connection.connect` alike: every
 * worker and client made from configuration dials through this.
 */
export const temporalConnectionOptions = (
  config: Config,
): { address: string; tls?: NonNullable<Exclude<TemporalTransport['tls'], false>> | true; apiKey?: string } => {
  const { tls, apiKey } = config.temporalTransport;
  return {
    address: temporalAddress(config),
    ...(tls ? { tls: Object.keys(tls).length > 0 ? tls : true } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}),
  };
};

/** For process entry points: the configuration, or a message naming what is wrong and exit code 2. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
