// Live probes as steps of the slot's own workflow: one activity on the slot's host
// makes the provider's minimal real request. A refused token is refreshed and probed
// again, and only a refusal that persists needs a person; a 429 or a network error never does.
import { ApplicationFailure, condition, isCancellation, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { describeFailure, FailureType } from '../common/failures';
import { HANDLER_DESCRIPTIONS, probeNowSignal, probeNowUpdate } from '../common/messages';
import { probeDelay, type LastProbe, type ProbeReason } from '../common/probe';
import { SlotLastProbeAtKey, SlotLastProbeKey } from '../common/search-attributes';
import { probeActivity } from './activities';
import { inScope, refreshStep } from './refresh-step';
import type { Slot } from './slot-state';

type AskOperator = Parameters<typeof refreshStep>[2];

/** Phases with no credential to probe yet (a login is under way), or none any more. */
const NOTHING_TO_PROBE = ['logging-in', 'awaiting-operator', 'retired'] as const;

/** Read after a step that may have changed it (no narrowing across awaits). */
const needsPerson = (slot: Slot): boolean => slot.phase === 'needs-relogin';

/** A scheduled or requested probe is due now. */
export const probeDue = (slot: Slot): boolean => slot.pending.probe === true || (slot.nextProbeAt !== undefined && Date.now() >= slot.nextProbeAt);

/** How long the main loop may sleep before the next scheduled probe; schedules one when none is. Undefined: scheduled probes are off. */
export function untilNextProbe(slot: Slot): number | undefined {
  if (slot.nextProbeAt === undefined) {
    const delay = probeDelay(slot.input.probe, Math.random());
    if (delay === undefined) return undefined;
    slot.nextProbeAt = Date.now() + delay;
  }
  return Math.max(slot.nextProbeAt - Date.now(), 0);
}

/**
 * A login's credential, probed before the slot is `active`. True when the main loop should
 * go on with its usual check (false: the probe's own refresh did it, or a person is needed).
 */
export async function probeAfterLogin(slot: Slot, askOperator: AskOperator): Promise<boolean> {
  return (await probeStep(slot, 'login', askOperator)) === 'probed';
}

/**
 * A probe; on 401/403 a forced refresh and a second probe, then needs-relogin when the
 * refusal persists. `refreshed`: the step ran a refresh (which set the phase).
 */
export async function probeStep(slot: Slot, reason: ProbeReason, askOperator: AskOperator): Promise<'probed' | 'refreshed' | 'stopped'> {
  slot.pending.probe = false;
  const orRefresh = slot.refreshUnlessProven;
  slot.refreshUnlessProven = false;
  try {
    const first = await probeOnce(slot, reason);
    // Someone saw the token refused and the probe cannot tell (no answer, nothing to probe): refresh, as before probes.
    if (orRefresh && first && !['ok', 'rate-limited', 'unauthorized'].includes(first.outcome) && !needsPerson(slot)) {
      await refreshStep(slot, true, askOperator);
      return 'refreshed';
    }
    // A slot that needs a person already is only told what the probe found.
    if (first?.outcome !== 'unauthorized' || slot.phase === 'needs-relogin') return first ? 'probed' : 'stopped';
    slot.record('probe-failed', `the provider refused the credential (${first.detail ?? `HTTP ${first.httpStatus ?? '?'}`}); refreshing it`);
    await refreshStep(slot, true, askOperator, reason === 'login' ? 'verifying' : 'refreshing');
    // A refresh that failed permanently has asked for a person itself; relogin and retire go first.
    if (needsPerson(slot) || slot.pending.login || slot.pending.retire) return 'stopped';
    const second = await probeOnce(slot, 'after-refresh');
    if (second?.outcome !== 'unauthorized') return 'refreshed';
    const automatic = (slot.input.onPermanentFailure ?? 'login') === 'login';
    slot.consecutiveFailures += 1;
    slot.lastError = `the provider refuses the credential even after a refresh (${second.detail ?? `HTTP ${second.httpStatus ?? '?'}`})`;
    slot.record(
      'probe-failed',
      `${slot.lastError}. ${automatic ? 'A new login was started; an operator must complete it.' : `Run \`slotctl relogin ${slot.input.slotId}\` to log in again.`}`,
    );
    slot.setPhase('needs-relogin');
    await askOperator(slot.lastOutcome?.message ?? slot.lastError);
    if (automatic) slot.pending.login = true;
    return 'stopped';
  } finally {
    slot.probeSteps += 1;
  }
}

/** One probe activity, in a scope relogin and retire cancel; records the outcome. Undefined when cancelled. */
async function probeOnce(slot: Slot, reason: ProbeReason): Promise<LastProbe | undefined> {
  const { slotId, provider, providerConfig } = slot.input;
  let probe: LastProbe;
  try {
    const r = await inScope(slot, () => probeActivity(slot.queues.tokens)({ slotId, provider, ...(providerConfig !== undefined ? { providerConfig } : {}), reason }));
    probe = {
      at: Date.now(),
      outcome: r.outcome,
      ...(r.httpStatus !== undefined ? { httpStatus: r.httpStatus } : {}),
      ...(r.detail ? { detail: r.detail } : {}),
      ...(r.resetAt !== undefined ? { resetAt: r.resetAt } : {}),
    };
  } catch (err) {
    if (isCancellation(err)) return undefined;
    // The host did not take it in time, or refused the request: no answer about the token.
    probe = { at: Date.now(), outcome: 'transient', detail: `the probe did not run: ${describeFailure(err)}` };
  }
  const before = slot.lastProbe?.outcome;
  slot.lastProbe = probe;
  const delay = probeDelay(slot.input.probe, Math.random());
  slot.nextProbeAt = delay !== undefined ? Date.now() + delay : undefined;
  upsertSearchAttributes([...(before !== probe.outcome ? [{ key: SlotLastProbeKey, value: probe.outcome }] : []), { key: SlotLastProbeAtKey, value: new Date(probe.at) }]);
  setCurrentDetails(slot.details());
  return probe;
}

/** Why `probeNow` cannot be taken now, or undefined. */
function probeRefusal(slot: Slot, probing: boolean): string | undefined {
  const { slotId } = slot.input;
  if (!probing) return `slot ${slotId} runs a version without live probes; it probes after its next continue-as-new`;
  if (slot.pending.retire) return `slot ${slotId} is being retired`;
  if ((NOTHING_TO_PROBE as readonly string[]).includes(slot.phase)) return `slot ${slotId} has no credential to probe (phase: ${slot.phase})`;
  return undefined;
}

/**
 * `probeNow`: the update answers the outcome of the probe step it caused; the signal (a
 * pool's auth-failure report, the Web UI) only asks, and a probe that cannot tell is followed by a refresh.
 */
export function installProbeHandlers(slot: Slot, probing: boolean): void {
  setHandler(
    probeNowUpdate,
    async (): Promise<LastProbe> => {
      const before = slot.probeSteps;
      slot.pending.probe = true;
      // Any step that starts after this request answers it (one already running does not).
      await condition(() => (slot.probeSteps > before && !slot.pending.probe) || slot.pending.retire !== undefined || slot.phase === 'retired');
      if (slot.probeSteps > before && !slot.pending.probe && slot.lastProbe) return slot.lastProbe;
      throw ApplicationFailure.nonRetryable(`slot ${slot.input.slotId} is being retired; no probe was made`, FailureType.probeRefused);
    },
    {
      validator: () => {
        const problem = probeRefusal(slot, probing);
        if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.probeRefused);
      },
      description: HANDLER_DESCRIPTIONS.probeNow,
    },
  );
  setHandler(
    probeNowSignal,
    () => {
      const problem = probeRefusal(slot, probing);
      // A run without probes keeps the old answer to a pool's auth-failure report: a refresh.
      if (!probing) return void (slot.pending.refresh = true);
      if (problem) {
        slot.lastError = `probeNow was not used: ${problem}`;
        return slot.record('request-refused', slot.lastError);
      }
      slot.pending.probe = true;
      slot.refreshUnlessProven = true;
    },
    { description: HANDLER_DESCRIPTIONS.probeNow },
  );
}
