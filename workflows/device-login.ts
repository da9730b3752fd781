// The device-flow path of a login (RFC 8628): `startLogin` asked for the device
// code; this waits `interval` on durable timers and polls once per step, until the
// operator approves or denies, the code expires, the login is cancelled or the deadline passes.
import { ApplicationFailure, CancellationScope, condition, log, proxyActivities } from '@temporalio/workflow';
import type { DeviceLoginStarted } from '../activities/device-login';
import type { HostActivities } from '../activities/index';
import type { LoginProgress } from '../common/messages';
import { hostTaskQueue } from '../common/slot';
import { verifyCredentialOn } from './verify';
import type { LoginInput, LoginResult } from './login';
import { LoginWorkflowFailure } from './login-failures';

/** RFC 8628 §3.5: every `slow_down` adds this to the interval, for all later polls. */
const SLOW_DOWN_STEP_MS = 5_000;
/** Network trouble doubles the interval (RFC 8628 §3.5), up to this. */
const MAX_BACKOFF_MS = 60_000;

export interface DeviceLoginControl {
  /** The operator cancelled the login. */
  cancelled(): boolean;
  report(progress: Omit<LoginProgress, 'loginId'>): Promise<void>;
}

function deviceActivities(host: string) {
  // The device code is in a file on the slot's host: only that host's worker can poll with it.
  const queue = hostTaskQueue(host);
  return {
    poll: proxyActivities<HostActivities>({
      taskQueue: queue,
      scheduleToCloseTimeout: '2 minutes',
      startToCloseTimeout: '45 seconds',
      // A lost answer is safe to ask again: a poll that stored the tokens is found by the next.
      retry: { maximumAttempts: 3, initialInterval: '2 seconds', nonRetryableErrorTypes: ['LoginSessionLost', 'LoginMisconfigured'] },
    }).pollDeviceLogin,
    verify: verifyCredentialOn(host),
    discard: proxyActivities<HostActivities>({
      taskQueue: queue,
      scheduleToCloseTimeout: '1 minute',
      retry: { maximumAttempts: 3 },
    }).discardDeviceLogin,
  };
}

export async function awaitDeviceApproval(
  input: LoginInput,
  loginId: string,
  started: DeviceLoginStarted,
  control: DeviceLoginControl,
): Promise<LoginResult> {
  const acts = deviceActivities(input.host);
  const deadline = Math.min(started.prompt.expiresAt, started.startedAt + (input.operatorTimeoutMs ?? Infinity));
  const prompt = { ...started.prompt, expiresAt: deadline };
  log.info('device login awaiting operator', { slotId: input.slotId, url: prompt.url, userCode: prompt.userCode });
  await control.report({ phase: 'awaiting-operator', prompt });

  let intervalMs = started.intervalMs;
  let lastError: string | undefined;
  try {
    for (;;) {
      const wait = Math.min(intervalMs, deadline - Date.now());
      if (wait > 0) await condition(() => control.cancelled(), wait);
      if (control.cancelled()) {
        throw ApplicationFailure.nonRetryable('the login was cancelled by an operator', LoginWorkflowFailure.cancelled);
      }
      if (Date.now() >= deadline) {
        throw ApplicationFailure.nonRetryable(
          `no operator approved the device within ${Math.round((deadline - started.startedAt) / 60_000)} minutes; the code has expired`,
          LoginWorkflowFailure.timedOut,
        );
      }
      const polled = await acts.poll({ slotId: input.slotId, provider: input.provider, providerConfig: input.providerConfig, loginId, startedAt: started.startedAt });
      switch (polled.kind) {
        case 'pending':
          if (lastError !== undefined) {
            lastError = undefined;
            await control.report({ phase: 'awaiting-operator', prompt });
          }
          break;
        case 'slow-down':
          intervalMs += SLOW_DOWN_STEP_MS;
          log.info('device login: the server asked to poll more slowly', { slotId: input.slotId, intervalMs });
          break;
        case 'transient':
          intervalMs = Math.max(intervalMs, Math.min(intervalMs * 2, MAX_BACKOFF_MS));
          lastError = `polling the token endpoint failed, retrying every ${Math.round(intervalMs / 1000)} s: ${polled.reason}`;
          await control.report({ phase: 'awaiting-operator', prompt, lastError });
          break;
        case 'approved': {
          await control.report({ phase: 'verifying' });
          const credential = await acts.verify({
            slotId: input.slotId,
            provider: input.provider,
            providerConfig: input.providerConfig,
            notBefore: started.startedAt,
            ...(started.previousCredentialMtime !== undefined ? { previousMtime: started.previousCredentialMtime } : {}),
          });
          return { credential, message: polled.message };
        }
        case 'expired':
          throw ApplicationFailure.nonRetryable(polled.reason, LoginWorkflowFailure.expired);
        case 'denied':
          throw ApplicationFailure.nonRetryable(polled.reason, LoginWorkflowFailure.denied);
        case 'refused':
          throw ApplicationFailure.nonRetryable(polled.reason, LoginWorkflowFailure.refused);
      }
    }
  } finally {
    // The device code is useless from here on; it does not stay on the host.
    await CancellationScope.nonCancellable(() => acts.discard({ slotId: input.slotId, loginId }));
  }
}
