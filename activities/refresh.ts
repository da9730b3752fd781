// Host-pinned refresh: re-read the slot's credential, ask the provider's token
// endpoint for new tokens when due, persist only what the answer carries, and
// rewrite the agents' env and status files. Nothing it returns, throws or logs holds a token.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { z } from 'zod';
import { CredentialStoreError, EnvFileError, FailureType, UnusableTokenAnswerError, ProviderConfigError, ProviderEndpointError, UnknownProviderError } from '../common/failures';
import { SlotId } from '../common/schemas';
import { getProvider } from '../providers';
import type { CredentialFacts, Provider, RefreshSchedule, SlotPaths, TokenAnswer } from '../providers/provider';
import { callOAuthEndpoint, endpointAllowList } from '../providers/oauth-http';
import {
  cleanupStaleTempFiles,
  ensureSlotHome,
  readSecretFile,
  recoverTempFile,
  removeSecretFile,
  reserveSecretFile,
  resolveInSlot,
  slotHome,
  updateJsonFileAtomic,
  writeSecretFileAtomic,
  type SecretFileReservation,
} from './credential-store';
import { hostAgentPlace, writeAgentFiles } from './agent-files';
import { takeHandedOverCredential } from './adoption';
import { heartbeatEvery, throwIfCancelled, withHeartbeat } from './heartbeat';
import { checkSlotRequest } from './slot-record';
import { backUpFile, type CredentialBackup } from './credential-backup';
import type { BackupNote } from '../common/backup';
import { withSlotLock, type SlotLockHold } from './slot-lock';
import { providerPaused, ProviderPauses, sendTurn, waitingForProvider } from './provider-pause';
import type { SendSpacing } from '../common/pacing';

/** The status file beside the credential, for agents and monitoring. */
export const SLOT_STATUS_FILE = 'slot-status.json';
/**
 * The last token answer, kept (0600, fsynced) from the moment it arrives until the
 * credential file holds it: after a crash, a full disk or a schema problem its
 * refresh token is the live one, and the next attempt applies it before spending any.
 */
export const REFRESH_SPOOL_FILE = '.refresh-spool.json';
/**
 * The spool's space, reserved (written, fsynced) before a token request is sent: a full
 * disk fails the attempt before the old refresh token is spent. Created exclusively, it
 * also fences the request: an attempt that finds another's reservation younger than
 * the request could live does not send (its token may be in flight).
 */
export const REFRESH_SPOOL_RESERVATION = '.refresh-spool.reserved';
/** Real answers are 1–4 KiB; a larger spool grows the reserved file (which needs space then). */
const DEFAULT_SPOOL_RESERVE_BYTES = 64 * 1024;
/** Tries at writing the rotated tokens (spool, then credential) within one attempt, a second apart. */
const STORE_TRIES = 3;

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

export interface WriteSlotStatusInput {
  readonly slotId: string;
  readonly status: Record<string, unknown>;
}

const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** A refresh is never scheduled sooner than this, so a credential that stays due cannot spin. */
const MIN_NEXT_REFRESH_MS = 60_000;

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

