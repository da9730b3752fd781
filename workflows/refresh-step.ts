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
import { reportPermanentFailure } from './incident-step';

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

/**
 * Refreshes (or, unless `force`, checks) the credential. What it leaves for the main
 * loop is in `slot`: its phase (`needs-relogin`: a person is needed), `pending.login`
 * (a login to start now) and `nextRefreshAt`.
 */
export async function refreshStep(
  slot: Slot,
  force: boolean,
  askOperator: (reason: string, kind?: 'setup-token-expiring') => Promise<void>,
  phaseWhileRunning: Extract<Phase, 'refreshing' | 'verifying'> = 'refreshing',
): Promise<void> {
  const { slotId, provider, providerConfig } = slot.input;
  const { backoff, ...schedule } = slot.input.refresh ?? {};
  slot.refreshes += 1;
  const before = slot.phase;
  // A degraded slot stays degraded until a refresh succeeds.
  if (slot.phase !== 'degraded') slot.setTransientPhase(phaseWhileRunning);
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
    ...(slot.backup?.ok !== true ? { backupDue: true } : {}),
  };
  const degradedAt = (slot.expiresAt ?? Date.now()) - (slot.input.degradedWithinMs ?? DEFAULT_DEGRADED_WITHIN_MS);

  const settled = await inScope(slot, async (): Promise<Settled> => {
    try {
      // Bounded by the moment the slot turns degraded; past it, the same request again without bound.
      return { ok: await refreshActivity(slot.queues.tokens, backoff, degradedAt - Date.now())(request) };
    } catch (err) {
      if (!isDeadline(err) || slot.phase === 'degraded') return { failed: err };
      // The deadline's cause is the last attempt's failure: the operator sees why.
      slot.lastError = describeFailure(err);
      slot.consecutiveFailures += 1;
      slot.setPhase('degraded');
      slot.record('degraded', `refreshes are failing and the token expires ${slot.expiresAt !== undefined ? new Date(slot.expiresAt).toISOString() : 'at an unknown time'}; still retrying`);
      try {
        return { ok: await refreshActivity(slot.queues.tokens, backoff)(request) };
      } catch (again) {
        return { failed: again };
      }
    }
  });

  if ('ok' in settled) {
    const r = settled.ok;
    slot.expiresAt = r.expiresAt ?? slot.expiresAt;
    slot.lastRefresh = r.lastRefresh ?? slot.lastRefresh;
    slot.nextRefreshAt = r.nextRefreshAt;
    if (r.account) slot.account = r.account;
    if (r.backup) slot.backup = r.backup;
    slot.consecutiveFailures = 0;
    slot.lastError = undefined;
    // A check that found the credential fresh is no news: the last outcome (a login, say) stays.
    if (r.kind === 'refreshed' || !slot.lastOutcome || slot.phase === 'degraded') {
      const next = new Date(r.nextRefreshAt).toISOString();
      slot.record(
        'refresh-succeeded',
        r.kind === 'refreshed' ? `refreshed${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}; next refresh ${next}` : `credential is valid; next refresh ${next}`,
      );
    }
    slot.setPhase('active');
    // A credential that cannot be refreshed expires soon: the operator hears it once per notice.
    if (r.notice) {
      slot.record('info', r.notice);
      await askOperator(r.notice, 'setup-token-expiring');
    }
    return;
  }
  const err = settled.failed;
  if (isCancellation(err)) {
    // Relogin or retire overtook the refresh (a write in progress finished first); the main loop acts on them.
    slot.setPhase(slot.phase === 'degraded' ? 'degraded' : before);
    return;
  }
  const type = innermostFailureType(err);
  let reason = describeFailure(err);
  // A lost or unusable file: the newest backup is restored once, and proven by a forced refresh before the slot is active.
  if (type === FailureType.credentialInvalid && !slot.restoring && patched(RESTORE_PATCH)) {
    const restore = await restoreAfterLoss(slot, reason);
    if (restore.restored) {
      slot.restoring = true;
      try {
        await refreshStep(slot, true, askOperator, phaseWhileRunning);
      } finally {
        slot.restoring = false;
      }
      if (slot.phase === 'active') slot.record('refresh-succeeded', `${restore.message}; a refresh proved it; next refresh ${new Date(slot.nextRefreshAt ?? Date.now()).toISOString()}`);
      else if (slot.phase === 'needs-relogin' && slot.lastOutcome?.kind === 'refresh-failed') slot.record('refresh-failed', `${restore.message}, but it did not prove good: ${slot.lastOutcome.message}`);
      return;
    }
    if (!restore.restored && restore.note) reason = `${reason.replace(/\.$/, '')}; ${restore.note}`;
  }
  slot.consecutiveFailures += 1;
  slot.lastError = reason;
  // A timeout (the deadline of a slot that was already degraded, a host that took no task), or a
  // failure that is not the refresh's own answer: nothing says the credential or the configuration is wrong.
  const unfinished = isDeadline(err) || !(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure);
  if (unfinished && type !== FailureType.refreshMisconfigured && patched(TRANSIENT_PATCH)) {
    slot.nextRefreshAt = Date.now() + TRANSIENT_RETRY_MS;
    const again = new Date(slot.nextRefreshAt).toISOString();
    // A slot that already needed a person still does (it was told); any other is degraded and tries again.
    if (before === 'needs-relogin') {
      slot.record('refresh-failed', `refresh did not finish: ${reason.replace(/\.$/, '')}. A login is still needed: slotctl relogin ${slotId}`);
      slot.setPhase('needs-relogin');
    } else {
      slot.record('refresh-failed', `refresh did not finish: ${reason.replace(/\.$/, '')}; not a configuration problem, trying again at ${again}`);
      slot.setPhase('degraded');
    }
    return;
  }
  if (type === FailureType.refreshMisconfigured || unfinished) {
    // Counted with the provider's other failures first: past the threshold, the incident's notice speaks for this slot.
    await reportPermanentFailure(slot, type ?? FailureType.refreshMisconfigured, reason);
    // Neither a retry nor a login fixes a configuration.
    slot.record('refresh-failed', `refresh cannot run: ${reason.replace(/\.$/, '')}. Fix the slot's provider configuration on its host, then: slotctl refresh ${slotId}`);
    slot.setPhase('needs-relogin');
    await askOperator(slot.lastOutcome?.message ?? reason);
    return;
  }
  const automatic = (slot.input.onPermanentFailure ?? 'login') === 'login' && PERMANENT_REFRESH_FAILURES.includes(type ?? '');
  await reportPermanentFailure(slot, type ?? FailureType.refreshPermanent, reason);
  slot.record(
    'refresh-failed',
    `refresh failed permanently: ${reason.replace(/\.$/, '')}. ${
      automatic
        ? 'A new login was started; an operator must complete it.'
        : type === FailureType.slotRequestRefused
          ? // The host refused the slot itself (retired there, another pin): a login would be refused too.
            "The slot's host refuses it: only that host's operator can act, as the message above says."
          : `Run \`slotctl relogin ${slotId}\` to log in again.`
    }`,
  );
  slot.setPhase('needs-relogin');
  await askOperator(slot.lastOutcome?.message ?? reason);
  if (automatic) slot.pending.login = true;
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
