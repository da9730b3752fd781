// A real OAuth token endpoint on 127.0.0.1 for refresh tests: single-use rotating
// refresh tokens whose reuse revokes the whole grant (as Anthropic's and OpenAI's
// servers do), Claude and Codex request and error shapes, and scripted faults.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** Where Claude Code posts its refresh (`https://platform.claude.com/v1/oauth/token`). */
export const CLAUDE_TOKEN_PATH = '/v1/oauth/token';
/** Where Codex posts its refresh (`https://auth.openai.com/oauth/token`). */
export const CODEX_TOKEN_PATH = '/oauth/token';

/**
 * How refusals are worded.
 * - `oauth`: RFC 6749 §5.2, as Claude's endpoint answers: 400 `{"error":"invalid_grant","error_description":…}`.
 * - `openai`: as auth.openai.com answers Codex: 401 with the OpenAI envelope
 *   `{"error":{"message","type":"invalid_request_error","param":null,"code":"refresh_token_reused"}}`
 *   (codes `refresh_token_reused`, `refresh_token_expired`, `refresh_token_invalidated`).
 * - `openai-flat`: 401 `{"error":"refresh_token_expired","error_description":…}`, the string
 *   form Codex's `extract_refresh_token_error_code` also accepts.
 */
export type ErrorStyle = 'oauth' | 'openai' | 'openai-flat';

export interface TokenServerOptions {
  /** Added before every answer, faults included. @default 0 */
  readonly latencyMs?: number;
  /** @default 'oauth' */
  readonly errorStyle?: ErrorStyle;
  /** Client id of grants created by `issue()` without one. @default 'test-client' */
  readonly defaultClientId?: string;
  /** @default 3600 */
  readonly accessTtlSec?: number;
  /** Scope returned with every token. @default 'user:inference user:profile' */
  readonly scope?: string;
  /** Add an (unsigned) `id_token` JWT to successful answers, as OpenAI does. @default false */
  readonly idToken?: boolean;
  /** Access tokens are (unsigned) JWTs with `exp` and the `idTokenClaims`, as OpenAI's are. @default false */
  readonly jwtAccessTokens?: boolean;
  /** Further claims of that `id_token` (OpenAI's carry the ChatGPT account). @default {} */
  readonly idTokenClaims?: Readonly<Record<string, unknown>>;
  /** Request bodies larger than this are answered 413. @default 65536 */
  readonly maxBodyBytes?: number;
}

/** One scripted misbehaviour, consumed by the next token request. */
export interface TokenFault {
  /** Wait this long before answering (a request whose client gives up meanwhile is not processed). */
  readonly delayMs?: number;
  /** Answer this status. @default 200 with `body`, 502 with `html`, else the grant's own answer */
  readonly status?: number;
  /** Seconds (or an HTTP date) for the `Retry-After` header. */
  readonly retryAfter?: number | string;
  /** Answer this body verbatim. */
  readonly body?: string;
  /** @default 'application/json' */
  readonly contentType?: string;
  /** Answer a proxy's HTML error page. */
  readonly html?: boolean;
  /** Destroy the socket without answering. */
  readonly dropConnection?: boolean;
  /** Stream a JSON-looking body of this many bytes, chunked, with no Content-Length. */
  readonly hugeBodyBytes?: number;
  /**
   * Process the refresh first (the token is rotated) and then misbehave: the answer
   * is lost, as when a proxy fails after the authorization server committed.
   * @default false
   */
  readonly afterRotation?: boolean;
  /**
   * Answer the refresh as usual (the token is rotated) with this raw JSON text added as
   * the extra field `extra` (e.g. nested thousands deep, which JSON.stringify cannot write back).
   */
  readonly extraJson?: string;
}

export interface IssuedTokens {
  readonly grantId: string;
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly expiresIn: number;
}

export type RequestOutcome =
  | 'rotated'
  | 'reused'
  | 'expired'
  | 'revoked'
  | 'unknown-token'
  | 'invalid-client'
  | 'invalid-request'
  | 'unsupported-grant-type'
  | 'too-large'
  | 'not-found'
  | 'method-not-allowed'
  | 'fault'
  | 'client-gone'
  /** A revocation (Claude's `<token endpoint>/revoke`, RFC 7009): the token's grant ends. */
  | 'token-revoked';

