// How our outbound HTTP(S) leaves the host: straight to the address the endpoint guard
// checked, or through the operator's proxy (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read as
// curl reads them). The one place that chooses; TLS keeps Node's CAs (NODE_EXTRA_CA_CERTS).
import { Agent as HttpAgent, request as httpRequest, type Agent, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction, type Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { OutboundProxyError } from '../common/failures';

/** An address the endpoint guard resolved and judged. */
export interface CheckedAddress {
  readonly address: string;
  readonly family: number;
}

/** The variable choosing what a CONNECT names: the checked address (default) or the host name. */
export const PROXY_CONNECT_VARIABLE = 'SLOTS_PROXY_CONNECT';

/**
 * `address`: CONNECT to the address the guard checked (the name stays in SNI and Host), so
 * the proxy cannot be steered to another address by DNS. `name`: CONNECT by host name, as
 * curl and the CLIs do, for proxies that filter by name or hosts that cannot resolve
 * public names; the proxy then resolves the name.
 */
export type ProxyConnect = 'address' | 'name';

export interface ProxyRoute {
  /** The proxy, credentials included (they go only to the proxy, as Proxy-Authorization). */
  readonly proxy: URL;
  /** The variable it came from. */
  readonly variable: string;
  readonly connect: ProxyConnect;
}

/** The first set, non-empty variable of `names`, with its name. */
function variable(env: NodeJS.ProcessEnv, names: readonly string[]): { readonly name: string; readonly value: string } | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return { name, value };
  }
  return undefined;
}

// Lower case first, as curl reads them. HTTP_PROXY serves http:// URLs only (curl's rule too).
const PROXY_VARIABLES = { 'https:': ['https_proxy', 'HTTPS_PROXY'], 'http:': ['http_proxy', 'HTTP_PROXY'] } as const;
const NO_PROXY_VARIABLES = ['no_proxy', 'NO_PROXY'] as const;

/** `http://host:port`: what a message may say about a proxy (never its credentials). */
export const shownProxy = (proxy: URL): string => `${proxy.protocol}//${proxy.host}`;

function parseProxy(name: string, value: string): { readonly ok: true; readonly proxy: URL } | { readonly ok: false; readonly problem: string } {
  let proxy: URL;
  try {
    // A bare `host:port` means http, as curl reads it.
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    // Not quoted: the value may hold the proxy's password.
    return { ok: false, problem: `${name} is not a proxy URL; write http://host:port or https://host:port (credentials as http://user:password@host:port)` };
  }
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
    return { ok: false, problem: `${name}: only http:// and https:// proxies are supported, not ${proxy.protocol}//` };
  }
  if (proxy.pathname !== '/' || proxy.search !== '' || proxy.hash !== '') {
    return { ok: false, problem: `${name}=${shownProxy(proxy)}…: a proxy URL has no path, query or fragment` };
  }
  return { ok: true, proxy };
}

/** Problems with the proxy variables, each naming its variable (for the worker's start-up). */
export function outboundProxyProblems(env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  for (const name of [...PROXY_VARIABLES['https:'], ...PROXY_VARIABLES['http:']]) {
    const value = env[name]?.trim();
    if (!value) continue;
    const parsed = parseProxy(name, value);
    if (!parsed.ok) problems.push(parsed.problem);
  }
  const mode = env[PROXY_CONNECT_VARIABLE]?.trim();
  if (mode && mode !== 'address' && mode !== 'name') problems.push(`${PROXY_CONNECT_VARIABLE}=${JSON.stringify(mode)}: must be address or name`);
  return problems;
}

const isLoopbackHost = (hostname: string): boolean => {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
};

/**
 * Whether NO_PROXY exempts `url`, as curl reads it: `*` exempts everything; a name
 * exempts itself and its subdomains (a leading `.` or `*.` is the same); an IP address
 * or CIDR range exempts hosts written as addresses in it; `:port` narrows an entry.
 */
