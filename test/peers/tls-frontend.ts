// A Temporal frontend with TLS, mTLS and an API key, for the transport test: the
// dev server (CLI 1.5.1) has no TLS flags, so this HTTP/2 front terminates TLS on
// 127.0.0.1, checks the client certificate and the bearer key, and relays gRPC to it.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, constants, createSecureServer, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

export interface Pki {
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A client certificate from another CA: the front must refuse it. */
  readonly strangerCertFile: string;
  readonly strangerKeyFile: string;
}

/**
 * A throwaway CA, a server certificate for localhost/127.0.0.1 (or `serverNames`: SAN
 * entries such as `DNS:*.example.com`, `IP:127.0.0.1`) and client certificates, made with `openssl` in `dir`.
 */
export function makePki(dir: string, opts: { readonly serverNames?: readonly string[] } = {}): Pki {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string): void =>
    openssl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const leaf = (name: string, signer: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
    openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial',
      '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  ca('test-ca');
  ca('stranger-ca');
  leaf('server', 'test-ca', `subjectAltName=${(opts.serverNames ?? ['DNS:localhost', 'IP:127.0.0.1']).join(',')}\nextendedKeyUsage=serverAuth`);
  leaf('team-worker', 'test-ca', 'extendedKeyUsage=clientAuth');
  leaf('stranger', 'stranger-ca', 'extendedKeyUsage=clientAuth');
  const at = (file: string): string => join(dir, file);
  return {
    caFile: at('test-ca.pem'),
    serverCertFile: at('server.pem'),
    serverKeyFile: at('server.key'),
    clientCertFile: at('team-worker.pem'),
    clientKeyFile: at('team-worker.key'),
    strangerCertFile: at('stranger.pem'),
    strangerKeyFile: at('stranger.key'),
  };
}

export interface TlsFrontend {
  /** `127.0.0.1:<port>` */
  readonly address: string;
  /** gRPC methods relayed, by the client certificate's CN: `<CN> <method>`. */
  readonly calls: string[];
  /** TLS handshakes refused (no or a foreign client certificate, an unknown CA on the client's side). */
  readonly refusedHandshakes: string[];
  close(): Promise<void>;
}

const HOP_HEADERS = new Set([':method', ':path', ':scheme', ':authority', 'authorization']);

export async function startTlsFrontend(opts: { target: string; key: Buffer; cert: Buffer; ca: Buffer; apiKey: string }): Promise<TlsFrontend> {
  const calls: string[] = [];
  const refusedHandshakes: string[] = [];
  let upstream: ClientHttp2Session | undefined;
  const session = (): ClientHttp2Session => {
    if (!upstream || upstream.closed || upstream.destroyed) {
      upstream = connect(`http://${opts.target}`);
      upstream.on('error', () => undefined);
    }
    return upstream;
  };
  const server = createSecureServer({ key: opts.key, cert: opts.cert, ca: opts.ca, requestCert: true, rejectUnauthorized: true, allowHTTP1: false });
  server.on('tlsClientError', (err) => refusedHandshakes.push(err.message));
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => undefined);
    const path = String(headers[':path']);
    if (headers.authorization !== `Bearer ${opts.apiKey}`) {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(16), 'grpc-message': 'missing or wrong API key' },
        { endStream: true },
      );
      return;
    }
    const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
    calls.push(`${String(peer?.subject?.CN)} ${path.split('/').pop()}`);
    const forwarded: OutgoingHttpHeaders = { ':method': 'POST', ':path': path };
    for (const [name, value] of Object.entries(headers)) if (!HOP_HEADERS.has(name) && value !== undefined) forwarded[name] = value;
    const request = session().request(forwarded);
    request.on('error', () => undefined);
    let trailers: IncomingHttpHeaders = {};
    request.on('response', (answer) => {
      if (stream.closed) return;
      if (answer['grpc-status'] !== undefined) {
        // A trailers-only answer (an error): headers and end in one frame.
        stream.respond(answer, { endStream: true });
        return;
      }
      stream.respond(answer, { waitForTrailers: true });
      request.pipe(stream);
    });
    request.on('trailers', (received) => (trailers = received));
    stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    stream.pipe(request);
    stream.on('close', () => {
      if (!request.closed) request.close(constants.NGHTTP2_CANCEL);
    });
    request.on('close', () => {
      if (!stream.closed && !stream.headersSent) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    calls,
    refusedHandshakes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Long polls hold sessions open: a closed front ends them.
        for (const s of sessions) s.destroy();
        upstream?.destroy();
      }),
  };
}