export interface TokenRequestRecord {
  /** Epoch ms when the request arrived. */
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly contentType?: string;
  readonly grantType?: string;
  readonly clientId?: string;
  /** The refresh token the client presented, when it sent one. */
  readonly refreshToken?: string;
  /** A revocation's `token` and `token_type_hint`. */
  readonly revokedToken?: string;
  readonly tokenTypeHint?: string;
  /** The scripted fault applied to this request, if any. */
  readonly fault?: TokenFault;
  /** Status answered; undefined when the connection was dropped or the client left first. */
  status?: number;
  outcome?: RequestOutcome;
  /** The grant logic looked at the token (it was consumed or refused): this is a presentation. */
  examined: boolean;
}

export interface GrantState {
  readonly grantId: string;
  readonly clientId: string;
  readonly alive: boolean;
  readonly rotations: number;
  /** The newest refresh token, the only one that works while the grant is alive. */
  readonly refreshToken: string;
  readonly accessToken: string;
}

export interface TokenServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** `url` + `/v1/oauth/token`. */
  readonly claudeTokenUrl: string;
  /** `url` + `/oauth/token`. */
  readonly codexTokenUrl: string;
  /** Every request received, in order of arrival. */
  readonly requests: readonly TokenRequestRecord[];
  /** TCP connections accepted so far (a client keeping its connection alive opens one for many requests). */
  connections(): number;
  /**
   * Creates a grant and its first tokens, to seed a slot's credential file.
   * `tokens` adopts tokens minted elsewhere (a fixture CLI's login) as the grant's first.
   */
  issue(options?: { clientId?: string; accessTtlSec?: number; refreshTtlSec?: number; tokens?: { accessToken: string; refreshToken: string } }): IssuedTokens;
  /** Queues faults for the next token requests, one each, in order. */
  script(faults: readonly TokenFault[]): void;
  /** Faults not yet consumed. */
  pendingFaults(): number;
  /** Operator-side revocation: the token's whole grant stops working. False if unknown. */
  revoke(refreshToken: string): boolean;
  /** Whether an access token was issued, has not expired and its grant is alive. */
  accessTokenValid(accessToken: string): boolean;
  grant(grantId: string): GrantState | undefined;
  /** Refresh tokens examined more than once: a correct refresher never presents one twice. */
  presentedTwice(): string[];
  close(): Promise<void>;
}

interface Grant {
  readonly id: string;
  readonly clientId: string;
  alive: boolean;
  rotations: number;
  refreshToken: string;
  refreshExpiresAt: number | undefined;
  readonly refreshTtlSec: number | undefined;
  accessToken: string;
  readonly accessTtlSec: number;
}

type Refusal = 'reused' | 'expired' | 'revoked' | 'unknown-token' | 'invalid-client' | 'invalid-request' | 'unsupported-grant-type';

type MutableRecord = { -readonly [K in keyof TokenRequestRecord]: TokenRequestRecord[K] };

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly outcome: RequestOutcome;
}

