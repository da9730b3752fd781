// The entity workflow `slot:<id>`: one per slot, the single writer of its
// credential. It runs logins and refreshes as child workflows, sleeps on a
// durable timer until the next refresh is due, and answers operators.
import {
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  executeChild,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostActivities, SharedActivities } from '../activities/index';
import {
  cancelLoginSignal,
  codeProblem,
  loginCancelSignal,
  loginCodeSignal,
  loginProgressSignal,
  refreshNowSignal,
  refreshProgressSignal,
  reloginSignal,
  retireOptions,
  retireSignal,
  statusQuery,
  submitCodeSignal,
  submitCodeUpdate,
  type LoginProgress,
  type Outcome,
  type RefreshProgress,
  type SlotStatus,
  type SubmitCodeInput,
} from '../common/messages';
import { SlotExpiresAtKey, SlotPhaseKey, SlotPromptKey } from '../common/search-attributes';
import { hostTaskQueue, loginWorkflowId, refreshWorkflowId, type LoginPrompt, type Phase } from '../common/slot';
import type { RefreshSchedule } from '../providers/provider';
import { describe, loginWorkflow, type LoginInput } from './login';
import { refreshWorkflow, type RefreshBackoff, type RefreshOutcome } from './refresh';

export interface SlotInput {
  readonly slotId: string;
  readonly provider: string;
  /**
   * The provider's configuration for this slot (issuer, client, scopes … for
   * `oidc-device`); not secret. Checked by SlotClient.provision and by every
   * activity that builds the slot's provider from it.
   */
  readonly providerConfig?: unknown;
  /** The host whose worker holds the slot's files and runs its CLIs. */
  readonly host: string;
  /** Options passed to every login child (timeouts, attempt limits). */
  readonly login?: Pick<LoginInput, 'maxBadCodes' | 'maxRestarts' | 'operatorTimeoutMs' | 'heartbeatTimeoutMs'>;
  /** Overrides of the provider's refresh schedule. */
  readonly refresh?: Partial<RefreshSchedule> & { readonly backoff?: RefreshBackoff };
  /**
   * After a permanent refresh failure: start a new login at once (`login`,
   * the operator gets a URL right away) or wait for `relogin` (`wait`). @default "login"
   */
  readonly onPermanentFailure?: 'login' | 'wait';
  /** While refreshes fail, show `degraded` once the token expires within this. @default 30 minutes */
  readonly degradedWithinMs?: number;
  /** Continue-as-new once the history has this many events. @default 2000 */
  readonly maxHistoryEvents?: number;
  /**
   * Start from the credential already in the slot (a login made before, or by
   * hand) instead of a new login; a missing or invalid one needs a relogin.
   */
  readonly adoptExisting?: boolean;
  /** State carried over continue-as-new. */
  readonly carried?: CarriedState;
}

/** What survives continue-as-new: what `status` shows (nothing secret), and the run count. */
type CarriedState = Pick<
  SlotStatus,
  'phase' | 'expiresAt' | 'lastRefresh' | 'nextRefreshAt' | 'account' | 'lastOutcome' | 'lastError' | 'logins' | 'refreshes' | 'consecutiveFailures'
> & { readonly runs: number };

/** The slot's state and its message handlers, kept apart from the control flow. */
class Slot {
  phase: Phase = 'logging-in';
  prompt: LoginPrompt | undefined;
  lastOutcome: Outcome | undefined;
  lastError: string | undefined;
  expiresAt: number | undefined;
  lastRefresh: number | undefined;
  nextRefreshAt: number | undefined;
  account: string | undefined;
  logins = 0;
  refreshes = 0;
  consecutiveFailures = 0;
  runs = 1;
  currentLogin: string | undefined;
  currentRefresh: string | undefined;
  wantsLogin = true;
  refreshRequested = false;
  retire: { readonly removeFiles: boolean } | undefined;

  constructor(readonly input: SlotInput) {
    const carried = input.carried;
    if (carried) {
      Object.assign(this, { ...carried, runs: carried.runs + 1 });
      // A login in flight is never carried: continue-as-new waits for children to end.
      this.wantsLogin = false;
    }
  }

