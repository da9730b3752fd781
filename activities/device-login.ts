// Host-pinned steps of an OAuth device login (RFC 8628) without a CLI: ask for a
// device code, poll the token endpoint once per call, store the tokens. The device
// code is a polling secret: it stays in a 0600 file in the slot, never in history.
import { ApplicationFailure } from '@temporalio/activity';
import { stat, unlink } from 'node:fs/promises';
import { z } from 'zod';
import type { LoginPrompt } from '../common/slot';
import { getProvider, UnknownProviderError } from '../providers';
import { readOAuthError } from '../providers/oauth';
import {
  ProviderConfigError,
  ProviderEndpointError,
  type DeviceFlowLoginSpec,
  type Provider,
} from '../providers/provider';
import { ensureSlotHome, readSecretFile, resolveInSlot, slotHome, writeSecretFileAtomic } from './credential-store';
import { callOAuthEndpoint, endpointUrlProblem, type EndpointLimits } from './oauth-http';

/** The pending device login of a slot (at most one: a new login replaces it). 0600, in the slot home. */
export const DEVICE_LOGIN_FILE = '.device-login.json';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8628 §3.2: the interval when the server names none. */
const DEFAULT_INTERVAL_S = 5;
const LIMITS: EndpointLimits = { fetchTimeoutMs: 20_000, maxBodyBytes: 256 * 1024 };

/** Failure types of device logins (non-retryable), beside the PTY ones in login.ts. */
export const DeviceLoginFailureType = {
  /** The configuration, the discovery document or the client is wrong: an operator must fix it. */
  misconfigured: 'LoginMisconfigured',
  /** The server cannot be reached or answers 5xx. */
  serverUnavailable: 'LoginServerUnavailable',
  /** The pending login's state is gone from the host (another login replaced it, or the files were removed). */
  sessionLost: 'LoginSessionLost',
} as const;

export interface DeviceLoginDeps {
  readonly slotsDir: string;
  readonly env: NodeJS.ProcessEnv;
}

export interface DeviceLoginStarted {
  readonly kind: 'device-flow';
  readonly prompt: LoginPrompt;
  /** Epoch ms of the device authorization request: a credential must be newer to count. */
  readonly startedAt: number;
  readonly previousCredentialMtime?: number;
  /** How long to wait between polls, as the server asked (RFC 8628 §3.2). */
  readonly intervalMs: number;
}

export interface PollDeviceLoginInput {
  readonly slotId: string;
  readonly provider: string;
  readonly providerConfig?: unknown;
  readonly loginId: string;
  readonly startedAt: number;
}

/** One poll's result. Reasons quote the server (cleaned), never a token or the device code. */
export type DevicePollResult =
  | { readonly kind: 'pending' }
  | { readonly kind: 'slow-down' }
  | { readonly kind: 'transient'; readonly reason: string }
  | { readonly kind: 'approved'; readonly message: string }
  | { readonly kind: 'expired' | 'denied' | 'refused'; readonly reason: string };

const PendingLogin = z.object({
  loginId: z.string(),
  device_code: z.string().min(1),
  token_endpoint: z.string().url(),
  client_id: z.string().min(1),
  expires_at: z.number(),
});

const DeviceAuthorization = z
  .object({
    device_code: z.string({ error: 'is missing' }).min(1, 'is empty'),
    user_code: z.string({ error: 'is missing' }).min(1, 'is empty').max(64, 'is longer than 64 characters').regex(/^[\x21-\x7E]+$/, 'is not printable ASCII'),
    // Some servers (Google's) say verification_url.
    verification_uri: z.string().optional(),
    verification_url: z.string().optional(),
    verification_uri_complete: z.string().optional(),
    expires_in: z.number({ error: 'is missing or not a number' }).positive('is not positive'),
    interval: z.number({ error: 'is not a number' }).positive('is not positive').optional(),
  })
  .loose();

const failure = (type: string, message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, type);

/** A URL an operator is sent to: http(s) only (a `javascript:` link in a dashboard is an attack). */
function browserUrl(value: string | undefined): string | undefined {
  if (value === undefined || !URL.canParse(value)) return undefined;
  const url = new URL(value);
  return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : undefined;
}

function providerFor(name: string, config: unknown): Provider {
  try {
    return getProvider(name, config);
  } catch (err) {
    if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) throw failure(DeviceLoginFailureType.misconfigured, err.message);
    throw err;
  }
}

