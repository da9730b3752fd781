// An operator's outbound proxy on 127.0.0.1: HTTP CONNECT tunnels, optionally behind Basic
// credentials (407) or refusing every CONNECT; it records each CONNECT line and routes the
// tunnel to a local port chosen by the test (so "public" hosts land on local stand-ins).
// With it: TLS relays that terminate HTTPS for those hosts with a per-run test CA.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';

export interface ProxyConnect {
  /** The CONNECT line's authority, as sent (`93.184.216.34:443`, `tokens.example:443`). */
  readonly authority: string;
  /** The Proxy-Authorization header, decoded (`user:password`), if any. */
  readonly credentials?: string;
  /** What the proxy answered. */
  readonly status: number;
}

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>` (`https://` for a TLS proxy) */
  readonly url: string;
  readonly port: number;
  readonly connects: ProxyConnect[];
  /** Change behaviour between requests. */
  configure(options: ConnectProxyOptions): void;
  close(): Promise<void>;
}

export interface ConnectProxyOptions {
  /** The local port a CONNECT authority is tunnelled to; undefined answers 502. */
  readonly route: (authority: string) => number | undefined;
  /** Basic credentials the proxy requires (`user:password`); without them or wrong, 407. */
  readonly credentials?: string;
  /** Answer every CONNECT with this status instead of tunnelling (403: a proxy's policy says no). */
  readonly refuseWith?: number;
}

/** `tls`: the proxy itself speaks HTTPS (an `https://` proxy URL) with this key and certificate. */
export async function startConnectProxy(initial: ConnectProxyOptions, tls?: { key: Buffer; cert: Buffer }): Promise<ConnectProxy> {
  let options = initial;
  const connects: ProxyConnect[] = [];
  const sockets = new Set<Socket>();
  const refuseRequests = (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(405, { allow: 'CONNECT' }).end();
  };
  const server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, refuseRequests) : createServer(refuseRequests);
  server.on('tlsClientError', () => undefined);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const authority = req.url ?? '';
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers['proxy-authorization'] ?? '')?.[1];
    const credentials = basic !== undefined ? Buffer.from(basic, 'base64').toString('utf8') : undefined;
    const answer = (status: number, reason: string, extra = ''): void => {
      connects.push({ authority, ...(credentials !== undefined ? { credentials } : {}), status });
      client.end(`HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    client.on('error', () => undefined);
    if (options.credentials !== undefined && credentials !== options.credentials) {
      return answer(407, 'Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="test-proxy"\r\n');
    }
    if (options.refuseWith !== undefined) return answer(options.refuseWith, 'Refused By Policy');
    const port = options.route(authority);
    if (port === undefined) return answer(502, 'Bad Gateway');
    const upstream = connect(port, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    upstream.once('connect', () => {
      connects.push({ authority, ...(credentials !== undefined ? { credentials } : {}), status: 200 });
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    connects,
    configure: (next) => void (options = next),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface HostPki {
  /** The test CA's certificate: what NODE_EXTRA_CA_CERTS names. */
  readonly caFile: string;
  readonly key: Buffer;
  readonly cert: Buffer;
}

/** A CA made for this run and one server certificate for `names` (DNS names and IP addresses). */
export function makeHostPki(dir: string, names: readonly string[]): HostPki {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'proxy-ca.key', '-out', 'proxy-ca.pem', '-days', '2', '-subj', '/CN=outbound test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const san = names.map((n) => (/^[\d.]+$/.test(n) || n.includes(':') ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(join(dir, 'hosts.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
  openssl('req', ...ec, '-keyout', 'hosts.key', '-out', 'hosts.csr', '-subj', '/CN=outbound stand-in');
  openssl('x509', '-req', '-in', 'hosts.csr', '-CA', 'proxy-ca.pem', '-CAkey', 'proxy-ca.key', '-CAcreateserial', '-out', 'hosts.pem', '-days', '2', '-extfile', 'hosts.ext');
  return { caFile: join(dir, 'proxy-ca.pem'), key: readFileSync(join(dir, 'hosts.key')), cert: readFileSync(join(dir, 'hosts.pem')) };
}

export interface TlsRelay {
  readonly port: number;
  /** The SNI name of each TLS connection (undefined: the client sent none, as for an IP address). */
  readonly servernames: (string | undefined)[];
  close(): Promise<void>;
}

/** Terminates TLS with the PKI's certificate and relays the plain bytes to `target` on 127.0.0.1 (an HTTP stand-in). */
export async function startTlsRelay(pki: HostPki, target: number): Promise<TlsRelay> {
  const servernames: (string | undefined)[] = [];
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: pki.key, cert: pki.cert }, (tlsSocket) => {
    servernames.push(typeof tlsSocket.servername === 'string' ? tlsSocket.servername : undefined);
    const upstream = connect(target, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => tlsSocket.destroy());
    tlsSocket.on('error', () => upstream.destroy());
    upstream.pipe(tlsSocket);
    tlsSocket.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    servernames,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
