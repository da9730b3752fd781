// One outbound request of ours, made by the project's own code in a fresh Node process,
// so the process's start-up environment (HTTPS_PROXY, NO_PROXY, NODE_EXTRA_CA_CERTS) is
// the one under test. Input: one JSON argument; output: one JSON line on stdout.
import { readFile } from 'node:fs/promises';
import { getProvider } from '../../providers';
import { callOAuthEndpoint, endpointAllowList, parseAllowedEndpointHosts } from '../../providers/oauth-http';
import { sendOutbound } from '../../providers/outbound';

interface Call {
  /** `refresh`: the provider's own refresh of `credentialFile`, to its endpoint as the worker would find it (no URL). */
  readonly kind: 'token' | 'webhook' | 'refresh';
  readonly url?: string;
  readonly provider?: string;
  readonly credentialFile?: string;
  /** Name → address, in place of DNS (a name not listed does not resolve: ENOTFOUND). */
  readonly hosts?: Readonly<Record<string, string>>;
  /** SLOTS_ALLOWED_ENDPOINT_HOSTS. */
  readonly allowedHosts?: string;
  /** `token`: how many calls, one after another, each printing its line. @default 1 */
  readonly times?: number;
}

const call = JSON.parse(process.argv[2] ?? '{}') as Call;
if (call.kind === 'refresh') {
  const refresh = getProvider(call.provider ?? '').refresh;
  if (!refresh) throw new Error(`${call.provider} has no refresh`);
  const credential: unknown = JSON.parse(await readFile(call.credentialFile ?? '', 'utf8'));
  const called = await callOAuthEndpoint(
    new URL(await refresh.endpoint(process.env)),
    { method: 'POST', ...refresh.request(credential) },
    { fetchTimeoutMs: 10_000, maxBodyBytes: 65_536, allowedHosts: endpointAllowList(process.env) },
  );
  // The status only: the answer holds tokens.
  process.stdout.write(`${JSON.stringify(called.ok ? { ok: true, status: called.answer.status } : called)}\n`);
  process.exit(0);
}
const url = new URL(call.url ?? '');
if (call.kind === 'webhook') {
  try {
    const answer = await sendOutbound(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: 'test' }), signal: AbortSignal.timeout(10_000) });
    process.stdout.write(`${JSON.stringify({ ok: true, status: answer.status })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, reason: (err as Error).message, name: (err as Error).name })}\n`);
  }
} else {
  const allowed = parseAllowedEndpointHosts(call.allowedHosts);
  if (!allowed.ok) throw new Error(allowed.problems.join('; '));
  const hosts = call.hosts ?? {};
  const resolve = async (hostname: string) => {
    const address = hosts[hostname];
    if (address === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return [{ address, family: address.includes(':') ? 6 : 4 }];
  };
  for (let n = 0; n < (call.times ?? 1); n++) {
    const called = await callOAuthEndpoint(
      url,
      { method: 'POST', encoding: 'json', body: { grant_type: 'refresh_token', refresh_token: 'rt-PLANTED-9f3c2a', client_id: 'test-client' } },
      { fetchTimeoutMs: 10_000, maxBodyBytes: 65_536, allowedHosts: allowed.allowList, resolve },
    );
    process.stdout.write(`${JSON.stringify(called)}\n`);
  }
}
