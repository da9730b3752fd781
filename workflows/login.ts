// One login attempt of a slot, as a child of the slot's workflow: start the CLI
// on the slot's host, publish its prompt, wait for the operator (with a deadline),
// type the code, verify the credential. Restarts the CLI when it cannot go on.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { CredentialSummary } from '../activities/credential';
import type { HostActivities } from '../activities/index';
import type { LoginOutcome, StartLoginResult } from '../activities/login';
import {
  loginCancelSignal,
  loginCodeSignal,
  loginProgressSignal,
  type LoginProgress,
  type Outcome,
  type SubmitCodeInput,
} from '../common/messages';
import { hostTaskQueue } from '../common/slot';
import { verifyCredentialOn } from './verify';
import { awaitDeviceApproval } from './device-login';
import { LoginWorkflowFailure } from './login-failures';
import { tellParent } from './parent';

export { LoginWorkflowFailure };

export interface LoginInput {
  readonly slotId: string;
  readonly provider: string;
  /** The slot's provider configuration (providers configured per slot). */
  readonly providerConfig?: unknown;
  readonly host: string;
  /** Workflow id of the slot to report progress to. */
  readonly parentId: string;
  /** Codes an operator may get wrong before the login gives up. @default 3 */
  readonly maxBadCodes?: number;
  /** CLI restarts (hung CLI, dead worker) before the login gives up. @default 3 */
  readonly maxRestarts?: number;
  /** Overrides the provider's operator deadline (it may only shorten it). */
  readonly operatorTimeoutMs?: number;
  /** Heartbeat timeout of the PTY watcher: how soon a dead worker is noticed. @default 15 s */
  readonly heartbeatTimeoutMs?: number;
}

export interface LoginResult {
  readonly credential: CredentialSummary;
  readonly message: string;
}

function hostActivities(host: string, heartbeatTimeoutMs: number) {
  // The queue belongs to the one worker holding the slot's PTY and files; a
  // retry elsewhere would find no session, so the workflow decides what to redo.
  const once = { maximumAttempts: 1 };
  const queue = hostTaskQueue(host);
  return {
    start: proxyActivities<HostActivities>({
      taskQueue: queue,
      scheduleToCloseTimeout: '2 minutes',
      heartbeatTimeout: heartbeatTimeoutMs,
      retry: once,
    }).startLogin,
    watch: proxyActivities<HostActivities>({
      taskQueue: queue,
      scheduleToCloseTimeout: '2 hours',
      heartbeatTimeout: heartbeatTimeoutMs,
      retry: once,
    }).watchLogin,
    submit: proxyActivities<HostActivities>({
      taskQueue: queue,
      scheduleToCloseTimeout: '2 minutes',
      heartbeatTimeout: heartbeatTimeoutMs,
      retry: once,
    }).submitLoginCode,
    close: proxyActivities<HostActivities>({
      taskQueue: queue,
      scheduleToCloseTimeout: '1 minute',
      retry: { maximumAttempts: 3 },
    }).closeLogin,
    verify: verifyCredentialOn(host),
  };
}

/** Why a PTY session ended while the operator was awaited. */
type Interruption =
  | { readonly kind: 'exited'; readonly outcome: LoginOutcome }
  | { readonly kind: 'lost'; readonly reason: string };

