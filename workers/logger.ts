// One structured logger (pino) for the worker, the SDK and workflow/activity
// log calls, with secret-bearing fields and token-shaped strings redacted.
import pino, { type Logger as PinoLogger } from 'pino';
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';

/** Keys whose values are never logged, wherever they appear. */
const SECRET_KEYS = ['code', 'accessToken', 'refreshToken', 'access_token', 'refresh_token', 'id_token', 'token', 'authorization', 'password', 'secret'];

/** JWTs, Anthropic keys/tokens and OpenAI refresh tokens, wherever they appear in a string. */
const TOKEN_SHAPES = /\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}|\bsk-ant-[\w-]{8,}|\brt_[\w.-]{16,}/g;

export function redactText(text: string): string {
  return text.replace(TOKEN_SHAPES, '[redacted]');
}

/** A copy of an error whose message and stack (and its causes') are redacted. */
function redactError(err: Error, depth = 0): Error {
  const copy = new Error(redactText(err.message));
  copy.name = err.name;
  copy.stack = err.stack ? redactText(err.stack) : undefined;
  if (err.cause instanceof Error && depth < 5) copy.cause = redactError(err.cause, depth + 1);
  return copy;
}

function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value instanceof Error) return redactError(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, SECRET_KEYS.includes(k) ? '[redacted]' : redactValue(v, depth + 1)]),
  );
}

export function createLogger(level: string, destination?: pino.DestinationStream): PinoLogger {
  return pino(
    {
      level,
      formatters: { log: (object) => redactValue(object) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          // An error's message and stack may quote what a server or a CLI said.
          const clean = args.map((a) => (typeof a === 'string' ? redactText(a) : a instanceof Error ? redactError(a) : a));
          method.apply(this, clean as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}

const LEVELS = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/** Routes the SDK's and workflows' log lines through our logger. Call once per process, before any worker. */
export function installRuntimeLogger(logger: PinoLogger): void {
  const sdkLevel = (Object.entries(LEVELS).find(([, v]) => v === logger.level)?.[0] ?? 'INFO') as keyof typeof LEVELS;
  Runtime.install({
    logger: new DefaultLogger(sdkLevel, (entry: LogEntry) => {
      logger[LEVELS[entry.level]]({ ...(entry.meta ?? {}) }, entry.message);
    }),
  });
}
