// The OAuth servers a host lets slots configured per slot (oidc-device) talk to: the
// host's own list (SLOTS_OIDC_SERVERS), never the workflow's input, which anyone who may
// start workflows in the namespace can write. None by default: such slots are refused.
import { endpointUrlProblem } from './oauth-http';

/** The worker's variable listing the OAuth servers per-slot configurations may name. */
export const OIDC_SERVERS_VARIABLE = 'SLOTS_OIDC_SERVERS';

interface ServerEntry {
  readonly protocol: string;
  readonly hostname: string;
  /** The effective port, or `*` for any. */
  readonly port: string;
  /** Without a trailing slash; '' for the whole origin. */
  readonly path: string;
}

/** Parsed SLOTS_OIDC_SERVERS. */
export interface ServerList {
  readonly entries: readonly ServerEntry[];
}

const effectivePort = (url: URL): string => url.port || (url.protocol === 'https:' ? '443' : '80');

/**
 * Parses SLOTS_OIDC_SERVERS: comma-separated URLs (`https://idp.example.com`,
 * `https://login.example.com/realms/team-b`); a configured issuer or endpoint is allowed
 * when it is one of them or below one (same scheme, host and port, path under the entry's
 * path). A port of `*` matches any port (local test rigs). Problems name each bad entry.
 */
export function parseServerList(value: string | undefined): { readonly ok: true; readonly list: ServerList } | { readonly ok: false; readonly problems: string[] } {
  const entries: ServerEntry[] = [];
  const problems: string[] = [];
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const anyPort = /^[a-z]+:\/\/[^/?#]+:\*(?=[/?#]|$)/i.test(entry);
    const text = anyPort ? entry.replace(/:\*(?=[/?#]|$)/, '') : entry;
    const shown = JSON.stringify(entry);
    if (!URL.canParse(text)) {
      problems.push(`${shown} is not a URL (write https://idp.example.com or https://idp.example.com/realms/team)`);
      continue;
    }
    const url = new URL(text);
    const problem = endpointUrlProblem(url);
    if (problem) {
      problems.push(`${shown}: ${problem}`);
      continue;
    }
    if (url.search !== '' || url.hash !== '') {
      problems.push(`${shown}: must have no query or fragment`);
      continue;
    }
    entries.push({ protocol: url.protocol, hostname: url.hostname.toLowerCase(), port: anyPort ? '*' : effectivePort(url), path: url.pathname.replace(/\/+$/, '') });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, list: { entries } };
}

const cache = new Map<string, ServerList>();

/** The list of a worker's environment; bad entries were refused at start-up (host/config.ts), here they only narrow. */
export function serverListOf(env: NodeJS.ProcessEnv | undefined): ServerList {
  const value = env?.[OIDC_SERVERS_VARIABLE] ?? '';
  const cached = cache.get(value);
  if (cached) return cached;
  const parsed = parseServerList(value);
  const list = parsed.ok ? parsed.list : { entries: value.split(',').flatMap((e) => { const one = parseServerList(e); return one.ok ? one.list.entries : []; }) };
  cache.set(value, list);
  return list;
}

/** Whether `url` is one of the list's servers or below one. */
export function isListedServer(url: string, list: ServerList): boolean {
  if (!URL.canParse(url)) return false;
  const u = new URL(url);
  if (u.username !== '' || u.password !== '') return false;
  const path = u.pathname;
  return list.entries.some(
    (e) =>
      e.protocol === u.protocol &&
      e.hostname === u.hostname.toLowerCase() &&
      (e.port === '*' || e.port === effectivePort(u)) &&
      (e.path === '' || path === e.path || path.startsWith(`${e.path}/`)),
  );
}
