// The entity workflow `slot:<id>`: one per slot, the single writer of its
// credential. It runs logins as child workflows and answers operators.
import {
  ApplicationFailure,
  ChildWorkflowFailure,
  ParentClosePolicy,
  condition,
  executeChild,
  getExternalWorkflowHandle,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { HostActivities } from '../activities/index';
import {
  cancelLoginSignal,
  codeProblem,
  loginCancelSignal,
  loginCodeSignal,
  loginProgressSignal,
  reloginSignal,
  retireSignal,
  RetireInput,
  statusQuery,
  submitCodeSignal,
  submitCodeUpdate,
  type LoginProgress,
  type Outcome,
  type SlotStatus,
  type SubmitCodeInput,
} from '../common/messages';
import { SlotPhaseKey, SlotPromptKey, SlotExpiresAtKey } from '../common/search-attributes';
import { hostTaskQueue, loginWorkflowId, type LoginPrompt, type Phase } from '../common/slot';
import { describe, loginWorkflow, type LoginInput } from './login';

export interface SlotInput {
  readonly slotId: string;
  readonly provider: string;
  /** The host whose worker holds the slot's files and runs its CLIs. */
  readonly host: string;
  /** Options passed to every login child (timeouts, attempt limits). */
  readonly login?: Pick<LoginInput, 'maxBadCodes' | 'maxRestarts' | 'operatorTimeoutMs' | 'heartbeatTimeoutMs'>;
}

/** The slot's state and its message handlers, kept apart from the control flow. */
class Slot {
  phase: Phase = 'logging-in';
  prompt: LoginPrompt | undefined;
  lastOutcome: Outcome | undefined;
  lastError: string | undefined;
  expiresAt: number | undefined;
  lastRefresh: number | undefined;
  account: string | undefined;
  logins = 0;
  consecutiveFailures = 0;
  currentLogin: string | undefined;
  wantsLogin = true;
  retire: RetireInput | undefined;

  constructor(readonly input: SlotInput) {}

  status(): SlotStatus {
    return {
      slotId: this.input.slotId,
      provider: this.input.provider,
      host: this.input.host,
      phase: this.phase,
      ...(this.prompt ? { prompt: this.prompt } : {}),
      ...(this.expiresAt !== undefined ? { expiresAt: this.expiresAt } : {}),
      ...(this.lastRefresh !== undefined ? { lastRefresh: this.lastRefresh } : {}),
      ...(this.account ? { account: this.account } : {}),
      ...(this.lastOutcome ? { lastOutcome: this.lastOutcome } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      logins: this.logins,
      consecutiveFailures: this.consecutiveFailures,
    };
  }

  setPhase(phase: Phase, prompt?: LoginPrompt): void {
    this.phase = phase;
    this.prompt = prompt;
    upsertSearchAttributes([
      { key: SlotPhaseKey, value: phase },
      { key: SlotPromptKey, value: prompt ? `${prompt.url}${prompt.userCode ? ` code ${prompt.userCode}` : ''}` : null },
      { key: SlotExpiresAtKey, value: this.expiresAt !== undefined ? new Date(this.expiresAt) : null },
    ]);
  }

  record(kind: Outcome['kind'], message: string): void {
    this.lastOutcome = { at: Date.now(), kind, message };
  }

  /** Why a code cannot be taken now, or undefined. Never repeats the code. */
  refuseCode(input: unknown): string | undefined {
    if (this.phase !== 'awaiting-operator' || !this.prompt || !this.currentLogin) {
      return `slot ${this.input.slotId} is not waiting for a code (phase: ${this.phase})`;
    }
    if (this.prompt.interaction !== 'paste-code') {
      return `this login needs no code: open ${this.prompt.url}${this.prompt.userCode ? ` and enter ${this.prompt.userCode}` : ''}; it completes by itself`;
    }
    return codeProblem(input, this.prompt);
  }

  onProgress(progress: LoginProgress): void {
    // Progress of a login we have moved on from must not overwrite the present.
    if (progress.loginId !== this.currentLogin) return;
    if (progress.outcome) this.lastOutcome = progress.outcome;
    this.lastError = progress.lastError;
    this.setPhase(progress.phase, progress.phase === 'awaiting-operator' ? progress.prompt : undefined);
  }
}

export async function slotWorkflow(input: SlotInput): Promise<SlotStatus> {
  const slot = new Slot(input);
  const files = proxyActivities<HostActivities>({
    // Only the slot host's worker can touch its files.
    taskQueue: hostTaskQueue(input.host),
    scheduleToCloseTimeout: '10 minutes',
    retry: { maximumAttempts: 5 },
  });

  const forwardCode = async (code: SubmitCodeInput): Promise<string> => {
    const login = slot.currentLogin as string;
    // Optimistic: a second code must not pass the validator while this one is typed.
    slot.setPhase('verifying');
    await getExternalWorkflowHandle(login).signal(loginCodeSignal, code);
    return login;
  };

  setHandler(statusQuery, () => slot.status());
  setHandler(loginProgressSignal, (progress) => slot.onProgress(progress));
  setHandler(
    submitCodeUpdate,
    async (code) => ({ accepted: true as const, login: await forwardCode(code) }),
    {
      validator: (code) => {
        const problem = slot.refuseCode(code);
        if (problem) throw new Error(problem);
      },
    },
  );
  setHandler(submitCodeSignal, async (code) => {
    // A signal cannot answer; a refused code is explained in status instead.
    const problem = slot.refuseCode(code);
    if (problem) {
      slot.lastError = `a submitted code was not used: ${problem}`;
      return;
    }
    await forwardCode(code);
  });
  setHandler(cancelLoginSignal, async () => {
    if (slot.currentLogin) await getExternalWorkflowHandle(slot.currentLogin).signal(loginCancelSignal);
  });
  setHandler(reloginSignal, () => {
    if (!slot.currentLogin) slot.wantsLogin = true;
  });
  setHandler(retireSignal, (options) => {
    slot.retire = RetireInput.parse(options ?? {});
  });

  while (!slot.retire) {
    if (slot.wantsLogin) {
      await runLogin(slot);
      continue;
    }
    await condition(() => slot.wantsLogin || slot.retire !== undefined);
  }

  if (slot.currentLogin) await getExternalWorkflowHandle(slot.currentLogin).signal(loginCancelSignal);
  if (slot.retire.removeFiles) await files.removeSlotFiles({ slotId: input.slotId });
  slot.record('info', slot.retire.removeFiles ? 'retired; the slot files were removed' : 'retired; the slot files were kept');
  slot.setPhase('retired');
  await condition(allHandlersFinished);
  return slot.status();
}

async function runLogin(slot: Slot): Promise<void> {
  const { slotId, provider, host } = slot.input;
  slot.wantsLogin = false;
  slot.logins += 1;
  const childId = loginWorkflowId(slotId, slot.logins);
  slot.currentLogin = childId;
  slot.lastError = undefined;
  slot.setPhase('logging-in');
  try {
    const result = await executeChild(loginWorkflow, {
      workflowId: childId,
      args: [{ slotId, provider, host, parentId: workflowInfo().workflowId, ...slot.input.login }],
      // Cancelling (not terminating) lets the login close its PTY on the way out.
      parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
    });
    slot.expiresAt = result.credential.expiresAt;
    slot.lastRefresh = result.credential.lastRefresh ?? result.credential.modifiedAt;
    slot.account = result.credential.account;
    slot.lastError = undefined;
    slot.consecutiveFailures = 0;
    slot.record('login-succeeded', `logged in (${result.message}); credential ${result.credential.file} verified`);
    slot.currentLogin = undefined;
    slot.setPhase('active');
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailure)) throw err;
    const type = err.cause instanceof ApplicationFailure ? err.cause.type : undefined;
    const next =
      type === 'LoginCancelled'
        ? `Start a new one with: slotctl relogin ${slotId}`
        : `Run \`slotctl relogin ${slotId}\` for a new login URL.`;
    slot.consecutiveFailures += 1;
    slot.record('login-failed', `login failed: ${describe(err)}. ${next}`);
    slot.currentLogin = undefined;
    slot.setPhase('needs-relogin');
  }
}
