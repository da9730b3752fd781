// One request to an OAuth endpoint (token, device authorization, revocation,
// discovery), bounded in time and size, never following a redirect, with network
// failures named by what happened. Messages hold the URL's origin and path only.
// The host is resolved once and checked (no private, loopback or link-local address
// unless allow-listed): the connection goes to the address that was checked.
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { parseRetryAfter } from './oauth';
import { proxyResolvesNames, transportOptions, unresolvedBehindProxy } from './outbound';
import type { OAuthAnswer } from './provider';
import { OutboundProxyError } from '../common/failures';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

const tracer = trace.getTracer('slot-provisioner');

/** `headers`: what identifies the client (lower-case names); they never replace the framing headers set here. */
export type OAuthRequest =
  | { readonly method: 'POST'; readonly body: Record<string, string>; readonly encoding: 'json' | 'form'; readonly headers?: Readonly<Record<string, string>> }
  | { readonly method: 'GET'; readonly headers?: Readonly<Record<string, string>> };

/** Headers a request's own `headers` may not set: the body's framing and the connection are ours. */
const FRAMING_HEADERS = new Set(['content-type', 'content-length', 'connection', 'keep-alive', 'host', 'transfer-encoding']);

/** `refused`: nothing was sent, the host's address is not one this worker talks to (a configuration problem, not a passing one). */
export type EndpointCall =
  | { readonly ok: true; readonly answer: OAuthAnswer }
  | { readonly ok: false; readonly reason: string; readonly refused?: true };

export interface EndpointLimits {
  /** Whole request, DNS and answer body included. */
  readonly fetchTimeoutMs: number;
  /** Larger answers are abandoned unread. */
  readonly maxBodyBytes: number;
  /** Hosts that may be private or loopback (SLOTS_ALLOWED_ENDPOINT_HOSTS). @default none */
  readonly allowedHosts?: EndpointAllowList;
  /** Resolves a host name to every address. @default dns.lookup (all, verbatim) */
  readonly resolve?: (hostname: string) => Promise<readonly ResolvedAddress[]>;
}

export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

/** The worker's variable naming hosts that may be private or loopback. */
export const ALLOWED_HOSTS_VARIABLE = 'SLOTS_ALLOWED_ENDPOINT_HOSTS';

/** Lower-case `host` and `host:port` entries (IPv6 in brackets, as URLs write them). */
export interface EndpointAllowList {
  readonly entries: ReadonlySet<string>;
}

const NO_HOSTS: EndpointAllowList = { entries: new Set() };
const ALLOW_ENTRY = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

/**
 * Parses SLOTS_ALLOWED_ENDPOINT_HOSTS: comma-separated `host` or `host:port`
 * entries (`127.0.0.1`, `idp.internal:8443`, `[::1]`). Problems name each bad entry.
 */
export function parseAllowedEndpointHosts(value: string | undefined): { readonly ok: true; readonly allowList: EndpointAllowList } | { readonly ok: false; readonly problems: string[] } {
  const entries = new Set<string>();
  const problems: string[] = [];
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    const port = /:(\d+)$/.exec(entry)?.[1];
    if (!ALLOW_ENTRY.test(entry) || (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) || (entry.startsWith('[') && isIP(entry.slice(1, entry.indexOf(']'))) !== 6)) {
      problems.push(`${JSON.stringify(raw.trim())} is not a host or host:port (write IPv6 addresses in brackets, [::1])`);
      continue;
    }
    entries.add(entry);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, allowList: { entries } };
}

const allowListCache = new Map<string, EndpointAllowList>();

/**
 * The allow-list of a worker's environment. The worker's configuration has already
 * refused bad entries at start-up (host/config.ts); here a bad entry only narrows.
 */
export function endpointAllowList(env: NodeJS.ProcessEnv): EndpointAllowList {
  const value = env[ALLOWED_HOSTS_VARIABLE] ?? '';
  const cached = allowListCache.get(value);
  if (cached) return cached;
  const parsed = parseAllowedEndpointHosts(value);
  const allowList = parsed.ok
    ? parsed.allowList
    : { entries: new Set(value.split(',').map((e) => e.trim().toLowerCase()).filter((e) => parseAllowedEndpointHosts(e).ok && e !== '')) };
  allowListCache.set(value, allowList);
  return allowList;
}

const defaultPort = (url: URL): string => url.port || (url.protocol === 'https:' ? '443' : '80');

/** Whether the URL's host (any port) or host:port is on the list. */
export function isAllowListed(url: URL, allowList: EndpointAllowList): boolean {
  const host = url.hostname.toLowerCase();
  return allowList.entries.has(host) || allowList.entries.has(`${host}:${defaultPort(url)}`);
}

export type AddressClass = 'public' | 'private' | 'loopback' | 'link-local' | 'cgnat' | 'multicast' | 'unspecified' | 'reserved';

