// A refresh, as a step of the slot's own workflow: one activity on the slot's
// host (retried by its retry policy), in a scope that relogin and retire cancel.
// `degraded` is decided by a deadline near expiry, not by per-attempt reports.
import { RetryState } from '@temporalio/common';
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, patched, TimeoutFailure } from '@temporalio/workflow';
import type { RefreshResult } from '../activities/refresh';
import { describeFailure, FailureType, innermostFailureType, PERMANENT_REFRESH_FAILURES } from '../common/failures';
import type { Phase } from '../common/slot';
import { refreshActivity } from './activities';
import type { Slot } from './slot-state';
import { restoreAfterLoss } from './restore-step';
import { clause } from './text';
import { degraded, degradedMessage, needsPerson, refreshCancelled, refreshed, refreshStarted, restoreProved, stillNeedsPerson } from './transitions';

/** Runs recorded before credential backups went to needs-relogin at once when the file was lost, and keep doing so on replay. */
const RESTORE_PATCH = 'credential-restore';
/**
 * Runs recorded before a refresh that timed out (or failed with no answer of its own) was
 * transient sent the slot to needs-relogin saying its configuration was wrong, and keep doing so on replay.
 */
const TRANSIENT_PATCH = 'transient-refresh-failures';
/** After a refresh that did not finish (a timeout, no answer), the next one is tried this much later. */
const TRANSIENT_RETRY_MS = 60_000;

type Settled = { readonly ok: RefreshResult } | { readonly failed: unknown };

const DEFAULT_DEGRADED_WITHIN_MS = 30 * 60_000;

/**
 * True when the first run's deadline passed: the refresh is failing as expiry nears. The
 * server says so with a timeout, or by giving up on a retry that would land past it.
 */
const isDeadline = (err: unknown): boolean =>
  err instanceof ActivityFailure && (err.cause instanceof TimeoutFailure || err.retryState === RetryState.TIMEOUT);

/** How a refresh step ended; what it left (the phase, `pending.login`, `nextRefreshAt`) is in the slot's state. */
export type RefreshOutcome =
  /** The credential is live: `active`. */
  | 'refreshed'
  /** Relogin or retire overtook it; the main loop acts on them. */
  | 'cancelled'
  /** It did not finish: `degraded` (or still `needs-relogin`), tried again soon. */
  | 'retrying'
  /** A person is needed (`needs-relogin`; `pending.login` when a login starts by itself). */
  | 'needs-person';

/** A refresh that ran: what it reported, or how it failed. */
type Attempt = { readonly kind: 'refreshed' | 'cancelled' } | { readonly kind: 'failed'; readonly err: unknown; readonly before: Phase };

/**
 * Refreshes (or, unless `force`, checks) the credential, and says how that ended. A lost
 * or unusable file is restored from the newest backup once and proven by a second,
 * forced refresh (not restored again if that one finds it lost too).
 */
export async function refreshStep(slot: Slot, force: boolean, shown: Extract<Phase, 'refreshing' | 'verifying'> = 'refreshing'): Promise<RefreshOutcome> {
  const attempt = await attemptRefresh(slot, force, shown);
  if (attempt.kind !== 'failed') return attempt.kind;
  let reason = describeFailure(attempt.err);
  // A lost or unusable file: the newest backup is restored once, and proven by a forced refresh before the slot is active.
  if (innermostFailureType(attempt.err) === FailureType.credentialInvalid && patched(RESTORE_PATCH)) {
    const restore = await restoreAfterLoss(slot, reason);
    if (restore.restored) return await proveRestored(slot, restore.message, shown);
    if (restore.note) reason = `${clause(reason)}; ${restore.note}`;
  }
  return await refreshFailed(slot, attempt, reason);
}

/** The forced refresh that proves a restored backup; its outcome is recorded with the restore's. */
async function proveRestored(slot: Slot, restoredMessage: string, shown: Extract<Phase, 'refreshing' | 'verifying'>): Promise<RefreshOutcome> {
  const attempt = await attemptRefresh(slot, true, shown);
  const outcome = attempt.kind === 'failed' ? await refreshFailed(slot, attempt, describeFailure(attempt.err)) : attempt.kind;
  restoreProved(slot, restoredMessage);
  return outcome;
}

/**
 * One refresh activity, bounded by the moment the slot turns degraded (then `degraded`,
 * and the same request again without bound). A success is the `refreshed` transition; a
 * cancellation gives the phase back; a failure is returned for the caller to classify.
 */