export async function loginWorkflow(input: LoginInput): Promise<LoginResult> {
  const loginId = workflowInfo().workflowId;
  const acts = hostActivities(input.host, input.heartbeatTimeoutMs ?? 15_000);
  const maxBadCodes = input.maxBadCodes ?? 3;
  const maxRestarts = input.maxRestarts ?? 3;

  const codes: SubmitCodeInput[] = [];
  let cancelled = false;
  setHandler(loginCodeSignal, (code) => void codes.push(code));
  setHandler(loginCancelSignal, () => void (cancelled = true));

  const report = (progress: Omit<LoginProgress, 'loginId'>): Promise<void> =>
    tellParent(input.parentId, loginProgressSignal, { loginId, ...progress });
  const outcome = (kind: Outcome['kind'], message: string): Outcome => ({ at: Date.now(), kind, message });

  let badCodes = 0;
  let restarts = 0;
  let lastError: string | undefined;

  for (;;) {
    await report({ phase: 'logging-in', ...(lastError ? { lastError } : {}) });
    const started: StartLoginResult = await acts.start({ slotId: input.slotId, provider: input.provider, providerConfig: input.providerConfig, loginId });
    // The provider's kind of login, as the activity found it: no CLI to watch in a device flow.
    if (started.kind === 'device-flow') return await awaitDeviceApproval(input, loginId, started, { cancelled: () => cancelled, report });
    const deadline = Math.min(started.prompt.expiresAt, started.startedAt + (input.operatorTimeoutMs ?? Infinity));
    const prompt = { ...started.prompt, expiresAt: deadline };
    log.info('login awaiting operator', { slotId: input.slotId, url: prompt.url, userCode: prompt.userCode });
    await report({ phase: 'awaiting-operator', prompt, ...(lastError ? { lastError } : {}) });

    // Watches the PTY while the operator is awaited: the CLI may finish by itself
    // (device approval), fail, or vanish with its worker.
    let interruption: Interruption | undefined;
    const watchScope = new CancellationScope();
    const watching = watchScope
      .run(() => acts.watch({ loginId }))
      .then(
        (ended) => void (ended && (interruption = { kind: 'exited', outcome: ended })),
        (err: unknown) => {
          if (!isCancellation(err)) interruption = { kind: 'lost', reason: describe(err) };
        },
      );

    let restart = false;
    try {
      while (!restart) {
        const remaining = deadline - Date.now();
        const woke = remaining > 0 && (await condition(() => codes.length > 0 || cancelled || interruption !== undefined, remaining));
        if (cancelled) {
          throw ApplicationFailure.nonRetryable('the login was cancelled by an operator', LoginWorkflowFailure.cancelled);
        }
        if (!woke) {
          throw ApplicationFailure.nonRetryable(
            `no operator answered within ${Math.round((deadline - started.startedAt) / 60_000)} minutes; the login URL has expired`,
            LoginWorkflowFailure.timedOut,
          );
        }
        if (interruption?.kind === 'lost') {
          lastError = `the login CLI was lost (${interruption.reason}); started a new login with a new URL`;
          restart = true;
          break;
        }
        if (interruption?.kind === 'exited') {
          const ended: LoginOutcome = interruption.outcome;
          if (ended.kind === 'failed' || (ended.kind === 'exited' && ended.exitCode !== 0)) {
            throw ApplicationFailure.nonRetryable(ended.message, LoginWorkflowFailure.cliFailed);
          }
          return await finish(started, ended.message);
        }
        const code = codes.shift() as SubmitCodeInput;
        // The operator is waiting on the keystrokes: schedule them in this workflow task,
        // alongside (not after) telling the slot, which already shows `verifying`.
        const reported = report({ phase: 'verifying' });
        const answer = await acts.submit({ loginId, code: code.code });
        await reported;
        switch (answer.kind) {
          case 'succeeded':
          case 'exited':
            if (answer.kind === 'exited' && answer.exitCode !== 0) {
              throw ApplicationFailure.nonRetryable(answer.message, LoginWorkflowFailure.cliFailed);
            }
            return await finish(started, answer.message);
          case 'failed':
            throw ApplicationFailure.nonRetryable(answer.message, LoginWorkflowFailure.cliFailed);
          case 'rejected':
          case 'hung': {
            badCodes += 1;
            lastError = answer.message;
            if (badCodes >= maxBadCodes) {
              throw ApplicationFailure.nonRetryable(
                `${badCodes} codes were rejected; last answer: ${answer.message}`,
                LoginWorkflowFailure.tooManyBadCodes,
              );
            }
            await report({ phase: 'awaiting-operator', prompt, lastError, outcome: outcome('code-rejected', answer.message) });
            // Claude hangs after a bad code: only a new CLI (and URL) can take another.
            if (started.restartAfterRejection || answer.kind === 'hung') restart = true;
            break;
          }
        }
      }
    } finally {
      watchScope.cancel();
      await watching;
      await CancellationScope.nonCancellable(() => acts.close({ loginId }));
    }
    restarts += 1;
    if (restarts > maxRestarts) {
      throw ApplicationFailure.nonRetryable(`the login CLI was restarted ${maxRestarts} times; giving up: ${lastError ?? ''}`, LoginWorkflowFailure.tooManyRestarts);
    }
    await report({ phase: 'logging-in', lastError: lastError ?? 'restarting the login', outcome: outcome('login-restarted', lastError ?? 'restarting') });
  }

  async function finish(started: StartLoginResult, message: string): Promise<LoginResult> {
    await report({ phase: 'verifying' });
    const credential = await acts.verify({
      slotId: input.slotId,
      provider: input.provider,
      providerConfig: input.providerConfig,
      notBefore: started.startedAt,
      ...(started.previousCredentialMtime !== undefined ? { previousMtime: started.previousCredentialMtime } : {}),
    });
    return { credential, message };
  }
}

/** A failure's innermost message, for operators. */
export function describe(err: unknown): string {
  let current: unknown = err;
  let message = String(err);
  while (current instanceof Error) {
    if (current instanceof ActivityFailure && current.cause) {
      current = current.cause;
      continue;
    }
    message = current.message;
    current = (current as { cause?: unknown }).cause;
  }
  return message;
}
