// Why a TLS connection to Temporal failed, in words an operator can act on: the gRPC
// clients only say "failed to connect before the deadline" or print a transport
// error, so after a failure the handshake is tried once more on its own.
import type { TLSConfig } from '@temporalio/client';
import { connect } from 'node:tls';

/** TLS 1.3 sends the server's refusal of a client certificate after the handshake: wait this long for it. */
const ALERT_WAIT_MS = 500;

/**
 * Tries the TLS handshake `tls` describes with `address`; returns what went wrong, or
 * undefined when the handshake succeeds (the failure was something else) or TLS is off.
 */
export async function explainTlsFailure(address: string, tls: TLSConfig | boolean | null | undefined, timeoutMs = 5000): Promise<string | undefined> {
  if (!tls) return undefined;
  const config: TLSConfig = tls === true ? {} : tls;
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at);
  const port = Number(address.slice(at + 1));
  const servername = config.serverNameOverride ?? host;
  const outcome = await new Promise<{ error?: NodeJS.ErrnoException; secured: boolean }>((resolve) => {
    let secured = false;
    const socket = connect({
      host,
      port,
      ALPNProtocols: ['h2'],
      // The certificate is checked against `servername`; an IP address is no server name
      // (Node then checks the certificate's IP entries).
      ...(/^[\d.]+$|:/.test(servername) ? {} : { servername }),
      ...(config.serverRootCACertificate ? { ca: Buffer.from(config.serverRootCACertificate) } : {}),
      ...(config.clientCertPair ? { cert: Buffer.from(config.clientCertPair.crt), key: Buffer.from(config.clientCertPair.key) } : {}),
    });
    let done = false;
    const finish = (error?: NodeJS.ErrnoException): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...(error ? { error } : {}), secured });
    };
    const timer = setTimeout(() => finish(Object.assign(new Error(`no TLS answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    socket.once('secureConnect', () => {
      secured = true;
      setTimeout(() => finish(), ALERT_WAIT_MS);
    });
    socket.once('error', finish);
    // A Go server sends an alert for a client certificate it refuses; others just hang up.
    socket.once('close', () => finish(Object.assign(new Error('the server closed the connection'), { code: 'ECLOSED' })));
  });
  const { error } = outcome;
  if (!error) return undefined;
  // OpenSSL's own text is `<id>:error:<code>:SSL routines:<function>:<reason>:<source file>:…`: keep the reason.
  const message = /SSL routines:[^:]+:([^:\n]+)/.exec(error.message)?.[1] ?? error.message.split('\n')[0] ?? '';
  switch (error.code) {
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_GET_ISSUER_CERT':
      return `the server's certificate is not signed by a CA this client trusts (${message}); set TEMPORAL_TLS_CA_FILE to the CA that signed it`;
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return `the server's certificate is not valid now (${message})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `the server's certificate does not name ${servername} (${message}); set TEMPORAL_TLS_SERVER_NAME to a name it holds`;
    case 'ECONNREFUSED':
    case 'ETIMEDOUT':
    case 'ENOTFOUND':
      return undefined;
  }
  if (error.code === 'ECLOSED' && outcome.secured) {
    return config.clientCertPair
      ? `the server hung up right after the handshake: it does not accept this client's certificate, or it does not speak gRPC; TEMPORAL_TLS_CERT_FILE must be signed by a CA the server trusts`
      : `the server hung up right after the handshake; if it wants a client certificate, set TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE`;
  }
  if (/alert (certificate required|bad certificate|unknown ca|certificate unknown|handshake failure|access denied)/.test(message)) {
    return config.clientCertPair
      ? `the server refused this client's certificate (${message}); TEMPORAL_TLS_CERT_FILE must be signed by a CA the server trusts`
      : `the server wants a client certificate (${message}); set TEMPORAL_TLS_CERT_FILE and TEMPORAL_TLS_KEY_FILE`;
  }
  if (/wrong version number|packet length too long|unexpected eof|ECONNRESET/i.test(`${message} ${error.code ?? ''}`) && !outcome.secured) {
    return `the server did not answer TLS (${message}); is it plain gRPC? Then leave TEMPORAL_TLS_* unset`;
  }
  return `TLS handshake failed (${message})`;
}
