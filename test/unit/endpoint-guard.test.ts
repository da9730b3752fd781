// The OAuth HTTP client's guard against SSRF: which addresses are private, what the
// allow-list admits, one message for every refused host whatever listens there, and
// a name resolved once, the connection going to the address that was checked.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { addressClass, callOAuthEndpoint, endpointAllowList, parseAllowedEndpointHosts, type EndpointLimits } from '../../providers/oauth-http';
import { loadConfig } from '../../host/config';

const LIMITS: EndpointLimits = { fetchTimeoutMs: 5000, maxBodyBytes: 64 * 1024 };
const GET = { method: 'GET' } as const;

/** A real server on 127.0.0.1 that records what reaches it. */
interface Listener {
  readonly port: number;
  readonly seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}
const listeners: Server[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function listen(): Promise<Listener> {
  const seen: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true,"secret":"answer-from-inside"}');
  });
  listeners.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const allow = (value: string) => {
  const parsed = parseAllowedEndpointHosts(value);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.allowList;
};

describe('addressClass', () => {
  it.each([
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.254', 'private'],
    ['192.168.1.1', 'private'],
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'cgnat'],
    ['100.127.255.254', 'cgnat'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:10.1.2.3', 'private'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['2002:a00:1::', 'private'],
    ['not-an-ip', 'reserved'],
  ])('%s is %s', (address, kind) => {
    expect(addressClass(address)).toBe(kind);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (address) => {
    expect(addressClass(address)).toBe('public');
  });
});

describe('SLOTS_ALLOWED_ENDPOINT_HOSTS', () => {
  it('takes host and host:port entries, IPv6 in brackets', () => {
    expect([...allow(' 127.0.0.1, IdP.Internal:8443 ,[::1]:9000,').entries]).toEqual(['127.0.0.1', 'idp.internal:8443', '[::1]:9000']);
  });

  it('names each bad entry, at start-up', () => {
    const parsed = parseAllowedEndpointHosts('127.0.0.1,::1,http://x,a b,host:99999');
    expect(parsed).toEqual({
      ok: false,
      problems: ['"::1"', '"http://x"', '"a b"', '"host:99999"'].map((e) => `${e} is not a host or host:port (write IPv6 addresses in brackets, [::1])`),
    });
    expect(() => loadConfig({ SLOTS_ALLOWED_ENDPOINT_HOSTS: '10.0.0.1,http://x' })).toThrow(
      /SLOTS_ALLOWED_ENDPOINT_HOSTS="10\.0\.0\.1,http:\/\/x": "http:\/\/x" is not a host or host:port/,
    );
    expect(() => loadConfig({ SLOTS_ALLOWED_ENDPOINT_HOSTS: '10.0.0.1,idp.internal:8443' })).not.toThrow();
  });

  it('admits the host on any port, or host:port on that port only', async () => {
    const server = await listen();
    const url = new URL(`http://127.0.0.1:${server.port}/token`);
    expect(await callOAuthEndpoint(url, GET, { ...LIMITS, allowedHosts: allow('127.0.0.1') })).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(await callOAuthEndpoint(url, GET, { ...LIMITS, allowedHosts: allow(`127.0.0.1:${server.port}`) })).toMatchObject({ ok: true });
    expect(await callOAuthEndpoint(url, GET, { ...LIMITS, allowedHosts: allow(`127.0.0.1:${server.port + 1}`) })).toMatchObject({ ok: false, refused: true });
    // A name is not its address: allow-listing localhost does not admit 127.0.0.1.
    expect(await callOAuthEndpoint(url, GET, { ...LIMITS, allowedHosts: allow('localhost') })).toMatchObject({ ok: false, refused: true });
    expect(server.seen).toHaveLength(2);
  });

  it('reads the list from the worker environment', () => {
    expect([...endpointAllowList({ SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1,localhost' }).entries]).toEqual(['127.0.0.1', 'localhost']);
    expect([...endpointAllowList({}).entries]).toEqual([]);
  });
});

describe('callOAuthEndpoint refuses private addresses before connecting', () => {
  const refusal = (host: string): string =>
    `token endpoint: refusing to contact ${host}: the address is private/loopback and not in SLOTS_ALLOWED_ENDPOINT_HOSTS`;

  it.each([
    'https://169.254.169.254/latest/meta-data/',
    'https://10.0.0.1/token',
    'https://192.168.1.1/token',
    'https://172.16.5.4/token',
    'https://100.64.0.1/token',
    'https://0.0.0.0/token',
    'https://[::1]/token',
    'https://[fe80::1]/token',
    'https://[fc00::1]/token',
    'https://[::ffff:127.0.0.1]/token',
    'https://127.0.0.1:7233/token',
    'https://localhost:8233/token',
  ])('%s', async (raw) => {
    const url = new URL(raw);
    const started = performance.now();
    expect(await callOAuthEndpoint(url, { method: 'POST', encoding: 'form', body: { refresh_token: 'rt-secret' } }, LIMITS)).toEqual({
      ok: false,
      refused: true,
      reason: refusal(url.host),
    });
    // Refused, not tried: no connection timeout was waited for.
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('says the same whether or not something listens, and never echoes what it would have answered', async () => {
    const open = await listen();
    const closed = await listen();
    await closed.close();
    const at = (port: number): URL => new URL(`https://127.0.0.1:${port}/token`);
    const openCall = await callOAuthEndpoint(at(open.port), GET, LIMITS);
    const closedCall = await callOAuthEndpoint(at(closed.port), GET, LIMITS);
    expect(openCall).toEqual({ ok: false, refused: true, reason: refusal(`127.0.0.1:${open.port}`) });
    expect(JSON.stringify(closedCall).replace(String(closed.port), 'PORT')).toBe(JSON.stringify(openCall).replace(String(open.port), 'PORT'));
    expect(open.seen).toEqual([]);
    expect(JSON.stringify(openCall)).not.toContain('answer-from-inside');
  });

  it('allows plain http only for an allow-listed loopback host', async () => {
    const server = await listen();
    const local = new URL(`http://127.0.0.1:${server.port}/token`);
    expect(await callOAuthEndpoint(local, GET, LIMITS)).toMatchObject({ ok: false, refused: true, reason: expect.stringMatching(/^token endpoint: refusing plain http/) });
    const remote = new URL('http://10.1.2.3/token');
    expect(await callOAuthEndpoint(remote, GET, { ...LIMITS, allowedHosts: allow('10.1.2.3') })).toEqual({
      ok: false,
      refused: true,
      reason: 'token endpoint: refusing plain http to 10.1.2.3: http is allowed only for loopback hosts in SLOTS_ALLOWED_ENDPOINT_HOSTS',
    });
    expect(server.seen).toEqual([]);
  });

  it('refuses a name when any of its addresses is private', async () => {
    const resolve = async () => [
      { address: '93.184.216.34', family: 4 },
      { address: '10.0.0.7', family: 4 },
    ];
    expect(await callOAuthEndpoint(new URL('https://idp.example/token'), GET, { ...LIMITS, resolve })).toEqual({ ok: false, refused: true, reason: refusal('idp.example') });
  });
});

describe('callOAuthEndpoint resolves once and connects to what it checked', () => {
  it('asks DNS once, connects to that address and keeps the name in Host (a rebinding DNS gets no second say)', async () => {
    const server = await listen();
    const answers = ['127.0.0.1', '10.9.9.9'];
    const asked: string[] = [];
    // A DNS that answers differently the second time; the real resolver does not know this name at all.
    const resolve = async (hostname: string) => {
      asked.push(hostname);
      return [{ address: answers[Math.min(asked.length - 1, 1)]!, family: 4 }];
    };
    const url = new URL(`http://rebind.test:${server.port}/token`);
    const called = await callOAuthEndpoint(url, GET, { ...LIMITS, resolve, allowedHosts: allow('rebind.test') });
    expect(called).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(asked).toEqual(['rebind.test']);
    expect(server.seen.map((h) => h.host)).toEqual([`rebind.test:${server.port}`]);
  });

  it('names a name that does not resolve as a DNS failure', async () => {
    const resolve = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    expect(await callOAuthEndpoint(new URL('https://nowhere.example/token'), GET, { ...LIMITS, resolve })).toEqual({
      ok: false,
      reason: 'token endpoint https://nowhere.example/token: host not found (DNS)',
    });
  });
});