export function createRefreshActivities(deps: RefreshActivityDeps) {
  const fetchTimeoutMs = deps.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const maxBodyBytes = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(fetchTimeoutMs) || fetchTimeoutMs <= 0) throw new RangeError(`fetchTimeoutMs must be a positive integer, got ${fetchTimeoutMs}`);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);

  const heartbeatMs = deps.heartbeatMs ?? 2000;
  const spoolReserveBytes = deps.spoolReserveBytes ?? DEFAULT_SPOOL_RESERVE_BYTES;
  // A reservation younger than this may belong to an attempt whose request is still in flight.
  const reservationLiveMs = fetchTimeoutMs + 30_000;
  const pauses = new ProviderPauses(deps.slotsDir);

  /**
   * One refresh, retried by the workflow's retry policy on RefreshTransient. A
   * cancellation stops it only until the token request is sent: after that the
   * answer (perhaps the only valid refresh token) is persisted and returned.
   */
  async function refreshCredential(rawInput: RefreshCredentialInput): Promise<RefreshResult> {
    const input = RefreshCredentialInputSchema.safeParse(rawInput);
    if (!input.success) {
      const problems = input.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ');
      throw ApplicationFailure.nonRetryable(`invalid refresh input: ${problems}`, FailureType.refreshMisconfigured);
    }
    await checkSlotRequest(deps, input.data);
    const { slotId, status } = input.data;
    if (status) refuseTokenLike(slotId, status);
    const attempt = Context.current().info.attempt;
    try {
      // The workflow's clock when this attempt was scheduled: retries may come hours after the first.
      const info = Context.current().info;
      const now = input.data.now + Math.max(0, info.currentAttemptScheduledTimestampMs - info.scheduledTimestampMs);
      const home = await ensureSlotHome(deps.slotsDir, slotId);
      const refreshed = await withHeartbeat(
        withSlotLock(home, (hold) => refreshOnce({ ...input.data, now }, hold), deps.lockStaleMs === undefined ? {} : { staleMs: deps.lockStaleMs }).catch((err: unknown) => {
          if (err instanceof CredentialStoreError) throw transient(err.message);
          throw err;
        }),
        heartbeatEvery(heartbeatMs),
      );
      // A backup store that is down never fails the refresh: the note says so, the next cycle tries again.
      const backup =
        deps.backup && (refreshed.kind === 'refreshed' || input.data.backupDue === true)
          ? await withHeartbeat(backUpFile(deps.backup, { slotId, provider: providerOrFail(input.data.provider, input.data.providerConfig), providerConfig: input.data.providerConfig }, home, input.data.now), heartbeatEvery(heartbeatMs))
          : undefined;
      const result: RefreshResult = { ...refreshed, attempts: attempt, ...(backup ? { backup } : {}) };
      if (status) {
        await writeStatusBestEffort(slotId, {
          ...status,
          phase: 'active',
          ...(result.expiresAt !== undefined ? { expiresAt: result.expiresAt } : {}),
          ...(result.lastRefresh !== undefined ? { lastRefresh: result.lastRefresh } : {}),
          nextRefreshAt: result.nextRefreshAt,
          ...(result.account !== undefined ? { account: result.account } : {}),
          updatedAt: input.data.now,
        });
      }
      return result;
    } catch (err) {
      if (status && err instanceof ApplicationFailure && (err.type === FailureType.refreshTransient || err.type === FailureType.providerPaused || err.type === FailureType.providerRefusing)) {
        await writeStatusBestEffort(slotId, { ...status, lastError: err.message, attempt, updatedAt: input.data.now });
      }
      throw err;
    }
  }

  async function refreshOnce(input: z.infer<typeof RefreshCredentialInputSchema>, hold: SlotLockHold): Promise<Omit<RefreshResult, 'attempts'>> {
    const { slotId, now, force } = input;
    throwIfCancelled();
    const provider = providerOrFail(input.provider, input.providerConfig);
    const schedule = scheduleOf(provider, input.schedule);
    const slot: SlotPaths = { slotId, home: slotHome(deps.slotsDir, slotId) };
    const file = provider.credential.file;
    const secrets = new Secrets();

    await cleanupStaleTempFiles(slot.home, file).catch(() => undefined);
    await cleanupStaleTempFiles(slot.home, provider.agent.envFile).catch(() => undefined);
    // A temp spool fsynced before a crash may hold the only live refresh token: recovered, never deleted.
    await recoverTempFile(slot.home, REFRESH_SPOOL_FILE, isSpoolDocument).catch(() => false);
    await cleanupStaleTempFiles(slot.home, REFRESH_SPOOL_FILE, { keep: isSpoolDocument }).catch(() => undefined);
    await recoverReservation(slot.home);

    // A credential an operator handed over on this host (slotctl provision --adopt): it becomes the slot's file.
    const adoption = await takeHandedOverCredential(deps.slotsDir, slot, provider, now);
    if (adoption.kind === 'adopted') Context.current().log.info('took the credential handed over on this host into the slot', { slotId, file });
    else if (adoption.kind === 'discarded') Context.current().log.warn('discarded a handed-over credential', { slotId, reason: adoption.reason });

    // A rotation an earlier attempt received but did not store: its refresh token is the live one.
    const recovered = await applySpool(provider, slot.home, secrets, (reason) =>
      Context.current().log.warn('discarded a stale refresh spool', { slotId, file: REFRESH_SPOOL_FILE, reason }),
    );
    if (recovered) {
      await writeAgentEnv(provider, slot, recovered.parsed, secrets, deps.agentTokenServiceUrl);
      const facts = provider.credential.facts(recovered.parsed);
      const withRefresh: CredentialFacts = { ...facts, lastRefresh: facts.lastRefresh ?? recovered.receivedAt };
      Context.current().log.info('applied the token answer an earlier refresh attempt spooled', { slotId, file: REFRESH_SPOOL_FILE });
      return result('refreshed', withRefresh, nextRefreshAt(dueTime(withRefresh, schedule), schedule, now));
    }

    const credential = await readCredential(provider, slot.home, secrets);
    const facts = provider.credential.facts(credential.parsed);
    // A credential that lives a fixed time is only looked at: no token endpoint is ever called.
    if (provider.refresh.fixedLifetime) {
      await writeAgentEnv(provider, slot, credential.parsed, secrets, deps.agentTokenServiceUrl);
      return checkLifetime(provider, provider.refresh.fixedLifetime, slot, facts, now);
    }
    const dueAt = dueTime(facts, schedule);
    // The workflow wakes at a jittered time up to jitterMs early: that counts as due.
    if (!force && dueAt !== undefined && now < dueAt - schedule.jitterMs) {
      // A refresh whose env-file write failed left the credential fresh: catch up here.
      await writeAgentEnv(provider, slot, credential.parsed, secrets, deps.agentTokenServiceUrl);
      return result('fresh', facts, nextRefreshAt(dueAt, schedule, now));
    }

    const endpoint = await endpointOf(provider, deps.env);
    const request = provider.refresh.request(credential.parsed);
    // The provider asked this host to wait (a 429 to any slot): nothing is sent until then.
    const paused = await pauses.current(provider.name, now);
    if (paused) throw providerPaused(provider.displayName, deps.host, paused, now);
    // Room for the answer first: a disk that cannot hold it fails here, with the old token unspent.
    hold.throwIfLost();
    const reservation = await reserveSpool(slot.home);
    let written: { parsed: unknown };
    try {
      // An answer renamed into place by an attempt that lost the lock to us: apply it, never spend its presented token.
      if ((await readSecretFile(slot.home, REFRESH_SPOOL_FILE)).ok) {
        throw transient(`a token answer arrived in ${REFRESH_SPOOL_FILE} during this attempt; nothing was sent, the next attempt applies it`);
      }
      await sendTurn(deps.spacing, provider.name);
      // The last moment a cancellation (or a lost lock) is obeyed: from here the refresh token may be spent.
      throwIfCancelled();
      await hold.verify();
      if (!(await reservation.held())) throw transient(`${REFRESH_SPOOL_RESERVATION} was removed or replaced before the request; nothing was sent`);
      const called = await callOAuthEndpoint(endpoint, { method: 'POST', ...request }, { fetchTimeoutMs, maxBodyBytes, allowedHosts: endpointAllowList(deps.env) });
      if (!called.ok) throw called.refused ? misconfigured(called.reason) : transient(secrets.scrub(called.reason));
      const verdict = provider.refresh.classify(called.answer);
      const details = [{ provider: provider.name, httpStatus: called.answer.status }];
      const refusing = await answeredForRate(pauses, provider, called.answer, now);
      if (refusing) {
        throw ApplicationFailure.create({
          message: `${provider.displayName} is refusing refresh requests (HTTP 429${verdict.kind !== 'success' ? `: ${secrets.scrub(verdict.reason)}` : ''}); ${waitingForProvider(provider.displayName, deps.host, refusing, now).replace(/^waiting for the provider: [^;]*; /, '')}`,
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
      written = await storeRotation(provider, slot.home, tokens, now, requestFingerprint(request.body), secrets, reservation, hold);
    } finally {
      await reservation.release();
    }
    await hold.verify();
    await writeAgentEnv(provider, slot, written.parsed, secrets, deps.agentTokenServiceUrl);
    const refreshed = provider.credential.facts(written.parsed);
    const withRefresh: CredentialFacts = { ...refreshed, lastRefresh: refreshed.lastRefresh ?? now };
    return result('refreshed', withRefresh, nextRefreshAt(dueTime(withRefresh, schedule), schedule, now));
  }

  /**
   * Spool, then credential, then drop the spool. A failing write (a full disk) is tried
   * again within the attempt while the answer is in memory; when nothing could be
   * stored the failure says the rotated token is lost, since the old one is probably spent.
   */
  async function storeRotation(
    provider: Provider,
    home: string,
    tokens: TokenAnswer,
    now: number,
    presented: string,
    secrets: Secrets,
    reservation: SecretFileReservation,
    hold: SlotLockHold,
  ): Promise<{ parsed: unknown }> {
    let spooled = false;
    let reservationUsable = true;
    let lastProblem = '';
    const text = spoolText(provider, tokens, now, presented);
    for (let tryNo = 1; tryNo <= STORE_TRIES; tryNo++) {
      if (!spooled) {
        try {
          // Into the space reserved before the request (no new blocks), then renamed into place.
          if (reservationUsable) {
            try {
              await reservation.fill(text);
              await reservation.commitAs(REFRESH_SPOOL_FILE);
            } catch (err) {
              reservationUsable = false;
              throw err;
            }
          } else {
            await writeSecretFileAtomic(home, REFRESH_SPOOL_FILE, text);
          }
          spooled = true;
          deps.afterSpool?.();
        } catch (err) {
          if (!(err instanceof CredentialStoreError)) throw err;
          lastProblem = `the spool ${REFRESH_SPOOL_FILE} could not be written: ${err.message}`;
        }
      }
      // The lock is gone (removed, or taken over): the credential is not written; the spool keeps the answer for the next holder.
      if (spooled && (await hold.verify().then(() => false, () => true))) {
        throw transient(`the slot's refresh lock was lost during the refresh; the credential was not written, ${SPOOL_KEPT}`);
      }
      const written = await persistOnce(provider, home, tokens, now);
      if (written.ok) {
        // Left behind, it holds what the credential now holds: the next attempt applies it again and retries the removal.
        if (spooled) await removeSpool(home);
        return { parsed: written.parsed };
      }
      // A schema problem does not pass with time: the spool keeps the answer for a fixed provider.
      if (written.kind === 'unusable' && spooled) throw transient(secrets.scrub(`${written.message}; ${SPOOL_KEPT}`));
      lastProblem = written.message;
      if (tryNo < STORE_TRIES) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (spooled) throw transient(secrets.scrub(`the refreshed ${provider.displayName} credential could not be written: ${lastProblem}; ${SPOOL_KEPT}`));
    throw transient(
      secrets.scrub(
        `the rotated ${provider.displayName} refresh token could not be stored anywhere (${lastProblem}); ` +
          'the file keeps the previous refresh token, which the server has probably spent: free space and expect to need a new login',
      ),
    );
  }

  /** Reserves the spool's space; a disk without room fails the attempt while the old token is unspent. */
  async function reserveSpool(home: string): Promise<SecretFileReservation> {
    try {
      return await reserveSecretFile(home, REFRESH_SPOOL_RESERVATION, spoolReserveBytes);
    } catch (err) {
      if (!(err instanceof CredentialStoreError)) throw err;
      if (err.code === 'reserved') {
        throw transient(`another refresh attempt of this slot holds ${REFRESH_SPOOL_RESERVATION} (its token request may be in flight); nothing was sent`);
      }
      throw transient(`no room to keep a token answer (${err.message}); nothing was sent, the refresh token is unspent: free space on the slot's volume`);
    }
  }

  /**
   * A reservation left by an earlier attempt: with a whole answer in it (a crash after
   * the fill, before the rename) it becomes the spool; blank and young, its attempt may
   * still have a request in flight (the lock was lost to us), so nothing is sent; blank
   * or torn and older than any request lives, it is removed.
   */
  async function recoverReservation(home: string): Promise<void> {
    const read = await readSecretFile(home, REFRESH_SPOOL_RESERVATION, { requirePrivate: true });
    if (!read.ok) {
      if (read.reason === 'missing') return;
      throw transient(`${REFRESH_SPOOL_RESERVATION} cannot be read (${read.message}); no refresh token is spent until it is fixed or removed`);
    }
    if (isSpoolDocument(read.text)) {
      // The spool first (an older answer): this one is recovered by the next attempt.
      if ((await readSecretFile(home, REFRESH_SPOOL_FILE)).ok) return;
      try {
        await writeSecretFileAtomic(home, REFRESH_SPOOL_FILE, `${read.text.trimEnd()}\n`);
        await removeSecretFile(home, REFRESH_SPOOL_RESERVATION);
      } catch (err) {
        if (err instanceof CredentialStoreError) throw transient(`the token answer in ${REFRESH_SPOOL_RESERVATION} could not be moved to ${REFRESH_SPOOL_FILE}: ${err.message}; it is kept`);
        throw err;
      }
      return;
    }
    const age = Date.now() - read.stat.mtimeMs;
    if (age < reservationLiveMs) {
      throw transient(`another refresh attempt of this slot reserved ${REFRESH_SPOOL_RESERVATION} ${Math.round(age / 1000)} s ago and may have its token request in flight; nothing was sent`);
    }
    await removeSecretFile(home, REFRESH_SPOOL_RESERVATION).catch(() => false);
  }

  /** The status file is a convenience for agents: failing to write it never fails the refresh. */
  async function writeStatusBestEffort(slotId: string, status: Record<string, unknown>): Promise<void> {
    try {
      if (tokenLikeField(status, 'status') !== undefined) throw new Error('a field looks like a token');
      await writeStatus(slotId, status);
    } catch (err) {
      Context.current().log.warn('could not write the slot status file', { slotId, file: SLOT_STATUS_FILE, reason: err instanceof Error ? err.message : String(err) });
    }
  }

  async function writeStatus(slotId: string, status: Record<string, unknown>): Promise<void> {
    const home = await ensureSlotHome(deps.slotsDir, slotId);
    await cleanupStaleTempFiles(home, SLOT_STATUS_FILE).catch(() => undefined);
    await writeSecretFileAtomic(home, SLOT_STATUS_FILE, `${JSON.stringify(status, null, 2)}\n`);
  }

  /** Writes `slot-status.json` in the slot home, refusing anything that looks like a token. */
  async function writeSlotStatus(input: WriteSlotStatusInput): Promise<{ file: string }> {
    await checkSlotRequest(deps, input);
    refuseTokenLike(input.slotId, input.status);
    await writeStatus(input.slotId, input.status);
    return { file: SLOT_STATUS_FILE };
  }

  return { refreshCredential, writeSlotStatus };
}

export type RefreshActivities = ReturnType<typeof createRefreshActivities>;

/** Which expiry notices were given for which expiry: a new token (another `expiresAt`) starts over. */
export const EXPIRY_NOTICES_FILE = '.expiry-notices.json';
const ExpiryNotices = z.object({ expiresAt: z.number(), sent: z.array(z.number()) });
const DAY_MS = 24 * 60 * 60_000;
const HOUR_MS = 60 * 60_000;

const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;
const timeLeft = (ms: number): string =>
  ms >= DAY_MS ? plural(Math.round(ms / DAY_MS), 'day') : ms >= HOUR_MS ? plural(Math.round(ms / HOUR_MS), 'hour') : 'less than an hour';

/**
 * A fixed-lifetime credential: past its expiry a permanent failure (a login is needed);
 * inside a notice window not yet announced, a notice (once per window, recorded on the
 * host); the next check at the next window or at expiry.
 */
async function checkLifetime(
  provider: Provider,
  lifetime: NonNullable<Provider['refresh']['fixedLifetime']>,
  slot: SlotPaths,
  facts: CredentialFacts,
  now: number,
): Promise<Omit<RefreshResult, 'attempts'>> {
  const expiresAt = facts.expiresAt;
  if (expiresAt === undefined) return result('fresh', facts, now + DAY_MS);
  if (now >= expiresAt) {
    throw ApplicationFailure.create({
      message: `the ${provider.displayName} token expired at ${new Date(expiresAt).toISOString()}; it cannot be refreshed, a new login is needed`,
      type: FailureType.refreshPermanent,
      nonRetryable: true,
      details: [{ provider: provider.name, expiresAt }],
    });
  }
  const windows = [...lifetime.noticesBeforeExpiryMs].sort((a, b) => b - a);
  const entered = windows.filter((before) => now >= expiresAt - before);
  const read = await readSecretFile(slot.home, EXPIRY_NOTICES_FILE);
  let recorded: ReturnType<typeof ExpiryNotices.safeParse> | undefined;
  try {
    recorded = read.ok ? ExpiryNotices.safeParse(JSON.parse(read.text)) : undefined;
  } catch {
    recorded = undefined; // torn: the notices are given again, which is better than never
  }
  const sent = recorded?.success && recorded.data.expiresAt === expiresAt ? recorded.data.sent : [];
  const current = entered.at(-1);
  let notice: string | undefined;
  if (current !== undefined && !sent.includes(current)) {
    notice =
      `the ${provider.displayName} token of slot ${slot.slotId} expires in ${timeLeft(expiresAt - now)} ` +
      `(${new Date(expiresAt).toISOString()}) and cannot be refreshed: log in again before then with \`slotctl relogin ${slot.slotId}\``;
    // Every window already entered counts as announced: a 30-day notice never follows a 7-day one.
    await writeSecretFileAtomic(slot.home, EXPIRY_NOTICES_FILE, `${JSON.stringify({ expiresAt, sent: [...new Set([...sent, ...entered])] })}\n`);
  }
  const upcoming = windows.map((before) => expiresAt - before).filter((at) => at > now);
  const next = Math.max(Math.min(...upcoming, expiresAt), now + MIN_NEXT_REFRESH_MS);
  return { ...result('fresh', facts, next), ...(notice ? { notice } : {}) };
}

const transient = (message: string, retryAfterMs?: number, details?: unknown[]): ApplicationFailure =>
  ApplicationFailure.create({
    message,
    type: FailureType.refreshTransient,
    nonRetryable: false,
    ...(details ? { details } : {}),
    ...(retryAfterMs !== undefined ? { nextRetryDelay: retryAfterMs } : {}),
  });

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

const misconfigured = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, FailureType.refreshMisconfigured);

const credentialInvalid = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, FailureType.credentialInvalid);

/** A status that looks like it holds a token is refused whole: status files are for anyone on the host to read. */
function refuseTokenLike(slotId: string, status: Record<string, unknown>): void {
  const found = tokenLikeField(status, 'status');
  if (found !== undefined) {
    throw ApplicationFailure.nonRetryable(
      `refusing to write the status of slot ${slotId}: ${found} looks like a token, and status files never hold tokens`,
      FailureType.slotStatusRefused,
    );
  }
}

function providerOrFail(name: string, config: unknown): Provider {
  try {
    return getProvider(name, config);
  } catch (err) {
    if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) throw misconfigured(err.message);
    throw err;
  }
}