function deviceSpec(provider: Provider): DeviceFlowLoginSpec {
  if (provider.login.kind !== 'device-flow') throw failure(DeviceLoginFailureType.misconfigured, `${provider.displayName} does not log in with the device flow`);
  return provider.login;
}

function checkedUrl(raw: string, what: string): URL {
  if (!URL.canParse(raw)) throw failure(DeviceLoginFailureType.misconfigured, `the ${what} is not a URL`);
  const url = new URL(raw);
  const problem = endpointUrlProblem(url);
  if (problem) throw failure(DeviceLoginFailureType.misconfigured, `refusing the ${what} ${url.origin}${url.pathname}: ${problem}`);
  return url;
}

/**
 * The device authorization request (RFC 8628 §3.1–3.2). Called by `startLogin` for
 * providers whose login is a device flow; returns only what the operator may see.
 */
export async function startDeviceLogin(
  deps: DeviceLoginDeps,
  provider: Provider,
  input: { readonly slotId: string; readonly loginId: string },
): Promise<DeviceLoginStarted> {
  const spec = deviceSpec(provider);
  let server;
  try {
    server = await spec.server(deps.env);
  } catch (err) {
    if (err instanceof ProviderEndpointError) {
      throw failure(err.retryable ? DeviceLoginFailureType.serverUnavailable : DeviceLoginFailureType.misconfigured, err.message);
    }
    throw err;
  }
  const deviceEndpoint = checkedUrl(server.deviceAuthorizationEndpoint, 'device authorization endpoint');
  const tokenEndpoint = checkedUrl(server.tokenEndpoint, 'token endpoint');
  const home = await ensureSlotHome(deps.slotsDir, input.slotId);
  const previousCredentialMtime = await stat(resolveInSlot(home, provider.credential.file)).then((s) => s.mtimeMs, () => undefined);

  const startedAt = Date.now();
  const called = await callOAuthEndpoint(
    deviceEndpoint,
    { method: 'POST', encoding: 'form', body: { client_id: server.clientId, ...(server.scope ? { scope: server.scope } : {}) } },
    LIMITS,
    'device authorization endpoint',
  );
  if (!called.ok) throw failure(DeviceLoginFailureType.serverUnavailable, `cannot ask for a device code: ${called.reason}`);
  const { status, json } = called.answer;
  const where = `${deviceEndpoint.origin}${deviceEndpoint.pathname}`;
  if (status < 200 || status >= 300) {
    const error = readOAuthError(json);
    const said = `HTTP ${status}${error ? ` ${error.code}${error.description ? `: ${error.description}` : ''}` : ''}`;
    if (status === 429 || status >= 500) throw failure(DeviceLoginFailureType.serverUnavailable, `the device authorization endpoint ${where} answered ${said}; try again later`);
    if (error?.code === 'invalid_scope') {
      throw failure(DeviceLoginFailureType.misconfigured, `the OAuth server refused the scopes "${server.scope ?? ''}" for client ${server.clientId} (${said}); fix the slot's scopes`);
    }
    throw failure(
      DeviceLoginFailureType.misconfigured,
      `the OAuth server refused the device authorization request of client ${server.clientId} (${said}); ` +
        `check that the client exists and is allowed the device flow (grant ${DEVICE_GRANT})`,
    );
  }
  const parsed = DeviceAuthorization.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'} ${i.message}`).slice(0, 5);
    throw failure(DeviceLoginFailureType.misconfigured, `the device authorization endpoint ${where} answered HTTP ${status} without a usable device code: ${json === undefined ? 'the body is not JSON' : fields.join('; ')}`);
  }
  const answer = parsed.data;
  const url = browserUrl(answer.verification_uri ?? answer.verification_url);
  if (!url) throw failure(DeviceLoginFailureType.misconfigured, `the device authorization endpoint ${where} gave no http(s) verification_uri to show the operator`);
  const completeUrl = browserUrl(answer.verification_uri_complete);

  // Written before the prompt is shown: once the operator approves, only this file can collect the tokens.
  const codeExpiresAt = startedAt + Math.round(answer.expires_in * 1000);
  await writeSecretFileAtomic(
    home,
    DEVICE_LOGIN_FILE,
    `${JSON.stringify({ loginId: input.loginId, device_code: answer.device_code, token_endpoint: tokenEndpoint.toString(), client_id: server.clientId, expires_at: codeExpiresAt })}\n`,
  );
  const expiresAt = Math.min(codeExpiresAt, startedAt + spec.timeouts.operatorMs);
  const shown = { url, userCode: answer.user_code, ...(completeUrl ? { completeUrl } : {}), expiresAt };
  return {
    kind: 'device-flow',
    prompt: { ...shown, interaction: spec.interaction, instructions: spec.instructions(shown) },
    startedAt,
    ...(previousCredentialMtime !== undefined ? { previousCredentialMtime } : {}),
    intervalMs: Math.round((answer.interval ?? DEFAULT_INTERVAL_S) * 1000),
  };
}

