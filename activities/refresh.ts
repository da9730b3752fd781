// Host-pinned refresh: re-read the slot's credential, ask the provider's token
// endpoint for new tokens when due, persist only what the answer carries, and
// rewrite the agents' env and status files. Nothing it returns, throws or logs holds a token.
// The spool (refresh-spool.ts), fixed-lifetime notices (expiry-notices.ts), the status
// file (slot-status.ts) and the schedule (common/refresh-schedule.ts) are their own modules.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import { CredentialStoreError, FailureType, ProviderEndpointError } from '../common/failures';
import { dueTime, nextRefreshAt, scheduleWith } from '../common/refresh-schedule';
import { SlotId } from '../common/schemas';
import { Secrets } from '../common/token-shapes';
import type { CredentialFacts, Provider, RefreshSchedule } from '../providers/provider';
import { callOAuthEndpoint, endpointAllowList, endpointUrlProblem } from '../providers/oauth-http';
import { cleanupStaleTempFiles, holdSlotHome, leftoversOf, readSecretFile } from './credential-store';
import { writeAgentEnv } from './agent-env';
import { takeHandedOverCredential } from './adoption';
import { heartbeatEvery, throwIfCancelled, withHeartbeat } from './heartbeat';
import { backUpFile, type CredentialBackup } from './credential-backup';
import type { BackupNote } from '../common/backup';
import { withSlotLock, type SlotLockHold } from './slot-lock';
import { providerPaused, ProviderPauses, sendTurn, waitingForProvider } from './provider-pause';
import type { SendSpacing } from '../common/pacing';
import { describeIssues, openSlot, type OpenSlot } from './open-slot';
import { credentialInvalid, misconfigured, transient } from './refresh-failures';
import { applySpool, keepableAnswer, RefreshSpool, REFRESH_SPOOL_FILE, REFRESH_SPOOL_RESERVATION, requestFingerprint } from './refresh-spool';
import { checkLifetime } from './expiry-notices';
import { createSlotStatusActivities, refuseTokenLike, SLOT_STATUS_FILE, writeStatusBestEffort } from './slot-status';

export interface RefreshActivityDeps {
  readonly slotsDir: string;
  /** The worker's environment: token endpoint overrides (`CLAUDE_TOKEN_URL` …). */
  readonly env: NodeJS.ProcessEnv;
  /** Whole request, answer body included. @default 30000 */
  readonly fetchTimeoutMs?: number;
  /** Larger answers are abandoned unread. @default 1 MiB */
  readonly maxBodyBytes?: number;
  /** How often a refresh heartbeats (at least three times per heartbeat timeout). @default 2000 */
  readonly heartbeatMs?: number;
  /** The worker's agent token service (`http://127.0.0.1:7311`), named in the agents' env and files; none when off. */
  readonly agentTokenServiceUrl?: string;
  /** Tests only: called right after the token answer is spooled, before the credential is written (a crash there). */
  readonly afterSpool?: () => void;
  /** Where every refreshed credential is written through, sealed (SLOT_BACKUP_URL); none: no backups. */
  readonly backup?: CredentialBackup;
  /** Bytes reserved for the spool before a token request is sent. @default 65536 */
  readonly spoolReserveBytes?: number;
  /** The slot lock's stale threshold (tests shorten it). @default 30000 */
  readonly lockStaleMs?: number;
  /** This host's name, said in a waiting slot's status. */
  readonly host?: string;
  /** Spaces this process's token requests by the provider's pace. */
  readonly spacing?: SendSpacing;
}

export interface RefreshCredentialInput {
  readonly slotId: string;
  readonly provider: string;
  /** The slot's provider configuration (providers configured per slot). */
  readonly providerConfig?: unknown;
  /** The workflow's clock (epoch ms): every freshness decision and every time written uses it. */
  readonly now: number;
  /** Refresh even when the credential is not due (an operator's `refreshNow`). */
  readonly force: boolean;
  /** Overrides of the provider's schedule. */
  readonly schedule?: Partial<RefreshSchedule>;
  /**
   * The slot's non-secret status: when given, `slot-status.json` is rewritten with it
   * after the refresh (`phase: 'active'` and the new facts merged in), or with
   * `lastError` and `attempt` after a transient failure. Refused whole (SlotStatusRefused,
   * before any request) when something in it looks like a token.
   */
  readonly status?: Record<string, unknown>;
  /** Back up even a credential that was not refreshed (the last write-through failed). */
  readonly backupDue?: boolean;
}