function scheduleOf(provider: Provider, overrides: Partial<RefreshSchedule> | undefined): RefreshSchedule {
  const given = Object.fromEntries(Object.entries(overrides ?? {}).filter(([, value]) => value !== undefined));
  return { ...provider.refresh.schedule, ...given };
}

/** Field names and zod's wording, never values: a credential's values are tokens. */
const describeIssues = (issues: readonly z.core.$ZodIssue[]): string =>
  issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');

async function readCredential(provider: Provider, home: string, secrets: Secrets): Promise<{ parsed: unknown }> {
  const file = provider.credential.file;
  const read = await readSecretFile(home, file);
  if (!read.ok) {
    throw credentialInvalid(
      read.reason === 'missing'
        ? `no ${provider.displayName} credential to refresh: ${read.message}; the slot needs a login`
        : `the ${provider.displayName} credential cannot be read: ${read.message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(read.text);
  } catch {
    // No cause: V8's SyntaxError quotes the text around the error, which may be a token.
    throw credentialInvalid(`${file} in slot home is not valid JSON (${read.stat.size} bytes); it is left untouched`);
  }
  secrets.addLeaves(json);
  const parsed = provider.credential.schema.safeParse(json);
  if (!parsed.success) {
    throw credentialInvalid(secrets.scrub(`${file} does not look like a ${provider.displayName} credential: ${describeIssues(parsed.error.issues)}`));
  }
  return { parsed: parsed.data };
}


const SPOOL_KEPT = `the answer is kept in ${REFRESH_SPOOL_FILE} (its refresh token is the live one) and is applied before any other refresh of this slot`;

/** `presented`: the fingerprint of the request that was answered, to tell whether the credential still holds the spent token. */
const SpoolDocument = z.object({ provider: z.string(), receivedAt: z.number().finite().positive(), presented: z.string(), tokens: z.unknown() });

function spoolText(provider: Provider, tokens: TokenAnswer, receivedAt: number, presented: string): string {
  return `${JSON.stringify({ provider: provider.name, receivedAt, presented, tokens })}\n`;
}

/** Whether `text` is a whole spool document (a temp spool or a filled reservation worth recovering). */
function isSpoolDocument(text: string): boolean {
  try {
    return SpoolDocument.safeParse(JSON.parse(text)).success;
  } catch {
    return false;
  }
}

/** Deeper than this, an extra field of a token answer is not kept (it could not be written, nor read back). */
const MAX_ANSWER_DEPTH = 64;

/**
 * The answer as it can be stored: an extra field nested deeper than MAX_ANSWER_DEPTH
 * (JSON.stringify would throw, after the old token was spent) is dropped, and named
 * to `dropped`. The RFC 6749 fields are strings and numbers, never dropped.
 */
export function keepableAnswer(tokens: TokenAnswer, dropped: (field: string) => void): TokenAnswer {
  const kept: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(tokens)) {
    if (depthOver(value, MAX_ANSWER_DEPTH)) dropped(field);
    else kept[field] = value;
  }
  return kept as TokenAnswer;
}

/** Whether `value` nests deeper than `limit`, found without recursion (the value may be thousands deep). */
function depthOver(value: unknown, limit: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d >= limit) return true;
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: item, d: d + 1 });
  }
  return false;
}

/** SHA-256 of a refresh request's body (which carries the refresh token): the same body, the same token. */
function requestFingerprint(body: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(body).sort(([a], [b]) => a.localeCompare(b)));
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex');
}

/** The fingerprint of the refresh request the credential on disk would make; undefined when it cannot be read. */
async function currentFingerprint(provider: Provider, home: string): Promise<string | undefined> {
  const read = await readSecretFile(home, provider.credential.file);
  if (!read.ok) return undefined;
  try {
    const parsed = provider.credential.schema.safeParse(JSON.parse(read.text));
    return parsed.success ? requestFingerprint(provider.refresh.request(parsed.data).body) : undefined;
  } catch {
    return undefined;
  }
}

type PersistOutcome = { readonly ok: true; readonly parsed: unknown } | { readonly ok: false; readonly kind: 'unusable' | 'write-failed'; readonly message: string };

/** Applies `tokens` to the credential file through the provider's `apply` and schema; never throws for a bad answer or a failed write. */
async function persistOnce(provider: Provider, home: string, tokens: TokenAnswer, now: number): Promise<PersistOutcome> {
  const file = provider.credential.file;
  const schema = provider.credential.schema;
  let parsed: unknown;
  try {
    await updateJsonFileAtomic(home, file, (current) => {
      if (!schema.safeParse(current).success) throw new UnusableTokenAnswerError(`${file} changed during the refresh and is no longer a valid credential`);
      let next: unknown;
      try {
        next = provider.refresh.apply(current, tokens, now);
      } catch {
        throw new UnusableTokenAnswerError(`the token answer could not be applied to ${file}`);
      }
      const checked = schema.safeParse(next);
      if (!checked.success) throw new UnusableTokenAnswerError(`the token answer would make ${file} invalid (${describeIssues(checked.error.issues)})`);
      parsed = checked.data;
      return next;
    });
  } catch (err) {
    if (err instanceof UnusableTokenAnswerError) return { ok: false, kind: 'unusable', message: err.message };
    if (err instanceof CredentialStoreError) return { ok: false, kind: 'write-failed', message: err.message };
    throw err;
  }
  return { ok: true, parsed };
}

/**
 * Applies the spooled answer of an earlier attempt, through the same `apply` and
 * schema, and removes the spool. Undefined when there is none. A spool that cannot
 * be applied stays, and the refresh fails transient without spending anything.
 */
async function applySpool(
  provider: Provider,
  home: string,
  secrets: Secrets,
  discarded: (reason: string) => void,
): Promise<{ parsed: unknown; receivedAt: number } | undefined> {
  const read = await readSecretFile(home, REFRESH_SPOOL_FILE, { requirePrivate: true });
  if (!read.ok) {
    if (read.reason === 'missing') return undefined;
    throw transient(`the spooled token answer cannot be read (${read.message}); no refresh token is spent until ${REFRESH_SPOOL_FILE} is fixed or removed`);
  }
  let spool: z.infer<typeof SpoolDocument>;
  try {
    spool = SpoolDocument.parse(JSON.parse(read.text));
  } catch {
    // No cause: the parser's message may quote the text, which holds tokens.
    throw transient(`${REFRESH_SPOOL_FILE} is damaged (${read.stat.size} bytes); no refresh token is spent until an operator removes it`);
  }
  secrets.addLeaves(spool.tokens);
  if (spool.provider !== provider.name) {
    throw misconfigured(`${REFRESH_SPOOL_FILE} holds a token answer for provider ${JSON.stringify(spool.provider)}, not ${provider.name}; it is left in place`);
  }
  // The same reading as an answer from the endpoint: a spool is only ever an answer that passed it.
  const verdict = provider.refresh.classify({ status: 200, json: spool.tokens });
  if (verdict.kind !== 'success') throw transient(secrets.scrub(`${REFRESH_SPOOL_FILE} does not hold a usable token answer (${verdict.reason}); it is left in place`));
  // A credential with another refresh token than the spent one was written since (a new login, or this answer): the spool is stale.
  const current = await currentFingerprint(provider, home);
  if (current !== undefined && current !== spool.presented) {
    if (!(await removeSpool(home))) throw transient(`a stale ${REFRESH_SPOOL_FILE} could not be removed; remove it by hand`);
    discarded('the credential no longer holds the refresh token the spooled answer replaced');
    return undefined;
  }
  const written = await persistOnce(provider, home, verdict.tokens, spool.receivedAt);
  if (!written.ok) throw transient(secrets.scrub(`applying the spooled token answer failed: ${written.message}; ${SPOOL_KEPT}`));
  // Left in place it would be applied again, over whatever a later refresh wrote.
  if (!(await removeSpool(home))) throw transient(`the spooled token answer was applied but ${REFRESH_SPOOL_FILE} could not be removed; remove it once the slot is active`);
  return { parsed: written.parsed, receivedAt: spool.receivedAt };
}

/** Removes the spool once the credential holds its answer, durably (a spool that comes back would be applied again). */
async function removeSpool(home: string): Promise<boolean> {
  try {
    await unlink(resolveInSlot(home, REFRESH_SPOOL_FILE));
    const dir = await open(home, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    return true;
  } catch {
    return false;
  }
}

/** Rewrites the agents' env file when its content differs, atomically and 0600. */
async function writeAgentEnv(provider: Provider, slot: SlotPaths, credential: unknown, secrets: Secrets, tokenServiceUrl: string | undefined): Promise<void> {
  const file = provider.agent.envFile;
  const place = hostAgentPlace(slot, tokenServiceUrl);
  let text: string;
  try {
    text = formatEnvFile(provider.agent.env(credential, slot, place));
  } catch (err) {
    throw misconfigured(secrets.scrub(`cannot write ${file}: ${err instanceof EnvFileError ? err.message : 'the provider gave no usable variables'}`));
  }
  try {
    const current = await readSecretFile(slot.home, file);
    if (!(current.ok && current.text === text && (current.stat.mode & 0o077) === 0)) await writeSecretFileAtomic(slot.home, file, text);
  } catch (err) {
    if (err instanceof CredentialStoreError) throw transient(secrets.scrub(`the agent env file could not be written: ${err.message}`));
    throw err;
  }
  try {
    await writeAgentFiles(provider, slot, credential, place);
  } catch (err) {
    if (err instanceof CredentialStoreError) throw transient(secrets.scrub(`the agent files could not be written: ${err.message}`));
    throw misconfigured(secrets.scrub(`cannot write the agent files of ${provider.displayName}: the credential does not give them`));
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Values of these characters need no quotes in sh, systemd or `docker --env-file` (which takes quotes literally). */
const BARE_VALUE = /^[A-Za-z0-9_.,:/@%+=-]+$/;

/** `KEY=value` lines; a value with other characters is single-quoted the POSIX-shell way. */
export function formatEnvFile(vars: Record<string, string>): string {
  const lines = Object.entries(vars).map(([name, value]) => {
    if (!ENV_NAME.test(name)) throw new EnvFileError(`${JSON.stringify(name)} is not a valid variable name`);
    if (typeof value !== 'string' || /[\0\r\n]/.test(value)) throw new EnvFileError(`the value of ${name} is not a single line`);
    return `${name}=${BARE_VALUE.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`}`;
  });
  return `# Written by slot-provisioner after every refresh; do not edit.\n${lines.join('\n')}\n`;
}

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
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw misconfigured(`refusing to send a ${provider.displayName} refresh token to ${url.protocol}//${url.host}: only https (or http on loopback) is allowed`);
  }
  return url;
}

