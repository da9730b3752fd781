// Our outbound HTTPS through an operator's proxy, each request made by the project's own
// code in a fresh Node process whose environment holds HTTPS_PROXY / NO_PROXY /
// NODE_EXTRA_CA_CERTS (Node reads the CA variable only at start): a real CONNECT proxy on
// 127.0.0.1 in front of a TLS stand-in whose certificate comes from a CA made for this run.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeHostPki, startConnectProxy, startTlsRelay, type ConnectProxy, type HostPki, type TlsRelay } from '../peers/connect-proxy';

const run = promisify(execFile);
const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** A public address (the guard lets it through); the proxy routes it to the local stand-in. */
const PUBLIC_ADDRESS = '93.184.216.34';
const REFRESH_TOKEN = 'rt-PLANTED-9f3c2a';
const PROXY_PASSWORD = 's3cret-PLANTED-proxy';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly host: string;
  readonly body: string;
}

type Called = { ok: true; answer: { status: number; json: unknown } } | { ok: false; reason: string; refused?: true };

describe('outbound HTTPS through a proxy (HTTPS_PROXY, NO_PROXY, NODE_EXTRA_CA_CERTS)', () => {
  let dir: string;
  let pki: HostPki;
  let upstream: Server;
  let relay: TlsRelay;
  let proxy: ConnectProxy;
  let closedPort: number;
  const received: Received[] = [];
  const routeAll = (): number => relay.port;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outbound-proxy-'));
    pki = makeHostPki(dir, ['tokens.example', 'hooks.example', PUBLIC_ADDRESS, '127.0.0.1']);
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host ?? '', body });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'at-stand-in', expires_in: 3600 }));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    relay = await startTlsRelay(pki, (upstream.address() as AddressInfo).port);
    proxy = await startConnectProxy({ route: routeAll });
    // A port nothing listens on: a proxy that is down.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  afterAll(async () => {
    await proxy?.close();
    await relay?.close();
    await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    received.length = 0;
    proxy.connects.length = 0;
    proxy.configure({ route: routeAll });
  });

  /** Runs one request of ours in a fresh process with exactly `env` (no proxy variable of this shell leaks in). */
  async function call(input: Record<string, unknown>, env: Record<string, string>): Promise<{ result: Called; output: string }> {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/proxy|^NODE_EXTRA_CA_CERTS$|^SLOTS_/i.test(k)));
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'test/peers/outbound-call.ts', JSON.stringify(input)], {
      cwd: PROJECT_ROOT,
      env: { ...inherited, ...env },
      timeout: 30_000,
    });
    const line = stdout.trim().split('\n').at(-1) ?? '';
    return { result: JSON.parse(line) as Called, output: stdout + stderr };
  }
  const token = (url: string, hosts: Record<string, string> = { 'tokens.example': PUBLIC_ADDRESS }, allowedHosts?: string) => ({
    kind: 'token',
    url,
    hosts,
    ...(allowedHosts ? { allowedHosts } : {}),
  });
  const viaProxy = (extra: Record<string, string> = {}): Record<string, string> => ({ HTTPS_PROXY: proxy.url, NODE_EXTRA_CA_CERTS: pki.caFile, ...extra });

  it('sends a refresh through the proxy, CONNECTing to the address the guard checked, TLS verified for the name with the extra CA', async () => {
    // The proxy's own DNS says tokens.example is an internal host (a rebinding): a CONNECT by
    // name would hand the refresh token to it. The CONNECT names the address checked here.
    const internal: string[] = [];
    const internalServer = createServer((req, res) => {
      internal.push(req.url ?? '');
      res.end('{}');
    });
    await new Promise<void>((resolve) => internalServer.listen(0, '127.0.0.1', resolve));
    const internalRelay = await startTlsRelay(pki, (internalServer.address() as AddressInfo).port);
    proxy.configure({ route: (authority) => (authority === 'tokens.example:443' ? internalRelay.port : relay.port) });
    const { result, output } = await call(token('https://tokens.example/v1/oauth/token'), viaProxy()).finally(async () => {
      await internalRelay.close();
      await new Promise<void>((resolve) => internalServer.close(() => resolve()));
    });
    expect(internal).toEqual([]);
    expect(result).toMatchObject({ ok: true, answer: { status: 200, json: { access_token: 'at-stand-in' } } });
    // The CONNECT names the checked address, so the proxy's own DNS cannot send the token elsewhere.
    expect(proxy.connects).toEqual([{ authority: `${PUBLIC_ADDRESS}:443`, status: 200 }]);
    expect(relay.servernames.at(-1)).toBe('tokens.example');
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({ method: 'POST', url: '/v1/oauth/token', host: 'tokens.example' });
    expect(JSON.parse(received[0]?.body ?? '{}')).toMatchObject({ grant_type: 'refresh_token', refresh_token: REFRESH_TOKEN });
    expect(output).not.toContain(REFRESH_TOKEN);
  });

  it('checks the certificate of a host written as an address against that address', async () => {
    const { result } = await call(token(`https://${PUBLIC_ADDRESS}/v1/oauth/token`, {}), viaProxy());
    expect(result).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(proxy.connects).toEqual([{ authority: `${PUBLIC_ADDRESS}:443`, status: 200 }]);
    // An address the certificate does not list is refused.
    const wrong = await call(token('https://93.184.216.36/v1/oauth/token', {}), viaProxy());
    expect(wrong.result).toMatchObject({ ok: false, reason: expect.stringContaining('TLS certificate not accepted (ERR_TLS_CERT_ALTNAME_INVALID)') });
  });

  it('without the extra CA the same request fails on the certificate: NODE_EXTRA_CA_CERTS is what our client trusted', async () => {
    const { result } = await call(token('https://tokens.example/v1/oauth/token'), { HTTPS_PROXY: proxy.url });
    expect(result.ok).toBe(false);
    expect(result).not.toHaveProperty('refused');
    expect((result as { reason: string }).reason).toMatch(/^token endpoint https:\/\/tokens\.example\/v1\/oauth\/token: TLS certificate not accepted/);
    expect(received).toHaveLength(0);
  });

  it('reads the lower-case https_proxy, and with SLOTS_PROXY_CONNECT=name lets the proxy resolve a name this host cannot', async () => {
    const { result } = await call(token('https://tokens.example/v1/oauth/token', {}), { https_proxy: proxy.url, NODE_EXTRA_CA_CERTS: pki.caFile, SLOTS_PROXY_CONNECT: 'name' });
    expect(result).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(proxy.connects).toEqual([{ authority: 'tokens.example:443', status: 200 }]);
    // In the default mode a name this host cannot resolve is not sent anywhere.
    const pinned = await call(token('https://tokens.example/v1/oauth/token', {}), viaProxy());
    expect(pinned.result).toEqual({
      ok: false,
      reason: `token endpoint https://tokens.example/v1/oauth/token: host not found (DNS) on this host, which checks the address before the proxy ${proxy.url} (HTTPS_PROXY) connects to it; if only the proxy can resolve public names, set SLOTS_PROXY_CONNECT=name`,
    });
    expect(proxy.connects).toHaveLength(1);
  });

  it('goes direct for a host NO_PROXY names (subdomains too, as curl), and through the proxy without it', async () => {
    const url = `https://tokens.example:${relay.port}/v1/oauth/token`;
    // The stand-in is on loopback here, so the name is allow-listed for the guard.
    const direct = await call(token(url, { 'tokens.example': '127.0.0.1' }, 'tokens.example'), viaProxy({ NO_PROXY: 'localhost,.example' }));
    expect(direct.result).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(proxy.connects).toHaveLength(0);
    expect(received).toHaveLength(1);
    const lower = await call(token(url, { 'tokens.example': '127.0.0.1' }, 'tokens.example'), viaProxy({ no_proxy: 'example' }));
    expect(lower.result).toMatchObject({ ok: true });
    expect(proxy.connects).toHaveLength(0);
    const proxied = await call(token(url, { 'tokens.example': '127.0.0.1' }, 'tokens.example'), viaProxy({ NO_PROXY: 'other.example' }));
    expect(proxied.result).toMatchObject({ ok: true });
    expect(proxy.connects).toEqual([{ authority: `127.0.0.1:${relay.port}`, status: 200 }]);
  });

  it('direct, two refreshes in one process ride one TLS connection to the checked address; through the proxy each has its own tunnel', async () => {
    const url = `https://tokens.example:${relay.port}/v1/oauth/token`;
    const twice = { ...token(url, { 'tokens.example': '127.0.0.1' }, 'tokens.example'), times: 2 };
    const handshakes = relay.servernames.length;
    const direct = await call(twice, viaProxy({ NO_PROXY: '.example' }));
    const lines = (output: string) => output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Called);
    expect(lines(direct.output)).toMatchObject([{ ok: true, answer: { status: 200 } }, { ok: true, answer: { status: 200 } }]);
    expect(relay.servernames.slice(handshakes)).toEqual(['tokens.example']);
    expect(received).toHaveLength(2);
    const proxied = await call(twice, viaProxy());
    expect(lines(proxied.output)).toMatchObject([{ ok: true }, { ok: true }]);
    expect(proxy.connects).toEqual([
      { authority: `127.0.0.1:${relay.port}`, status: 200 },
      { authority: `127.0.0.1:${relay.port}`, status: 200 },
    ]);
    expect(relay.servernames.slice(handshakes)).toEqual(['tokens.example', 'tokens.example', 'tokens.example']);
  });

  it('a proxy that needs credentials (407) is named, transient, and never shown the password; with them it tunnels', async () => {
    proxy.configure({ route: routeAll, credentials: `ops:${PROXY_PASSWORD}` });
    const none = await call(token('https://tokens.example/v1/oauth/token'), viaProxy());
    expect(none.result).toEqual({
      ok: false,
      reason: `token endpoint https://tokens.example/v1/oauth/token: proxy ${proxy.url} (HTTPS_PROXY) requires credentials (HTTP 407); give them in HTTPS_PROXY as http://user:password@host:port`,
    });

    const wrong = await call(token('https://tokens.example/v1/oauth/token'), viaProxy({ HTTPS_PROXY: `http://ops:wrong-PLANTED-pw@127.0.0.1:${proxy.port}` }));
    expect(wrong.result).toEqual({ ok: false, reason: `token endpoint https://tokens.example/v1/oauth/token: proxy ${proxy.url} (HTTPS_PROXY) refused the credentials in HTTPS_PROXY (HTTP 407)` });
    expect(wrong.output).not.toContain('wrong-PLANTED-pw');
    expect(received).toHaveLength(0);

    const right = await call(token('https://tokens.example/v1/oauth/token'), viaProxy({ HTTPS_PROXY: `http://ops:${PROXY_PASSWORD}@127.0.0.1:${proxy.port}` }));
    expect(right.result).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(right.output).not.toContain(PROXY_PASSWORD);
    expect(proxy.connects.at(-1)).toEqual({ authority: `${PUBLIC_ADDRESS}:443`, credentials: `ops:${PROXY_PASSWORD}`, status: 200 });
    // The proxy's credentials go to the proxy only, never to the endpoint.
    expect(received).toHaveLength(1);
  });

  it('a proxy that refuses CONNECT is named with its status, and its refusal is not read as the endpoint answering', async () => {
    proxy.configure({ route: routeAll, refuseWith: 403 });
    const { result } = await call(token('https://tokens.example/v1/oauth/token'), viaProxy());
    expect(result).toEqual({
      ok: false,
      reason: `token endpoint https://tokens.example/v1/oauth/token: proxy ${proxy.url} (HTTPS_PROXY) refused CONNECT to tokens.example:443 (${PUBLIC_ADDRESS}) (HTTP 403)`,
    });
    expect(received).toHaveLength(0);
  });

  it('a proxy that is down is named, transient', async () => {
    const { result } = await call(token('https://tokens.example/v1/oauth/token'), viaProxy({ HTTPS_PROXY: `http://127.0.0.1:${closedPort}` }));
    expect(result).toEqual({
      ok: false,
      reason: `token endpoint https://tokens.example/v1/oauth/token: proxy http://127.0.0.1:${closedPort} (HTTPS_PROXY) refused the connection (is the proxy running?); nothing was sent to tokens.example:443 (${PUBLIC_ADDRESS})`,
    });
  });

  it('the endpoint guard still judges the target: private addresses are refused before the proxy is asked', async () => {
    for (const env of [viaProxy(), viaProxy({ SLOTS_PROXY_CONNECT: 'name' })]) {
      const literal = await call(token('https://10.1.2.3/v1/oauth/token', {}), env);
      expect(literal.result).toMatchObject({ ok: false, refused: true, reason: expect.stringContaining('refusing to contact 10.1.2.3') });
      const metadata = await call(token('https://metadata.example/latest', { 'metadata.example': '169.254.169.254' }), env);
      expect(metadata.result).toMatchObject({ ok: false, refused: true, reason: expect.stringContaining('refusing to contact metadata.example') });
      // The stand-in's own name, resolved to a private address: judged by its address, not its name.
      const mixed = await call(token('https://tokens.example/v1/oauth/token', { 'tokens.example': '10.0.0.8' }), env);
      expect(mixed.result).toMatchObject({ ok: false, refused: true });
    }
    expect(proxy.connects).toEqual([]);
    expect(received).toHaveLength(0);
  });

  it('tunnels through an https:// proxy, whose certificate the extra CA vouches for too', async () => {
    const tlsProxy = await startConnectProxy({ route: routeAll }, { key: pki.key, cert: pki.cert });
    try {
      const { result } = await call(token('https://tokens.example/v1/oauth/token'), viaProxy({ HTTPS_PROXY: tlsProxy.url }));
      expect(result).toMatchObject({ ok: true, answer: { status: 200 } });
      expect(tlsProxy.connects).toEqual([{ authority: `${PUBLIC_ADDRESS}:443`, status: 200 }]);
      // Without the CA, it is the proxy's certificate that is refused, and the message says so.
      const untrusted = await call(token('https://tokens.example/v1/oauth/token'), { HTTPS_PROXY: tlsProxy.url });
      expect(untrusted.result).toEqual({
        ok: false,
        reason: `token endpoint https://tokens.example/v1/oauth/token: proxy ${tlsProxy.url} (HTTPS_PROXY) presented a TLS certificate that is not accepted (UNABLE_TO_VERIFY_LEAF_SIGNATURE); nothing was sent to tokens.example:443 (${PUBLIC_ADDRESS})`,
      });
    } finally {
      await tlsProxy.close();
    }
  });

  it('a webhook notice goes through the proxy too', async () => {
    const { result } = await call({ kind: 'webhook', url: 'https://hooks.example/notify' }, viaProxy());
    expect(result).toEqual({ ok: true, status: 200 });
    expect(proxy.connects).toEqual([{ authority: 'hooks.example:443', status: 200 }]);
    expect(received[0]).toMatchObject({ method: 'POST', url: '/notify', host: 'hooks.example', body: '{"event":"test"}' });
    proxy.configure({ route: routeAll, refuseWith: 403 });
    const refused = await call({ kind: 'webhook', url: 'https://hooks.example/notify' }, viaProxy());
    expect(refused.result).toEqual({ ok: false, name: 'OutboundProxyError', reason: `proxy ${proxy.url} (HTTPS_PROXY) refused CONNECT to hooks.example:443 (HTTP 403)` });
  });
});