/** Ranges no endpoint from workflow input may reach (RFC 6890 special-purpose registries), most specific first. */
const IPV4_RANGES: readonly (readonly [string, number, AddressClass])[] = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'cgnat'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'reserved'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];
const IPV6_RANGES: readonly (readonly [string, number, AddressClass])[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  // IPv4-compatible (deprecated), discard, NAT64 local use, documentation.
  ['::', 96, 'reserved'],
  ['100::', 64, 'reserved'],
  ['64:ff9b:1::', 48, 'reserved'],
  ['2001:db8::', 32, 'reserved'],
  ['fc00::', 7, 'private'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'private'],
  ['ff00::', 8, 'multicast'],
];
/** IPv6 prefixes that carry an IPv4 address in their low bits: mapped, NAT64, 6to4 (at bit 16). */
const IPV4_CARRIERS: readonly (readonly [(v4: string) => string, number])[] = [
  [(v4) => `::ffff:${v4}`, 96],
  [(v4) => `64:ff9b::${v4}`, 96],
  [(v4) => { const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number]; return `2002:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}::`; }, 16],
];

const CLASSIFIERS: readonly (readonly [BlockList, AddressClass])[] = (() => {
  const out: [BlockList, AddressClass][] = [];
  for (const [v4, bits, kind] of IPV4_RANGES) {
    const list = new BlockList();
    list.addSubnet(v4, bits, 'ipv4');
    for (const [embed, at] of IPV4_CARRIERS) list.addSubnet(embed(v4), at + bits, 'ipv6');
    out.push([list, kind]);
  }
  for (const [v6, bits, kind] of IPV6_RANGES) {
    const list = new BlockList();
    list.addSubnet(v6, bits, 'ipv6');
    out.push([list, kind]);
  }
  return out;
})();

/** What an IP address is; anything that is not an IP address is `reserved` (never contacted). */
export function addressClass(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const [list, kind] of CLASSIFIERS) if (list.check(bare, type)) return kind;
  return 'public';
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

/** The one message for a refused host: it says nothing about what listens there. */
export const refusedHostMessage = (host: string): string =>
  `refusing to contact ${host}: the address is private/loopback and not in ${ALLOWED_HOSTS_VARIABLE}`;

const defaultResolve = async (hostname: string): Promise<readonly ResolvedAddress[]> => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * Resolves the URL's host once and decides whether it may be contacted: every
 * address public, or the host allow-listed; plain http only for an allow-listed
 * host whose addresses are all loopback. Returns the address to connect to (undefined
 * when a proxy that resolves names takes a name this host cannot resolve).
 */
export async function checkEndpoint(
  url: URL,
  limits: Pick<EndpointLimits, 'allowedHosts' | 'resolve'>,
  signal?: AbortSignal,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ readonly ok: true; readonly target: ResolvedAddress | undefined } | { readonly ok: false; readonly reason: string; readonly refused: boolean; readonly cause?: unknown }> {
  const allowed = isAllowListed(url, limits.allowedHosts ?? NO_HOSTS);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowed)) {
    return { ok: false, refused: true, reason: `refusing plain ${url.protocol}// to ${url.host}: http is allowed only for loopback hosts in ${ALLOWED_HOSTS_VARIABLE}` };
  }
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: readonly ResolvedAddress[];
  if (isIP(literal) !== 0) {
    addresses = [{ address: literal, family: isIP(literal) }];
  } else {
    try {
      addresses = await abortable((limits.resolve ?? defaultResolve)(literal), signal);
    } catch (err) {
      // A proxy that resolves names (SLOTS_PROXY_CONNECT=name) may reach hosts this one cannot resolve.
      if (proxyResolvesNames(url, env, err)) return { ok: true, target: undefined };
      return { ok: false, refused: false, reason: '', cause: unresolvedBehindProxy(url, env, err) ?? err };
    }
  }
  if (addresses.length === 0) return { ok: false, refused: false, reason: '', cause: Object.assign(new Error('no address'), { code: 'ENOTFOUND' }) };
  const classes = addresses.map((a) => addressClass(a.address));
  if (!allowed && classes.some((c) => c !== 'public')) return { ok: false, refused: true, reason: refusedHostMessage(url.host) };
  if (url.protocol === 'http:' && classes.some((c) => c !== 'loopback')) {
    return { ok: false, refused: true, reason: `refusing plain http to ${url.host}: http is allowed only for loopback hosts in ${ALLOWED_HOSTS_VARIABLE}` };
  }
  return { ok: true, target: addresses[0] as ResolvedAddress };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * One request. Redirects are not followed: they would carry a refresh token or a
 * device code elsewhere. `what` names the endpoint in messages ("token endpoint").
 * `cancel` abandons the request: only for answers that may be lost (a device poll),
 * never a refresh, whose answer may hold the only valid refresh token.
 */
