// The slot's life as transitions of its state: each sets its fields, records its
// outcome, publishes (search attributes, the Web UI's details) and says which notice it
// means, in one place. Steps call them with what happened and return outcomes; the main
// loop (workflows/slot.ts) decides what follows. Which notices are news is the policy's
// (SlotNotices, workflows/notices.ts); runs recorded before notices tell the operator
// through the notify activity instead, at the same points.
import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { RefreshResult } from '../activities/refresh';
import type { CredentialSummary } from '../activities/credential';
import type { Outcome } from '../common/messages';
import type { LastProbe } from '../common/probe';
import type { MoveState } from '../common/backup';
import type { LoginPrompt, Phase } from '../common/slot';
import { SlotHostKey, SlotLastProbeAtKey, SlotLastProbeKey } from '../common/search-attributes';
import { sharedActivities } from './activities';
import { reportPermanentFailure } from './incident-step';
import type { PhaseNotice, Slot } from './slot-state';
import { clause } from './text';

const iso = (ms: number): string => new Date(ms).toISOString();
const expiry = (slot: Slot): string => (slot.state.expiresAt !== undefined ? iso(slot.state.expiresAt) : 'at an unknown time');

/**
 * Tells operators once per event that a slot needs them; never blocks the slot on a dead webhook.
 * With notices, `needs-relogin` was announced when it was published: only a run recorded before
 * notices calls the notify activity here (and keeps doing so on replay).
 */
async function tellOperator(slot: Slot, reason: string): Promise<void> {
  if (slot.notices) return;
  const { slotId, provider, host } = slot.input;
  try {
    await sharedActivities().notifyOperator({ slotId, provider, host, phase: slot.state.phase, reason });
  } catch {
    // The status and the log already carry the reason.
  }
}

// --- a run starts ---------------------------------------------------------------

/**
 * A run starts (a new slot, or a state carried over continue-as-new) and publishes its
 * phase. A slot started with a troubled carried state (its search attributes did not show
 * it yet) says so: `degraded` or `needs-relogin`, as if it had just entered it.
 */
export function resumed(slot: Slot): void {
  const { phase } = slot.state;
  if (phase === 'degraded') slot.publish(degradedNotice(slot));
  else if (phase === 'needs-relogin') slot.publish({ kind: 'needs-relogin', reason: slot.state.lastOutcome?.message ?? slot.state.lastError ?? phase });
  else slot.publish();
}

// --- logins -------------------------------------------------------------------

/** A login starts: the request is taken and the slot shows `logging-in`. */
export function loginStarted(slot: Slot): void {
  slot.state.pending.login = false;
  slot.state.logins += 1;
  slot.step = 'login';
  slot.state.lastError = undefined;
  slot.enter('logging-in');
}

/** The host holds as many login CLIs as it can: the login waits (it is not this slot's fault). */
export function loginDeferred(slot: Slot, why: string): void {
  slot.state.lastError = why;
  slot.record('info', `login deferred: ${why}`);
}

/** The login's CLI is restarted (a new URL follows). */
export function loginRestarted(slot: Slot, why: string): void {
  slot.state.lastError = why;
  slot.record('login-restarted', why);
  slot.enter('logging-in');
}

/** A CLI or device flow shows its prompt: the operator is asked (a notice per new URL). */
export function awaitingOperator(slot: Slot, prompt: LoginPrompt): void {
  const { slotId } = slot.input;
  slot.enter(
    'awaiting-operator',
    {
      kind: 'awaiting-operator',
      reason: prompt.instructions,
      action: {
        url: prompt.completeUrl ?? prompt.url,
        ...(prompt.userCode ? { userCode: prompt.userCode } : {}),
        interaction: prompt.interaction,
        ...(prompt.interaction === 'paste-code' ? { command: `slotctl submit-code ${slotId}` } : {}),
        until: prompt.expiresAt,
      },
    },
    prompt,
  );
}

/** A code is being typed into the CLI. */
export function codeTyped(slot: Slot): void {
  slot.enter('verifying');
}

/** The CLI rejected a code; with `askAgain`, the same CLI waits for another (its prompt). */
export function codeRejected(slot: Slot, message: string, askAgain?: LoginPrompt): void {
  slot.record('code-rejected', message);
  if (!askAgain) return;
  slot.state.lastError = message;
  awaitingOperator(slot, askAgain);
}

/** A login's credential was verified (the main loop checks it next: `active` comes from that check). */
export function loggedIn(slot: Slot, credential: CredentialSummary, message: string): void {
  slot.state.expiresAt = credential.expiresAt;
  slot.state.lastRefresh = credential.lastRefresh ?? credential.modifiedAt;
  slot.state.account = credential.account;
  if (credential.backup) slot.state.backup = credential.backup;
  slot.state.lastError = undefined;
  slot.state.consecutiveFailures = 0;
  slot.record('login-succeeded', `logged in (${message}); credential ${credential.file} verified`);
}

