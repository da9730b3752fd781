// The entity workflow `slot:<id>`: one per slot, the only authority over it and
// the single writer of its credential. Logins and refreshes are steps it runs
// itself (activities on the slot's host, in scopes it owns); between them it
// sleeps on a durable timer until the next refresh is due, and answers operators.
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  patched,
  setHandler,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType } from '../common/failures';
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
import type { ProbeReason } from '../common/probe';
import { fileActivities, slotQueues } from './activities';
import { loginStep } from './login-step';
import { refreshStep } from './refresh-step';
import { Slot } from './slot-state';
import { Notices, SlotNotices } from './notices';
import { installMoveHandler, moveStep } from './restore-step';
import { retire } from './retire-step';
import { installProbeHandlers, probeFinished, probeStep, reprobeStep, untilNextProbe } from './probe-step';
import { listenToIncident, waitWhileHeld } from './incident-step';
import { asked, nextRequest, type Woken } from './next-request';
import { refused, resumed } from './transitions';

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

/**
 * A run starts: the state from the input, this run's patches (in the order the recorded
 * histories take them: a patch marker is a command, so the order must not change), the
 * handlers, the notices.
 */
function startRun(input: SlotInput): { slot: Slot; notices: Notices | undefined } {
  const slot = new Slot(input);
  slot.run.paced = patched(GENTLE_PATCH);
  slot.run.queues = slotQueues(input.host, input.provider, slot.run.paced);
  if (workflowInfo().memo?.slotWorkflowVersion !== SLOT_WORKFLOW_VERSION) upsertMemo({ slotWorkflowVersion: SLOT_WORKFLOW_VERSION });
  installHandlers(slot);
  // A slot that was part of an incident when it continued as new still hears when it ends.
  if (slot.state.incident) listenToIncident(slot);
  // Every event that needs or informs a person is a notice, sent by the transition that causes it.
  const notices = patched(NOTICES_PATCH) ? new Notices() : undefined;
  if (notices) slot.notices = new SlotNotices(slot, notices);
  slot.run.probing = patched(PROBES_PATCH);
  installProbeHandlers(slot);
  return { slot, notices };
}

/**
 * The slot's main loop: the next request (workflows/next-request.ts) in one exhaustive
 * switch, then the status file and continue-as-new. Left whole (about 80 lines): each
 * case is a few lines, and which cases skip the tail (`continue`) is the loop's contract.
 */
export async function slotWorkflow(input: SlotInput): Promise<SlotStatus> {
  const { slot, notices } = startRun(input);
  const files = fileActivities(input.host, input.hostWaitMs);

  const saveStatus = async (): Promise<void> => {
    try {
      await files.writeSlotStatus({ slotId: input.slotId, status: { ...slot.status(), updatedAt: Date.now() } });
    } catch {
      // A status file is a convenience for agents; the workflow's status is the truth.
    }
  };
  /** Continue-as-new: handlers done, notices delivered, the state carried whole (with the requests taken meanwhile). */
  const continueWith = async (host: string): Promise<never> => {
    await condition(allHandlersFinished);
    await notices?.settle(NOTICE_SETTLE_MS);
    return await continueAsNew<typeof slotWorkflow>({ ...input, host, carried: slot.carry() });
  };

  // An adopted credential is checked (and refreshed if due) before anything else.
  if (input.adoptExisting && !input.carried) await refreshStep(slot, false, 'verifying');
  else resumed(slot);

  let woken: Woken;
  for (;;) {
    const next = nextRequest({ ...slot.state, probing: slot.run.probing }, woken, Date.now());
    woken = undefined;
    switch (next.kind) {
      case 'retire':
        await retire(slot, files, saveStatus);
        await condition(allHandlersFinished);
        await notices?.settle(NOTICE_SETTLE_MS);
        return slot.status();
      case 'move': {
        // `slotctl move`: a slot that now lives on another host goes on there, as a new run with that host.
        slot.state.pending.move = undefined;
        const moved = await moveStep(slot, next.toHost);
        if (moved === 'moved') await continueWith(next.toHost);
        // A refresh token the new host's refresh was refused is refused here too: the slot finds out on its own host.
        if (moved === 'stayed-refresh-here') slot.state.pending.refresh = true;
        continue;
      }
      case 'held-login':
        // A provider incident holds the automatic relogins until an operator releases them.
        await waitWhileHeld(slot);
        continue;
      case 'login':
        // A verified login is followed by a check that schedules the first refresh and writes the agent env and status files.
        // With probes, the credential is proven live first (a refused one is refreshed, or needs a person).
        if ((await loginStep(slot)) === 'verified' && (!slot.run.probing || (await probeCycle(slot, 'login')) === 'probed')) await refreshStep(slot, false, 'verifying');
        break;
      case 'refresh':
        slot.state.pending.refresh = false;
        await refreshStep(slot, next.force);
        break;
      case 'probe':
        await probeCycle(slot, next.reason);
        break;
      case 'sleep': {
        // A live credential: sleep until its refresh or probe is due, or a request comes.
        const due = Math.max((slot.state.nextRefreshAt ?? Date.now()) - Date.now(), 0);
        const probeIn = slot.run.probing ? untilNextProbe(slot) : undefined;
        await condition(() => asked(slot.state), probeIn === undefined ? due : Math.min(due, probeIn));
        woken = 'sleep';
        continue;
      }
      case 'await-person':
        // needs-relogin: an operator decides. A refresh can still rescue a slot whose login was replaced by hand on the host.
        await condition(() => asked(slot.state));
        woken = 'person';
        continue;
      case 'none':
        break;
      default:
        return unreachable(next);
    }
    // A successful refresh wrote the status file itself; a slot that needs a person says so there too.
    if (slot.state.phase === 'needs-relogin') await saveStatus();
    const info = workflowInfo();
    // A probeNow waiting for its answer is a handler that has not finished: its probe comes first.
    if (!slot.state.pending.retire && !slot.state.pending.probe && (info.continueAsNewSuggested || info.historyLength >= (input.maxHistoryEvents ?? 2000))) {
      // Requests taken meanwhile travel with the state (`carry` holds `pending`).
      await continueWith(input.host);
    }
  }
}