export interface RefreshResult {
  /** `fresh`: not due, no request was made. */
  readonly kind: 'refreshed' | 'fresh';
  readonly expiresAt?: number;
  readonly lastRefresh?: number;
  /** When the workflow should call again (jittered, at least a minute from `now`). */
  readonly nextRefreshAt: number;
  readonly account?: string;
  /** Which attempt of the activity this was (1 unless the retry policy retried a transient failure). */
  readonly attempts: number;
  /** For a credential that is never refreshed: a notice the operator must get now (it expires soon). Never a token. */
  readonly notice?: string;
  /** What the write-through to the backup store did; absent when the host has none or nothing was due. */
  readonly backup?: BackupNote;
}

const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

const Duration = z.number().finite().nonnegative();
const RefreshCredentialInputSchema = z.object({
  slotId: SlotId,
  provider: z.string().min(1),
  providerConfig: z.unknown().optional(),
  now: z.number().finite().positive(),
  force: z.boolean(),
  schedule: z.object({ beforeExpiryMs: Duration.optional(), maxAgeMs: Duration.optional(), jitterMs: Duration.optional() }).optional(),
  status: z.record(z.string(), z.unknown()).optional(),
  backupDue: z.boolean().optional(),
});
type RefreshInput = z.infer<typeof RefreshCredentialInputSchema>;

/** The workflow's input, checked whole; a bad one is RefreshMisconfigured naming its fields. */
function parseRefreshInput(raw: RefreshCredentialInput): RefreshInput {
  const input = RefreshCredentialInputSchema.safeParse(raw);
  if (input.success) return input.data;
  const problems = input.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
  throw ApplicationFailure.nonRetryable(`invalid refresh input: ${problems}`, FailureType.refreshMisconfigured);
}

type RefreshOutcome = Omit<RefreshResult, 'attempts'>;

export function createRefreshActivities(deps: RefreshActivityDeps) {
  const fetchTimeoutMs = deps.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxBodyBytes = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(fetchTimeoutMs) || fetchTimeoutMs <= 0) throw new RangeError(`fetchTimeoutMs must be a positive integer, got ${fetchTimeoutMs}`);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);

  const heartbeatMs = deps.heartbeatMs ?? 2000;
  const host: RefreshHost = {
    deps,
    fetchTimeoutMs,
    maxBodyBytes,
    spool: new RefreshSpool({
      ...(deps.spoolReserveBytes !== undefined ? { reserveBytes: deps.spoolReserveBytes } : {}),
      // A reservation younger than this may belong to an attempt whose request is still in flight.
      reservationLiveMs: fetchTimeoutMs + 30_000,
      ...(deps.afterSpool ? { afterSpool: deps.afterSpool } : {}),
    }),
    pauses: new ProviderPauses(deps.slotsDir),
  };
  const { writeSlotStatus } = createSlotStatusActivities(deps);

  /**
   * One refresh, retried by the workflow's retry policy on RefreshTransient. A
   * cancellation stops it only until the token request is sent: after that the
   * answer (perhaps the only valid refresh token) is persisted and returned.
   */
  async function refreshCredential(rawInput: RefreshCredentialInput): Promise<RefreshResult> {
    const input = parseRefreshInput(rawInput);
    const opening = await openSlot(deps, input);
    const { slotId, status } = input;
    if (status) refuseTokenLike(slotId, status);
    if (!opening.ok) throw misconfigured(opening.problem);
    const slot = opening.slot;
    const attempt = Context.current().info.attempt;
    // The home is opened once for the whole attempt: every file call below walks from it.
    return holdSlotHome(deps.slotsDir, slotId, async (home) => {
      try {
        return await refreshInHome(slot, input, home, attempt);
      } catch (err) {
        if (status && err instanceof ApplicationFailure && (err.type === FailureType.refreshTransient || err.type === FailureType.providerPaused || err.type === FailureType.providerRefusing)) {
          await writeStatusBestEffort(deps.slotsDir, slotId, { ...status, lastError: err.message, attempt, updatedAt: input.now });
        }
        throw err;
      }
    });
  }

  /** The attempt in the held home: the refresh under the slot's lock, the backup, the status file. */
  async function refreshInHome(slot: OpenSlot, input: RefreshInput, home: string, attempt: number): Promise<RefreshResult> {
    const { slotId, status } = input;
    // The workflow's clock when this attempt was scheduled: retries may come hours after the first.
    const info = Context.current().info;
    const now = input.now + Math.max(0, info.currentAttemptScheduledTimestampMs - info.scheduledTimestampMs);
    const refreshed = await withHeartbeat(
      withSlotLock(home, (hold) => refreshOnce(host, slot, { ...input, now }, hold), deps.lockStaleMs === undefined ? {} : { staleMs: deps.lockStaleMs }).catch((err: unknown) => {
        if (err instanceof CredentialStoreError) throw transient(err.message);
        throw err;
      }),
      heartbeatEvery(heartbeatMs),
    );
    // A backup store that is down never fails the refresh: the note says so, the next cycle tries again.
    const backup =
      deps.backup && (refreshed.kind === 'refreshed' || input.backupDue === true)
        ? await withHeartbeat(backUpFile(deps.backup, { slotId, provider: slot.provider, providerConfig: input.providerConfig }, home, input.now), heartbeatEvery(heartbeatMs))
        : undefined;
    const result: RefreshResult = { ...refreshed, attempts: attempt, ...(backup ? { backup } : {}) };
    if (status) {
      await writeStatusBestEffort(deps.slotsDir, slotId, {
        ...status,
        phase: 'active',
        ...(result.expiresAt !== undefined ? { expiresAt: result.expiresAt } : {}),
        ...(result.lastRefresh !== undefined ? { lastRefresh: result.lastRefresh } : {}),
        nextRefreshAt: result.nextRefreshAt,
        ...(result.account !== undefined ? { account: result.account } : {}),
        updatedAt: input.now,
      }, { tempsLookedFor: true });
    }
    return result;
  }

  return { refreshCredential, writeSlotStatus };
}