// --- refreshes ----------------------------------------------------------------

/** A refresh (or check) starts; a degraded slot stays degraded until one succeeds. */
export function refreshStarted(slot: Slot, shown: Extract<Phase, 'refreshing' | 'verifying'>): void {
  slot.state.refreshes += 1;
  if (slot.state.phase !== 'degraded') slot.setTransientPhase(shown);
}

/** Relogin or retire overtook the refresh: the phase it had comes back (a degraded slot stays degraded). */
export function refreshCancelled(slot: Slot, before: Phase): void {
  slot.enter(slot.state.phase === 'degraded' ? 'degraded' : before);
}

/** The facts a refresh reported about the credential (a refresh, or the proof of a move). */
function credentialRefreshed(slot: Slot, r: RefreshResult): void {
  slot.state.expiresAt = r.expiresAt ?? slot.state.expiresAt;
  slot.state.lastRefresh = r.lastRefresh ?? slot.state.lastRefresh;
  slot.state.nextRefreshAt = r.nextRefreshAt;
  if (r.account) slot.state.account = r.account;
  if (r.backup) slot.state.backup = r.backup;
  slot.state.consecutiveFailures = 0;
  slot.state.lastError = undefined;
}

/** `recovered`: said with the slot's last outcome (what brought it back). */
const recovered = (slot: Slot) => ({ kind: 'recovered' as const, reason: slot.state.lastOutcome?.message ?? slot.state.lastError ?? 'active', action: { command: `slotctl status ${slot.input.slotId}` } });

/** A refresh (or check) succeeded: `active`, and a credential that cannot be refreshed warns before it expires. */
export async function refreshed(slot: Slot, r: RefreshResult): Promise<void> {
  credentialRefreshed(slot, r);
  // A check that found the credential fresh is no news: the last outcome (a login, say) stays.
  if (r.kind === 'refreshed' || !slot.state.lastOutcome || slot.state.phase === 'degraded') {
    const next = iso(r.nextRefreshAt);
    slot.record('refresh-succeeded', r.kind === 'refreshed' ? `refreshed${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}; next refresh ${next}` : `credential is valid; next refresh ${next}`);
  }
  slot.enter('active', recovered(slot));
  // A credential that cannot be refreshed expires soon: the operator hears it once per notice.
  if (r.notice) {
    slot.record('info', r.notice);
    if (slot.notices) {
      slot.notices.emit('setup-token-expiring', r.notice, { command: `slotctl relogin ${slot.input.slotId}`, ...(slot.state.expiresAt !== undefined ? { until: slot.state.expiresAt } : {}) });
    } else await tellOperator(slot, r.notice);
  }
}

/**
 * `degraded`: refreshes are failing and the slot keeps trying by itself. `error` is the
 * failure (the status's problem), `message` the outcome recorded (`kind`).
 */
export function degraded(slot: Slot, error: string, kind: Extract<Outcome['kind'], 'degraded' | 'refresh-failed'>, message: string): void {
  slot.state.lastError = error;
  slot.state.consecutiveFailures += 1;
  slot.record(kind, message);
  slot.enter('degraded', degradedNotice(slot));
}

/** `degraded`'s notice: the failure, the expiry, and that the slot keeps trying. */
const degradedNotice = (slot: Slot): PhaseNotice => ({
  kind: 'degraded',
  reason: `refreshes are failing (${clause(slot.state.lastError ?? 'no answer')}); the token expires ${expiry(slot)}; the slot keeps retrying.`,
  action: { command: `slotctl status ${slot.input.slotId}` },
});

/** The outcome a degraded slot records when the deadline near expiry passes. */
export const degradedMessage = (slot: Slot): string => `refreshes are failing and the token expires ${expiry(slot)}; still retrying`;

/** A lost or unusable file was replaced by the newest backup; a forced refresh proves it next. */
export function restored(slot: Slot, message: string): void {
  slot.record('info', `${message}; proving it with a refresh`);
}

/** What the refresh that proved a restored backup found, said with the restore (its own outcome is already in the state). */
export function restoreProved(slot: Slot, restoredMessage: string): void {
  const last = slot.state.lastOutcome;
  if (slot.state.phase === 'active') slot.record('refresh-succeeded', `${restoredMessage}; a refresh proved it; next refresh ${iso(slot.state.nextRefreshAt ?? Date.now())}`);
  else if (slot.state.phase === 'needs-relogin' && last?.kind === 'refresh-failed') slot.record('refresh-failed', `${restoredMessage}, but it did not prove good: ${last.message}`);
}

