// The agent token service: on the slot's host, inside the worker, it hands an agent
// of slot <id> the slot's CURRENT access token, against the slot's agent secret. It
// never refreshes and never sees a refresh token leave: when the token is near
// expiry it asks the slot workflow (the single writer) to refresh.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger as PinoLogger } from 'pino';
import { readAgentSecret } from '../activities/agent-files';
import { slotHome } from '../activities/credential-store';
import { openRecordedSlot } from '../activities/open-slot';
import { slotIdProblem } from '../common/slot';
import type { AgentTokens, Provider } from '../providers/provider';

export interface AgentTokenServiceOptions {
  readonly slotsDir: string;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0: any free port. @default 7311 */
  readonly port?: number;
  /** Asks slot `slotId`'s workflow to refresh now (a `refreshNow` signal); the service never refreshes itself. */
  readonly requestRefresh: (slotId: string) => Promise<void>;
  /** An access token expiring sooner than this makes the service ask for a refresh. @default 300000 */
  readonly nearExpiryMs?: number;
  /**
   * Requests per slot per minute with the slot's secret, and, counted apart, requests with a
   * wrong or no secret; more of either kind are answered 429. Wrong secrets never use up the
   * agents' allowance (any local process could otherwise lock a slot's agents out). @default 60
   */
  readonly perSlotPerMinute?: number;
  readonly log?: PinoLogger;
  /** Tests: the clock. @default Date.now */
  readonly now?: () => number;
}

