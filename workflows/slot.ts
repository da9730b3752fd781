// The entity workflow `slot:<id>`: one per slot, the only authority over it and
// the single writer of its credential. Logins and refreshes are steps it runs
// itself (activities on the slot's host, in scopes it owns); between them it
// sleeps on a durable timer until the next refresh is due, and answers operators.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { describeFailure, FailureType, innermostFailureType, nextStepAfterLogin } from '../common/failures';
import {
  cancelLoginSignal,
  HANDLER_DESCRIPTIONS,
  refreshNowSignal,
  reloginSignal,
  retireOptions,
  retireSignal,
  statusQuery,
  submitCodeSignal,
  submitCodeUpdate,
  type SlotStatus,
  type SubmitCodeInput,
} from '../common/messages';
import { SLOT_WORKFLOW_VERSION } from '../common/slot';
import type { SlotInput } from '../common/slot-input';
import { fileActivities, sharedActivities, slotQueues } from './activities';
import { runLogin } from './login-step';
import { inScope, refreshStep } from './refresh-step';
import { Slot } from './slot-state';
import { Notices, slotNoticeObserver } from './notices';
import { installMoveHandler, moveStep } from './restore-step';
import { retire } from './retire-step';
import { installProbeHandlers, probeAfterLogin, probeDue, probeStep, untilNextProbe } from './probe-step';
import { listenToIncident, waitWhileHeld } from './incident-step';

/** Runs recorded before notices existed ask the operator only on needs-relogin, and keep doing so on replay. */
const NOTICES_PATCH = 'operator-notices';
/** Runs recorded before live probes never probe (and answer a pool's auth-failure report with a refresh), on replay too. */
const PROBES_PATCH = 'live-probes';
/**
 * Runs recorded before pacing send token requests and login starts to the host's queue,
 * wait for device approvals there, and know no provider incidents, on replay too.
 */
const GENTLE_PATCH = 'gentle-providers';
/** How long continue-as-new and the end wait for notices still being delivered. */
const NOTICE_SETTLE_MS = 60_000;

export type { SlotInput, CarriedState, LoginOptions, RefreshBackoff } from '../common/slot-input';