export function createDeviceLoginActivities(deps: DeviceLoginDeps) {
  /** Asks the token endpoint once whether the operator approved; stores the tokens when they come. */
  async function pollDeviceLogin(input: PollDeviceLoginInput): Promise<DevicePollResult> {
    const provider = providerFor(input.provider, input.providerConfig);
    const spec = deviceSpec(provider);
    const home = slotHome(deps.slotsDir, input.slotId);
    const pending = await readPending(home);
    if (!pending || pending.loginId !== input.loginId) {
      // A retried poll whose first attempt stored the tokens finds them instead.
      const credential = await readSecretFile(home, provider.credential.file);
      if (!pending && credential.ok && credential.stat.mtimeMs + 1000 >= input.startedAt) return { kind: 'approved', message: 'the device was approved' };
      throw failure(
        DeviceLoginFailureType.sessionLost,
        pending ? `the device login was replaced by a newer one (${pending.loginId})` : 'the device login is no longer pending on the slot host (its state file is gone); a new login is needed',
      );
    }

    const called = await callOAuthEndpoint(
      new URL(pending.token_endpoint),
      { method: 'POST', encoding: 'form', body: { grant_type: DEVICE_GRANT, device_code: pending.device_code, client_id: pending.client_id } },
      LIMITS,
    );
    if (!called.ok) return { kind: 'transient', reason: called.reason };
    const verdict = spec.classifyPoll(called.answer);
    switch (verdict.kind) {
      case 'pending':
      case 'slow-down':
        return { kind: verdict.kind };
      case 'transient':
        return verdict;
      case 'expired':
      case 'denied':
      case 'refused':
        await removePending(home, input.loginId);
        return verdict;
      case 'approved': {
        const now = Date.now();
        let content: unknown;
        try {
          content = spec.credentialFromTokens(verdict.tokens, now);
        } catch (err) {
          await removePending(home, input.loginId);
          return { kind: 'refused', reason: err instanceof Error ? err.message : 'the tokens cannot be stored' };
        }
        const checked = provider.credential.schema.safeParse(content);
        if (!checked.success) {
          await removePending(home, input.loginId);
          return { kind: 'refused', reason: `the token answer does not make a valid ${provider.credential.file} (${checked.error.issues.map((i) => i.path.join('.')).join(', ')})` };
        }
        await writeSecretFileAtomic(home, provider.credential.file, `${JSON.stringify(content, null, 2)}\n`);
        await removePending(home, input.loginId);
        return { kind: 'approved', message: 'the device was approved' };
      }
    }
  }

  /** Forgets the device code of a login that ended (cancelled, timed out, failed). */
  async function discardDeviceLogin(input: { slotId: string; loginId: string }): Promise<{ discarded: boolean }> {
    return { discarded: await removePending(slotHome(deps.slotsDir, input.slotId), input.loginId) };
  }

  async function readPending(home: string): Promise<z.infer<typeof PendingLogin> | undefined> {
    const read = await readSecretFile(home, DEVICE_LOGIN_FILE, { requirePrivate: true });
    if (!read.ok) {
      if (read.reason === 'missing') return undefined;
      throw failure(DeviceLoginFailureType.sessionLost, `the device login's state file cannot be used: ${read.message}`);
    }
    try {
      return PendingLogin.parse(JSON.parse(read.text));
    } catch {
      throw failure(DeviceLoginFailureType.sessionLost, `the device login's state file ${DEVICE_LOGIN_FILE} is damaged; a new login is needed`);
    }
  }

  /** Removes the pending file if it belongs to `loginId` (a newer login's stays). */
  async function removePending(home: string, loginId: string): Promise<boolean> {
    const read = await readSecretFile(home, DEVICE_LOGIN_FILE);
    if (!read.ok) return false;
    try {
      if ((JSON.parse(read.text) as { loginId?: unknown }).loginId !== loginId) return false;
    } catch {
      // A damaged file belongs to nobody: remove it.
    }
    await unlink(resolveInSlot(home, DEVICE_LOGIN_FILE)).catch(() => undefined);
    return true;
  }

  return { pollDeviceLogin, discardDeviceLogin };
}