export function exemptFromProxy(url: URL, noProxy: string): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const hostFamily = isIP(host);
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    // `host:port`, `[v6]:port`; a bare IPv6 address has colons but no port.
    const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort) {
      if (withPort[2] !== port) continue;
      entry = withPort[1] as string;
    }
    entry = entry.replace(/^\[|\]$/g, '');
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
    if (cidr || isIP(entry) !== 0) {
      if (hostFamily === 0) continue;
      const base = cidr ? (cidr[1] as string) : entry;
      const family = isIP(base);
      if (family === 0) continue;
      const bits = cidr ? Number(cidr[2]) : family === 4 ? 32 : 128;
      if (bits > (family === 4 ? 32 : 128)) continue;
      const list = new BlockList();
      list.addSubnet(base, bits, family === 4 ? 'ipv4' : 'ipv6');
      if (list.check(host, hostFamily === 4 ? 'ipv4' : 'ipv6')) return true;
      continue;
    }
    const name = entry.replace(/^\*?\./, '').replace(/\.$/, '');
    if (name !== '' && (host === name || host.endsWith(`.${name}`))) return true;
  }
  return false;
}

/**
 * The proxy a request to `url` goes through, or undefined for a direct connection:
 * none is set, NO_PROXY exempts the host, or the host is loopback (its loopback is this
 * host's, never the proxy's). Throws OutboundProxyError for a value that is not a proxy URL.
 */
export function proxyRoute(url: URL, env: NodeJS.ProcessEnv = process.env): ProxyRoute | undefined {
  const names = url.protocol === 'https:' ? PROXY_VARIABLES['https:'] : url.protocol === 'http:' ? PROXY_VARIABLES['http:'] : undefined;
  if (!names) return undefined;
  const set = variable(env, names);
  if (!set || isLoopbackHost(url.hostname)) return undefined;
  if (exemptFromProxy(url, variable(env, NO_PROXY_VARIABLES)?.value ?? '')) return undefined;
  const parsed = parseProxy(set.name, set.value);
  if (!parsed.ok) throw new OutboundProxyError(parsed.problem, '(invalid)', set.name);
  return { proxy: parsed.proxy, variable: set.name, connect: env[PROXY_CONNECT_VARIABLE]?.trim() === 'name' ? 'name' : 'address' };
}

/**
 * Whether a request to `url` may go on although this host could not resolve its name:
 * it goes through a proxy that resolves names itself (SLOTS_PROXY_CONNECT=name).
 */
export function proxyResolvesNames(url: URL, env: NodeJS.ProcessEnv, dnsError: unknown): boolean {
  const code = codeOf(dnsError);
  if (code !== 'ENOTFOUND' && code !== 'EAI_AGAIN' && code !== 'ENODATA') return false;
  try {
    return proxyRoute(url, env)?.connect === 'name';
  } catch {
    return false;
  }
}

/**
 * The failure of a name this host cannot resolve, on its way to a proxy that is not asked
 * to resolve names (SLOTS_PROXY_CONNECT=address): it says how to let the proxy do it.
 */
export function unresolvedBehindProxy(url: URL, env: NodeJS.ProcessEnv, dnsError: unknown): OutboundProxyError | undefined {
  const code = codeOf(dnsError);
  if (code !== 'ENOTFOUND' && code !== 'EAI_AGAIN' && code !== 'ENODATA') return undefined;
  let route: ProxyRoute | undefined;
  try {
    route = proxyRoute(url, env);
  } catch {
    return undefined;
  }
  if (!route || route.connect !== 'address') return undefined;
  const shown = shownProxy(route.proxy);
  return new OutboundProxyError(
    `host not found (DNS) on this host, which checks the address before the proxy ${shown} (${route.variable}) connects to it; if only the proxy can resolve public names, set ${PROXY_CONNECT_VARIABLE}=name`,
    shown,
    route.variable,
    undefined,
    { cause: dnsError },
  );
}