// --- a person is needed -------------------------------------------------------

export interface NeedsPerson {
  /** The outcome recorded; its message is the notice's reason and the operator's instruction. */
  readonly kind: Extract<Outcome['kind'], 'login-failed' | 'refresh-failed' | 'probe-failed'>;
  readonly message: string;
  /** The status's problem (unchanged when undefined: a login's own words stay). */
  readonly error?: string;
  /** Counted as a consecutive failure (a cancelled login is not). */
  readonly counted: boolean;
  /** Reported to the provider's incident first (the failure type): past the threshold, the incident's notice speaks for the slot. */
  readonly incident?: string;
  /** A new login starts at once (its URL is the next notice). */
  readonly autoLogin?: boolean;
}

/** `needs-relogin`: a person is needed. Counted, reported, recorded, published with its notice, told; maybe a login follows. */
export async function needsPerson(slot: Slot, why: NeedsPerson): Promise<void> {
  if (why.counted) slot.state.consecutiveFailures += 1;
  if (why.error !== undefined) slot.state.lastError = why.error;
  if (why.incident !== undefined) await reportPermanentFailure(slot, why.incident, why.error ?? why.message);
  slot.record(why.kind, why.message);
  slot.enter('needs-relogin', { kind: 'needs-relogin', reason: why.message });
  await tellOperator(slot, why.message);
  if (why.autoLogin) slot.state.pending.login = true;
}

/** A slot that needed a person still does (a refresh that did not finish changes nothing; the person was told). */
export function stillNeedsPerson(slot: Slot, error: string, message: string): void {
  slot.state.consecutiveFailures += 1;
  slot.state.lastError = error;
  slot.record('refresh-failed', message);
  slot.enter('needs-relogin', { kind: 'needs-relogin', reason: message });
}

// --- probes, moves, refusals, retiring ------------------------------------------

/** The provider refused the token on a probe: it is refreshed next (and probed again). */
export function tokenRefused(slot: Slot, probe: LastProbe): void {
  slot.record('probe-failed', `the provider refused the credential (${probe.detail ?? `HTTP ${probe.httpStatus ?? '?'}`}); refreshing it`);
}

/** A probe's answer: the status and the probe search attributes (the time always, the outcome when it changed). */
export function probed(slot: Slot, probe: LastProbe, nextProbeAt: number | undefined): void {
  const before = slot.state.lastProbe?.outcome;
  slot.state.lastProbe = probe;
  slot.state.nextProbeAt = nextProbeAt;
  upsertSearchAttributes([...(before !== probe.outcome ? [{ key: SlotLastProbeKey, value: probe.outcome }] : []), { key: SlotLastProbeAtKey, value: new Date(probe.at) }]);
  setCurrentDetails(slot.details());
}

/** A move's progress (or end) in the status; an end is recorded too. */
export function moving(slot: Slot, to: string, state: MoveState['state'], message: string): void {
  slot.state.move = { from: slot.input.host, to, state, at: Date.now(), message };
  if (state !== 'moving') slot.record('info', message);
  slot.publish();
}

/** The restored credential refreshed on the new host: its facts are the slot's. */
export function moveProven(slot: Slot, r: RefreshResult): void {
  credentialRefreshed(slot, r);
}

/** The slot now lives on `to`, `active` (the caller continues as new there); `problem`: what the old host did not clean up. */
export function moved(slot: Slot, to: string, message: string, problem?: string): void {
  if (problem !== undefined) slot.state.lastError = problem;
  upsertSearchAttributes([{ key: SlotHostKey, value: to }]);
  slot.state.move = { from: slot.input.host, to, state: 'moved', at: Date.now(), message };
  slot.record('info', message);
  slot.enter('active', recovered(slot), slot.run.prompt);
}

/** An operator's message that could not be acted on: the status says why; the Web UI's page too (a signal has no other answer). */
export function refused(slot: Slot, kind: Extract<Outcome['kind'], 'code-not-used' | 'request-refused'>, message: string): void {
  slot.state.lastError = message;
  slot.record(kind, message);
  // Not a command.
  setCurrentDetails(slot.details());
}

/** Retiring is under way: the status says what (the phase stays until it is done). */
export function retiring(slot: Slot, message: string): void {
  slot.record('info', message);
  slot.enter(slot.state.phase);
}

/** `retired`: what was done, and what was not (`problem`, the status's). */
export function retired(slot: Slot, message: string, problem?: string): void {
  if (problem !== undefined) slot.state.lastError = problem;
  slot.record('info', message);
  slot.enter('retired');
}
