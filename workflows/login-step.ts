// A login, as a step of the slot's own workflow: start the CLI on the slot's host
// (or a device flow), publish its prompt, wait for the operator with a deadline,
// verify the credential. Codes are typed by the submitCode handler through the
// live attempt (see `LiveLogin`), in the workflow task that accepted them.
import { ApplicationFailure, CancellationScope, condition, isCancellation, log, sleep, workflowInfo } from '@temporalio/workflow';
import type { CredentialSummary } from '../activities/credential';
import type { LoginOutcome, PtyLoginStarted } from '../activities/login';
import type { DeviceLoginStarted } from '../activities/device-login';
import { describeFailure, FailureType, innermostFailureType, nextStepAfterLogin } from '../common/failures';
import type { SubmitCodeResult } from '../common/messages';
import { loginAttemptId } from '../common/slot';
import { loginActivities, sessionActivities } from './activities';
import type { LiveLogin, Slot } from './slot-state';
import { awaitingOperator, codeRejected, codeTyped, loggedIn, loginDeferred, loginRestarted, loginStarted, needsPerson } from './transitions';
import { inScope } from './refresh-step';
import { failureClause } from './text';

export interface LoginResult {
  readonly credential: CredentialSummary;
  readonly message: string;
}

const fail = (type: string, message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, type);

/** A host at its cap of live login CLIs (LoginHostBusy) is asked again after this long, at most this often (an hour). */
const HOST_BUSY_RETRY_MS = 60_000;
const MAX_HOST_BUSY_DEFERRALS = 60;

/** How one PTY attempt ended, when it did not end the login. */
type AttemptEnd = { readonly restart: string } | { readonly done: LoginResult };

/**
 * One login, in a scope the operator can cancel: `verified` when a credential was verified
 * (the main loop checks it next), `stopped` when it failed (a person is needed) or was
 * cancelled by relogin (the next login starts at once) or retire.
 */
export async function loginStep(slot: Slot): Promise<'verified' | 'stopped'> {
  const { slotId } = slot.input;
  loginStarted(slot);
  try {
    const result = await inScope(slot, () => runLogin(slot));
    loggedIn(slot, result.credential, result.message);
    return 'verified';
  } catch (err) {
    if (isCancellation(err)) {
      // relogin starts the next login at once; retire ends the slot; cancelLogin waits for a person.
      if (slot.state.pending.login || slot.state.pending.retire) return 'stopped';
      const message = `login failed: the login was cancelled by an operator. ${nextStepAfterLogin(FailureType.loginCancelled, slotId)}`;
      await needsPerson(slot, { kind: 'login-failed', message, counted: false });
    } else {
      const message = `login failed: ${failureClause(err)}. ${nextStepAfterLogin(innermostFailureType(err), slotId)}`;
      await needsPerson(slot, { kind: 'login-failed', message, counted: true });
    }
    return 'stopped';
  } finally {
    slot.step = undefined;
    slot.live = undefined;
  }
}

/** Runs the login until a credential is verified; throws a typed failure (or the cancellation) otherwise. */
export async function runLogin(slot: Slot): Promise<LoginResult> {
  const { slotId, provider, providerConfig } = slot.input;
  const options = slot.input.login ?? {};
  const acts = loginActivities(slot.run.queues, options.heartbeatTimeoutMs ?? 15_000);
  const maxRestarts = options.maxRestarts ?? 3;
  const counts = { badCodes: 0 };
  let lastError: string | undefined;

  let deferrals = 0;
  for (let restarts = 0; ; restarts += 1) {
    const attempt = loginAttemptId(slotId, workflowInfo().firstExecutionRunId, slot.state.logins, restarts);
    let started: Awaited<ReturnType<typeof acts.start>>;
    try {
      started = await acts.start({ slotId, provider, providerConfig, loginId: attempt });
    } catch (err) {
      // A host whose worker holds as many login CLIs as its memory allows: not this slot's fault, try again later.
      if (innermostFailureType(err) !== FailureType.loginHostBusy || deferrals >= MAX_HOST_BUSY_DEFERRALS) throw err;
      deferrals += 1;
      loginDeferred(slot, describeFailure(err));
      await sleep(HOST_BUSY_RETRY_MS);
      restarts -= 1;
      continue;
    }
    const verify = (startedAt: number, previousMtime: number | undefined) =>
      acts.verify({
        slotId,
        provider,
        providerConfig,
        notBefore: startedAt,
        ...(previousMtime !== undefined ? { previousMtime } : {}),
        ...(options.expectedAccount !== undefined ? { expectedAccount: options.expectedAccount } : {}),
      });
    if (started.kind === 'device-flow') return await deviceLogin(slot, attempt, started, acts, verify);

    const end = await ptyAttempt(slot, attempt, started, counts, verify);
    if ('done' in end) return end.done;
    lastError = end.restart;
    if (restarts + 1 > maxRestarts) {
      throw fail(FailureType.loginTooManyRestarts, `the login CLI was restarted ${maxRestarts} times; giving up: ${lastError}`);
    }
    loginRestarted(slot, lastError);
  }
}