const unreachable = (next: never): never => {
  throw new Error(`no case for the request ${JSON.stringify(next)}`);
};

/**
 * A probe step and what it asks for: a forced refresh when the provider refused the token
 * (then a second probe: a refusal that persists needs a person), or when a pool's report
 * asked and the probe cannot tell. `probed`: nothing more was needed; `refreshed`: a
 * refresh ran (and set the phase); `stopped`: cancelled, or a person is needed.
 */
async function probeCycle(slot: Slot, reason: ProbeReason): Promise<'probed' | 'refreshed' | 'stopped'> {
  try {
    const found = await probeStep(slot, reason);
    switch (found) {
      case 'probed':
      case 'stopped':
        return found;
      case 'inconclusive':
        await refreshStep(slot, true);
        return 'refreshed';
      case 'refused':
        await refreshStep(slot, true, reason === 'login' ? 'verifying' : 'refreshing');
        // A refresh that failed permanently has asked for a person itself; relogin and retire go first.
        if (slot.state.phase === 'needs-relogin' || slot.state.pending.login || slot.state.pending.retire) return 'stopped';
        return await reprobeStep(slot);
    }
  } finally {
    probeFinished(slot);
  }
}

/** The operator's messages. None can fail the workflow: a bad input is refused (update) or explained in the status (signal). */
function installHandlers(slot: Slot): void {
  // A refused code is `code-not-used`; a refused cancelLogin or relogin is `request-refused`.
  const refuse = (what: string, problem: string, kind: 'code-not-used' | 'request-refused' = 'request-refused'): void => refused(slot, kind, `${what} was not used: ${problem}`);
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
      if (problem || !slot.live) return refuse('a submitted code', problem ?? 'no login is waiting', 'code-not-used');
      await slot.live.type((code as SubmitCodeInput).code);
    },
    { description: HANDLER_DESCRIPTIONS.submitCode },
  );
  setHandler(
    cancelLoginSignal,
    () => {
      if (slot.step !== 'login') return refuse('cancelLogin', `no login is in progress (phase: ${slot.state.phase})`);
      // Past the CLI's "logged in", the credential is being verified: it is kept, not thrown away.
      if (slot.state.phase === 'verifying' && !slot.live) return refuse('cancelLogin', 'the CLI already accepted the code; the credential is being verified');
      slot.interrupt();
    },
    { description: HANDLER_DESCRIPTIONS.cancelLogin },
  );
  setHandler(
    reloginSignal,
    () => {
      if (slot.state.pending.retire) return refuse('relogin', 'the slot is being retired');
      slot.state.pending.login = true;
      // An operator's relogin of this slot is not held by its provider's incident.
      if (slot.state.incident?.held) slot.state.incident = { ...slot.state.incident, held: false };
      slot.interrupt();
    },
    { description: HANDLER_DESCRIPTIONS.relogin },
  );
  setHandler(refreshNowSignal, () => void (slot.state.pending.refresh = true), { description: HANDLER_DESCRIPTIONS.refreshNow });
  setHandler(
    retireSignal,
    (options) => {
      slot.state.pending.retire = retireOptions(options);
      slot.interrupt();
    },
    { description: HANDLER_DESCRIPTIONS.retire },
  );
}