export type RefreshActivities = ReturnType<typeof createRefreshActivities>;

/** What the refreshes of one host share: its dependencies, the request limits, the spool and the provider pauses. */
interface RefreshHost {
  readonly deps: RefreshActivityDeps;
  readonly fetchTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly spool: RefreshSpool;
  readonly pauses: ProviderPauses;
}

/** Under the slot's lock: what an earlier attempt left first, then the credential as it stands, then (when due) the token request. */
async function refreshOnce(host: RefreshHost, slot: OpenSlot, input: RefreshInput, hold: SlotLockHold): Promise<RefreshOutcome> {
  const { now, force } = input;
  throwIfCancelled();
  const { provider } = slot;
  const schedule = scheduleWith(provider.refresh.schedule, input.schedule);
  const secrets = new Secrets();

  const recovered = await takeUpEarlierAttempt(host, slot, now, secrets);
  if (recovered) {
    await writeAgentEnv(provider, slot, recovered.parsed, secrets, host.deps.agentTokenServiceUrl);
    const facts = provider.credential.facts(recovered.parsed);
    const withRefresh: CredentialFacts = { ...facts, lastRefresh: facts.lastRefresh ?? recovered.receivedAt };
    Context.current().log.info('applied the token answer an earlier refresh attempt spooled', { slotId: slot.slotId, file: REFRESH_SPOOL_FILE });
    return outcome('refreshed', withRefresh, nextRefreshAt(dueTime(withRefresh, schedule), schedule, now));
  }

  const credential = await readCredential(slot, secrets);
  const facts = provider.credential.facts(credential);
  // A credential that lives a fixed time is only looked at: no token endpoint is ever called.
  if (provider.refresh.fixedLifetime) {
    await writeAgentEnv(provider, slot, credential, secrets, host.deps.agentTokenServiceUrl);
    const checked = await checkLifetime(provider, provider.refresh.fixedLifetime, slot, facts, now);
    return { ...outcome('fresh', facts, checked.nextCheckAt), ...(checked.notice ? { notice: checked.notice } : {}) };
  }
  const dueAt = dueTime(facts, schedule);
  // The workflow wakes at a jittered time up to jitterMs early: that counts as due.
  if (!force && dueAt !== undefined && now < dueAt - schedule.jitterMs) {
    // A refresh whose env-file write failed left the credential fresh: catch up here.
    await writeAgentEnv(provider, slot, credential, secrets, host.deps.agentTokenServiceUrl);
    return outcome('fresh', facts, nextRefreshAt(dueAt, schedule, now));
  }

  const written = await exchange(host, slot, credential, secrets, now, hold);
  await hold.verify();
  await writeAgentEnv(provider, slot, written.parsed, secrets, host.deps.agentTokenServiceUrl);
  const refreshed = provider.credential.facts(written.parsed);
  const withRefresh: CredentialFacts = { ...refreshed, lastRefresh: refreshed.lastRefresh ?? now };
  return outcome('refreshed', withRefresh, nextRefreshAt(dueTime(withRefresh, schedule), schedule, now));
}