const token = (kind: string, grantId: string, n: number): string => `${kind}-${grantId}-${n}-${randomBytes(12).toString('base64url')}`;

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const latencyMs = options.latencyMs ?? 0;
  const errorStyle = options.errorStyle ?? 'oauth';
  const defaultClientId = options.defaultClientId ?? 'test-client';
  const defaultAccessTtlSec = options.accessTtlSec ?? 3600;
  const scope = options.scope ?? 'user:inference user:profile';
  const maxBodyBytes = options.maxBodyBytes ?? 64 * 1024;
  for (const [name, value] of Object.entries({ latencyMs, defaultAccessTtlSec, maxBodyBytes })) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`token server option ${name} must be a non-negative number, got ${value}`);
  }

  const grants = new Map<string, Grant>();
  /** Every refresh token ever issued, current or spent, to its grant. */
  const refreshTokens = new Map<string, Grant>();
  const accessTokens = new Map<string, { grant: Grant; expiresAt: number }>();
  const faults: TokenFault[] = [];
  const requests: MutableRecord[] = [];
  const sockets = new Set<Socket>();
  /** Pending waits, ended early by close() so no handler outlives the server. */
  const timers = new Map<NodeJS.Timeout, () => void>();
  let grantCounter = 0;

  const mint = (grant: Grant, given?: { accessToken: string; refreshToken: string }): void => {
    grant.refreshToken = given?.refreshToken ?? token('rt', grant.id, grant.rotations);
    const opaque = token('at', grant.id, grant.rotations);
    grant.accessToken =
      given?.accessToken ??
      (options.jwtAccessTokens ? unsignedJwt({ ...options.idTokenClaims, jti: opaque, exp: Math.floor(Date.now() / 1000) + grant.accessTtlSec }) : opaque);
    grant.refreshExpiresAt = grant.refreshTtlSec === undefined ? undefined : Date.now() + grant.refreshTtlSec * 1000;
    refreshTokens.set(grant.refreshToken, grant);
    accessTokens.set(grant.accessToken, { grant, expiresAt: Date.now() + grant.accessTtlSec * 1000 });
  };

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (ms <= 0) return resolve();
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.set(timer, resolve);
    });

  const refusal = (kind: Refusal, description: string): Answer => {
    const outcome = kind;
    if (kind === 'invalid-client') return { status: 401, outcome, body: oauthError('invalid_client', description) };
    if (kind === 'invalid-request') return { status: 400, outcome, body: oauthError('invalid_request', description) };
    if (kind === 'unsupported-grant-type') return { status: 400, outcome, body: oauthError('unsupported_grant_type', description) };
    if (errorStyle === 'oauth' || kind === 'unknown-token') {
      return { status: 400, outcome, body: errorStyle === 'openai' ? openaiError('invalid_grant', description) : oauthError('invalid_grant', description) };
    }
    const code = { reused: 'refresh_token_reused', expired: 'refresh_token_expired', revoked: 'refresh_token_invalidated' }[kind];
    const message = {
      reused: 'Your refresh token has already been used to generate a new access token. Please try signing in again.',
      expired: 'Your refresh token has expired. Please try signing in again.',
      revoked: 'Your refresh token has been invalidated. Please try signing in again.',
    }[kind];
    return { status: 401, outcome, body: errorStyle === 'openai' ? openaiError(code, message) : oauthError(code, message) };
  };

  const refresh = (params: Record<string, unknown>, record: MutableRecord): Answer => {
    const grantType = params.grant_type;
    const presented = params.refresh_token;
    const clientId = params.client_id;
    if (grantType !== 'refresh_token') {
      return refusal(
        grantType === undefined ? 'invalid-request' : 'unsupported-grant-type',
        grantType === undefined ? 'grant_type is required' : 'only refresh_token is supported here',
      );
    }
    if (typeof presented !== 'string' || presented === '') return refusal('invalid-request', 'refresh_token is required');
    const grant = refreshTokens.get(presented);
    // Clients are authenticated before the token is looked at, as real servers do.
    if (typeof clientId !== 'string' || clientId === '' || (grant !== undefined && grant.clientId !== clientId)) {
      return refusal('invalid-client', 'client authentication failed');
    }
    // From here on the token counts as presented: a retry with it would be a second presentation.
    record.examined = true;
    if (grant === undefined) return refusal('unknown-token', 'refresh token not found');
    if (presented !== grant.refreshToken) {
      // Reuse of a rotated token means it leaked or a client raced: kill the whole family.
      grant.alive = false;
      return refusal('reused', 'refresh token reused');
    }
    if (!grant.alive) return refusal('revoked', 'refresh token revoked');
    if (grant.refreshExpiresAt !== undefined && Date.now() >= grant.refreshExpiresAt) return refusal('expired', 'refresh token expired');
    grant.rotations++;
    mint(grant);
    const body: Record<string, unknown> = {
      access_token: grant.accessToken,
      refresh_token: grant.refreshToken,
      expires_in: grant.accessTtlSec,
      token_type: 'Bearer',
      scope,
    };
    if (options.idToken === true) body.id_token = unsignedJwt({ ...options.idTokenClaims, sub: grant.id, exp: Math.floor(Date.now() / 1000) + grant.accessTtlSec });
    return { status: 200, outcome: 'rotated', body };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const record: MutableRecord = {
      at: Date.now(),
      method: req.method ?? '',
      path: new URL(req.url ?? '/', 'http://127.0.0.1').pathname,
      ...(req.headers['content-type'] === undefined ? {} : { contentType: req.headers['content-type'] }),
      examined: false,
    };
    requests.push(record);
    // Not req.destroyed: a fully read request is auto-destroyed while its socket lives on.
    const clientGone = (): boolean => res.destroyed || req.socket.destroyed;

    const body = await readBody(req, maxBodyBytes);
    if (body === 'aborted') {
      record.outcome = 'client-gone';
      return;
    }
    if (body === 'too-large') {
      await sleep(latencyMs);
      return answer(res, record, { status: 413, outcome: 'too-large', body: oauthError('invalid_request', `request body is larger than ${maxBodyBytes} bytes`) });
    }
    if (record.path === `${CLAUDE_TOKEN_PATH}/revoke` && record.method === 'POST') {
      // As Claude Code 2.1.197 revokes at logout: JSON {token, token_type_hint, client_id}; 200 whatever the token was (RFC 7009 §2.2).
      const params = parseParams(record.contentType, body);
      if (typeof params?.token === 'string') record.revokedToken = params.token;
      if (typeof params?.token_type_hint === 'string') record.tokenTypeHint = params.token_type_hint;
      if (typeof params?.client_id === 'string') record.clientId = params.client_id;
      const grant = typeof params?.token === 'string' ? refreshTokens.get(params.token) : undefined;
      if (grant) grant.alive = false;
      await sleep(latencyMs);
      return answer(res, record, { status: 200, outcome: 'token-revoked', body: {} });
    }
    if (record.path !== CLAUDE_TOKEN_PATH && record.path !== CODEX_TOKEN_PATH) {
      await sleep(latencyMs);
      return answer(res, record, { status: 404, outcome: 'not-found', body: { error: 'not_found' } });
    }
    if (record.method !== 'POST') {
      await sleep(latencyMs);
      res.setHeader('Allow', 'POST');
      return answer(res, record, { status: 405, outcome: 'method-not-allowed', body: oauthError('invalid_request', 'use POST') });
    }

    const params = parseParams(record.contentType, body);
    if (typeof params?.grant_type === 'string') record.grantType = params.grant_type;
    if (typeof params?.client_id === 'string') record.clientId = params.client_id;
    if (typeof params?.refresh_token === 'string') record.refreshToken = params.refresh_token;
    const fault = faults.shift();
    if (fault !== undefined) record.fault = fault;

    await sleep(latencyMs + (fault?.delayMs ?? 0));
    if (clientGone()) {
      record.outcome = 'client-gone';
      return;
    }
    const examine = (): Answer =>
      params === undefined ? refusal('invalid-request', 'body must be a JSON object or application/x-www-form-urlencoded') : refresh(params, record);
    const misbehaves =
      fault !== undefined &&
      (fault.status !== undefined || fault.retryAfter !== undefined || fault.body !== undefined || fault.html === true || fault.dropConnection === true || fault.hugeBodyBytes !== undefined);
    if (fault?.extraJson !== undefined && !misbehaves) {
      const a = examine();
      if (a.status !== 200) return answer(res, record, a);
      record.status = a.status;
      record.outcome = a.outcome;
      return send(res, 200, 'application/json', `${JSON.stringify(a.body).slice(0, -1)},"extra":${fault.extraJson}}`);
    }
    if (fault === undefined || !misbehaves) return answer(res, record, examine());

    if (fault.afterRotation === true) examine();
    if (fault.retryAfter !== undefined) res.setHeader('Retry-After', String(fault.retryAfter));
    record.outcome = 'fault';
    if (fault.dropConnection === true) {
      req.socket.destroy();
      return;
    }
    if (fault.hugeBodyBytes !== undefined) {
      record.status = fault.status ?? 200;
      res.writeHead(record.status, { 'Content-Type': fault.contentType ?? 'application/json' });
      await streamHugeBody(res, fault.hugeBodyBytes);
      return;
    }
    if (fault.html === true) {
      record.status = fault.status ?? 502;
      return send(res, record.status, fault.contentType ?? 'text/html; charset=utf-8', BAD_GATEWAY_PAGE);
    }
    if (fault.body !== undefined) {
      record.status = fault.status ?? 200;
      return send(res, record.status, fault.contentType ?? 'application/json', fault.body);
    }
    record.status = fault.status ?? 429;
    return send(res, record.status, 'application/json', JSON.stringify(defaultFaultBody(record.status)));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `token server bug: ${String(err)}`);
      else res.destroy();
    });
  });
  let accepted = 0;
  server.on('connection', (socket) => {
    accepted++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    port,
    claudeTokenUrl: `${url}${CLAUDE_TOKEN_PATH}`,
    codexTokenUrl: `${url}${CODEX_TOKEN_PATH}`,
    requests,
    connections: () => accepted,
    issue(issueOptions = {}) {
      const grant: Grant = {
        id: `g${++grantCounter}`,
        clientId: issueOptions.clientId ?? defaultClientId,
        alive: true,
        rotations: 0,
        refreshToken: '',
        refreshExpiresAt: undefined,
        refreshTtlSec: issueOptions.refreshTtlSec,
        accessToken: '',
        accessTtlSec: issueOptions.accessTtlSec ?? defaultAccessTtlSec,
      };
      grants.set(grant.id, grant);
      mint(grant, issueOptions.tokens);
      return { grantId: grant.id, accessToken: grant.accessToken, refreshToken: grant.refreshToken, expiresIn: grant.accessTtlSec };
    },
    script(more) {
      faults.push(...more);
    },
    pendingFaults: () => faults.length,
    revoke(refreshToken) {
      const grant = refreshTokens.get(refreshToken);
      if (grant === undefined) return false;
      grant.alive = false;
      return true;
    },
    accessTokenValid(accessToken) {
      const entry = accessTokens.get(accessToken);
      return entry !== undefined && entry.grant.alive && Date.now() < entry.expiresAt;
    },
    grant(grantId) {
      const grant = grants.get(grantId);
      if (grant === undefined) return undefined;
      const { id, clientId, alive, rotations, refreshToken, accessToken } = grant;
      return { grantId: id, clientId, alive, rotations, refreshToken, accessToken };
    },
    presentedTwice() {
      const counts = new Map<string, number>();
      for (const r of requests) if (r.examined && r.refreshToken !== undefined) counts.set(r.refreshToken, (counts.get(r.refreshToken) ?? 0) + 1);
      return [...counts].filter(([, n]) => n > 1).map(([t]) => t);
    },
    async close() {
      for (const [timer, wake] of timers) {
        clearTimeout(timer);
        wake();
      }
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function answer(res: ServerResponse, record: MutableRecord, a: Answer): void {
  record.status = a.status;
  record.outcome = a.outcome;
  res.setHeader('Cache-Control', 'no-store');
  send(res, a.status, 'application/json', JSON.stringify(a.body));
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Reads the body up to `limit`. Beyond it the rest is drained unbuffered, so the
 * client reads the 413 instead of a reset, until a hard stop where the socket is cut.
 * A body the client abandoned is never processed: half a form could still parse.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string | 'too-large' | 'aborted'> {
  return new Promise((resolve) => {
    const hardStop = Math.max(limit * 16, 16 * 1024 * 1024);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > hardStop) {
      req.socket.destroy();
      return resolve('aborted');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > hardStop) req.socket.destroy();
    });
    req.on('end', () => resolve(size > limit ? 'too-large' : Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve('aborted'));
    req.on('close', () => resolve('aborted'));
  });
}

/** JSON (Claude, Codex) or RFC 6749 form encoding; undefined when neither parses to an object. */
function parseParams(contentType: string | undefined, body: string): Record<string, unknown> | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') return Object.fromEntries(new URLSearchParams(body));
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      const parsed: unknown = JSON.parse(body);
      return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function streamHugeBody(res: ServerResponse, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 'x');
  let sent = 0;
  const head = '{"access_token":"';
  res.write(head);
  sent += head.length;
  while (sent < bytes && !res.destroyed) {
    const piece = Math.min(chunk.length, bytes - sent);
    const ok = res.write(piece === chunk.length ? chunk : chunk.subarray(0, piece));
    sent += piece;
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  if (!res.destroyed) res.end('"}');
}

const oauthError = (error: string, description: string) => ({ error, error_description: description });
const openaiError = (code: string, message: string) => ({ error: { message, type: 'invalid_request_error', param: null, code } });

function defaultFaultBody(status: number): unknown {
  if (status === 429) return { error: 'rate_limit_exceeded', error_description: 'too many requests' };
  if (status === 503) return { error: 'temporarily_unavailable', error_description: 'scripted fault' };
  if (status >= 500) return { error: 'server_error', error_description: 'scripted fault' };
  return { error: 'invalid_request', error_description: 'scripted fault' };
}

function unsignedJwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  // A non-empty third part, as Codex's parser wants one; nobody checks it.
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.${Buffer.from('unsigned').toString('base64url')}`;
}

const BAD_GATEWAY_PAGE = `<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
`;
