// Any OAuth 2.0 / OpenID Connect server that offers the device flow (RFC 8628):
// no vendor CLI, no PTY. Configured per slot (issuer or endpoints, client, scopes,
// where the tokens go); refreshes rotate, retiring revokes (RFC 7009).
import { z } from 'zod';
import { endpointAllowList, endpointUrlProblem } from './oauth-http';
import { discoverServer } from './oauth-discovery';
import { clampExpiresIn, classifyDevicePoll, idTokenIdentity, oauthClassifier, plausibleExpiresAt } from './oauth';
import { ProviderEndpointError } from '../common/failures';
import { AGENT_SECRET_NAME, agentDirOf } from './agent-dir';
import type { Provider, ProviderFactory, TokenAnswer } from './provider';

/** The agent's copy of the access token, relative to the agent directory. */
const AGENT_TOKEN_FILE = 'oidc/access_token';

/** Where an agent finds its token: the file, and the token service with the secret to show it. */
const agentEnv = (agentDir: string, tokenServiceUrl: string | undefined): Record<string, string> => ({
  OAUTH_ACCESS_TOKEN_FILE: `${agentDir}/${AGENT_TOKEN_FILE}`,
  ...(tokenServiceUrl ? { OAUTH_ACCESS_TOKEN_URL: `${tokenServiceUrl}/access-token`, OAUTH_AGENT_SECRET_FILE: `${agentDir}/${AGENT_SECRET_NAME}` } : {}),
});

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const MINUTE = 60_000;
/** The provider's own directory in the slot home: its tokens are stored there and nowhere else. */
const TOKENS_DIR = '.oidc';
const TOKEN_FILE_NAME = /^[A-Za-z0-9_-]{1,64}\.json$/;
const TOKEN_PATH_RULE = `must be a file name inside ${TOKENS_DIR}/ like ${TOKENS_DIR}/tokens.json`;

const isUrl = (value: string): boolean => URL.canParse(value);
const EndpointUrl = z
  .string({ error: 'must be a URL string' })
  .refine(isUrl, 'is not a URL')
  .refine((value) => !isUrl(value) || endpointUrlProblem(new URL(value)) === undefined, 'must be https (or http on 127.0.0.1 / localhost), without user or password');

/** RFC 6749 §3.3: printable ASCII except space, `"` and `\`. */
const ScopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'is not a scope (printable ASCII, no spaces, quotes or backslashes)');

/**
 * Only `.oidc/<name>.json`: a path anywhere else in the slot home would let a
 * configuration (and the server's token answer) overwrite `.bashrc`, another
 * provider's credential or `.ssh/authorized_keys`.
 */
const TokenPath = z.string({ error: TOKEN_PATH_RULE }).superRefine((path, ctx) => {
  const problem = tokenPathProblem(path);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `${TOKEN_PATH_RULE} (${problem})` });
});

function tokenPathProblem(path: string): string | undefined {
  const prefix = `${TOKENS_DIR}/`;
  if (!path.startsWith(prefix)) return 'no other place in the slot home';
  const name = path.slice(prefix.length);
  if (name.includes('/') || name.includes('\\')) return 'no "..", no other directories';
  if (!TOKEN_FILE_NAME.test(name)) return '1-64 letters, digits, "_" or "-", then ".json"';
  return undefined;
}

