// Host-pinned steps of an OAuth device login (RFC 8628) without a CLI: ask for a
// device code, then one activity polls the token endpoint until the operator answers
// and stores the tokens. The device code stays in a 0600 file in the slot, never in history.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { FailureType, ProviderEndpointError } from '../common/failures';
import type { LoginPrompt } from '../common/slot';
import { clampExpiresIn, readOAuthError } from '../providers/oauth';
import type { DeviceFlowLoginSpec, Provider } from '../providers/provider';
import { ensureSlotHome, readSecretFile, removeSecretFile, resolveInSlot, slotHome, writeSecretFileAtomic } from './credential-store';
import { heartbeatEvery, throwIfCancelled, withHeartbeat } from './heartbeat';
import { checkSlotRequest } from './slot-record';
import { openSlot, type OpenSlot } from './open-slot';
import { callOAuthEndpoint, endpointAllowList, endpointUrlProblem, type EndpointLimits } from '../providers/oauth-http';

/** The pending device login of a slot (at most one: a new login replaces it). 0600, in the slot home. */
export const DEVICE_LOGIN_FILE = '.device-login.json';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** RFC 8628 §3.2: the interval when the server names none, and the least one a server may ask for. */
const DEFAULT_INTERVAL_S = 5;
/** A server asking for longer polls gets this: the operator would wait minutes after approving. */
const MAX_INTERVAL_S = 60;
/** A device code is not awaited longer than this, whatever `expires_in` says (operators are awaited 30 minutes at most anyway). */
const MAX_DEVICE_CODE_EXPIRES_IN_S = 3600;
/** RFC 8628 §3.5: every `slow_down` adds this to the interval, for all later polls. */
const SLOW_DOWN_STEP_MS = 5_000;
/** Network trouble and 5xx double the wait before the next poll, up to this. */
const MAX_BACKOFF_MS = 60_000;
/** Server interval plus a generous run of slow_downs: a resumed interval above it is not believed. */
const MAX_RESUMED_INTERVAL_MS = 5 * 60_000;
/** The lowest `minPollIntervalMs` a worker may be given. */
const MIN_POLL_FLOOR_MS = 1_000;
const LIMITS: EndpointLimits = { fetchTimeoutMs: 20_000, maxBodyBytes: 256 * 1024 };

export interface DeviceLoginDeps {
  readonly slotsDir: string;
  readonly env: NodeJS.ProcessEnv;
  /** How often `awaitDeviceApproval` heartbeats (at least three times per heartbeat timeout). @default 2000 */
  readonly heartbeatMs?: number;
  /**
   * Whatever a server (or the workflow's input) says, polls are at least this far apart:
   * a server's `interval` is clamped to [this, 60 s]. Tests lower it (at least 1000). @default 5000 (RFC 8628 §3.2)
   */
  readonly minPollIntervalMs?: number;
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

export interface AwaitDeviceApprovalInput {
  readonly slotId: string;
  readonly provider: string;
  readonly providerConfig?: unknown;
  readonly loginId: string;
  /** `DeviceLoginStarted.startedAt`: a credential must be newer to count. */
  readonly startedAt: number;
  /** `DeviceLoginStarted.intervalMs`; a retried attempt resumes with the interval its predecessor slowed to. */
  readonly intervalMs: number;
  /** Epoch ms after which no operator is awaited: the result is `timed-out`. */
  readonly deadline: number;
}

/** How a device login ended. Reasons quote the server (cleaned), never a token or the device code. */
export type DeviceApprovalResult =
  | { readonly kind: 'approved'; readonly message: string }
  | { readonly kind: 'expired' | 'denied' | 'refused' | 'timed-out'; readonly reason: string };

/** What `awaitDeviceApproval` heartbeats: a retried attempt resumes with `intervalMs`. */
export interface DeviceApprovalProgress {
  readonly intervalMs: number;
  /** Why the last poll got no answer, while the token endpoint is in trouble (shown in the Web UI's pending activity). */
  readonly lastError?: string;
}

/** One poll's result. */
type DevicePollResult =
  | { readonly kind: 'pending' }
  | { readonly kind: 'slow-down' }
  | { readonly kind: 'transient'; readonly reason: string }
  | { readonly kind: 'approved'; readonly message: string }
  | { readonly kind: 'expired' | 'denied' | 'refused'; readonly reason: string };

const AwaitDeviceApprovalInputSchema = z.object({
  slotId: z.string().min(1),
  provider: z.string().min(1),
  providerConfig: z.unknown().optional(),
  loginId: z.string().min(1),
  startedAt: z.number().finite(),
  // Below the floor is clamped, not refused: a workflow started before the clamp may carry 0.
  intervalMs: z.number().finite().nonnegative(),
  deadline: z.number().finite(),
});

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
    // Clamped before any date is made of them: 0.0001 s is not a polling rate, 1e13 s not a date.
    expires_in: z.number({ error: 'is missing or not a number' }).transform((s) => clampExpiresIn(s, MAX_DEVICE_CODE_EXPIRES_IN_S)),
    interval: z.number({ error: 'is not a number' }).optional(),
  })
  .loose();