/** A `lookup` that answers every question with the checked address (the name stays in SNI and Host). */
export const pinnedLookup =
  (target: CheckedAddress): LookupFunction =>
  (_hostname, options, callback) => {
    if (options.all) (callback as unknown as (err: null, addresses: CheckedAddress[]) => void)(null, [target]);
    else callback(null, target.address, target.family);
  };

/**
 * How long an idle kept-alive connection stays open: under the keep-alive timeout of
 * Node's own server (5 s) and of the usual front ends (longer), so a server rarely closes
 * one just as we reuse it. A shorter `Keep-Alive: timeout=N` from the server shortens it
 * (Node's agent takes N less one second, and does not keep the socket when that is none).
 */
export const IDLE_CONNECTION_MS = 4000;
/**
 * Idle connections kept per destination (the default pace's concurrency); more are closed after
 * use. Connections in use are not capped, as before reuse: a thousand device logins polling one
 * endpoint never wait for one another's sockets.
 */
const MAX_IDLE_SOCKETS_PER_DESTINATION = 2;
/** Destinations with a pool; the least recently used beyond this is dropped (its idle connections closed). */
const MAX_DESTINATIONS = 32;

/** Kept-alive pools by scheme, host, port and checked address, least recently used first. */
const keptAlive = new Map<string, Agent>();

/**
 * The pool of connections to `target` for `url`'s scheme, host and port. The pinned lookup
 * is in the agent's own options, which Node puts over the request's: every connection of
 * the pool goes to the checked address, and another checked address gets another pool, so
 * no request ever rides a socket opened to an address that was not checked for it.
 * Idle sockets are unref'd by Node's agent and close after IDLE_CONNECTION_MS: they never
 * keep a worker process alive.
 */