/** The per-slot configuration; nothing in it is secret (public clients only). */
export const OidcDeviceConfig = z
  .strictObject({
    /** The issuer; its endpoints are read from `<issuer>/.well-known/openid-configuration`. */
    issuer: EndpointUrl.optional(),
    /** Explicit endpoints instead of discovery (RFC 8414 names). */
    endpoints: z
      .strictObject({
        device_authorization_endpoint: EndpointUrl,
        token_endpoint: EndpointUrl,
        revocation_endpoint: EndpointUrl.optional(),
        /** The live probe's endpoint (OpenID Connect userinfo); without it the slot is not probed. */
        userinfo_endpoint: EndpointUrl.optional(),
      })
      .optional(),
    clientId: z
      .string({ error: 'is required (the OAuth client id)' })
      .min(1, 'is empty')
      .max(256, 'is longer than 256 characters')
      .regex(/^[\x20-\x7E]+$/, 'must be printable ASCII'),
    /** @default ["openid", "offline_access"] (offline_access asks for a refresh token) */
    scopes: z.array(ScopeToken, { error: 'must be a list of scopes' }).max(50, 'has more than 50 scopes').default(['openid', 'offline_access']),
    /** Where and how the tokens are stored in the slot. */
    tokens: z
      .strictObject({
        /** @default ".oidc/tokens.json" */
        path: TokenPath.default('.oidc/tokens.json'),
        /** `oauth-json`: `{access_token, refresh_token, id_token, expires_at, scope, token_type, last_refresh}`. @default "oauth-json" */
        format: z.enum(['oauth-json'], { error: 'must be "oauth-json"' }).default('oauth-json'),
      })
      .default({ path: '.oidc/tokens.json', format: 'oauth-json' }),
  })
  .superRefine((config, ctx) => {
    if (!config.issuer && !config.endpoints) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'is required unless endpoints are given (one of issuer or endpoints)' });
    }
    if (config.issuer && config.endpoints) {
      ctx.addIssue({ code: 'custom', path: ['endpoints'], message: 'cannot be combined with issuer (give one of them)' });
    }
  });
export type OidcDeviceConfig = z.infer<typeof OidcDeviceConfig>;

/**
 * `oauth-json`: the token answer as stored. `expires_at` is epoch seconds (as
 * requests-oauthlib and Authlib keep it), `last_refresh` an ISO 8601 time.
 */
export const OAuthJsonTokens = z
  .object({
    access_token: z.string().min(1),
    refresh_token: z.string().min(1),
    id_token: z.string().min(1).optional(),
    token_type: z.string().optional(),
    scope: z.string().optional(),
    expires_at: z.number().int().positive().optional(),
    last_refresh: z.string().optional(),
  })
  .loose();
type OAuthJsonTokens = z.infer<typeof OAuthJsonTokens>;

/** `sub` (and `email`) of an ID token, unverified: a hint for operators, never a decision. */
function idTokenSubject(idToken: string | undefined): string | undefined {
  const payload = idToken?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown; email?: unknown };
    const who = typeof claims.email === 'string' ? claims.email : claims.sub;
    return typeof who === 'string' && /^[\x20-\x7E]{1,120}$/.test(who) ? who : undefined;
  } catch {
    return undefined;
  }
}

const expiresAt = (tokens: TokenAnswer, now: number): number | undefined =>
  tokens.expires_in !== undefined ? Math.floor(now / 1000) + Math.round(clampExpiresIn(tokens.expires_in)) : undefined;

/**
 * The provider for one slot's configuration. Whole on purpose: the returned object is the
 * Provider interface filled in, each member a few lines over the same `config` and endpoints.
 */