export async function slotWorkflow(input: SlotInput): Promise<SlotStatus> {
  const slot = new Slot(input);
  slot.paced = patched(GENTLE_PATCH);
  slot.queues = slotQueues(input.host, input.provider, slot.paced);
  if (workflowInfo().memo?.slotWorkflowVersion !== SLOT_WORKFLOW_VERSION) upsertMemo({ slotWorkflowVersion: SLOT_WORKFLOW_VERSION });
  const files = fileActivities(input.host, input.hostWaitMs);
  const { notifyOperator } = sharedActivities();
  installHandlers(slot);
  // A slot that was part of an incident when it continued as new still hears when it ends.
  if (slot.incident) listenToIncident(slot);
  // Every event that needs or informs a person is a notice, sent from the slot's phase changes.
  const notices = patched(NOTICES_PATCH) ? new Notices() : undefined;
  if (notices) slot.observer = slotNoticeObserver(slot, notices);
  const probing = patched(PROBES_PATCH);
  installProbeHandlers(slot, probing);

  /** Tells operators once per event that a slot needs them; never blocks the slot on a dead webhook. */
  const askOperator = async (reason: string, kind?: 'setup-token-expiring'): Promise<void> => {
    // With notices, `needs-relogin` was announced when it was published; an expiry warning is no phase change.
    if (notices) {
      if (kind) notices.emit(kind, { slotId: input.slotId, provider: input.provider, host: input.host, phase: slot.phase, reason, action: { command: `slotctl relogin ${input.slotId}`, ...(slot.expiresAt !== undefined ? { until: slot.expiresAt } : {}) } });
      return;
    }
    try {
      await notifyOperator({ slotId: input.slotId, provider: input.provider, host: input.host, phase: slot.phase, reason });
    } catch {
      // The status and the log already carry the reason.
    }
  };
  const saveStatus = async (): Promise<void> => {
    try {
      await files.writeSlotStatus({ slotId: input.slotId, status: { ...slot.status(), updatedAt: Date.now() } });
    } catch {
      // A status file is a convenience for agents; the workflow's status is the truth.
    }
  };

  // An adopted credential is checked (and refreshed if due) before anything else.
  if (input.adoptExisting && !input.carried) await refreshStep(slot, false, askOperator, 'verifying');
  else slot.publish();

  while (!slot.pending.retire) {
    // A probeNow waiting for its answer is taken before a move (a move's new run could not answer it).
    if (slot.pending.move && !slot.pending.probe) {
      // `slotctl move`: a slot that now lives on another host goes on there, as a new run with that host.
      const to = slot.pending.move.toHost;
      slot.pending.move = undefined;
      if (await moveStep(slot, to)) {
        await condition(allHandlersFinished);
        await notices?.settle(NOTICE_SETTLE_MS);
        await continueAsNew<typeof slotWorkflow>({ ...input, host: to, carried: slot.carry() });
      }
      continue;
    }
    if (slot.pending.login && slot.incident?.held) {
      // A provider incident holds the automatic relogins until an operator releases them.
      await waitWhileHeld(slot);
      continue;
    }
    if (slot.pending.login) {
      // A verified login is followed by a check that schedules the first refresh and writes the agent env and status files.
      // With probes, the credential is proven live first (a refused one is refreshed, or needs a person).
      if ((await loginStep(slot, askOperator)) && (!probing || (await probeAfterLogin(slot, askOperator)))) await refreshStep(slot, false, askOperator, 'verifying');
    } else if (slot.phase === 'active' || slot.phase === 'degraded') {
      const due = Math.max((slot.nextRefreshAt ?? Date.now()) - Date.now(), 0);
      const probeIn = probing ? untilNextProbe(slot) : undefined;
      await condition(
        () => slot.pending.refresh || slot.pending.login || slot.pending.retire !== undefined || slot.pending.move !== undefined || slot.pending.probe === true,
        probeIn === undefined ? due : Math.min(due, probeIn),
      );
      if (slot.pending.retire || slot.pending.login || (slot.pending.move && !slot.pending.probe)) continue;
      if (probing && !slot.pending.refresh && probeDue(slot)) await probeStep(slot, slot.pending.probe ? 'operator' : 'schedule', askOperator);
      else {
        const force = slot.pending.refresh;
        slot.pending.refresh = false;
        await refreshStep(slot, force, askOperator);
      }
    } else {
      // needs-relogin: an operator decides. A refresh can still rescue a slot whose login was replaced by hand on the host.
      await condition(() => slot.pending.login || slot.pending.retire !== undefined || slot.pending.refresh || slot.pending.move !== undefined || slot.pending.probe === true);
      if (slot.pending.refresh && !slot.pending.login && !slot.pending.retire && !slot.pending.move) {
        slot.pending.refresh = false;
        await refreshStep(slot, true, askOperator);
      } else if (slot.pending.probe && !slot.pending.login && !slot.pending.retire) await probeStep(slot, 'operator', askOperator);
    }
    // A successful refresh wrote the status file itself; a slot that needs a person says so there too.
    if (slot.phase === 'needs-relogin') await saveStatus();
    const info = workflowInfo();
    // A probeNow waiting for its answer is a handler that has not finished: its probe comes first.
    if (!slot.pending.retire && !slot.pending.probe && (info.continueAsNewSuggested || info.historyLength >= (input.maxHistoryEvents ?? 2000))) {
      // Requests taken meanwhile travel with the state (`carry` holds `pending`).
      await condition(allHandlersFinished);
      await notices?.settle(NOTICE_SETTLE_MS);
      await continueAsNew<typeof slotWorkflow>({ ...input, carried: slot.carry() });
    }
  }

  await retire(slot, files, saveStatus);
  await condition(allHandlersFinished);
  await notices?.settle(NOTICE_SETTLE_MS);
  return slot.status();
}