/**
 * What earlier attempts and the operator left in the home: stale temp files go, a spool
 * or reservation is recovered, a handed-over credential is taken in, and a rotation an
 * earlier attempt received but did not store is applied (its refresh token is the live one).
 */
async function takeUpEarlierAttempt(host: RefreshHost, slot: OpenSlot, now: number, secrets: Secrets): Promise<{ parsed: unknown; receivedAt: number } | undefined> {
  const { provider, slotId } = slot;
  const file = provider.credential.file;
  // One listing of each directory first: the steps below nearly always find nothing, and run only where something is.
  const left = await leftoversOf(slot.home, [file, provider.agent.envFile, SLOT_STATUS_FILE, REFRESH_SPOOL_FILE, REFRESH_SPOOL_RESERVATION]);
  for (const written of [file, provider.agent.envFile, SLOT_STATUS_FILE]) {
    if (left(written).temps) await cleanupStaleTempFiles(slot.home, written).catch(() => undefined);
  }
  const spoolLeft = [REFRESH_SPOOL_FILE, REFRESH_SPOOL_RESERVATION].some((name) => left(name).exists || left(name).temps);
  if (spoolLeft) await host.spool.recover(slot.home);

  // A credential an operator handed over on this host (slotctl provision --adopt): it becomes the slot's file.
  const adoption = await takeHandedOverCredential(host.deps.slotsDir, slot, provider, now);
  if (adoption.kind === 'adopted') Context.current().log.info('took the credential handed over on this host into the slot', { slotId, file });
  else if (adoption.kind === 'discarded') Context.current().log.warn('discarded a handed-over credential', { slotId, reason: adoption.reason });

  if (!spoolLeft) return undefined;
  return applySpool(provider, slot.home, secrets, (reason) =>
    Context.current().log.warn('discarded a stale refresh spool', { slotId, file: REFRESH_SPOOL_FILE, reason }),
  );
}

/**
 * The token request and its answer, stored through the host.spool. Until the request is
 * sent a cancellation, a lost lock or a provider pause stops it with the old token
 * unspent; after, whatever fails, the answer is kept.
 */
async function exchange(host: RefreshHost, slot: OpenSlot, credential: unknown, secrets: Secrets, now: number, hold: SlotLockHold): Promise<{ parsed: unknown }> {
  const { provider, slotId } = slot;
  const endpoint = await endpointOf(provider, host.deps.env);
  const request = provider.refresh.request(credential);
  // The provider asked this host to wait (a 429 to any slot): nothing is sent until then.
  const paused = await host.pauses.current(provider.name, now);
  if (paused) throw providerPaused(provider.displayName, host.deps.host, paused, now);
  // Room for the answer first: a disk that cannot hold it fails here, with the old token unspent.
  hold.throwIfLost();
  const reservation = await host.spool.reserve(slot.home);
  try {
    // An answer renamed into place by an attempt that lost the lock to us: apply it, never spend its presented token.
    if ((await readSecretFile(slot.home, REFRESH_SPOOL_FILE)).ok) {
      throw transient(`a token answer arrived in ${REFRESH_SPOOL_FILE} during this attempt; nothing was sent, the next attempt applies it`);
    }
    await sendTurn(host.deps.spacing, provider.name);
    // The last moment a cancellation (or a lost lock) is obeyed: from here the refresh token may be spent.
    throwIfCancelled();
    await hold.verify();
    if (!(await reservation.held())) throw transient(`${REFRESH_SPOOL_RESERVATION} was removed or replaced before the request; nothing was sent`);
    const called = await callOAuthEndpoint(endpoint, { method: 'POST', ...request }, { fetchTimeoutMs: host.fetchTimeoutMs, maxBodyBytes: host.maxBodyBytes, allowedHosts: endpointAllowList(host.deps.env) });
    if (!called.ok) throw called.refused ? misconfigured(called.reason) : transient(secrets.scrub(called.reason));
    const verdict = provider.refresh.classify(called.answer);
    const details = [{ provider: provider.name, httpStatus: called.answer.status }];
    const refusing = await answeredForRate(host.pauses, provider, called.answer, now);
    if (refusing) {
      throw ApplicationFailure.create({
        message: `${provider.displayName} is refusing refresh requests (HTTP 429${verdict.kind !== 'success' ? `: ${secrets.scrub(verdict.reason)}` : ''}); ${waitingForProvider(provider.displayName, host.deps.host, refusing, now).replace(/^waiting for the provider: [^;]*; /, '')}`,
        type: FailureType.providerRefusing,
        nonRetryable: false,
        details,
        nextRetryDelay: Math.max(refusing.until - now, 1000),
      });
    }
    if (verdict.kind === 'permanent') {
      throw ApplicationFailure.create({ message: secrets.scrub(verdict.reason), type: FailureType.refreshPermanent, nonRetryable: true, details });
    }
    if (verdict.kind === 'transient') throw transient(secrets.scrub(verdict.reason), verdict.retryAfterMs, details);

    secrets.addLeaves(verdict.tokens);
    // From here the answer holds the only live refresh token: whatever fails, it is kept.
    const tokens = keepableAnswer(verdict.tokens, (field) =>
      Context.current().log.warn('dropped a token answer field that cannot be stored', { slotId, field: field.slice(0, 64) }),
    );
    return await host.spool.store(provider, slot.home, tokens, now, requestFingerprint(request.body), secrets, reservation, hold);
  } finally {
    await reservation.release();
  }
}