function forSlot(config: OidcDeviceConfig): Provider {
  const where = config.issuer ? new URL(config.issuer).host : new URL(config.endpoints?.token_endpoint ?? 'http://invalid').host;
  const displayName = `OAuth device flow (${where})`;
  const scope = config.scopes.length > 0 ? config.scopes.join(' ') : undefined;

  /** The server's endpoints: configured, or discovered from the issuer. */
  async function endpoints(env: NodeJS.ProcessEnv): Promise<{ device?: string; token: string; revocation?: string; userinfo?: string; grants?: readonly string[] }> {
    if (config.endpoints) {
      const e = config.endpoints;
      return {
        device: e.device_authorization_endpoint,
        token: e.token_endpoint,
        ...(e.revocation_endpoint ? { revocation: e.revocation_endpoint } : {}),
        ...(e.userinfo_endpoint ? { userinfo: e.userinfo_endpoint } : {}),
      };
    }
    const metadata = await discoverServer(config.issuer as string, endpointAllowList(env));
    return {
      token: metadata.token_endpoint,
      ...(metadata.device_authorization_endpoint ? { device: metadata.device_authorization_endpoint } : {}),
      ...(metadata.revocation_endpoint ? { revocation: metadata.revocation_endpoint } : {}),
      ...(metadata.userinfo_endpoint ? { userinfo: metadata.userinfo_endpoint } : {}),
      ...(metadata.grant_types_supported ? { grants: metadata.grant_types_supported } : {}),
    };
  }

  return {
    name: 'oidc-device',
    displayName,
    login: {
      kind: 'device-flow',
      interaction: 'device-approval',
      async server(env) {
        const found = await endpoints(env);
        const noDeviceFlow = `the issuer ${config.issuer} does not offer the device flow (RFC 8628)`;
        if (!found.device) throw new ProviderEndpointError(`${noDeviceFlow}: its discovery document has no device_authorization_endpoint`, false);
        if (found.grants && !found.grants.includes(DEVICE_GRANT)) {
          throw new ProviderEndpointError(`${noDeviceFlow}: its discovery document does not list ${DEVICE_GRANT} in grant_types_supported`, false);
        }
        return { deviceAuthorizationEndpoint: found.device, tokenEndpoint: found.token, clientId: config.clientId, ...(scope ? { scope } : {}) };
      },
      classifyPoll: classifyDevicePoll,
      credentialFromTokens(tokens, now) {
        if (!tokens.refresh_token) {
          throw new Error(
            `the server issued no refresh token, so the slot could not be kept alive: ask for the offline_access scope ` +
              `(or let client ${config.clientId} use the refresh_token grant) and log in again`,
          );
        }
        const at = expiresAt(tokens, now);
        const file: OAuthJsonTokens = {
          access_token: tokens.access_token,
          refresh_token: tokens.refresh_token,
          ...(tokens.id_token ? { id_token: tokens.id_token } : {}),
          ...(typeof tokens.token_type === 'string' ? { token_type: tokens.token_type } : {}),
          ...(tokens.scope !== undefined ? { scope: tokens.scope } : scope ? { scope } : {}),
          ...(at !== undefined ? { expires_at: at } : {}),
          last_refresh: new Date(now).toISOString(),
        };
        return file;
      },
      instructions: (prompt) =>
        `Open ${prompt.url} in a browser, sign in and enter the code ${prompt.userCode ?? ''}` +
        `${prompt.completeUrl ? ` (or open ${prompt.completeUrl}, which carries the code)` : ''}; ` +
        `the login completes by itself (the code expires at ${new Date(prompt.expiresAt).toISOString()})`,
      timeouts: { operatorMs: 30 * MINUTE },
    },
    credential: {
      file: config.tokens.path,
      schema: OAuthJsonTokens,
      facts: (parsed: OAuthJsonTokens) => {
        const lastRefresh = parsed.last_refresh ? Date.parse(parsed.last_refresh) : NaN;
        const who = idTokenSubject(parsed.id_token);
        const expiresAt = plausibleExpiresAt(parsed.expires_at !== undefined ? parsed.expires_at * 1000 : undefined);
        return {
          ...(expiresAt !== undefined ? { expiresAt } : {}),
          ...(Number.isFinite(lastRefresh) ? { lastRefresh } : {}),
          account: who ? `${who} at ${where}` : `client ${config.clientId} at ${where}`,
        };
      },
      identity: (parsed: OAuthJsonTokens) => idTokenIdentity(parsed.id_token),
    },
    refresh: {
      endpoint: async (env) => (await endpoints(env)).token,
      // RFC 6749 §6: form-encoded; a public client names itself in the body.
      request: (credential) => ({
        encoding: 'form',
        body: { grant_type: 'refresh_token', refresh_token: OAuthJsonTokens.parse(credential).refresh_token, client_id: config.clientId },
      }),
      classify: oauthClassifier(),
      apply(current, tokens, now) {
        OAuthJsonTokens.parse(current);
        // The raw object, not zod's copy: keys written by someone else stay.
        const { expires_at: _old, ...file } = current as Record<string, unknown>;
        const at = expiresAt(tokens, now);
        return {
          ...file,
          access_token: tokens.access_token,
          ...(tokens.refresh_token !== undefined ? { refresh_token: tokens.refresh_token } : {}),
          ...(tokens.id_token !== undefined ? { id_token: tokens.id_token } : {}),
          ...(typeof tokens.token_type === 'string' ? { token_type: tokens.token_type } : {}),
          ...(tokens.scope !== undefined ? { scope: tokens.scope } : {}),
          // An answer without expires_in leaves the expiry unknown, not the old one.
          ...(at !== undefined ? { expires_at: at } : {}),
          last_refresh: new Date(now).toISOString(),
        };
      },
      schedule: { beforeExpiryMs: 5 * MINUTE, jitterMs: MINUTE },
    },
    agent: {
      // The access token only, never the refresh token: in a file rewritten atomically after
      // every refresh (re-read before each use), or from the worker's token service on demand.
      envFile: '.agent.env',
      env: (credential, slot, place) => ({
        OAUTH_ACCESS_TOKEN: OAuthJsonTokens.parse(credential).access_token,
        ...agentEnv(agentDirOf(slot, place), place?.tokenServiceUrl),
      }),
      files: (credential) => [{ path: AGENT_TOKEN_FILE, text: OAuthJsonTokens.parse(credential).access_token }],
      tokens(credential) {
        const tokens = OAuthJsonTokens.parse(credential);
        return { accessToken: tokens.access_token, ...(tokens.expires_at !== undefined ? { expiresAt: tokens.expires_at * 1000 } : {}) };
      },
      plan: (place) => ({
        mechanism:
          `the agent reads its access token from ${place.agentDir}/${AGENT_TOKEN_FILE} before each use (the slot replaces the file atomically after every refresh)` +
          (place.tokenServiceUrl ? ', or asks OAUTH_ACCESS_TOKEN_URL with its agent secret as the bearer token' : ''),
        env: agentEnv(place.agentDir, place.tokenServiceUrl),
        placeholders: [],
        hiddenEnv: ['OAUTH_ACCESS_TOKEN'],
        egress: place.tokenServiceUrl
          ? [{ host: new URL(place.tokenServiceUrl).host, authScheme: 'bearer', tokenSource: 'agent-secret', tlsPassThrough: false, purpose: 'the current access token, from the worker\'s token service' }]
          : [],
        needsTokenService: false,
      }),
    },
    // The userinfo endpoint (OpenID Connect Core §5.3) when the server has one: a GET that any valid access token may make.
    probe: {
      describe: 'GET the userinfo endpoint (discovered or configured) with Authorization: Bearer; no probe when the server has none',
      async request(credential, env) {
        const userinfo = (await endpoints(env)).userinfo;
        if (!userinfo) return undefined;
        return { url: userinfo, method: 'GET', headers: { authorization: `Bearer ${OAuthJsonTokens.parse(credential).access_token}` } };
      },
    },
    revoke: {
      endpoint: async (env) => (await endpoints(env)).revocation,
      requests(credential) {
        const tokens = OAuthJsonTokens.parse(credential);
        return [
          { token: 'refresh_token', body: { token: tokens.refresh_token, token_type_hint: 'refresh_token', client_id: config.clientId } },
          { token: 'access_token', body: { token: tokens.access_token, token_type_hint: 'access_token', client_id: config.clientId } },
        ];
      },
    },
  };
}

export const oidcDevice: ProviderFactory<typeof OidcDeviceConfig> = {
  name: 'oidc-device',
  displayName: 'OAuth device flow (RFC 8628)',
  config: OidcDeviceConfig,
  forSlot,
  // Discovered endpoints are the listed issuer's own word; configured ones are each checked.
  servers: (config) =>
    config.issuer
      ? [{ field: 'issuer', url: config.issuer }]
      : Object.entries(config.endpoints ?? {}).flatMap(([field, url]) => (typeof url === 'string' ? [{ field: `endpoints.${field}`, url }] : [])),
};