const failure = (type: string, message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, type);

/** A URL an operator is sent to: http(s) only (a `javascript:` link in a dashboard is an attack). */
function browserUrl(value: string | undefined): string | undefined {
  if (value === undefined || !URL.canParse(value)) return undefined;
  const url = new URL(value);
  return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : undefined;
}

function deviceSpec(provider: Provider): DeviceFlowLoginSpec {
  if (provider.login.kind !== 'device-flow') throw failure(FailureType.loginMisconfigured, `${provider.displayName} does not log in with the device flow`);
  return provider.login;
}

function checkedUrl(raw: string, what: string): URL {
  if (!URL.canParse(raw)) throw failure(FailureType.loginMisconfigured, `the ${what} is not a URL`);
  const url = new URL(raw);
  const problem = endpointUrlProblem(url);
  if (problem) throw failure(FailureType.loginMisconfigured, `refusing the ${what} ${url.origin}${url.pathname}: ${problem}`);
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
      throw failure(err.retryable ? FailureType.loginServerUnavailable : FailureType.loginMisconfigured, err.message);
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
    { ...LIMITS, allowedHosts: endpointAllowList(deps.env) },
    'device authorization endpoint',
  );
  if (!called.ok) throw failure(called.refused ? FailureType.loginMisconfigured : FailureType.loginServerUnavailable, `cannot ask for a device code: ${called.reason}`);
  const { status, json } = called.answer;
  const where = `${deviceEndpoint.origin}${deviceEndpoint.pathname}`;
  if (status < 200 || status >= 300) {
    const error = readOAuthError(json);
    const said = `HTTP ${status}${error ? ` ${error.code}${error.description ? `: ${error.description}` : ''}` : ''}`;
    if (status === 429 || status >= 500) throw failure(FailureType.loginServerUnavailable, `the device authorization endpoint ${where} answered ${said}; try again later`);
    if (error?.code === 'invalid_scope') {
      throw failure(FailureType.loginMisconfigured, `the OAuth server refused the scopes "${server.scope ?? ''}" for client ${server.clientId} (${said}); fix the slot's scopes`);
    }
    throw failure(
      FailureType.loginMisconfigured,
      `the OAuth server refused the device authorization request of client ${server.clientId} (${said}); ` +
        `check that the client exists and is allowed the device flow (grant ${DEVICE_GRANT})`,
    );
  }
  const parsed = DeviceAuthorization.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'} ${i.message}`).slice(0, 5);
    throw failure(FailureType.loginMisconfigured, `the device authorization endpoint ${where} answered HTTP ${status} without a usable device code: ${json === undefined ? 'the body is not JSON' : fields.join('; ')}`);
  }
  const answer = parsed.data;
  const url = browserUrl(answer.verification_uri ?? answer.verification_url);
  if (!url) throw failure(FailureType.loginMisconfigured, `the device authorization endpoint ${where} gave no http(s) verification_uri to show the operator`);
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
    intervalMs: pollIntervalMs(deps, answer.interval ?? DEFAULT_INTERVAL_S),
  };
}

