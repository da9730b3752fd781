// Token requests ride one kept-alive connection per destination, as the real CLIs' clients
// do: to the checked address only, closed when idle before the server would close it,
// never resent when a reused connection fails, and never keeping a process alive.
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { callOAuthEndpoint, parseAllowedEndpointHosts, type EndpointLimits } from '../../providers/oauth-http';
import { IDLE_CONNECTION_MS } from '../../providers/outbound';
import { startTokenServer, type TokenServer } from '../peers/token-server';

const allow = (value: string) => {
  const parsed = parseAllowedEndpointHosts(value);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.allowList;
};
const LIMITS: EndpointLimits = { fetchTimeoutMs: 10_000, maxBodyBytes: 64 * 1024, allowedHosts: allow('127.0.0.1') };

const tokenServers: TokenServer[] = [];
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(tokenServers.splice(0).map((s) => s.close()));
  for (const server of servers.splice(0)) server.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function tokenServer(): Promise<TokenServer> {
  const server = await startTokenServer();
  tokenServers.push(server);
  return server;
}

const refresh = (server: TokenServer, refreshToken: string) =>
  callOAuthEndpoint(new URL(server.claudeTokenUrl), { method: 'POST', encoding: 'json', body: { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'test-client' } }, LIMITS);

const rotated = (called: Awaited<ReturnType<typeof refresh>>): string => {
  if (!called.ok || called.answer.status !== 200) throw new Error(`refresh failed: ${JSON.stringify(called)}`);
  return (called.answer.json as { refresh_token: string }).refresh_token;
};

/** A plain server on `host` recording each connection, the requests it carried and who closed it. */
interface Listener {
  readonly server: Server;
  readonly port: number;
  readonly connections: { readonly socket: Socket; readonly requests: string[]; clientEnded: boolean; closedAt?: number }[];
  readonly requests: IncomingMessage['headers'][];
}

