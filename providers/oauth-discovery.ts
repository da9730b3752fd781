// Where an OAuth / OpenID Connect server keeps its endpoints: its discovery document
// (`<issuer>/.well-known/openid-configuration`), read with the bounded client and
// kept for a few minutes per issuer. Failures say what an operator must check.
import { z } from 'zod';
import { callOAuthEndpoint, endpointUrlProblem, type EndpointAllowList } from './oauth-http';
import { ProviderEndpointError } from '../common/failures';

/** The fields of RFC 8414 / OpenID Connect Discovery 1.0 that slots use. */
export interface ServerMetadata {
  readonly issuer: string;
  readonly token_endpoint: string;
  readonly device_authorization_endpoint?: string;
  readonly revocation_endpoint?: string;
  /** OpenID Connect: where an access token shows whose it is (the live probe). */
  readonly userinfo_endpoint?: string;
  readonly grant_types_supported?: readonly string[];
}

const ENDPOINT_FIELDS = ['token_endpoint', 'device_authorization_endpoint', 'revocation_endpoint', 'userinfo_endpoint'] as const;

const MetadataSchema = z
  .object({
    issuer: z.string({ error: 'is missing' }).min(1, 'is empty'),
    token_endpoint: z.string({ error: 'is missing' }).min(1, 'is empty'),
    device_authorization_endpoint: z.string({ error: 'is not a string' }).optional(),
    revocation_endpoint: z.string({ error: 'is not a string' }).optional(),
    userinfo_endpoint: z.string({ error: 'is not a string' }).optional(),
    grant_types_supported: z.array(z.string(), { error: 'is not a list of strings' }).optional(),
  })
  .loose();

/** How long a document is trusted before it is read again. */
const CACHE_MS = 5 * 60_000;
const LIMITS = { fetchTimeoutMs: 10_000, maxBodyBytes: 256 * 1024 } as const;
const cache = new Map<string, { readonly at: number; readonly metadata: ServerMetadata }>();

const trimSlash = (url: string): string => url.replace(/\/+$/, '');

/** The discovery document's URL for an issuer (OpenID Connect Discovery 1.0 §4). */
export const discoveryUrl = (issuer: string): string => `${trimSlash(issuer)}/.well-known/openid-configuration`;

/**
 * Reads (or recalls) the issuer's metadata. Throws ProviderEndpointError; `retryable`
 * when the issuer may come back by itself. `allowedHosts`: the worker's
 * SLOTS_ALLOWED_ENDPOINT_HOSTS (oauth-http.ts `endpointAllowList`).
 */
export async function discoverServer(issuer: string, allowedHosts: EndpointAllowList): Promise<ServerMetadata> {
  const cached = cache.get(issuer);
  if (cached && Date.now() - cached.at < CACHE_MS) return cached.metadata;

  const where = discoveryUrl(issuer);
  const fail = (problem: string, retryable = false): ProviderEndpointError =>
    new ProviderEndpointError(`${problem}; check the issuer URL (${issuer}) or configure the endpoints explicitly`, retryable);
  const called = await callOAuthEndpoint(new URL(where), { method: 'GET' }, { ...LIMITS, allowedHosts }, 'discovery document');
  if (!called.ok && called.refused) throw new ProviderEndpointError(`the issuer ${issuer} cannot be used: ${called.reason}`, false);
  if (!called.ok) throw new ProviderEndpointError(`the issuer ${issuer} is unreachable (${called.reason})`, true);
  const { status, json } = called.answer;
  if (status === 429 || status >= 500) throw fail(`the issuer's discovery document ${where} answered HTTP ${status}`, true);
  if (status !== 200) throw fail(`the issuer has no discovery document: ${where} answered HTTP ${status}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw fail(`the discovery document ${where} is not a JSON object`);
  const parsed = MetadataSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(document)'} ${i.message}`).slice(0, 5);
    throw fail(`the discovery document ${where} is not valid: ${fields.join('; ')}`);
  }
  const doc = parsed.data;
  if (trimSlash(doc.issuer) !== trimSlash(issuer)) {
    throw fail(`the discovery document ${where} names another issuer (${JSON.stringify(doc.issuer.slice(0, 200))}); RFC 8414 §3.3 requires the same`);
  }
  for (const field of ENDPOINT_FIELDS) {
    const value = doc[field];
    if (value === undefined) continue;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw fail(`the discovery document ${where} is not valid: ${field} is not a URL`);
    }
    const problem = endpointUrlProblem(url);
    if (problem) throw fail(`the discovery document ${where} is not usable: ${field}: ${problem}`);
  }
  const metadata: ServerMetadata = {
    issuer: doc.issuer,
    token_endpoint: doc.token_endpoint,
    ...(doc.device_authorization_endpoint ? { device_authorization_endpoint: doc.device_authorization_endpoint } : {}),
    ...(doc.revocation_endpoint ? { revocation_endpoint: doc.revocation_endpoint } : {}),
    ...(doc.userinfo_endpoint ? { userinfo_endpoint: doc.userinfo_endpoint } : {}),
    ...(doc.grant_types_supported ? { grant_types_supported: doc.grant_types_supported } : {}),
  };
  cache.set(issuer, { at: Date.now(), metadata });
  return metadata;
}
