// panva's oidc-provider on 127.0.0.1: a real, independently written OAuth / OpenID
// Connect server with the device flow (RFC 8628), rotating refresh tokens with reuse
// detection, revocation (RFC 7009) and introspection (RFC 7662) enabled.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';

/** A public client allowed the device flow and refresh tokens. */
export const DEVICE_CLIENT_ID = 'slot-device-client';
/** A public client without the device grant: its device request is refused (`unauthorized_client`). */
export const NO_DEVICE_CLIENT_ID = 'slot-code-only-client';
/** A confidential client that may introspect any token (a resource server, as the test sees it). */
export const INTROSPECTOR = { id: 'slot-test-introspector', secret: 'introspector-secret-0123456789abcdef' } as const;

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

export interface OidcServer {
  readonly issuer: string;
  readonly provider: Provider;
  /** Asks the server whether a token is active (RFC 7662), as a resource server would. */
  introspect(token: string): Promise<{ active: boolean; client_id?: string; token_type?: string }>;
  /** Asks the token endpoint for a refresh directly, bypassing the slot. */
  refreshDirectly(refreshToken: string, clientId?: string): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface OidcServerOptions {
  /** Access token lifetime in seconds. @default 3600 */
  readonly accessTtlSec?: number;
}

export async function startOidcServer(options: OidcServerOptions = {}): Promise<OidcServer> {
  const http: Server = createServer();
  const sockets = new Set<Socket>();
  http.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const configuration: Configuration = {
    clients: [
      {
        client_id: DEVICE_CLIENT_ID,
        client_name: 'slot-provisioner test slot',
        grant_types: [DEVICE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'none',
      },
      {
        client_id: NO_DEVICE_CLIENT_ID,
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
        token_endpoint_auth_method: 'none',
      },
      {
        client_id: INTROSPECTOR.id,
        client_secret: INTROSPECTOR.secret,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    features: {
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // The resource server may look at every token; public clients at none.
        allowedPolicy: (_ctx, client) => client.clientId === INTROSPECTOR.id,
      },
      // The server's own login and consent pages: the test goes through them as a person would.
      devInteractions: { enabled: true },
    },
    // Every refresh rotates the refresh token; presenting a spent one revokes the whole grant.
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Explicit lifetimes (the defaults print a notice each); seconds.
    ttl: {
      AccessToken: options.accessTtlSec ?? 3600,
      DeviceCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Grant: 14 * 86400,
      RefreshToken: 14 * 86400,
      Session: 14 * 86400,
    },
    cookies: { keys: ['slot-provisioner-test-cookie-key'] },
  };
  const provider = new Provider(issuer, configuration);
  // OAuth errors (invalid_grant …) are answers the tests expect; a 5xx is a bug worth seeing.
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error', err));
  const handle = provider.callback();
  http.on('request', (req, res) => void handle(req, res));

  async function form(path: string, body: Record<string, string>, auth?: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await fetch(`${issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(auth ? { authorization: auth } : {}) },
      body: new URLSearchParams(body).toString(),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  return {
    issuer,
    provider,
    async introspect(token) {
      const basic = `Basic ${Buffer.from(`${INTROSPECTOR.id}:${INTROSPECTOR.secret}`).toString('base64')}`;
      const answer = await form('/token/introspection', { token }, basic);
      if (answer.status !== 200) throw new Error(`introspection answered HTTP ${answer.status}: ${JSON.stringify(answer.body)}`);
      return answer.body as { active: boolean; client_id?: string; token_type?: string };
    },
    refreshDirectly: (refreshToken, clientId = DEVICE_CLIENT_ID) =>
      form('/token', { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