/** The operator's deadline: the provider's, shortened by the slot's option. */
const deadlineOf = (slot: Slot, started: { prompt: { expiresAt: number }; startedAt: number }): number =>
  Math.min(started.prompt.expiresAt, started.startedAt + (slot.input.login?.operatorTimeoutMs ?? Infinity));

const minutes = (ms: number): number => Math.round(ms / 60_000);

/**
 * One PTY login attempt: the prompt, the watch on the CLI, the codes typed and their answers.
 * Left whole (about 100 lines) on purpose: `live.type` (called by the submitCode handler),
 * the watcher and the loop share `answer` and `ended`, and the `finally` that closes the CLI
 * must see all of them; split, the closures would need the same variables passed back and forth.
 */
async function ptyAttempt(
  slot: Slot,
  attempt: string,
  started: PtyLoginStarted,
  counts: { badCodes: number },
  verify: (startedAt: number, previousMtime: number | undefined) => Promise<CredentialSummary>,
): Promise<AttemptEnd> {
  const session = sessionActivities(started.sessionQueue, slot.input.login?.heartbeatTimeoutMs ?? 15_000);
  const maxBadCodes = slot.input.login?.maxBadCodes ?? 3;
  const deadline = deadlineOf(slot, started);
  const prompt = { ...started.prompt, expiresAt: deadline };
  const scope = CancellationScope.current();

  // The CLI's answer to the code being typed, set by `type` below.
  let answer: { readonly ok: LoginOutcome } | { readonly lost: string } | undefined;
  const live: LiveLogin = {
    id: attempt,
    prompt,
    typing: false,
    // Called by the submitCode handler: schedules the keystrokes in the workflow task that accepted the code.
    type: async (code: string): Promise<SubmitCodeResult> => {
      live.typing = true;
      codeTyped(slot);
      try {
        const outcome = await scope.run(() => session.submit({ slotId: slot.input.slotId, loginId: attempt, code }));
        answer = { ok: outcome };
        return { accepted: true, login: attempt, answer: outcome.kind, message: outcome.message };
      } catch (err) {
        const cancelled = isCancellation(err);
        answer = { lost: cancelled ? 'the login was stopped' : describeFailure(err) };
        return { accepted: true, login: attempt, answer: cancelled ? 'cancelled' : 'lost', message: answer.lost };
      }
    },
  };
  slot.live = live;
  log.info('login awaiting operator', { slotId: slot.input.slotId, login: attempt, url: prompt.url });
  awaitingOperator(slot, prompt);

  // Watches the PTY while the operator is awaited: the CLI may finish by itself,
  // fail, or vanish with its worker process (the heartbeat stops).
  let ended: { readonly exited: LoginOutcome } | { readonly lost: string } | undefined;
  const watchScope = new CancellationScope();
  const watching = watchScope.run(() => session.watch({ slotId: slot.input.slotId, loginId: attempt })).then(
    (outcome) => void (outcome && (ended ??= { exited: outcome })),
    (err: unknown) => void (isCancellation(err) ? undefined : (ended ??= { lost: describeFailure(err) })),
  );

  try {
    for (;;) {
      // While a code is being typed its answer decides, whatever else happens.
      const ready = (): boolean => answer !== undefined || (ended !== undefined && !live.typing);
      const remaining = deadline - Date.now();
      if (!(remaining > 0 && (await condition(ready, remaining)))) {
        if (live.typing) await condition(ready);
        else throw fail(FailureType.loginTimedOut, `no operator answered within ${minutes(deadline - started.startedAt)} minutes; the login URL has expired`);
      }
      if (answer === undefined) {
        const end = ended as NonNullable<typeof ended>;
        if ('lost' in end) return { restart: `the login CLI was lost (${end.lost}); started a new login with a new URL` };
        return { done: await succeeded(end.exited) };
      }
      const got = answer;
      answer = undefined;
      if ('lost' in got) return { restart: `the code could not be typed (${got.lost}); started a new login with a new URL` };
      const outcome = got.ok;
      if (outcome.kind === 'succeeded' || outcome.kind === 'exited') return { done: await succeeded(outcome) };
      if (outcome.kind === 'failed') throw fail(FailureType.loginCliFailed, outcome.message);
      // rejected or hung
      counts.badCodes += 1;
      if (counts.badCodes >= maxBadCodes) {
        throw fail(FailureType.loginTooManyBadCodes, `${counts.badCodes} codes were rejected; last answer: ${outcome.message}`);
      }
      // Claude hangs after a bad code: only a new CLI (and URL) can take another.
      if (started.restartAfterRejection || outcome.kind === 'hung') {
        codeRejected(slot, outcome.message);
        return { restart: outcome.message };
      }
      // The CLI asked again with a new URL and state: codes are checked against that one from now on.
      if (outcome.prompt) live.prompt = { ...outcome.prompt, expiresAt: deadline };
      live.typing = false;
      codeRejected(slot, outcome.message, live.prompt);
    }
  } finally {
    // From here no code can reach this CLI: the next one (if any) has another id.
    slot.live = undefined;
    watchScope.cancel();
    await watching;
    // Closed before the next CLI starts; a session lost with its process is closed without
    // waiting (a process cut off by the network, not dead, still gets to end its CLI).
    const closing = CancellationScope.nonCancellable(() => session.close({ slotId: slot.input.slotId, loginId: attempt }).catch(() => undefined));
    if (!(ended && 'lost' in ended)) await closing;
  }

  async function succeeded(outcome: LoginOutcome): Promise<LoginResult> {
    if (outcome.kind === 'failed' || (outcome.kind === 'exited' && outcome.exitCode !== 0)) throw fail(FailureType.loginCliFailed, outcome.message);
    // The CLI is done with codes: none can reach it from here.
    slot.live = undefined;
    slot.setTransientPhase('verifying');
    return { credential: await verify(started.startedAt, started.previousCredentialMtime), message: outcome.message };
  }
}

