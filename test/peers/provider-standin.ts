// A stand-in for the providers' hosts, for the real CLIs and our worker: one HTTPS server
// (a CA made per run with openssl) behind the CONNECT proxy of test/peers/connect-proxy.ts
// on 127.0.0.1. Clients reach it with HTTPS_PROXY and the CA (NODE_EXTRA_CA_CERTS,
// SSL_CERT_FILE), no URL override; it records every request and plays the OAuth, profile and model APIs.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startConnectProxy } from './connect-proxy';
import { makePki } from './tls-frontend';

/** The hosts the pinned CLIs talk to (recorded through this proxy); the certificate covers their domains. */
const DOMAINS = ['anthropic.com', 'claude.com', 'claude.ai', 'openai.com', 'chatgpt.com'];

export const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
export const CODEX_CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';
const CODEX_ISSUER = 'https://auth.openai.com';

export interface RecordedRequest {
  /** Epoch ms the request ended. */
  readonly at: number;
  readonly host: string;
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** Lower-case names, as received. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** What the stand-in answered; `handled: false` when no route knew the request (a 404). */
  status: number;
  handled: boolean;
}

export interface StandInOptions {
  /** Token requests that do not look like the pinned CLI's are answered 429 (a WAF's block). @default false */
  readonly strict?: boolean;
  /** Lifetime of access tokens (Claude's are 8 hours; a slot refreshes an hour before expiry). @default 28800 */
  readonly accessTtlSec?: number;
  /** Device codes expire after this long. @default 900 */
  readonly deviceCodeTtlSec?: number;
  /** The poll interval device authorization asks for. @default 1 */
  readonly devicePollIntervalSec?: number;
}

export interface Grant {
  readonly id: string;
  readonly provider: 'claude' | 'codex';
  readonly clientId: string;
  readonly scope: string;
  alive: boolean;
  rotations: number;
  accessToken: string;
  /** Epoch ms. */
  accessExpiresAt: number;
  refreshToken: string;
  /** A setup-token's access token lives a year and has no refresh token that works. */
  readonly longLived: boolean;
  readonly spentRefreshTokens: Set<string>;
}

export interface DeviceCode {
  readonly deviceAuthId: string;
  readonly userCode: string;
  readonly clientId: string;
  readonly expiresAt: number;
  state: 'pending' | 'approved' | 'denied' | 'redeemed';
  authorizationCode?: string;
  polls: number;
}

export interface ProviderStandIn {
  /** `http://127.0.0.1:<port>`: the CONNECT proxy. */
  readonly proxyUrl: string;
  /** The run's CA certificate (PEM). */
  readonly caFile: string;
  /** What a CLI needs to reach the stand-in: the proxy and the CA, for claude (Bun) and codex (rustls/OpenSSL). */
  readonly cliEnv: Readonly<Record<string, string>>;
  /** Every CONNECT target, `host:port`, in order; refused ones (not a played host's port 443) are prefixed `refused `. */
  readonly connects: readonly string[];
  /** Refused websocket upgrades and failed TLS handshakes, in order. */
  readonly incidents: readonly string[];
  readonly requests: readonly RecordedRequest[];
  readonly grants: readonly Grant[];
  readonly deviceCodes: ReadonlyMap<string, DeviceCode>;
  strict: boolean;
  /** The text the model APIs answer. @default 'Hello from the stand-in.' */
  modelReply: string;
  /**
   * Signs in for a Claude authorize URL, as a browser would: the code is bound to the
   * URL's client, redirect URI, PKCE challenge and state. Returns what the callback
   * page shows: `<code>#<state>`.
   */
  signIn(authorizeUrl: string): string;
  /** The next authorization code redemption is refused (400 invalid_grant) whatever it carries. */
  refuseNextCode(): void;
  approveDevice(userCode: string): void;
  denyDevice(userCode: string): void;
  /** Makes a device code expire now. */
  expireDevice(userCode: string): void;
  /** Whether `token` is the current access token of a live grant. */
  isCurrentAccessToken(token: string): boolean;
  /** Ends the current access token of every grant of `provider` now (their refresh tokens keep working). */
  expireAccessTokens(provider: Grant['provider']): void;
  /** Requests to `host` whose path starts with `pathPrefix`. */
  requestsTo(host: string, pathPrefix?: string): RecordedRequest[];
  close(): Promise<void>;
}