/** The earliest moment the schedule calls for a refresh; undefined when the credential tells nothing. */
function dueTime(facts: CredentialFacts, schedule: RefreshSchedule): number | undefined {
  const candidates: number[] = [];
  if (facts.expiresAt !== undefined) candidates.push(facts.expiresAt - schedule.beforeExpiryMs);
  if (facts.lastRefresh !== undefined && schedule.maxAgeMs !== undefined) candidates.push(facts.lastRefresh + schedule.maxAgeMs);
  return candidates.length > 0 ? Math.min(...candidates) : undefined;
}

/** When the workflow calls again: the due time, up to the schedule's jitter earlier at random, and never within a minute. */
export function nextRefreshAt(dueAt: number | undefined, schedule: RefreshSchedule, now: number): number {
  // A credential that tells neither expiry nor age is looked at again after one margin.
  const at = (dueAt ?? now + schedule.beforeExpiryMs) - Math.floor(Math.random() * (schedule.jitterMs + 1));
  return Math.max(Math.round(at), now + MIN_NEXT_REFRESH_MS);
}

function result(kind: RefreshResult['kind'], facts: CredentialFacts, next: number): Omit<RefreshResult, 'attempts'> {
  return {
    kind,
    ...(facts.expiresAt !== undefined ? { expiresAt: facts.expiresAt } : {}),
    ...(facts.lastRefresh !== undefined ? { lastRefresh: facts.lastRefresh } : {}),
    nextRefreshAt: next,
    ...(facts.account !== undefined ? { account: facts.account } : {}),
  };
}

