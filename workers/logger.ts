// One structured logger (pino) for the worker, the SDK and workflow/activity
// log calls, with secret-bearing fields and token-shaped strings redacted.
import pino, { type Logger as PinoLogger } from 'pino';
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';

/**
 * Keys whose values are never logged, wherever they appear; compared without case,
 * `_` or `-` (so `refresh_token`, `refreshToken` and `Refresh-Token` are one key).
 */
const SECRET_KEYS = new Set(
  [
    'code', 'device_code', 'access_token', 'refresh_token', 'id_token', 'token', 'tokens', 'authorization',
    'proxy-authorization', 'cookie', 'set-cookie', 'password', 'secret', 'client_secret', 'api_key', 'x-api-key', 'codec_server_token',
  ].map((k) => normalizeKey(k)),
);

function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

export const isSecretKey = (key: string): boolean => SECRET_KEYS.has(normalizeKey(key));

/** Secret fields quoted inside a string: `refresh_token=…` (forms, URLs), `"refresh_token": "…"` (JSON). */
const SECRET_FIELD_NAMES = 'device_code|deviceCode|refresh_token|refreshToken|access_token|accessToken|id_token|idToken|client_secret|clientSecret|password|code';

/**
 * JWTs (signed or not), Anthropic keys/tokens, OpenAI refresh tokens, bearer credentials,
 * cookies, and secret fields inside forms, URLs or JSON, wherever they appear in a string.
 */
const TOKEN_SHAPES: ReadonlyArray<[RegExp, string]> = [
  [/\beyJ[\w-]{4,}\.eyJ[\w-]{4,}(?:\.[\w-]*)?|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}/g, '[redacted]'],
  [/\bsk-ant-[\w-]{8,}/g, '[redacted]'],
  [/\brt_[\w.-]{16,}/g, '[redacted]'],
  // A credential after the scheme: token characters, with a digit or symbol in them or 16+ long (not "Bearer token").
  [/\b(Bearer|Basic)(\s+)(?:(?=[A-Za-z]*[\d._~+/=-])[\w.~+/=-]{8,}|[\w.~+/=-]{16,})/gi, '$1$2[redacted]'],
  [/\b((?:set-)?cookie:\s*)[^\r\n"]+/gi, '$1[redacted]'],
  [new RegExp(`([?&\\s"']|^)(${SECRET_FIELD_NAMES})=(?!\\[redacted\\])[^&\\s"',]+`, 'g'), '$1$2=[redacted]'],
  [new RegExp(`("(?:${SECRET_FIELD_NAMES})"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'g'), '$1"[redacted]"'],
];

export function redactText(text: string): string {
  return TOKEN_SHAPES.reduce((out, [shape, replacement]) => out.replace(shape, replacement), text);
}

/** A copy of an error whose message and stack (and its causes' and fields) are redacted. */
function redactError(err: Error, depth = 0): Error {
  const copy = new Error(redactText(err.message));
  copy.name = err.name;
  copy.stack = err.stack ? redactText(err.stack) : undefined;
  if (err.cause instanceof Error && depth < 5) copy.cause = redactError(err.cause, depth + 1);
  for (const [k, v] of Object.entries(err)) {
    if (k !== 'cause' && k !== 'message' && k !== 'stack') (copy as unknown as Record<string, unknown>)[k] = isSecretKey(k) ? '[redacted]' : redactValue(v, depth + 1);
  }
  return copy;
}

function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) return redactError(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, isSecretKey(k) ? '[redacted]' : redactValue(v, depth + 1)]),
  );
}

export function createLogger(level: string, destination?: pino.DestinationStream): PinoLogger {
  const logger = pino(
    {
      level,
      formatters: {
        log: (object) => redactValue(object) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          // An error's message and stack may quote what a server or a CLI said.
          const clean = args.map((a) => redactValue(a));
          method.apply(this, clean as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
  // A child's fields are written as given by pino: redact them on the way in (children inherit this).
  type Child = (this: unknown, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => unknown;
  const child = logger.child as unknown as Child;
  const redactingChild: Child = function (this: unknown, bindings, options) {
    return child.call(this, redactValue(bindings) as pino.Bindings, options);
  };
  logger.child = redactingChild as unknown as typeof logger.child;
  return logger;
}

const LEVELS = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/**
 * Routes the SDK's and workflows' log lines through our logger. Call once per process, before any worker.
 * `coreMetricsBindAddress`: where the SDK core serves its Prometheus metrics (see workers/metrics.ts).
 */
export function installRuntimeLogger(logger: PinoLogger, coreMetricsBindAddress?: string): void {
  const sdkLevel = (Object.entries(LEVELS).find(([, v]) => v === logger.level)?.[0] ?? 'INFO') as keyof typeof LEVELS;
  Runtime.install({
    ...(coreMetricsBindAddress
      ? { telemetryOptions: { metrics: { prometheus: { bindAddress: coreMetricsBindAddress, countersTotalSuffix: true, unitSuffix: true, useSecondsForDurations: true } } } }
      : {}),
    logger: new DefaultLogger(sdkLevel, (entry: LogEntry) => {
      logger[LEVELS[entry.level]]({ ...(entry.meta ?? {}) }, entry.message);
    }),
  });
}