/** The worker's floor between polls, checked once per use. */
function pollFloorMs(deps: DeviceLoginDeps): number {
  const floor = deps.minPollIntervalMs ?? DEFAULT_INTERVAL_S * 1000;
  if (!Number.isSafeInteger(floor) || floor < MIN_POLL_FLOOR_MS || floor > MAX_INTERVAL_S * 1000) {
    throw new RangeError(`minPollIntervalMs must be an integer from ${MIN_POLL_FLOOR_MS} to ${MAX_INTERVAL_S * 1000}, got ${floor}`);
  }
  return floor;
}

/** A server's `interval` (seconds) as the wait between polls: clamped to [floor, 60 s]; NaN counts as the floor. */
function pollIntervalMs(deps: DeviceLoginDeps, seconds: number): number {
  const floor = pollFloorMs(deps);
  const ms = Number.isNaN(seconds) ? floor : Math.round(seconds * 1000);
  return Math.min(Math.max(ms, floor), MAX_INTERVAL_S * 1000);
}

export function createDeviceLoginActivities(deps: DeviceLoginDeps) {
  const heartbeatMs = deps.heartbeatMs ?? 2000;
  const floorMs = pollFloorMs(deps);

  /**
   * Polls the token endpoint every `interval` until the operator approves or denies,
   * the code expires or `deadline` passes; stores the tokens on approval. One
   * activity for the whole wait: no history event per poll. Cancelling it stops
   * the polling at once (the cancellation is thrown) and stores nothing.
   */
  async function awaitDeviceApproval(rawInput: AwaitDeviceApprovalInput): Promise<DeviceApprovalResult> {
    const parsed = AwaitDeviceApprovalInputSchema.safeParse(rawInput);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
      throw failure(FailureType.loginMisconfigured, `invalid device login input: ${problems}`);
    }
    const input = parsed.data;
    const opening = await openSlot(deps, input);
    if (!opening.ok) throw failure(FailureType.loginMisconfigured, opening.problem);
    const slot = opening.slot;
    const ctx = Context.current();
    const spec = deviceSpec(slot.provider);
    // The server's interval plus every slow_down so far; a retried attempt carries its predecessor's on.
    // Clamped again here: the input comes from the workflow, the heartbeat from a previous attempt.
    let intervalMs = Math.min(Math.max(floorMs, input.intervalMs, resumedIntervalMs(ctx.info.heartbeatDetails) ?? 0), MAX_RESUMED_INTERVAL_MS);
    let waitMs = intervalMs;
    let lastError: string | undefined;
    const progress = (): DeviceApprovalProgress => ({ intervalMs, ...(lastError !== undefined ? { lastError } : {}) });

    const poll = async (): Promise<DeviceApprovalResult> => {
      for (;;) {
        const left = input.deadline - Date.now();
        // A sleep cut short to the deadline ends the wait: its timer may wake a millisecond before
        // `Date.now()` reaches the deadline, and a poll then would be one past it.
        const toDeadline = left <= waitMs;
        if (left > 0) await ctx.sleep(Math.min(waitMs, left));
        if (toDeadline || Date.now() >= input.deadline) {
          return { kind: 'timed-out', reason: `no operator approved the device within ${waited(input.deadline - input.startedAt)}; the code has expired` };
        }
        const polled = await pollOnce(deps, slot, spec, input, ctx.cancellationSignal);
        switch (polled.kind) {
          case 'pending':
            lastError = undefined;
            waitMs = intervalMs;
            break;
          case 'slow-down':
            lastError = undefined;
            intervalMs = Math.min(intervalMs + SLOW_DOWN_STEP_MS, MAX_RESUMED_INTERVAL_MS);
            waitMs = intervalMs;
            break;
          case 'transient':
            waitMs = Math.max(intervalMs, Math.min(waitMs * 2, MAX_BACKOFF_MS));
            lastError = `polling the token endpoint failed, next poll in ${Math.round(waitMs / 1000)} s: ${polled.reason}`;
            ctx.log.warn('device login: poll failed', { slotId: input.slotId, loginId: input.loginId, reason: polled.reason, nextPollMs: waitMs });
            break;
          default:
            return polled;
        }
      }
    };
    return withHeartbeat(poll(), heartbeatEvery(heartbeatMs), progress);
  }


  /** Forgets the device code of a login that ended (cancelled, timed out, failed). */
  async function discardDeviceLogin(input: { slotId: string; loginId: string }): Promise<{ discarded: boolean }> {
    await checkSlotRequest(deps, input);
    return { discarded: await removePending(slotHome(deps.slotsDir, input.slotId), input.loginId) };
  }
  return { awaitDeviceApproval, discardDeviceLogin };
}