/**
 * Every string of the credential and the answer: whatever a message is built from,
 * none of them can reach a failure. Short strings (modes, names) are not secrets.
 */
class Secrets {
  private readonly values = new Set<string>();

  addLeaves(value: unknown, depth = 0): void {
    if (depth > 32) return;
    if (typeof value === 'string') {
      if (value.length >= 12) this.values.add(value);
    } else if (Array.isArray(value)) {
      for (const item of value) this.addLeaves(item, depth + 1);
    } else if (typeof value === 'object' && value !== null) {
      for (const item of Object.values(value)) this.addLeaves(item, depth + 1);
    }
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of this.values) out = out.split(secret).join('[redacted]');
    return out;
  }
}

/**
 * Tokens by their look: JWTs (header.payload, both base64 JSON), Anthropic keys and
 * OAuth tokens, OpenAI refresh tokens. Tight enough that the random state and PKCE
 * challenge in a login URL in the status do not trip them.
 */
const TOKEN_LIKE = [/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}/, /sk-ant-[A-Za-z0-9_-]{4,}/, /(?<![A-Za-z0-9_-])rt_[A-Za-z0-9_-]{16,}/];

/** The path of the first key or string value that looks like a token, or undefined. */
export function tokenLikeField(value: unknown, at: string, depth = 0): string | undefined {
  if (depth > 32) return undefined;
  if (typeof value === 'string') return TOKEN_LIKE.some((p) => p.test(value)) ? at : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = tokenLikeField(item, `${at}[${i}]`, depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (TOKEN_LIKE.some((p) => p.test(key))) return `a key of ${at}`;
      const found = tokenLikeField(item, `${at}.${key}`, depth + 1);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