/** The token endpoint: https, or http on loopback, without credentials in it. */
async function endpointOf(provider: Provider, env: NodeJS.ProcessEnv): Promise<URL> {
  let raw: string;
  try {
    raw = await provider.refresh.endpoint(env);
  } catch (err) {
    // Discovery: an unreachable issuer passes, a wrong document needs an operator.
    if (err instanceof ProviderEndpointError) throw err.retryable ? transient(err.message) : misconfigured(err.message);
    throw err;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not quoted: an override may carry credentials.
    throw misconfigured(`the ${provider.displayName} token endpoint is not a valid URL; check its override variable`);
  }
  if (url.username !== '' || url.password !== '') throw misconfigured(`the ${provider.displayName} token endpoint must not contain credentials`);
  // The same policy as every other endpoint (endpointUrlProblem), said for a refresh token.
  if (endpointUrlProblem(url) !== undefined) {
    throw misconfigured(`refusing to send a ${provider.displayName} refresh token to ${url.protocol}//${url.host}: only https (or http on loopback) is allowed`);
  }
  return url;
}

function outcome(kind: RefreshResult['kind'], facts: CredentialFacts, next: number): RefreshOutcome {
  return {
    kind,
    ...(facts.expiresAt !== undefined ? { expiresAt: facts.expiresAt } : {}),
    ...(facts.lastRefresh !== undefined ? { lastRefresh: facts.lastRefresh } : {}),
    nextRefreshAt: next,
    ...(facts.account !== undefined ? { account: facts.account } : {}),
  };
}

/**
 * A 429, or any answer with Retry-After, pauses the provider on the whole host (the pause in
 * force is returned for a 429); any other answer resets the growing pause.
 */
async function answeredForRate(pauses: ProviderPauses, provider: Provider, answer: { status: number; retryAfterMs?: number }, now: number): Promise<Awaited<ReturnType<ProviderPauses['pause']>> | undefined> {
  if (answer.status === 429) return pauses.pause(provider.name, answer, now);
  if (answer.retryAfterMs !== undefined && answer.status >= 400) await pauses.pause(provider.name, answer, now);
  else await pauses.answered(provider.name, now);
  return undefined;
}

/** The credential to refresh, parsed; its strings join `secrets` before any message is built from it. */
async function readCredential(slot: OpenSlot, secrets: Secrets): Promise<unknown> {
  const { provider } = slot;
  const file = provider.credential.file;
  const read = await slot.readCredential();
  switch (read.kind) {
    case 'parsed':
      secrets.addLeaves(read.json);
      return read.credential;
    case 'unread':
      throw credentialInvalid(
        read.reason === 'missing'
          ? `no ${provider.displayName} credential to refresh: ${read.message}; the slot needs a login`
          : `the ${provider.displayName} credential cannot be read: ${read.message}`,
      );
    case 'not-json':
      throw credentialInvalid(`${file} in slot home is not valid JSON (${read.stat.size} bytes); it is left untouched`);
    case 'invalid':
      secrets.addLeaves(read.json);
      throw credentialInvalid(secrets.scrub(`${file} does not look like a ${provider.displayName} credential: ${describeIssues(read.issues)}`));
  }
}
