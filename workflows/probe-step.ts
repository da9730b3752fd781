// Live probes as steps of the slot's own workflow: one activity on the slot's host
// makes the provider's minimal real request. A refused token is refreshed (the main loop
// runs the refresh) and probed again, and only a refusal that persists needs a person;
// a 429 or a network error never does.
import { ApplicationFailure, condition, isCancellation, setHandler } from '@temporalio/workflow';
import { describeFailure, FailureType } from '../common/failures';
import { HANDLER_DESCRIPTIONS, probeNowSignal, probeNowUpdate } from '../common/messages';
import { probeDelay, type LastProbe, type ProbeReason } from '../common/probe';
import { probeActivity } from './activities';
import { inScope } from './refresh-step';
import type { Slot } from './slot-state';
import { needsPerson as needsPersonNow, probed, refused, tokenRefused } from './transitions';

/** Phases with no credential to probe yet (a login is under way), or none any more. */
const NOTHING_TO_PROBE = ['logging-in', 'awaiting-operator', 'retired'] as const;

/** Read after a step that may have changed it (no narrowing across awaits). */
const needsPerson = (slot: Slot): boolean => slot.state.phase === 'needs-relogin';


/** How long the main loop may sleep before the next scheduled probe; schedules one when none is. Undefined: scheduled probes are off. */
export function untilNextProbe(slot: Slot): number | undefined {
  if (slot.state.nextProbeAt === undefined) {
    const delay = probeDelay(slot.input.probe, Math.random());
    if (delay === undefined) return undefined;
    slot.state.nextProbeAt = Date.now() + delay;
  }
  return Math.max(slot.state.nextProbeAt - Date.now(), 0);
}

/**
 * What a probe found, for the main loop to act on: `probed` (nothing more to do), `stopped`
 * (cancelled: relogin or retire goes first), `refused` (the provider refused the token: a
 * forced refresh, then `reprobeStep`), `inconclusive` (a pool's report asked and the probe
 * cannot tell: a forced refresh, as before probes).
 */
export type ProbeFinding = 'probed' | 'stopped' | 'refused' | 'inconclusive';

/** Takes the probe request and makes the probe. */
export async function probeStep(slot: Slot, reason: ProbeReason): Promise<ProbeFinding> {
  slot.state.pending.probe = false;
  const orRefresh = slot.run.refreshUnlessProven;
  slot.run.refreshUnlessProven = false;
  const first = await probeOnce(slot, reason);
  if (!first) return 'stopped';
  // Someone saw the token refused and the probe cannot tell (no answer, nothing to probe): refresh, as before probes.
  if (orRefresh && !['ok', 'rate-limited', 'unauthorized'].includes(first.outcome) && !needsPerson(slot)) return 'inconclusive';
  // A slot that needs a person already is only told what the probe found.
  if (first.outcome !== 'unauthorized' || needsPerson(slot)) return 'probed';
  tokenRefused(slot, first);
  return 'refused';
}

/** The probe after the refresh of a refused token: a refusal that persists needs a person (a login may start by itself). */
export async function reprobeStep(slot: Slot): Promise<'refreshed' | 'stopped'> {
  const second = await probeOnce(slot, 'after-refresh');
  if (second?.outcome !== 'unauthorized') return 'refreshed';
  const automatic = (slot.input.onPermanentFailure ?? 'login') === 'login';
  const error = `the provider refuses the credential even after a refresh (${second.detail ?? `HTTP ${second.httpStatus ?? '?'}`})`;
  await needsPersonNow(slot, {
    kind: 'probe-failed',
    message: `${error}. ${automatic ? 'A new login was started; an operator must complete it.' : `Run \`slotctl relogin ${slot.input.slotId}\` to log in again.`}`,
    error,
    counted: true,
    autoLogin: automatic,
  });
  return 'stopped';
}

/** A probe step (with what followed it) has finished: a waiting `probeNow` is answered. */
export function probeFinished(slot: Slot): void {
  slot.run.probeSteps += 1;
}

/** One probe activity, in a scope relogin and retire cancel; records the outcome. Undefined when cancelled. */
async function probeOnce(slot: Slot, reason: ProbeReason): Promise<LastProbe | undefined> {
  const { slotId, provider, providerConfig } = slot.input;
  let probe: LastProbe;
  try {
    const r = await inScope(slot, () => probeActivity(slot.run.queues.tokens)({ slotId, provider, ...(providerConfig !== undefined ? { providerConfig } : {}), reason }));
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
  const delay = probeDelay(slot.input.probe, Math.random());
  probed(slot, probe, delay !== undefined ? Date.now() + delay : undefined);
  return probe;
}

/** Why `probeNow` cannot be taken now, or undefined. */
function probeRefusal(slot: Slot): string | undefined {
  const { slotId } = slot.input;
  if (!slot.run.probing) return `slot ${slotId} runs a version without live probes; it probes after its next continue-as-new`;
  if (slot.state.pending.retire) return `slot ${slotId} is being retired`;
  if ((NOTHING_TO_PROBE as readonly string[]).includes(slot.state.phase)) return `slot ${slotId} has no credential to probe (phase: ${slot.state.phase})`;
  return undefined;
}

/**
 * `probeNow`: the update answers the outcome of the probe step it caused; the signal (a
 * pool's auth-failure report, the Web UI) only asks, and a probe that cannot tell is followed by a refresh.
 */
export function installProbeHandlers(slot: Slot): void {
  setHandler(
    probeNowUpdate,
    async (): Promise<LastProbe> => {
      const before = slot.run.probeSteps;
      slot.state.pending.probe = true;
      // Any step that starts after this request answers it (one already running does not).
      await condition(() => (slot.run.probeSteps > before && !slot.state.pending.probe) || slot.state.pending.retire !== undefined || slot.state.phase === 'retired');
      if (slot.run.probeSteps > before && !slot.state.pending.probe && slot.state.lastProbe) return slot.state.lastProbe;
      throw ApplicationFailure.nonRetryable(`slot ${slot.input.slotId} is being retired; no probe was made`, FailureType.probeRefused);
    },
    {
      validator: () => {
        const problem = probeRefusal(slot);
        if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.probeRefused);
      },
      description: HANDLER_DESCRIPTIONS.probeNow,
    },
  );
  setHandler(
    probeNowSignal,
    () => {
      const problem = probeRefusal(slot);
      // A run without probes keeps the old answer to a pool's auth-failure report: a refresh.
      if (!slot.run.probing) return void (slot.state.pending.refresh = true);
      if (problem) return refused(slot, 'request-refused', `probeNow was not used: ${problem}`);
      slot.state.pending.probe = true;
      slot.run.refreshUnlessProven = true;
    },
    { description: HANDLER_DESCRIPTIONS.probeNow },
  );
}