function keptAliveAgent(url: URL, target: CheckedAddress): Agent {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const key = `${url.protocol}//${url.hostname.toLowerCase()}:${port} ${target.address}`;
  let agent = keptAlive.get(key);
  if (agent) {
    keptAlive.delete(key);
  } else {
    const options = {
      keepAlive: true,
      timeout: IDLE_CONNECTION_MS,
      maxFreeSockets: MAX_IDLE_SOCKETS_PER_DESTINATION,
      // The most recently used socket first: the least likely to have been closed by the server.
      scheduling: 'lifo',
      lookup: pinnedLookup(target),
    } as const;
    agent = url.protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
  }
  keptAlive.set(key, agent);
  for (const [oldest, dropped] of keptAlive) {
    if (keptAlive.size <= MAX_DESTINATIONS) break;
    keptAlive.delete(oldest);
    // Requests under way finish; their sockets then idle out in the dropped pool.
    for (const sockets of Object.values(dropped.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  }
  return agent;
}

/**
 * The `agent` (and `lookup`) of one request to `url`: direct to `target` when given (the
 * guard's checked address), or a one-request tunnel through the proxy whose CONNECT names
 * `target` (or the host name, SLOTS_PROXY_CONNECT=name). `keepAlive`: a direct request
 * to a checked address rides a kept-alive connection to that address (keptAliveAgent);
 * without it, or through a proxy, every request opens its own connection. (A tunnel is
 * not reused: a pool of tunnels would have to be keyed by proxy, credentials and CONNECT
 * target, and a refused CONNECT is told apart per request.)
 */
export function transportOptions(
  url: URL,
  target: CheckedAddress | undefined,
  env: NodeJS.ProcessEnv = process.env,
  { keepAlive = false }: { readonly keepAlive?: boolean } = {},
): { agent: Agent | false; lookup?: LookupFunction } {
  const route = proxyRoute(url, env);
  if (!route && target && keepAlive) return { agent: keptAliveAgent(url, target) };
  if (!route) return { agent: false, ...(target ? { lookup: pinnedLookup(target) } : {}) };
  return { agent: new TunnelAgent(route, route.connect === 'address' ? target : undefined, url.hostname.replace(/^\[|\]$/g, '')) };
}

/** The socket error's code (or its cause's). */
const codeOf = (err: unknown): string | undefined => {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ('code' in e && typeof e.code === 'string') return e.code;
  }
  return undefined;
};

/** What went wrong reaching the proxy, in words (never its message: it may quote the URL). */
function proxyProblem(err: unknown): string {
  const code = codeOf(err);
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused the connection (is the proxy running?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return "cannot be found (the proxy's host name does not resolve)";
    case 'ECONNRESET':
    case 'EPIPE':
      return 'closed the connection before answering CONNECT';
    case 'ETIMEDOUT':
      return 'did not answer (connection timed out)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'is unreachable';
    default:
      if (code !== undefined && /CERT|TLS|SSL|SELF_SIGNED|SIGNATURE|ISSUER/.test(code)) return `presented a TLS certificate that is not accepted (${code})`;
      if (err instanceof Error && /ended before receiving CONNECT response/.test(err.message)) return 'closed the connection before answering CONNECT';
      return `could not be reached (${code ?? (err instanceof Error ? err.name : 'unknown error')})`;
  }
}

/**
 * https-proxy-agent's tunnel, with the checked address in the CONNECT line and a refused
 * CONNECT turned into an OutboundProxyError. (The library hands a refusal to the request
 * as if the target had answered it: a proxy's 403 would read as the token endpoint's.)
 */
class TunnelAgent extends HttpsProxyAgent<string> {
  constructor(
    private readonly route: ProxyRoute,
    private readonly target: CheckedAddress | undefined,
    private readonly hostname: string,
  ) {
    super(route.proxy.href, { keepAlive: false });
  }

  override async connect(req: ClientRequest, opts: Parameters<HttpsProxyAgent<string>['connect']>[1]): Promise<Socket> {
    const shown = shownProxy(this.route.proxy);
    const where = `proxy ${shown} (${this.route.variable})`;
    const destination = `${this.hostname}:${opts.port}${this.target && this.target.address !== this.hostname ? ` (${this.target.address})` : ''}`;
    let status: number | undefined;
    req.once('proxyConnect', (answer: { statusCode?: number }) => {
      status = answer.statusCode;
    });
    let socket: Socket;
    try {
      socket = await super.connect(req, {
        ...opts,
        host: this.target?.address ?? opts.host,
        ...(isIP(this.hostname) === 0 ? { servername: this.hostname } : {}),
        // The library drops `host` before TLS, so an address without SNI would be checked as "localhost".
        checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(this.hostname, cert),
      } as typeof opts);
    } catch (err) {
      throw new OutboundProxyError(`${where} ${proxyProblem(err)}; nothing was sent to ${destination}`, shown, this.route.variable, undefined, { cause: err });
    }
    if (status === 200) return socket;
    socket.destroy();
    const hasCredentials = this.route.proxy.username !== '' || this.route.proxy.password !== '';
    const message =
      status === 407
        ? hasCredentials
          ? `${where} refused the credentials in ${this.route.variable} (HTTP 407)`
          : `${where} requires credentials (HTTP 407); give them in ${this.route.variable} as http://user:password@host:port`
        : `${where} refused CONNECT to ${destination} (HTTP ${status ?? 'unknown'})`;
    throw new OutboundProxyError(message, shown, this.route.variable, status);
  }
}

/** An answer's status and headers (the body is read only when asked). */
export interface OutboundAnswer {
  readonly status: number;
  readonly header: (name: string) => string | undefined;
}

/**
 * One request to an operator-configured URL (a webhook): no endpoint guard, through the
 * proxy when one applies; the answer's body is discarded. Throws on a network failure.
 */
export async function sendOutbound(url: URL, init: { method: 'POST'; headers: Record<string, string>; body: string; signal: AbortSignal }): Promise<OutboundAnswer> {
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      url,
      { method: init.method, headers: { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) }, signal: init.signal, ...transportOptions(url, undefined) },
      resolve,
    );
    req.on('error', reject);
    req.end(init.body);
  });
  response.resume();
  return {
    status: response.statusCode ?? 0,
    header: (name) => {
      const value = response.headers[name.toLowerCase()];
      return Array.isArray(value) ? value[0] : value;
    },
  };
}