async function listen(host = '127.0.0.1', port = 0, configure?: (server: Server) => void): Promise<Listener> {
  const connections: Listener['connections'] = [];
  const requests: Listener['requests'] = [];
  const server = createServer((req, res) => {
    requests.push(req.headers);
    connections.find((c) => c.socket === req.socket)?.requests.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  configure?.(server);
  server.on('connection', (socket: Socket) => {
    const connection: Listener['connections'][number] = { socket, requests: [], clientEnded: false };
    connections.push(connection);
    socket.on('end', () => (connection.clientEnded = true));
    socket.on('close', () => (connection.closedAt = Date.now()));
  });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port, connections, requests };
}

const until = async (what: string, done: () => boolean, withinMs: number): Promise<void> => {
  const deadline = Date.now() + withinMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('token requests keep their connection alive', () => {
  it('two refreshes in a row to one endpoint use one TCP connection', async () => {
    const server = await tokenServer();
    const first = server.issue();
    const second = rotated(await refresh(server, first.refreshToken));
    rotated(await refresh(server, second));
    expect(server.requests.map((r) => r.outcome)).toEqual(['rotated', 'rotated']);
    expect(server.connections()).toBe(1);
  });

  it('never lets one checked address ride a connection opened to another, nor another port', async () => {
    // Two servers on one port, at two loopback addresses: the name's answer decides where a request goes.
    const a = await listen('127.0.0.1');
    const b = await listen('127.0.0.2', a.port);
    const c = await listen('127.0.0.1');
    let answer = '127.0.0.1';
    const limits: EndpointLimits = { ...LIMITS, allowedHosts: allow('idp.test,127.0.0.1'), resolve: async () => [{ address: answer, family: 4 }] };
    const at = (path: string) => new URL(`http://idp.test:${a.port}${path}`);

    expect(await callOAuthEndpoint(at('/one'), { method: 'GET' }, limits)).toMatchObject({ ok: true });
    answer = '127.0.0.2';
    expect(await callOAuthEndpoint(at('/two'), { method: 'GET' }, limits)).toMatchObject({ ok: true });
    answer = '127.0.0.1';
    expect(await callOAuthEndpoint(at('/three'), { method: 'GET' }, limits)).toMatchObject({ ok: true });
    expect(await callOAuthEndpoint(new URL(`http://127.0.0.1:${c.port}/four`), { method: 'GET' }, limits)).toMatchObject({ ok: true });

    expect(a.connections.map((x) => x.requests)).toEqual([['/one', '/three']]);
    expect(b.connections.map((x) => x.requests)).toEqual([['/two']]);
    expect(c.connections.map((x) => x.requests)).toEqual([['/four']]);
    expect(b.connections[0]?.socket.localAddress).toBe('127.0.0.2');
  });

  it('after the server closes an idle connection, the next request opens a new one and succeeds', async () => {
    const server = await listen();
    const url = new URL(`http://127.0.0.1:${server.port}/token`);
    expect(await callOAuthEndpoint(url, { method: 'GET' }, LIMITS)).toMatchObject({ ok: true });
    server.server.closeIdleConnections();
    await until('the server closed the idle connection', () => server.connections[0]?.closedAt !== undefined, 2000);
    // Let the client read the close (it does not need to: a reused dead socket must fail cleanly, below).
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await callOAuthEndpoint(url, { method: 'GET' }, LIMITS)).toMatchObject({ ok: true, answer: { status: 200 } });
    expect(server.connections.map((x) => x.requests)).toEqual([['/token'], ['/token']]);
  });

  it('a refresh lost on a reused connection fails as a network failure, is not resent, and the next one succeeds', async () => {
    const server = await tokenServer();
    const next = rotated(await refresh(server, server.issue().refreshToken));
    // The server drops the kept-alive connection as the refresh arrives on it, before any byte of answer.
    server.script([{ dropConnection: true }]);
    const lost = await refresh(server, next);
    expect(lost).toEqual({ ok: false, reason: `token endpoint ${server.url}/v1/oauth/token: connection closed before an answer` });
    expect(JSON.stringify(lost)).not.toContain(next);
    // Not resent, neither by us nor by Node's client: one presentation, and no new connection.
    expect(server.requests.filter((r) => r.refreshToken === next)).toHaveLength(1);
    expect(server.connections()).toBe(1);
    // The caller's next attempt goes out on a new connection (the token was never examined, so it still works).
    rotated(await refresh(server, next));
    expect(server.connections()).toBe(2);
    expect(server.requests.filter((r) => r.refreshToken === next)).toHaveLength(2);
    expect(server.presentedTwice()).toEqual([]);
  });

  it('an answer slower than the idle timeout, on a reused connection, is waited for', async () => {
    const server = await tokenServer();
    const next = rotated(await refresh(server, server.issue().refreshToken));
    server.script([{ delayMs: IDLE_CONNECTION_MS + 500 }]);
    rotated(await refresh(server, next));
    expect(server.connections()).toBe(1);
  }, 20_000);

  it('closes an idle connection itself, before the server would, and sooner when the server asks', async () => {
    // Node's server announces `Keep-Alive: timeout=<its timeout in s>`.
    const patient = await listen('127.0.0.1', 0, (s) => (s.keepAliveTimeout = 60_000));
    const hasty = await listen('127.0.0.1', 0, (s) => (s.keepAliveTimeout = 2_500));
    const started = Date.now();
    await Promise.all([patient, hasty].map(async (l) => expect(await callOAuthEndpoint(new URL(`http://127.0.0.1:${l.port}/`), { method: 'GET' }, LIMITS)).toMatchObject({ ok: true })));
    await until('both idle connections closed', () => [patient, hasty].every((l) => l.connections[0]?.closedAt !== undefined), IDLE_CONNECTION_MS + 3000);
    for (const l of [patient, hasty]) {
      expect(l.connections).toHaveLength(1);
      // Our end closed it (the server read our FIN), not the server's timeout.
      expect(l.connections[0]?.clientEnded).toBe(true);
    }
    // timeout=2 is taken as 1 s (Node's agent keeps a second's margin); ours is IDLE_CONNECTION_MS.
    expect((hasty.connections[0]?.closedAt ?? 0) - started).toBeLessThan(IDLE_CONNECTION_MS - 1000);
    expect((patient.connections[0]?.closedAt ?? 0) - started).toBeGreaterThanOrEqual(IDLE_CONNECTION_MS - 100);
  }, 20_000);

  it('keeps pools for a bounded number of destinations, closing the idle connections of the one it drops', async () => {
    const many = await Promise.all(Array.from({ length: 33 }, () => listen()));
    const get = (l: Listener) => callOAuthEndpoint(new URL(`http://127.0.0.1:${l.port}/`), { method: 'GET' }, LIMITS);
    for (const l of many) expect(await get(l)).toMatchObject({ ok: true });
    const [first, last] = [many[0] as Listener, many[32] as Listener];
    // The least recently used pool was dropped: its idle connection closed now, by us, not after the idle timeout.
    await until('the dropped pool closed its connection', () => first.connections[0]?.closedAt !== undefined, IDLE_CONNECTION_MS / 2);
    expect(first.connections[0]?.clientEnded).toBe(true);
    expect(await get(last)).toMatchObject({ ok: true });
    expect(last.connections).toHaveLength(1);
  });

  it('a process exits on its own after a request, its kept-alive connection notwithstanding', async () => {
    const server = await listen('127.0.0.1', 0, (s) => (s.keepAliveTimeout = 60_000));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/peers/outbound-call.ts', JSON.stringify({ kind: 'token', url: `http://127.0.0.1:${server.port}/token`, allowedHosts: '127.0.0.1' })],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let stdout = '';
    let answeredAt = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      answeredAt ||= Date.now();
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const exitedAt = Date.now();
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, answer: { status: 200 } });
    // The connection was kept alive (not closed after the answer), and still the process did not wait for it to idle out.
    expect(server.requests[0]?.connection).toBe('keep-alive');
    expect(exitedAt - answeredAt).toBeLessThan(IDLE_CONNECTION_MS / 2);
    expect(server.connections[0]?.clientEnded).toBe(true);
  }, 30_000);
});