async function attemptRefresh(slot: Slot, force: boolean, shown: Extract<Phase, 'refreshing' | 'verifying'>): Promise<Attempt> {
  const { slotId, provider, providerConfig } = slot.input;
  const { backoff, ...schedule } = slot.input.refresh ?? {};
  const before = slot.state.phase;
  refreshStarted(slot, shown);
  const request = {
    slotId,
    provider,
    ...(providerConfig !== undefined ? { providerConfig } : {}),
    // The workflow's clock is the slot's clock (it is virtual under time skipping).
    now: Date.now(),
    force,
    schedule,
    // Written to slot-status.json by the activity with the refreshed facts: no second activity per cycle.
    status: { ...slot.status(), phase: 'active' },
    // No backup yet (an adopted credential) or the last write-through failed: this cycle backs up even a credential that is not due.
    ...(slot.state.backup?.ok !== true ? { backupDue: true } : {}),
  };
  const degradedAt = (slot.state.expiresAt ?? Date.now()) - (slot.input.degradedWithinMs ?? DEFAULT_DEGRADED_WITHIN_MS);

  const settled = await inScope(slot, async (): Promise<Settled> => {
    try {
      // Bounded by the moment the slot turns degraded; past it, the same request again without bound.
      return { ok: await refreshActivity(slot.run.queues.tokens, backoff, degradedAt - Date.now())(request) };
    } catch (err) {
      if (!isDeadline(err) || slot.state.phase === 'degraded') return { failed: err };
      // The deadline's cause is the last attempt's failure: the operator sees why.
      degraded(slot, describeFailure(err), 'degraded', degradedMessage(slot));
      try {
        return { ok: await refreshActivity(slot.run.queues.tokens, backoff)(request) };
      } catch (again) {
        return { failed: again };
      }
    }
  });

  if ('ok' in settled) {
    await refreshed(slot, settled.ok);
    return { kind: 'refreshed' };
  }
  if (isCancellation(settled.failed)) {
    // Relogin or retire overtook the refresh (a write in progress finished first); the main loop acts on them.
    refreshCancelled(slot, before);
    return { kind: 'cancelled' };
  }
  return { kind: 'failed', err: settled.failed, before };
}

/** A refresh that failed: tried again soon when it did not finish, else a person is needed (a login may start by itself). */
async function refreshFailed(slot: Slot, attempt: Extract<Attempt, { kind: 'failed' }>, reason: string): Promise<RefreshOutcome> {
  const { slotId } = slot.input;
  const { err, before } = attempt;
  const type = innermostFailureType(err);
  // A timeout (the deadline of a slot that was already degraded, a host that took no task), or a
  // failure that is not the refresh's own answer: nothing says the credential or the configuration is wrong.
  const unfinished = isDeadline(err) || !(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure);
  if (unfinished && type !== FailureType.refreshMisconfigured && patched(TRANSIENT_PATCH)) {
    slot.state.nextRefreshAt = Date.now() + TRANSIENT_RETRY_MS;
    const again = new Date(slot.state.nextRefreshAt).toISOString();
    // A slot that already needed a person still does (it was told); any other is degraded and tries again.
    if (before === 'needs-relogin') stillNeedsPerson(slot, reason, `refresh did not finish: ${clause(reason)}. A login is still needed: slotctl relogin ${slotId}`);
    else degraded(slot, reason, 'refresh-failed', `refresh did not finish: ${clause(reason)}; not a configuration problem, trying again at ${again}`);
    return 'retrying';
  }
  if (type === FailureType.refreshMisconfigured || unfinished) {
    // Neither a retry nor a login fixes a configuration (runs recorded before transient failures also come here
    // with a refresh that did not finish). Counted with the provider's other failures first.
    await needsPerson(slot, {
      kind: 'refresh-failed',
      message: `refresh cannot run: ${clause(reason)}. Fix the slot's provider configuration on its host, then: slotctl refresh ${slotId}`,
      error: reason,
      counted: true,
      incident: type ?? FailureType.refreshMisconfigured,
    });
    return 'needs-person';
  }
  const automatic = (slot.input.onPermanentFailure ?? 'login') === 'login' && PERMANENT_REFRESH_FAILURES.includes(type ?? '');
  const next = automatic
    ? 'A new login was started; an operator must complete it.'
    : type === FailureType.slotRequestRefused
      ? // The host refused the slot itself (retired there, another pin): a login would be refused too.
        "The slot's host refuses it: only that host's operator can act, as the message above says."
      : `Run \`slotctl relogin ${slotId}\` to log in again.`;
  await needsPerson(slot, {
    kind: 'refresh-failed',
    message: `refresh failed permanently: ${clause(reason)}. ${next}`,
    error: reason,
    counted: true,
    incident: type ?? FailureType.refreshPermanent,
    autoLogin: automatic,
  });
  return 'needs-person';
}

/** Runs `work` in a scope that relogin, cancelLogin and retire cancel. */
export async function inScope<T>(slot: Slot, work: () => Promise<T>): Promise<T> {
  const scope = new CancellationScope();
  slot.stepScope = scope;
  try {
    return await scope.run(work);
  } finally {
    slot.stepScope = undefined;
  }
}