async function deviceLogin(
  slot: Slot,
  attempt: string,
  started: DeviceLoginStarted,
  acts: ReturnType<typeof loginActivities>,
  verify: (startedAt: number, previousMtime: number | undefined) => Promise<CredentialSummary>,
): Promise<LoginResult> {
  const { slotId, provider, providerConfig } = slot.input;
  const deadline = deadlineOf(slot, started);
  const prompt = { ...started.prompt, expiresAt: deadline };
  log.info('device login awaiting operator', { slotId, login: attempt, url: prompt.url });
  awaitingOperator(slot, prompt);
  try {
    const polled = await acts.awaitDevice(deadline)({ slotId, provider, providerConfig, loginId: attempt, startedAt: started.startedAt, intervalMs: started.intervalMs, deadline });
    switch (polled.kind) {
      case 'approved':
        slot.setTransientPhase('verifying');
        return { credential: await verify(started.startedAt, started.previousCredentialMtime), message: polled.message };
      case 'timed-out':
        throw fail(FailureType.loginTimedOut, `no operator approved the device within ${minutes(deadline - started.startedAt)} minutes; the code has expired`);
      case 'expired':
        throw fail(FailureType.loginExpired, polled.reason);
      case 'denied':
        throw fail(FailureType.loginDenied, polled.reason);
      case 'refused':
        throw fail(FailureType.loginRefused, polled.reason);
    }
  } finally {
    // The device code is useless from here on; it does not stay on the host.
    await CancellationScope.nonCancellable(() => acts.discardDevice({ slotId, loginId: attempt }).catch(() => undefined));
  }
}