/** Asks the token endpoint once whether the operator approved; stores the tokens when they come. */
async function pollOnce(deps: DeviceLoginDeps, slot: OpenSlot, spec: DeviceFlowLoginSpec, input: AwaitDeviceApprovalInput, signal: AbortSignal): Promise<DevicePollResult> {
  const { provider, home } = slot;
  const pending = await readPending(home);
  if (!pending || pending.loginId !== input.loginId) {
    // A retried attempt whose predecessor stored the tokens finds them instead.
    const credential = await readSecretFile(home, provider.credential.file);
    if (!pending && credential.ok && credential.stat.mtimeMs + 1000 >= input.startedAt) return { kind: 'approved', message: 'the device was approved' };
    throw failure(
      FailureType.loginSessionLost,
      pending ? `the device login was replaced by a newer one (${pending.loginId})` : 'the device login is no longer pending on the slot host (its state file is gone); a new login is needed',
    );
  }

  const called = await callOAuthEndpoint(
    new URL(pending.token_endpoint),
    { method: 'POST', encoding: 'form', body: { grant_type: DEVICE_GRANT, device_code: pending.device_code, client_id: pending.client_id } },
    { ...LIMITS, allowedHosts: endpointAllowList(deps.env) },
    'token endpoint',
    signal,
  );
  // A cancelled login stores nothing, whatever the server answered.
  throwIfCancelled();
  if (!called.ok) return called.refused ? { kind: 'refused', reason: called.reason } : { kind: 'transient', reason: called.reason };
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

/** The device login this slot waits for, or undefined; a state file that cannot be used loses the login. */
async function readPending(home: string): Promise<z.infer<typeof PendingLogin> | undefined> {
  const read = await readSecretFile(home, DEVICE_LOGIN_FILE, { requirePrivate: true });
  if (!read.ok) {
    if (read.reason === 'missing') return undefined;
    throw failure(FailureType.loginSessionLost, `the device login's state file cannot be used: ${read.message}`);
  }
  try {
    return PendingLogin.parse(JSON.parse(read.text));
  } catch {
    throw failure(FailureType.loginSessionLost, `the device login's state file ${DEVICE_LOGIN_FILE} is damaged; a new login is needed`);
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
  // Through directory descriptors, like every path in a slot home (never through a symlink).
  await removeSecretFile(home, DEVICE_LOGIN_FILE).catch(() => undefined);
  return true;
}

const waited = (ms: number): string => (ms < 120_000 ? `${Math.max(0, Math.round(ms / 1000))} s` : `${Math.round(ms / 60_000)} minutes`);

/** The interval a previous attempt heartbeated, if it left a usable one. */
function resumedIntervalMs(details: unknown): number | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const { intervalMs } = details as { intervalMs?: unknown };
  return typeof intervalMs === 'number' && Number.isFinite(intervalMs) && intervalMs > 0 ? intervalMs : undefined;
}
