// A scripted OAuth server on 127.0.0.1 for what a real server does not do on
// demand: `slow_down`, `expired_token`, broken discovery documents, a failing
// revocation endpoint. It records when each poll arrived.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** `server_error`: HTTP 503, as a server in trouble answers (the client backs off). */
export type PollAnswer = 'pending' | 'slow_down' | 'expired_token' | 'access_denied' | 'server_error' | 'approve';

/** What `/.well-known/openid-configuration` answers. */
export type DiscoveryMode = 'ok' | 'html' | 'not-found' | 'no-device-endpoint' | 'wrong-issuer' | 'not-json-object';

export interface ScriptedDeviceServerOptions {
  /** `interval` of the device authorization answer, in seconds. @default 1 */
  readonly intervalSec?: number;
  /** `expires_in` of the device authorization answer, in seconds. @default 600 */
  readonly deviceCodeExpiresInSec?: number;
  /** `expires_in` of the token answers, in seconds. @default 3600 */
  readonly tokenExpiresInSec?: number;
  /** @default 'ok' */
  readonly discovery?: DiscoveryMode;
  /** The issuer it names itself (a public URL a proxy leads to). @default its own `http://127.0.0.1:<port>` */
  readonly issuer?: string;
}

export interface ScriptedDeviceServer {
  readonly issuer: string;
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Answers to the next device-code polls, in order; once used up, polls are `pending`. */
  script(answers: PollAnswer[]): void;
  /** Epoch ms of each device-code poll. */
  readonly polls: number[];
  /** Device codes handed out, to check they never leave the slot host. */
  readonly deviceCodes: string[];
  /** Tokens issued on approval. */
  readonly issued: Array<{ access_token: string; refresh_token: string }>;
  /** Revocation requests received (token type hints). */
  readonly revocations: string[];
  /** Answer revocation requests with this status. @default 200 */
  revocationStatus: number;
  close(): Promise<void>;
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export async function startScriptedDeviceServer(options: ScriptedDeviceServerOptions = {}): Promise<ScriptedDeviceServer> {
  const sockets = new Set<Socket>();
  let answers: PollAnswer[] = [];
  const state = {
    polls: [] as number[],
    deviceCodes: [] as string[],
    issued: [] as Array<{ access_token: string; refresh_token: string }>,
    revocations: [] as string[],
    revocationStatus: 200,
  };
  let issuer = '';

  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  const readForm = async (req: IncomingMessage): Promise<URLSearchParams> => {
    let body = '';
    for await (const chunk of req) body += (chunk as Buffer).toString();
    return new URLSearchParams(body);
  };

  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://device-server').pathname;
      if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
        const doc = {
          issuer,
          token_endpoint: `${issuer}/token`,
          device_authorization_endpoint: `${issuer}/device/auth`,
          revocation_endpoint: `${issuer}/revoke`,
          grant_types_supported: [DEVICE_GRANT, 'refresh_token'],
        };
        switch (options.discovery ?? 'ok') {
          case 'ok':
            return json(res, 200, doc);
          case 'html':
            res.writeHead(200, { 'content-type': 'text/html' });
            return res.end('<html><body>Welcome to our portal</body></html>');
          case 'not-found':
            res.writeHead(404, { 'content-type': 'text/plain' });
            return res.end('not found');
          case 'no-device-endpoint': {
            const { device_authorization_endpoint: _gone, ...rest } = doc;
            return json(res, 200, { ...rest, grant_types_supported: ['authorization_code', 'refresh_token'] });
          }
          case 'wrong-issuer':
            return json(res, 200, { ...doc, issuer: 'https://login.example.com' });
          case 'not-json-object':
            return json(res, 200, ['issuer', issuer]);
        }
      }
      if (req.method === 'POST' && path === '/device/auth') {
        const form = await readForm(req);
        if (form.get('client_id') === 'no-device-client') return json(res, 400, { error: 'unauthorized_client', error_description: 'device flow not allowed' });
        const deviceCode = randomBytes(24).toString('base64url');
        state.deviceCodes.push(deviceCode);
        return json(res, 200, {
          device_code: deviceCode,
          user_code: 'WDJB-MJHT',
          verification_uri: `${issuer}/device`,
          verification_uri_complete: `${issuer}/device?user_code=WDJB-MJHT`,
          expires_in: options.deviceCodeExpiresInSec ?? 600,
          interval: options.intervalSec ?? 1,
        });
      }
      if (req.method === 'POST' && path === '/token') {
        const form = await readForm(req);
        if (form.get('grant_type') === DEVICE_GRANT) {
          state.polls.push(Date.now());
          const answer = answers.shift() ?? 'pending';
          if (answer === 'server_error') return json(res, 503, { error: 'temporarily_unavailable' });
          if (answer !== 'approve') return json(res, 400, { error: answer === 'pending' ? 'authorization_pending' : answer });
        } else if (form.get('grant_type') !== 'refresh_token') {
          return json(res, 400, { error: 'unsupported_grant_type' });
        }
        const tokens = { access_token: `at-${randomBytes(16).toString('hex')}`, refresh_token: `rt-${randomBytes(16).toString('hex')}` };
        state.issued.push(tokens);
        return json(res, 200, { ...tokens, token_type: 'Bearer', expires_in: options.tokenExpiresInSec ?? 3600, scope: 'openid offline_access' });
      }
      if (req.method === 'POST' && path === '/revoke') {
        const form = await readForm(req);
        state.revocations.push(form.get('token_type_hint') ?? '?');
        if (state.revocationStatus === 200) {
          res.writeHead(200);
          return res.end();
        }
        return json(res, state.revocationStatus, { error: 'temporarily_unavailable' });
      }
      res.writeHead(404);
      res.end();
    })();
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = options.issuer ?? `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return Object.assign(state, {
    issuer,
    port: (server.address() as AddressInfo).port,
    script(next: PollAnswer[]) {
      answers = [...next];
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
