// Retiring a slot revokes its tokens at the provider's server (RFC 7009) when the
// server offers revocation: a retired slot's tokens should not stay usable until
// they expire. Never fatal: the outcome says what happened, without a token.
import { ProviderEndpointError } from '../common/failures';
import { readOAuthError } from '../providers/oauth';
import { openSlot } from './open-slot';
import { providerPaused, ProviderPauses, sendTurn } from './provider-pause';
import type { SendSpacing } from '../common/pacing';
import { callOAuthEndpoint, endpointAllowList, endpointUrlProblem } from '../providers/oauth-http';

export interface RevokeCredentialInput {
  readonly slotId: string;
  readonly provider: string;
  readonly providerConfig?: unknown;
}

/**
 * - `revoked`: the server accepted every revocation;
 * - `unsupported`: the provider or its server cannot revoke (nothing was sent);
 * - `nothing`: the slot holds no credential;
 * - `failed`: at least one revocation failed; `reason` says which and why.
 */
export type RevokeResult =
  | { readonly kind: 'revoked' | 'unsupported' | 'nothing'; readonly message: string }
  | { readonly kind: 'failed'; readonly reason: string };

const LIMITS = { fetchTimeoutMs: 20_000, maxBodyBytes: 64 * 1024 } as const;

export function createRevokeActivities(deps: { readonly slotsDir: string; readonly env: NodeJS.ProcessEnv; readonly host?: string; readonly spacing?: SendSpacing }) {
  const pauses = new ProviderPauses(deps.slotsDir);
  async function revokeCredential(input: RevokeCredentialInput): Promise<RevokeResult> {
    const opening = await openSlot(deps, input);
    if (!opening.ok) return { kind: 'failed', reason: opening.problem };
    const { provider } = opening.slot;
    const revoke = provider.revoke;
    if (!revoke) return { kind: 'unsupported', message: `${provider.displayName} offers no token revocation` };

    const read = await opening.slot.readCredential();
    if (read.kind === 'unread') {
      return read.reason === 'missing'
        ? { kind: 'nothing', message: 'the slot holds no credential to revoke' }
        : { kind: 'failed', reason: `the credential cannot be read: ${read.message}` };
    }
    // No cause, no quote: the text holds tokens.
    if (read.kind !== 'parsed') return { kind: 'failed', reason: `${provider.credential.file} is not a valid credential; nothing was revoked` };
    const credential = read.credential;

    let endpoint: string | undefined;
    try {
      endpoint = await revoke.endpoint(deps.env);
    } catch (err) {
      if (err instanceof ProviderEndpointError) return { kind: 'failed', reason: `the revocation endpoint is unknown: ${err.message}` };
      throw err;
    }
    if (endpoint === undefined) return { kind: 'unsupported', message: 'the server offers no revocation endpoint' };
    if (!URL.canParse(endpoint)) return { kind: 'failed', reason: 'the revocation endpoint is not a URL' };
    const url = new URL(endpoint);
    const problem = endpointUrlProblem(url);
    if (problem) return { kind: 'failed', reason: `refusing the revocation endpoint ${url.origin}${url.pathname}: ${problem}` };

    // The provider asked this host to wait: the retry policy brings the revocation back when the pause ends.
    const paused = await pauses.current(provider.name);
    if (paused) throw providerPaused(provider.displayName, deps.host, paused);
    const failures: string[] = [];
    for (const request of revoke.requests(credential)) {
      await sendTurn(deps.spacing, provider.name);
      const called = await callOAuthEndpoint(url, { method: 'POST', encoding: revoke.encoding ?? 'form', body: request.body, ...(revoke.headers ? { headers: revoke.headers } : {}) }, { ...LIMITS, allowedHosts: endpointAllowList(deps.env) }, 'revocation endpoint');
      if (!called.ok) {
        failures.push(`${request.token}: ${called.reason}`);
        continue;
      }
      // RFC 7009 §2.2: 200 whether or not the token was still valid.
      const { status, json } = called.answer;
      if (status === 429 || called.answer.retryAfterMs !== undefined) await pauses.pause(provider.name, called.answer);
      if (status !== 200) {
        const error = readOAuthError(json);
        failures.push(`${request.token}: HTTP ${status}${error ? ` ${error.code}${error.description ? `: ${error.description}` : ''}` : ''}`);
      }
    }
    if (failures.length > 0) return { kind: 'failed', reason: `revocation at ${url.origin}${url.pathname} failed (${failures.join('; ')})` };
    const sent = revoke.requests(credential).map((r) => r.token);
    // A provider that revokes the refresh token alone (it ends the grant) leaves an access token to lapse.
    return sent.includes('access_token')
      ? { kind: 'revoked', message: `the tokens were revoked at ${url.origin}` }
      : { kind: 'revoked', message: `the refresh token was revoked at ${url.origin} (the access token lapses when it expires)` };
  }

  return { revokeCredential };
}