interface IssuedCode {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly challenge: string;
  readonly state: string;
  readonly scope: string;
  readonly expiresAt: number;
  used: boolean;
}

const b64url = (bytes: number): string => randomBytes(bytes).toString('base64url');
const s256 = (verifier: string): string => createHash('sha256').update(verifier).digest('base64url');
const same = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};
/** A JWT the CLIs parse (they read claims, never check the signature): the signature is random bytes. */
const unsignedJwt = (claims: Record<string, unknown>): string =>
  `${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${b64url(32)}`;

/** What the stand-in's WAF model asks of a token request, by provider: the marks the pinned CLI's own requests carry. */
function looksLikePinnedCli(host: string, req: RecordedRequest, params: Record<string, unknown>): boolean {
  const ua = req.headers['user-agent'] ?? '';
  if (host === 'platform.claude.com') {
    const base = /^axios\/\d/.test(ua) && (req.headers['content-type'] ?? '').startsWith('application/json');
    return params.grant_type === 'refresh_token' ? base && typeof params.scope === 'string' : base;
  }
  // The CLI's own code exchange after a device login carries neither header: only refreshes are judged.
  if (host === 'auth.openai.com' && params.grant_type === 'refresh_token') {
    const originator = req.headers.originator ?? '';
    return originator !== '' && ua.startsWith(`${originator}/`) && typeof params.refresh_reason === 'string';
  }
  return true;
}