export interface AgentTokenService {
  /** `http://127.0.0.1:<port>`: agents of slot <id> use `<url>/slots/<id>`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 16 * 1024;
/** A slot is asked to refresh at most this often, however many agents ask. */
const REFRESH_REQUEST_EVERY_MS = 30_000;
const ROUTE = /^\/slots\/([^/]+)\/(oauth\/token|access-token)$/;

type Answer = { readonly status: number; readonly body: string; readonly type: string; readonly retryAfterSec?: number; readonly reason: string };

const json = (status: number, value: unknown, reason: string, retryAfterSec?: number): Answer => ({
  status,
  body: JSON.stringify(value),
  type: 'application/json',
  reason,
  ...(retryAfterSec !== undefined ? { retryAfterSec } : {}),
});
const oauthError = (status: number, error: string, description: string, retryAfterSec?: number): Answer =>
  json(status, { error, error_description: description }, description, retryAfterSec);

/** Compares through digests: equal lengths, so timingSafeEqual does not leak the secret's length either. */
function sameSecret(presented: string, secret: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(secret).digest();
  return timingSafeEqual(a, b);
}

// Read whole on purpose: one closure over the service's state (the rate windows, the last
// refresh requests, the options), in named inner steps (overLimit, currentTokens,
// askForRefresh, answer: a request's checks in order, send); lifted out, each would take that state as arguments.
export async function startAgentTokenService(opts: AgentTokenServiceOptions): Promise<AgentTokenService> {
  const host = opts.host ?? '127.0.0.1';
  const nearExpiryMs = opts.nearExpiryMs ?? 5 * 60_000;
  const perMinute = opts.perSlotPerMinute ?? 60;
  const now = opts.now ?? Date.now;
  if (!Number.isSafeInteger(perMinute) || perMinute <= 0) throw new RangeError(`perSlotPerMinute must be a positive integer, got ${perMinute}`);
  /** Fixed one-minute windows per slot id: one for the slot's agents, one for wrong secrets. */
  const agentWindows = new Map<string, { start: number; count: number }>();
  const refusedWindows = new Map<string, { start: number; count: number }>();
  const lastRefreshRequest = new Map<string, number>();

  function overLimit(windows: Map<string, { start: number; count: number }>, slotId: string): boolean {
    const t = now();
    if (windows.size > 10_000) windows.clear();
    const w = windows.get(slotId);
    if (!w || t - w.start >= 60_000) {
      windows.set(slotId, { start: t, count: 1 });
      return false;
    }
    w.count += 1;
    return w.count > perMinute;
  }

  async function currentTokens(slotId: string): Promise<{ provider: Provider; tokens: AgentTokens } | Answer> {
    const opening = await openRecordedSlot(opts.slotsDir, slotId);
    if (!opening.ok) {
      return opening.kind === 'no-record'
        ? oauthError(404, 'invalid_request', 'no such slot on this host')
        : oauthError(500, 'server_error', 'the slot record names a provider this worker cannot build');
    }
    const { provider } = opening.slot;
    if (!provider.agent.tokens) return oauthError(404, 'unsupported_grant_type', `${provider.displayName} agents do not use the token service`);
    const read = await opening.slot.readCredential({ requirePrivate: true });
    if (read.kind === 'unread') return oauthError(503, 'temporarily_unavailable', 'the slot has no usable credential (it may be logging in)', 30);
    if (read.kind !== 'parsed') return oauthError(503, 'temporarily_unavailable', 'the slot credential is unreadable', 30);
    try {
      return { provider, tokens: provider.agent.tokens(read.credential) };
    } catch {
      return oauthError(503, 'temporarily_unavailable', 'the slot credential is unreadable', 30);
    }
  }

  function askForRefresh(slotId: string): void {
    const t = now();
    if (t - (lastRefreshRequest.get(slotId) ?? -Infinity) < REFRESH_REQUEST_EVERY_MS) return;
    lastRefreshRequest.set(slotId, t);
    opts.requestRefresh(slotId).then(
      () => opts.log?.info({ slotId }, 'agent token service asked the slot to refresh (token near expiry)'),
      (err: unknown) => opts.log?.warn({ slotId, reason: err instanceof Error ? err.message : String(err) }, 'agent token service could not ask the slot to refresh'),
    );
  }

  async function answer(req: IncomingMessage, body: string): Promise<Answer> {
    const match = ROUTE.exec(new URL(req.url ?? '/', 'http://service').pathname);
    if (!match) return oauthError(404, 'invalid_request', 'unknown path');
    // Slot ids need no escapes: a path that has any (or a malformed one) names no slot.
    const slotId = match[1]!;
    const route = match[2]!;
    if (slotIdProblem(slotId)) return oauthError(404, 'invalid_request', 'invalid slot id');

    let presented: string | undefined;
    if (route === 'oauth/token') {
      if (req.method !== 'POST') return oauthError(405, 'invalid_request', 'POST only');
      const form = parseBody(body, req.headers['content-type']);
      if (!form) return oauthError(400, 'invalid_request', 'the body is neither JSON nor a form');
      if (form.grant_type !== 'refresh_token') return oauthError(400, 'unsupported_grant_type', 'only grant_type=refresh_token');
      presented = typeof form.refresh_token === 'string' ? form.refresh_token : undefined;
    } else {
      if (req.method !== 'GET') return oauthError(405, 'invalid_request', 'GET only');
      const auth = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      presented = auth?.[1];
    }
    const secret = await readAgentSecret(slotHome(opts.slotsDir, slotId)).catch(() => undefined);
    // The same answer whether the slot has no secret or the secret is wrong: nothing to probe.
    // The secret first: only the slot's own agents count against the slot's allowance.
    if (presented === undefined || secret === undefined || !sameSecret(presented, secret)) {
      if (overLimit(refusedWindows, slotId)) return oauthError(429, 'slow_down', 'too many requests without this slot\'s secret', 60);
      return oauthError(401, 'invalid_grant', 'not an agent secret of this slot');
    }
    if (overLimit(agentWindows, slotId)) return oauthError(429, 'slow_down', 'too many requests for this slot', 60);
    const current = await currentTokens(slotId);
    if ('status' in current) return current;
    const { tokens } = current;
    const t = now();
    if (tokens.expiresAt !== undefined && tokens.expiresAt - t < nearExpiryMs) askForRefresh(slotId);
    if (tokens.expiresAt !== undefined && tokens.expiresAt <= t) {
      return oauthError(503, 'temporarily_unavailable', 'the slot is refreshing its token; ask again shortly', 5);
    }
    const expiresIn = tokens.expiresAt !== undefined ? Math.floor((tokens.expiresAt - t) / 1000) : undefined;
    if (route === 'access-token') return { status: 200, body: tokens.accessToken, type: 'text/plain; charset=utf-8', reason: 'access token' };
    // The agent's "refresh token" stays its secret: it can only ever come back here.
    return json(
      200,
      {
        access_token: tokens.accessToken,
        ...(tokens.idToken ? { id_token: tokens.idToken } : {}),
        refresh_token: secret,
        token_type: 'Bearer',
        ...(expiresIn !== undefined ? { expires_in: expiresIn } : {}),
      },
      'current tokens',
    );
  }

  const server: Server = createServer((req, res) => {
    let size = 0;
    const chunks: Buffer[] = [];
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const done = (a: Answer): void => send(req, res, a);
      if (tooLarge) return done(oauthError(413, 'invalid_request', 'body too large'));
      answer(req, Buffer.concat(chunks).toString('utf8')).then(done, () => done(oauthError(500, 'server_error', 'internal error')));
    });
    req.on('error', () => res.destroy());
  });

  function send(req: IncomingMessage, res: ServerResponse, a: Answer): void {
    // The path names the slot; nothing here is a token (the body never is logged).
    const slotId = ROUTE.exec(new URL(req.url ?? '/', 'http://service').pathname)?.[1];
    opts.log?.[a.status >= 500 || a.status === 401 ? 'warn' : 'debug']({ slotId, method: req.method, status: a.status, reason: a.reason }, 'agent token service answered');
    res.writeHead(a.status, {
      'content-type': a.type,
      'cache-control': 'no-store',
      ...(a.retryAfterSec !== undefined ? { 'retry-after': String(a.retryAfterSec) } : {}),
    });
    res.end(a.body);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 7311, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A JSON object or a form, as Codex (JSON) and generic OAuth clients (form) send. */
function parseBody(body: string, contentType: string | undefined): Record<string, unknown> | undefined {
  if (/application\/x-www-form-urlencoded/i.test(contentType ?? '')) return Object.fromEntries(new URLSearchParams(body));
  try {
    const value: unknown = JSON.parse(body);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