  carry(): CarriedState {
    return {
      phase: this.phase,
      expiresAt: this.expiresAt,
      lastRefresh: this.lastRefresh,
      nextRefreshAt: this.nextRefreshAt,
      account: this.account,
      lastOutcome: this.lastOutcome,
      lastError: this.lastError,
      logins: this.logins,
      refreshes: this.refreshes,
      consecutiveFailures: this.consecutiveFailures,
      runs: this.runs,
    };
  }

  status(): SlotStatus {
    return {
      slotId: this.input.slotId,
      provider: this.input.provider,
      host: this.input.host,
      phase: this.phase,
      ...(this.prompt ? { prompt: this.prompt } : {}),
      ...(this.expiresAt !== undefined ? { expiresAt: this.expiresAt } : {}),
      ...(this.lastRefresh !== undefined ? { lastRefresh: this.lastRefresh } : {}),
      ...(this.nextRefreshAt !== undefined && (this.phase === 'active' || this.phase === 'degraded') ? { nextRefreshAt: this.nextRefreshAt } : {}),
      ...(this.account ? { account: this.account } : {}),
      ...(this.lastOutcome ? { lastOutcome: this.lastOutcome } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      logins: this.logins,
      refreshes: this.refreshes,
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

  onLoginProgress(progress: LoginProgress): void {
    // Progress of a login we have moved on from must not overwrite the present.
    if (progress.loginId !== this.currentLogin) return;
    if (progress.outcome) this.lastOutcome = progress.outcome;
    this.lastError = progress.lastError;
    this.setPhase(progress.phase, progress.phase === 'awaiting-operator' ? progress.prompt : undefined);
  }

  onRefreshProgress(progress: RefreshProgress): void {
    if (progress.refreshId !== this.currentRefresh) return;
    this.consecutiveFailures = progress.consecutiveFailures;
    this.lastError = progress.lastError;
    this.record('refresh-failed', `refresh failed (${progress.consecutiveFailures} in a row), retrying: ${progress.lastError}`);
    const within = this.input.degradedWithinMs ?? 30 * 60_000;
    const nearExpiry = this.expiresAt === undefined || this.expiresAt - Date.now() <= within;
    if (nearExpiry || progress.consecutiveFailures >= 3) this.setPhase('degraded');
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
  const { notifyOperator } = proxyActivities<SharedActivities>({
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 5, initialInterval: '2 seconds' },
  });

  const forwardCode = async (code: SubmitCodeInput): Promise<string> => {
    const login = slot.currentLogin as string;
    // Optimistic: a second code must not pass the validator while this one is typed.
    slot.setPhase('verifying');
    await getExternalWorkflowHandle(login).signal(loginCodeSignal, code);
    return login;
  };

  setHandler(statusQuery, () => slot.status());
  setHandler(loginProgressSignal, (progress) => slot.onLoginProgress(progress));
  setHandler(refreshProgressSignal, (progress) => slot.onRefreshProgress(progress));
  setHandler(submitCodeUpdate, async (code) => ({ accepted: true as const, login: await forwardCode(code) }), {
    validator: (code) => {
      const problem = slot.refuseCode(code);
      if (problem) throw ApplicationFailure.nonRetryable(problem, 'CodeRejected');
    },
  });
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
  setHandler(refreshNowSignal, () => {
    slot.refreshRequested = true;
  });
  setHandler(retireSignal, (options) => {
    slot.retire = retireOptions(options);
  });

  /** Tells operators once per event that a slot needs them; never blocks the slot on a dead webhook. */
  const askOperator = async (reason: string): Promise<void> => {
    try {
      await notifyOperator({ slotId: input.slotId, provider: input.provider, host: input.host, phase: slot.phase, reason });
    } catch {
      // The status and the log already carry the reason.
    }
  };

  /** Revokes the slot's tokens where the provider's server can (RFC 7009); says what happened, as the start of a sentence. */
  const revokeOnRetire = async (): Promise<string> => {
    try {
      const revoked = await files.revokeCredential({ slotId: input.slotId, provider: input.provider, providerConfig: input.providerConfig });
      switch (revoked.kind) {
        case 'revoked':
          return `${revoked.message}; `;
        case 'failed':
          return `revoking the tokens failed, they stay valid until they expire (${revoked.reason.replace(/\.$/, '')}); `;
        case 'unsupported':
        case 'nothing':
          return '';
      }
    } catch (err) {
      return `revoking the tokens failed (${describe(err).replace(/\.$/, '')}); `;
    }
  };

  const saveStatus = async (): Promise<void> => {
    try {
      await files.writeSlotStatus({ slotId: input.slotId, status: { ...slot.status(), updatedAt: Date.now() } });
    } catch {
      // A status file is a convenience for agents; the workflow's status is the truth.
    }
  };

  if (slot.input.carried) {
    slot.setPhase(slot.phase);
  } else if (input.adoptExisting) {
    slot.wantsLogin = false;
    await runRefresh(slot, false, askOperator, 'verifying');
    await saveStatus();
  }

  while (!slot.retire) {
    if (slot.wantsLogin) {
      const ok = await runLogin(slot);
      // Schedules the first refresh and writes the agent env file; the slot stays `verifying` meanwhile.
      if (ok) await runRefresh(slot, false, askOperator, 'verifying');
      else await askOperator(slot.lastOutcome?.message ?? 'login failed');
      await saveStatus();
      continue;
    }
    if (slot.phase === 'active' || slot.phase === 'degraded') {
      const due = (slot.nextRefreshAt ?? Date.now()) - Date.now();
      const woke = await condition(() => slot.refreshRequested || slot.wantsLogin || slot.retire !== undefined, Math.max(due, 0));
      if (slot.retire || slot.wantsLogin) continue;
      const force = woke && slot.refreshRequested;
      slot.refreshRequested = false;
      await runRefresh(slot, force, askOperator);
      await saveStatus();
    } else {
      // needs-relogin: an operator decides.
      await condition(() => slot.wantsLogin || slot.retire !== undefined || slot.refreshRequested);
      if (slot.refreshRequested && !slot.wantsLogin && !slot.retire) {
        // A refresh can still rescue a slot whose login was replaced by hand on the host.
        slot.refreshRequested = false;
        await runRefresh(slot, true, askOperator);
        await saveStatus();
      }
    }
    if (shouldContinueAsNew(slot)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof slotWorkflow>({ ...input, carried: slot.carry() });
    }
  }

  if (slot.currentLogin) await getExternalWorkflowHandle(slot.currentLogin).signal(loginCancelSignal);
  // Before the files go (the tokens are read from them); a failure is told, not fatal.
  const revocation = patched('revoke-on-retire') ? await revokeOnRetire() : '';
  if (slot.retire.removeFiles) await files.removeSlotFiles({ slotId: input.slotId });
  slot.record('info', `retired; ${revocation}${slot.retire.removeFiles ? 'the slot files were removed' : 'the slot files were kept'}`);
  slot.setPhase('retired');
  if (!slot.retire.removeFiles) await saveStatus();
  await condition(allHandlersFinished);
  return slot.status();
}

function shouldContinueAsNew(slot: Slot): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength >= (slot.input.maxHistoryEvents ?? 2000);
}

/** Runs a login child; true when it verified a credential. */
async function runLogin(slot: Slot): Promise<boolean> {
  const { slotId, provider, providerConfig, host } = slot.input;
  slot.wantsLogin = false;
  slot.logins += 1;
  const childId = loginWorkflowId(slotId, slot.logins);
  slot.currentLogin = childId;
  slot.lastError = undefined;
  slot.setPhase('logging-in');
  try {
    const result = await executeChild(loginWorkflow, {
      workflowId: childId,
      args: [{ slotId, provider, ...(providerConfig !== undefined ? { providerConfig } : {}), host, parentId: workflowInfo().workflowId, ...slot.input.login }],
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
    return true;
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailure)) throw err;
    const next = nextStepAfterLogin(innermostFailureType(err), slotId);
    slot.consecutiveFailures += 1;
    slot.record('login-failed', `login failed: ${describe(err).replace(/\.$/, '')}. ${next}`);
    slot.currentLogin = undefined;
    slot.setPhase('needs-relogin');
    return false;
  }
}

/** The type of the deepest ApplicationFailure in a failure chain: where the reason was known. */
function innermostFailureType(err: unknown): string | undefined {
  let type: string | undefined;
  for (let current: unknown = err; current instanceof Error; current = (current as { cause?: unknown }).cause) {
    if (current instanceof ApplicationFailure && current.type) type = current.type;
  }
  return type;
}

/** What the operator should do after a failed login: a new URL does not fix a configuration. */
function nextStepAfterLogin(type: string | undefined, slotId: string): string {
  switch (type) {
    case 'LoginCancelled':
      return `Start a new one with: slotctl relogin ${slotId}`;
    case 'LoginCliMissing':
      return `Install the CLI on the slot's host (or set its *_BIN variable), then: slotctl relogin ${slotId}`;
    case 'LoginMisconfigured':
      return `Fix the provider configuration (retire the slot and provision it again with corrected settings), then log in again.`;
    default:
      return `Run \`slotctl relogin ${slotId}\` for a new login URL.`;
  }
}

/**
 * Runs a refresh child (which retries transient failures itself) while staying
 * responsive: `relogin` or `retire` cancel it.
 */
async function runRefresh(
  slot: Slot,
  force: boolean,
  askOperator: (reason: string) => Promise<void>,
  phaseWhileRunning: Extract<Phase, 'refreshing' | 'verifying'> = 'refreshing',
): Promise<void> {
  const { slotId, provider, providerConfig, host } = slot.input;
  slot.refreshes += 1;
  const childId = refreshWorkflowId(slotId, slot.refreshes);
  slot.currentRefresh = childId;
  // A degraded slot stays degraded until a refresh succeeds.
  if (slot.phase !== 'degraded') slot.setPhase(phaseWhileRunning);
  const { backoff, ...schedule } = slot.input.refresh ?? {};
  let outcome: { ok: RefreshOutcome } | { failed: unknown } | undefined;
  const scope = new CancellationScope();
  const running = scope
    .run(() =>
      executeChild(refreshWorkflow, {
        workflowId: childId,
        args: [
          {
            slotId,
            provider,
            ...(providerConfig !== undefined ? { providerConfig } : {}),
            host,
            parentId: workflowInfo().workflowId,
            force,
            schedule,
            ...(backoff ? { backoff } : {}),
          },
        ],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      }),
    )
    .then(
      (ok) => void (outcome = { ok }),
      (failed: unknown) => void (outcome = { failed }),
    );
  await condition(() => outcome !== undefined || slot.wantsLogin || slot.retire !== undefined);
  if (!outcome) {
    scope.cancel();
    await running;
  }
  slot.currentRefresh = undefined;
  const result = outcome as { ok: RefreshOutcome } | { failed: unknown };

  if ('ok' in result) {
    const r = result.ok;
    slot.expiresAt = r.expiresAt ?? slot.expiresAt;
    slot.lastRefresh = r.lastRefresh ?? slot.lastRefresh;
    slot.nextRefreshAt = r.nextRefreshAt;
    if (r.account) slot.account = r.account;
    slot.consecutiveFailures = 0;
    slot.lastError = undefined;
    // A check that found the credential fresh is no news: the last outcome (a login, say) stays.
    if (r.kind === 'refreshed' || !slot.lastOutcome) {
      slot.record(
        'refresh-succeeded',
        r.kind === 'refreshed'
          ? `refreshed${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}; next refresh ${new Date(r.nextRefreshAt).toISOString()}`
          : `credential is valid; next refresh ${new Date(r.nextRefreshAt).toISOString()}`,
      );
    }
    slot.setPhase('active');
    return;
  }
  if (isCancellation(result.failed) || (result.failed instanceof ChildWorkflowFailure && isCancellation(result.failed.cause))) {
    // Relogin or retire overtook the refresh; the main loop handles them.
    if (slot.phase === 'refreshing' || slot.phase === 'verifying') slot.setPhase('active');
    return;
  }
  if (!(result.failed instanceof ChildWorkflowFailure)) throw result.failed;
  const reason = describe(result.failed);
  slot.consecutiveFailures += 1;
  slot.lastError = reason;
  const automatic = (slot.input.onPermanentFailure ?? 'login') === 'login';
  slot.record(
    'refresh-failed',
    `refresh failed permanently: ${reason.replace(/\.$/, '')}. ${automatic ? 'A new login was started; an operator must complete it.' : `Run \`slotctl relogin ${slotId}\` to log in again.`}`,
  );
  slot.setPhase('needs-relogin');
  await askOperator(slot.lastOutcome?.message ?? reason);
  if (automatic) slot.wantsLogin = true;
}