export async function startProviderStandIn(options: StandInOptions = {}): Promise<ProviderStandIn> {
  const dir = mkdtempSync(join(tmpdir(), 'provider-standin-'));
  const pki = makePki(dir, { serverNames: [...DOMAINS.flatMap((d) => [`DNS:${d}`, `DNS:*.${d}`])] });
  const accessTtlSec = options.accessTtlSec ?? 28_800;
  const deviceTtlMs = (options.deviceCodeTtlSec ?? 900) * 1000;
  const requests: RecordedRequest[] = [];
  const grants: Grant[] = [];
  const codes = new Map<string, IssuedCode>();
  const deviceCodes = new Map<string, DeviceCode>();
  let refuseNextCode = false;

  const claudeAccount = { uuid: randomUUID(), email_address: 'slot@example.test', full_name: 'Slot Stand-in', display_name: 'Slot' };
  const claudeOrg = { uuid: randomUUID(), name: 'Stand-in Org' };
  const codexAccountId = randomUUID();

  const codexClaims = (exp: number): Record<string, unknown> => ({
    iss: CODEX_ISSUER,
    aud: [CODEX_CLIENT_ID],
    sub: 'user-standin',
    iat: Math.floor(Date.now() / 1000),
    exp,
    email: 'slot@example.test',
    email_verified: true,
    'https://api.openai.com/auth': { chatgpt_account_id: codexAccountId, chatgpt_plan_type: 'pro', chatgpt_user_id: 'user-standin', user_id: 'user-standin' },
    'https://api.openai.com/profile': { email: 'slot@example.test', email_verified: true },
  });

  const newAccess = (grant: Pick<Grant, 'provider' | 'longLived'>): { token: string; expiresAt: number } => {
    const ttl = grant.longLived ? 365 * 24 * 3600 : accessTtlSec;
    const expiresAt = Date.now() + ttl * 1000;
    if (grant.provider === 'claude') return { token: `sk-ant-oat01-${b64url(48)}`, expiresAt };
    return { token: unsignedJwt({ ...codexClaims(Math.floor(expiresAt / 1000)), jti: randomUUID() }), expiresAt };
  };
  const newRefresh = (provider: Grant['provider']): string => (provider === 'claude' ? `sk-ant-ort01-${b64url(48)}` : `rt_${b64url(48)}`);

  function issueGrant(provider: Grant['provider'], clientId: string, scope: string, longLived = false): Grant {
    const access = newAccess({ provider, longLived });
    const grant: Grant = {
      id: randomUUID(), provider, clientId, scope, alive: true, rotations: 0, longLived,
      accessToken: access.token, accessExpiresAt: access.expiresAt, refreshToken: newRefresh(provider), spentRefreshTokens: new Set(),
    };
    grants.push(grant);
    return grant;
  }

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): number => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
    return status;
  };
  const oauthError = (res: ServerResponse, status: number, error: string, description: string): number =>
    json(res, status, { error, error_description: description });
  const openaiError = (res: ServerResponse, status: number, code: string, message: string): number =>
    json(res, status, { error: { message, type: 'invalid_request_error', param: null, code } });

  const parseBody = (req: RecordedRequest): Record<string, unknown> => {
    const type = req.headers['content-type'] ?? '';
    try {
      if (type.startsWith('application/json')) {
        const parsed: unknown = JSON.parse(req.body);
        return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
      }
      if (type.startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(req.body));
    } catch {
      return {};
    }
    return {};
  };
  const bearer = (req: RecordedRequest): string => /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const currentGrantOf = (token: string): Grant | undefined =>
    grants.find((g) => g.alive && same(g.accessToken, token) && g.accessExpiresAt > Date.now());

  function claudeTokens(grant: Grant): Record<string, unknown> {
    return {
      token_type: 'Bearer',
      access_token: grant.accessToken,
      expires_in: Math.round((grant.accessExpiresAt - Date.now()) / 1000),
      ...(grant.longLived ? {} : { refresh_token: grant.refreshToken }),
      scope: grant.scope,
      organization: claudeOrg,
      account: { uuid: claudeAccount.uuid, email_address: claudeAccount.email_address },
    };
  }
  function codexTokens(grant: Grant): Record<string, unknown> {
    const exp = Math.floor(grant.accessExpiresAt / 1000);
    return {
      id_token: unsignedJwt(codexClaims(exp)),
      access_token: grant.accessToken,
      refresh_token: grant.refreshToken,
      expires_in: Math.round((grant.accessExpiresAt - Date.now()) / 1000),
      token_type: 'Bearer',
      scope: grant.scope,
    };
  }

  /** One refresh: single use; presenting a spent refresh token revokes the whole grant. */
  function refresh(res: ServerResponse, provider: Grant['provider'], clientId: string, token: string): number {
    const dead = (code: string, message: string): number =>
      provider === 'claude' ? oauthError(res, 400, 'invalid_grant', message) : openaiError(res, 401, code, message);
    const reused = grants.find((g) => g.provider === provider && g.spentRefreshTokens.has(token));
    if (reused) {
      reused.alive = false;
      return dead('refresh_token_reused', 'Refresh token has already been used; the grant is revoked');
    }
    const grant = grants.find((g) => g.provider === provider && same(g.refreshToken, token));
    if (!grant) return dead('refresh_token_invalidated', 'Invalid refresh token');
    if (!grant.alive) return dead('refresh_token_invalidated', 'Refresh token revoked');
    if (grant.longLived) return dead('refresh_token_invalidated', 'This token cannot be refreshed');
    if (grant.clientId !== clientId) return provider === 'claude' ? oauthError(res, 401, 'invalid_client', 'client_id does not match the grant') : openaiError(res, 401, 'invalid_client', 'client_id does not match');
    grant.spentRefreshTokens.add(grant.refreshToken);
    grant.refreshToken = newRefresh(provider);
    const access = newAccess(grant);
    grant.accessToken = access.token;
    grant.accessExpiresAt = access.expiresAt;
    grant.rotations += 1;
    return json(res, 200, provider === 'claude' ? claudeTokens(grant) : codexTokens(grant));
  }

  /**
   * RFC 7009 for Claude: the refresh or access token of a grant ends the whole grant; an
   * unknown or dead token is answered 200 too (§2.2). A token of another client is refused.
   */
  function revoke(res: ServerResponse, p: Record<string, unknown>): number {
    const token = typeof p.token === 'string' ? p.token : '';
    if (token === '') return oauthError(res, 400, 'invalid_request', 'token is required');
    const grant = grants.find((g) => g.provider === 'claude' && (same(g.refreshToken, token) || same(g.accessToken, token) || g.spentRefreshTokens.has(token)));
    if (grant && grant.clientId !== String(p.client_id ?? '')) return oauthError(res, 401, 'invalid_client', 'client_id does not match the grant');
    if (grant) grant.alive = false;
    return json(res, 200, {});
  }

  function redeemCode(res: ServerResponse, provider: Grant['provider'], p: Record<string, unknown>): number {
    const code = String(p.code ?? '');
    const issued = codes.get(code);
    const refuse = (why: string): number =>
      provider === 'claude' ? oauthError(res, 400, 'invalid_grant', why) : openaiError(res, 400, 'invalid_grant', why);
    if (refuseNextCode) {
      refuseNextCode = false;
      if (issued) issued.used = true;
      return refuse('Invalid authorization code');
    }
    if (!issued || issued.used || issued.expiresAt < Date.now()) return refuse('Invalid authorization code');
    issued.used = true;
    if (String(p.client_id ?? '') !== issued.clientId) return refuse('client_id does not match the authorization request');
    if (String(p.redirect_uri ?? '') !== issued.redirectUri) return refuse('redirect_uri does not match the authorization request');
    if (provider === 'claude' && String(p.state ?? '') !== issued.state) return refuse('state does not match the authorization request');
    if (!same(s256(String(p.code_verifier ?? '')), issued.challenge)) return refuse('code_verifier does not match the code_challenge');
    // setup-token asks for inference only and a year (expires_in in its request).
    const longLived = provider === 'claude' && typeof p.expires_in === 'number' && p.expires_in > accessTtlSec;
    const grant = issueGrant(provider, issued.clientId, issued.scope, longLived);
    return json(res, 200, provider === 'claude' ? claudeTokens(grant) : codexTokens(grant));
  }

  function issueCode(fields: Omit<IssuedCode, 'used' | 'expiresAt'>): string {
    const code = b64url(32);
    codes.set(code, { ...fields, expiresAt: Date.now() + 10 * 60_000, used: false });
    return code;
  }

  function signIn(authorizeUrl: string): string {
    const url = new URL(authorizeUrl);
    const p = url.searchParams;
    const missing = ['client_id', 'redirect_uri', 'code_challenge', 'state'].filter((k) => !p.get(k));
    if (missing.length > 0) throw new Error(`the authorize URL lacks ${missing.join(', ')}: ${url.origin}${url.pathname}`);
    if (p.get('client_id') !== CLAUDE_CLIENT_ID) throw new Error(`unknown client_id ${p.get('client_id')}`);
    if (p.get('code_challenge_method') !== 'S256') throw new Error('only S256 PKCE challenges are accepted');
    const state = p.get('state') as string;
    const code = issueCode({
      clientId: CLAUDE_CLIENT_ID,
      redirectUri: p.get('redirect_uri') as string,
      challenge: p.get('code_challenge') as string,
      state,
      scope: (p.get('scope') ?? '').split(/\s+/).filter((s) => s !== 'org:create_api_key').join(' '),
    });
    return `${code}#${state}`;
  }

  function device(userCode: string): DeviceCode {
    const found = [...deviceCodes.values()].find((d) => d.userCode === userCode);
    if (!found) throw new Error(`no device code ${userCode} was issued`);
    return found;
  }

  const sse = (res: ServerResponse, events: ReadonlyArray<readonly [string, unknown]>): number => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const [event, data] of events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    res.end();
    return 200;
  };

  const standIn = {
    strict: options.strict ?? false,
    modelReply: 'Hello from the stand-in.',
  };

  /** The routes, by host; answers the status, or undefined for a request no route knows. */
  function route(host: string, req: RecordedRequest, res: ServerResponse): number | undefined {
    const url = new URL(req.path, `https://${host}`);
    const path = url.pathname;
    const params = parseBody(req);
    const isToken = (host === 'platform.claude.com' && (path === '/v1/oauth/token' || path === '/v1/oauth/token/revoke')) || (host === 'auth.openai.com' && path === '/oauth/token');
    if (isToken && req.method === 'POST' && standIn.strict && !looksLikePinnedCli(host, req, params)) {
      return json(res, 429, { type: 'error', error: { type: 'rate_limit_error', message: 'Rate limited. Please try again later.' } });
    }

    // A browser's sign-in: the authorize page redirects to the callback page, which shows `<code>#<state>`.
    if ((host === 'claude.com' || host === 'claude.ai') && /^\/(cai\/)?oauth\/authorize$/.test(path) && req.method === 'GET') {
      const [code, state] = signIn(url.toString()).split('#') as [string, string];
      const back = new URL(url.searchParams.get('redirect_uri') as string);
      back.searchParams.set('code', code);
      back.searchParams.set('state', state);
      res.writeHead(302, { location: back.toString() }).end();
      return 302;
    }
    if (host === 'platform.claude.com' && path === '/oauth/code/callback' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<p>Paste this into Claude Code:</p><code>${encodeURIComponent(url.searchParams.get('code') ?? '')}#${encodeURIComponent(url.searchParams.get('state') ?? '')}</code>`);
      return 200;
    }
    // What the pinned `claude auth logout` sends, recorded through this proxy: the refresh token, JSON.
    if (host === 'platform.claude.com' && path === '/v1/oauth/token/revoke' && req.method === 'POST') return revoke(res, params);
    if (host === 'platform.claude.com' && path === '/v1/oauth/token' && req.method === 'POST') {
      if (params.grant_type === 'authorization_code') return redeemCode(res, 'claude', params);
      if (params.grant_type === 'refresh_token') return refresh(res, 'claude', String(params.client_id ?? ''), String(params.refresh_token ?? ''));
      return oauthError(res, 400, 'unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
    }
    if (host === 'api.anthropic.com') {
      const token = bearer(req);
      const grant = currentGrantOf(token);
      if (path.startsWith('/api/oauth/') || path.startsWith('/api/claude_cli') || path.startsWith('/api/claude_code')) {
        if (!grant) return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'OAuth token has expired or is invalid' } });
        if (path === '/api/oauth/profile') {
          return json(res, 200, {
            account: { ...claudeAccount, has_claude_max: true, has_claude_pro: false, created_at: '2025-01-01T00:00:00Z' },
            organization: { ...claudeOrg, organization_type: 'claude_max', billing_type: 'stripe_subscription', rate_limit_tier: 'default_claude_max_20x', has_extra_usage_enabled: false },
          });
        }
        if (path === '/api/oauth/claude_cli/roles') {
          return json(res, 200, { organization_role: 'admin', workspace_role: null, organization_name: claudeOrg.name });
        }
        if (path === '/api/claude_cli/bootstrap') return json(res, 200, {});
        return undefined;
      }
      if (path === '/api/organization/claude_code_first_token_date') {
        if (!grant) return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'OAuth token has expired or is invalid' } });
        return json(res, 200, { first_token_date: '2025-01-01T00:00:00Z' });
      }
      // What `claude -p` asks before its first message; empty lists keep it from waiting on retries.
      if (path === '/v1/mcp_servers' && req.method === 'GET') return json(res, grant ? 200 : 401, grant ? { data: [], has_more: false } : { type: 'error', error: { type: 'authentication_error', message: 'invalid token' } });
      if (path === '/mcp-registry/v0/servers' && req.method === 'GET') return json(res, 200, { servers: [], metadata: { count: 0 } });
      if (path === '/v1/messages' && req.method === 'POST') {
        if (!grant) return json(res, 401, { type: 'error', error: { type: 'authentication_error', message: 'OAuth token has expired or is invalid' } });
        const model = typeof params.model === 'string' ? params.model : 'claude-sonnet-4-5';
        const id = `msg_${b64url(12)}`;
        const usage = { input_tokens: 1, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
        if (params.stream !== true) {
          return json(res, 200, { id, type: 'message', role: 'assistant', model, content: [{ type: 'text', text: standIn.modelReply }], stop_reason: 'end_turn', stop_sequence: null, usage });
        }
        return sse(res, [
          ['message_start', { type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage } }],
          ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
          ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: standIn.modelReply } }],
          ['content_block_stop', { type: 'content_block_stop', index: 0 }],
          ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 1 } }],
          ['message_stop', { type: 'message_stop' }],
        ]);
      }
      return undefined;
    }
    if (host === 'auth.openai.com') {
      if (path === '/api/accounts/deviceauth/usercode' && req.method === 'POST') {
        if (params.client_id !== CODEX_CLIENT_ID) return openaiError(res, 400, 'invalid_client', 'unknown client_id');
        const d: DeviceCode = {
          deviceAuthId: `deviceauth_${b64url(16)}`,
          userCode: `${randomBytes(2).toString('hex').toUpperCase()}-${randomBytes(3).toString('hex').toUpperCase().slice(0, 5)}`,
          clientId: CODEX_CLIENT_ID,
          expiresAt: Date.now() + deviceTtlMs,
          state: 'pending',
          polls: 0,
        };
        deviceCodes.set(d.deviceAuthId, d);
        return json(res, 200, { device_auth_id: d.deviceAuthId, user_code: d.userCode, interval: String(options.devicePollIntervalSec ?? 1), expires_at: new Date(d.expiresAt).toISOString() });
      }
      if (path === '/api/accounts/deviceauth/token' && req.method === 'POST') {
        const d = deviceCodes.get(String(params.device_auth_id ?? ''));
        if (!d || d.userCode !== params.user_code) return openaiError(res, 400, 'invalid_request', 'unknown device authorization');
        d.polls += 1;
        if (d.state === 'denied') return openaiError(res, 400, 'access_denied', 'The user denied the device authorization');
        if (d.expiresAt <= Date.now()) return openaiError(res, 410, 'expired_token', 'The device code has expired');
        if (d.state === 'pending') return openaiError(res, 403, 'deviceauth_authorization_pending', 'Device authorization is pending');
        if (d.state === 'redeemed') return openaiError(res, 400, 'invalid_request', 'The device authorization was already used');
        d.state = 'redeemed';
        const verifier = b64url(32);
        const code = issueCode({ clientId: d.clientId, redirectUri: `${CODEX_ISSUER}/deviceauth/callback`, challenge: s256(verifier), state: '', scope: 'openid profile email offline_access' });
        d.authorizationCode = code;
        return json(res, 200, { authorization_code: code, code_challenge: s256(verifier), code_verifier: verifier });
      }
      if (path === '/oauth/token' && req.method === 'POST') {
        if (params.grant_type === 'authorization_code') return redeemCode(res, 'codex', params);
        if (params.grant_type === 'refresh_token') return refresh(res, 'codex', String(params.client_id ?? ''), String(params.refresh_token ?? ''));
        return openaiError(res, 400, 'unsupported_grant_type', 'unsupported grant_type');
      }
      return undefined;
    }
    if (host === 'chatgpt.com') {
      const grant = currentGrantOf(bearer(req));
      if (path === '/backend-api/codex/responses' && req.method === 'POST') {
        if (!grant) return openaiError(res, 401, 'token_expired', 'Provided authentication token is expired. Please try signing in again.');
        const id = `resp_${b64url(12)}`;
        const item = { type: 'message', id: `msg_${b64url(8)}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: standIn.modelReply, annotations: [] }] };
        return sse(res, [
          ['response.created', { type: 'response.created', response: { id, object: 'response', status: 'in_progress', output: [] } }],
          ['response.output_item.done', { type: 'response.output_item.done', output_index: 0, item }],
          ['response.completed', {
            type: 'response.completed',
            response: { id, object: 'response', status: 'completed', output: [item], usage: { input_tokens: 1, input_tokens_details: { cached_tokens: 0 }, output_tokens: 1, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 2 } },
          }],
        ]);
      }
      if (path === '/backend-api/wham/accounts/check' && req.method === 'GET') {
        if (!grant) return openaiError(res, 401, 'token_expired', 'Provided authentication token is expired. Please try signing in again.');
        // Codex 0.169's workspace routing discovery: the account's backend origin, before any model call.
        return json(res, 200, {
          accounts: [{
            id: codexAccountId, name: null, structure: 'personal', plan_type: 'pro', workspace_backend_origin: 'https://chatgpt.com',
            profile_picture_url: null, can_access_with_session: true, sso_connection_name: null,
            is_deactivated: false, is_fedramp_compliant_workspace: false,
          }],
        });
      }
      if (path === '/backend-api/wham/usage' && req.method === 'GET') {
        if (!grant) return openaiError(res, 401, 'token_expired', 'Provided authentication token is expired. Please try signing in again.');
        return json(res, 200, { plan_type: 'pro', rate_limit: null, credits: null });
      }
      return undefined;
    }
    return undefined;
  }

  /** One request, to the host its Host header names. */
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      const host = (req.headers.host ?? '').replace(/:443$/, '').toLowerCase();
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      const record: RecordedRequest = { at: Date.now(), host, method: req.method ?? '', path: req.url ?? '/', headers, body: Buffer.concat(chunks).toString('utf8'), status: 0, handled: true };
      requests.push(record);
      let status: number | undefined;
      try {
        status = route(host, record, res);
      } catch (err) {
        status = json(res, 500, { error: 'stand-in failure', message: (err as Error).message });
      }
      if (status === undefined) {
        record.handled = false;
        status = json(res, 404, { error: { type: 'not_found_error', message: `the stand-in does not play ${req.method} ${host}${req.url}` } });
      }
      record.status = status;
    });
  };
  const incidents: string[] = [];
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };
  const https = createHttpsServer({ key: readFileSync(pki.serverKeyFile), cert: readFileSync(pki.serverCertFile) }, (req, res) => serve(req, res));
  https.on('connection', track);
  // The CLIs' websocket attempts (codex's Responses transport) are refused at once: they fall back to HTTPS.
  https.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    incidents.push(`refused upgrade ${String(req.headers.host)}${req.url ?? ''}`);
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  https.on('tlsClientError', (err) => incidents.push(`tls-error ${err.message}`));
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  const httpsPort = (https.address() as AddressInfo).port;
  // The one CONNECT proxy peer of the tests: it tunnels a played host's port 443 to the HTTPS server, and answers 502 to anything else.
  const proxy = await startConnectProxy({
    route: (authority) => {
      const host = authority.replace(/:\d+$/, '').toLowerCase();
      return DOMAINS.some((d) => host === d || host.endsWith(`.${d}`)) && authority.endsWith(':443') ? httpsPort : undefined;
    },
  });

  const proxyUrl = proxy.url;

  const played = Object.assign(standIn, {
    proxyUrl,
    caFile: pki.caFile,
    // NO_PROXY: what listens on loopback (Temporal, a token service) is reached directly.
    cliEnv: { HTTPS_PROXY: proxyUrl, https_proxy: proxyUrl, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', NODE_EXTRA_CA_CERTS: pki.caFile, SSL_CERT_FILE: pki.caFile },
    incidents,
    requests,
    grants,
    deviceCodes,
    signIn,
    refuseNextCode: () => void (refuseNextCode = true),
    approveDevice: (userCode: string) => void (device(userCode).state = 'approved'),
    denyDevice: (userCode: string) => void (device(userCode).state = 'denied'),
    expireDevice: (userCode: string) => void Object.assign(device(userCode), { expiresAt: Date.now() - 1 }),
    isCurrentAccessToken: (token: string) => currentGrantOf(token) !== undefined,
    expireAccessTokens(provider: Grant['provider']) {
      for (const g of grants) if (g.provider === provider) g.accessExpiresAt = Date.now() - 1;
    },
    requestsTo: (host: string, pathPrefix = '/') => requests.filter((r) => r.host === host && r.path.startsWith(pathPrefix)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        void proxy.close().then(() =>
          https.close(() => {
            rmSync(dir, { recursive: true, force: true });
            resolve();
          }),
        );
      }),
  });
  // The proxy's own record, read when asked: `host:443`, or `refused <authority>` for what it would not tunnel.
  return Object.defineProperty(played, 'connects', {
    get: () => proxy.connects.map((c) => (c.status === 200 ? c.authority : `refused ${c.authority}`)),
    enumerable: true,
  }) as typeof played & { readonly connects: readonly string[] };
}
