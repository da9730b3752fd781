// One request to an OAuth endpoint (token, device authorization, revocation,
// discovery), bounded in time and size, never following a redirect, with network
// failures named by what happened. Messages hold the URL's origin and path only.
import { parseRetryAfter } from './oauth';
import type { OAuthAnswer } from './provider';

export type OAuthRequest =
  | { readonly method: 'POST'; readonly body: Record<string, string>; readonly encoding: 'json' | 'form' }
  | { readonly method: 'GET' };

export type EndpointCall = { readonly ok: true; readonly answer: OAuthAnswer } | { readonly ok: false; readonly reason: string };

export interface EndpointLimits {
  /** Whole request, answer body included. */
  readonly fetchTimeoutMs: number;
  /** Larger answers are abandoned unread. */
  readonly maxBodyBytes: number;
}

/** Why a URL may not receive a token or a device code, or undefined when it may: https, or http on loopback, no credentials. */
export function endpointUrlProblem(url: URL): string | undefined {
  if (url.username !== '' || url.password !== '') return 'it must not contain credentials';
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    return `only https (or http on loopback) is allowed, not ${url.protocol}//${url.host}`;
  }
  return undefined;
}

/**
 * One request. Redirects are not followed: they would carry a refresh token or a
 * device code elsewhere. `what` names the endpoint in messages ("token endpoint").
 * `cancel` abandons the request: only for answers that may be lost (a device poll),
 * never a refresh, whose answer may hold the only valid refresh token.
 */
export async function callOAuthEndpoint(url: URL, request: OAuthRequest, limits: EndpointLimits, what = 'token endpoint', cancel?: AbortSignal): Promise<EndpointCall> {
  const where = `${what} ${url.origin}${url.pathname}`;
  const timeout = AbortSignal.timeout(limits.fetchTimeoutMs);
  const stop = new AbortController();
  const signal = AbortSignal.any([timeout, stop.signal, ...(cancel ? [cancel] : [])]);
  const failed = (err: unknown, phase: 'request' | 'answer'): EndpointCall => ({
    ok: false,
    reason: `${where}: ${timeout.aborted ? `timed out after ${duration(limits.fetchTimeoutMs)}` : networkProblem(err, phase)}`,
  });

  let response: Response;
  try {
    response = await fetch(url, {
      method: request.method,
      headers:
        request.method === 'POST'
          ? { accept: 'application/json', 'content-type': request.encoding === 'json' ? 'application/json' : 'application/x-www-form-urlencoded' }
          : { accept: 'application/json' },
      ...(request.method === 'POST'
        ? { body: request.encoding === 'json' ? JSON.stringify(request.body) : new URLSearchParams(request.body).toString() }
        : {}),
      redirect: 'manual',
      signal,
    });
  } catch (err) {
    return failed(err, 'request');
  }

  const tooLarge: EndpointCall = { ok: false, reason: `${where}: answer larger than ${limits.maxBodyBytes} bytes (HTTP ${response.status})` };
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes) {
    stop.abort();
    await response.body?.cancel().catch(() => undefined);
    return tooLarge;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (response.body) {
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        if (size > limits.maxBodyBytes) {
          await reader.cancel().catch(() => undefined);
          stop.abort();
          return tooLarge;
        }
        chunks.push(value);
      }
    } catch (err) {
      return failed(err, 'answer');
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    json = undefined;
  }
  // A Retry-After date is on the server's clock, not the workflow's (which may run ahead).
  const serverDate = Date.parse(response.headers.get('date') ?? '');
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), Number.isFinite(serverDate) ? serverDate : Date.now());
  return { ok: true, answer: { status: response.status, json, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) } };
}

const duration = (ms: number): string => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);

/** undici wraps the socket error in `cause`; its code says what happened. Messages are not quoted. */
export function networkProblem(err: unknown, phase: 'request' | 'answer'): string {
  const codeOf = (e: unknown): string | undefined =>
    typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
  const cause = typeof err === 'object' && err !== null && 'cause' in err ? err.cause : undefined;
  const code = codeOf(cause) ?? codeOf(err);
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return phase === 'request' ? 'connection closed before an answer' : 'connection closed while reading the answer';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found (DNS)';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    default:
      if (code !== undefined && /CERT|TLS|SSL|SELF_SIGNED/.test(code)) return `TLS certificate not accepted (${code})`;
      return `network error (${code ?? (err instanceof Error ? err.name : 'unknown')}) ${phase === 'request' ? 'before an answer' : 'while reading the answer'}`;
  }
}