/** Runs one login in a scope the operator can cancel; true when a credential was verified. */
async function loginStep(slot: Slot, askOperator: (reason: string) => Promise<void>): Promise<boolean> {
  const { slotId } = slot.input;
  slot.pending.login = false;
  slot.logins += 1;
  slot.step = 'login';
  slot.lastError = undefined;
  slot.setPhase('logging-in');
  try {
    const result = await inScope(slot, () => runLogin(slot));
    slot.expiresAt = result.credential.expiresAt;
    slot.lastRefresh = result.credential.lastRefresh ?? result.credential.modifiedAt;
    slot.account = result.credential.account;
    if (result.credential.backup) slot.backup = result.credential.backup;
    slot.lastError = undefined;
    slot.consecutiveFailures = 0;
    slot.record('login-succeeded', `logged in (${result.message}); credential ${result.credential.file} verified`);
    return true;
  } catch (err) {
    if (isCancellation(err)) {
      // relogin starts the next login at once; retire ends the slot; cancelLogin waits for a person.
      if (slot.pending.login || slot.pending.retire) return false;
      slot.record('login-failed', `login failed: the login was cancelled by an operator. ${nextStepAfterLogin(FailureType.loginCancelled, slotId)}`);
    } else {
      slot.consecutiveFailures += 1;
      slot.record('login-failed', `login failed: ${describeFailure(err).replace(/\.$/, '')}. ${nextStepAfterLogin(innermostFailureType(err), slotId)}`);
    }
    slot.setPhase('needs-relogin');
    await askOperator(slot.lastOutcome?.message ?? 'login failed');
    return false;
  } finally {
    slot.step = undefined;
    slot.live = undefined;
  }
}

/** The operator's messages. None can fail the workflow: a bad input is refused (update) or explained in the status (signal). */
function installHandlers(slot: Slot): void {
  // A refused code is `code-not-used`; a refused cancelLogin or relogin is `request-refused`.
  const refused = (what: string, problem: string, kind: 'code-not-used' | 'request-refused' = 'request-refused'): void => {
    slot.lastError = `${what} was not used: ${problem}`;
    slot.record(kind, slot.lastError);
    // The Web UI's page says why (a signal from its form has no other answer); not a command.
    setCurrentDetails(slot.details());
  };
  setHandler(statusQuery, () => slot.status(), { description: HANDLER_DESCRIPTIONS.status });
  installMoveHandler(slot);
  setHandler(
    submitCodeUpdate,
    // The validator guarantees a live login that is not typing; it ran in this same task.
    (code: SubmitCodeInput) => (slot.live as NonNullable<Slot['live']>).type(code.code),
    {
      validator: (code) => {
        const problem = slot.refuseCode(code);
        if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.codeRejected);
      },
      description: HANDLER_DESCRIPTIONS.submitCode,
    },
  );
  setHandler(
    submitCodeSignal,
    async (code) => {
      // A signal cannot answer; a refused code is explained in status instead.
      const problem = slot.refuseCode(code);
      if (problem || !slot.live) return refused('a submitted code', problem ?? 'no login is waiting', 'code-not-used');
      await slot.live.type((code as SubmitCodeInput).code);
    },
    { description: HANDLER_DESCRIPTIONS.submitCode },
  );
  setHandler(
    cancelLoginSignal,
    () => {
      if (slot.step !== 'login') return refused('cancelLogin', `no login is in progress (phase: ${slot.phase})`);
      // Past the CLI's "logged in", the credential is being verified: it is kept, not thrown away.
      if (slot.phase === 'verifying' && !slot.live) return refused('cancelLogin', 'the CLI already accepted the code; the credential is being verified');
      slot.interrupt();
    },
    { description: HANDLER_DESCRIPTIONS.cancelLogin },
  );
  setHandler(
    reloginSignal,
    () => {
      if (slot.pending.retire) return refused('relogin', 'the slot is being retired');
      slot.pending.login = true;
      // An operator's relogin of this slot is not held by its provider's incident.
      if (slot.incident?.held) slot.incident = { ...slot.incident, held: false };
      slot.interrupt();
    },
    { description: HANDLER_DESCRIPTIONS.relogin },
  );
  setHandler(refreshNowSignal, () => void (slot.pending.refresh = true), { description: HANDLER_DESCRIPTIONS.refreshNow });
  setHandler(
    retireSignal,
    (options) => {
      slot.pending.retire = retireOptions(options);
      slot.interrupt();
    },
    { description: HANDLER_DESCRIPTIONS.retire },
  );
}