export async function callOAuthEndpoint(url: URL, request: OAuthRequest, limits: EndpointLimits, what = 'token endpoint', cancel?: AbortSignal): Promise<EndpointCall> {
  // A span per request (a no-op without a tracer provider): where and how it ended, never a body or a header.
  return tracer.startActiveSpan(
    `oauth ${what}`,
    { kind: SpanKind.CLIENT, attributes: { 'oauth.endpoint': what, 'http.request.method': request.method, 'url.full': `${url.origin}${url.pathname}` } },
    async (span) => {
      try {
        const called = await callEndpointOnce(url, request, limits, what, cancel);
        if (called.ok) span.setAttribute('http.response.status_code', called.answer.status);
        else span.setStatus({ code: SpanStatusCode.ERROR, message: called.refused ? 'refused by the endpoint guard' : 'no answer' });
        return called;
      } finally {
        span.end();
      }
    },
  );
}

async function callEndpointOnce(url: URL, request: OAuthRequest, limits: EndpointLimits, what: string, cancel: AbortSignal | undefined): Promise<EndpointCall> {
  const where = `${what} ${url.origin}${url.pathname}`;
  const timeout = AbortSignal.timeout(limits.fetchTimeoutMs);
  const signal = AbortSignal.any([timeout, ...(cancel ? [cancel] : [])]);
  const failed = (err: unknown, phase: 'request' | 'answer'): EndpointCall => ({
    ok: false,
    reason: `${where}: ${timeout.aborted ? `timed out after ${duration(limits.fetchTimeoutMs)}` : networkProblem(err, phase)}`,
  });

  const checked = await checkEndpoint(url, limits, signal);
  if (!checked.ok) return checked.refused ? { ok: false, refused: true, reason: `${what}: ${checked.reason}` } : failed(checked.cause, 'request');

  const body =
    request.method === 'POST' ? (request.encoding === 'json' ? JSON.stringify(request.body) : new URLSearchParams(request.body).toString()) : undefined;
  const headers: Record<string, string> = {
    accept: 'application/json',
    ...Object.fromEntries(Object.entries(request.headers ?? {}).filter(([name]) => !FRAMING_HEADERS.has(name.toLowerCase())).map(([name, value]) => [name.toLowerCase(), value])),
    ...(request.method === 'POST'
      ? {
          'content-type': request.encoding === 'json' ? 'application/json' : 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(body ?? '')),
        }
      : {}),
  };

  // A direct request rides a kept-alive connection to the checked address (outbound.ts), as
  // the real CLIs' clients do. If the server closed that idle connection just as we reuse
  // it, the request fails here ("connection closed before an answer") and is reported as
  // any network failure, never sent again: the server may have received the POST, and a
  // refresh token it spent cannot be presented twice (its answer, the only valid refresh
  // token, would be lost). Node's client does not resend either (it only marks
  // `req.reusedSocket`); test/unit/kept-alive.test.ts holds both to that.
  let response: IncomingMessage;
  try {
    response = await new Promise<IncomingMessage>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method: request.method, headers, signal, ...transportOptions(url, checked.target, process.env, { keepAlive: true }) }, resolve);
      req.on('error', reject);
      req.end(body);
    });
  } catch (err) {
    return failed(err, 'request');
  }

  const status = response.statusCode ?? 0;
  const tooLarge: EndpointCall = { ok: false, reason: `${where}: answer larger than ${limits.maxBodyBytes} bytes (HTTP ${status})` };
  const declared = Number(response.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes) {
    response.destroy();
    return tooLarge;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      const bytes = chunk as Buffer;
      size += bytes.byteLength;
      if (size > limits.maxBodyBytes) {
        response.destroy();
        return tooLarge;
      }
      chunks.push(bytes);
    }
  } catch (err) {
    return failed(err, 'answer');
  }
  // An answer cut short (the server closed mid-body) is not an answer.
  if (!response.complete) return failed(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }), 'answer');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    json = undefined;
  }
  const header = (name: string): string | null => {
    const value = response.headers[name];
    return typeof value === 'string' ? value : null;
  };
  // A Retry-After date is on the server's clock, not the workflow's (which may run ahead).
  const serverDate = Date.parse(header('date') ?? '');
  const retryAfterMs = parseRetryAfter(header('retry-after'), Number.isFinite(serverDate) ? serverDate : Date.now());
  return { ok: true, answer: { status, json, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) } };
}

const duration = (ms: number): string => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);

/** The socket error's code (or its `cause`'s) says what happened. Messages are not quoted. */
export function networkProblem(err: unknown, phase: 'request' | 'answer'): string {
  const codeOf = (e: unknown): string | undefined =>
    typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
  const cause = typeof err === 'object' && err !== null && 'cause' in err ? err.cause : undefined;
  const code = codeOf(cause) ?? codeOf(err);
  if (err instanceof OutboundProxyError) return err.message;
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
      if (code !== undefined && /CERT|TLS|SSL|SELF_SIGNED|SIGNATURE|ISSUER/.test(code)) return `TLS certificate not accepted (${code})`;
      return `network error (${code ?? (err instanceof Error ? err.name : 'unknown')}) ${phase === 'request' ? 'before an answer' : 'while reading the answer'}`;
  }
}
