// The slot workflow's way of running a refresh (WAIT_CANCELLATION_COMPLETED, a
// heartbeat timeout, a cancellable scope), reduced to that one step for refresh-cancel.test.ts.
import { ActivityCancellationType, CancellationScope, condition, defineSignal, isCancellation, proxyActivities, setHandler } from '@temporalio/workflow';
import type { HostActivities } from '../../activities/index';
import type { RefreshCredentialInput, RefreshResult } from '../../activities/refresh';

export const cancelRefreshSignal = defineSignal('cancelRefresh');

export type CancelledRefresh = { readonly outcome: 'completed'; readonly result: RefreshResult } | { readonly outcome: 'cancelled' };

export async function refreshUntilCancelled(hostQueue: string, input: RefreshCredentialInput): Promise<CancelledRefresh> {
  const { refreshCredential } = proxyActivities<HostActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '90 seconds',
    heartbeatTimeout: '30 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { maximumAttempts: 1 },
  });
  let cancelRequested = false;
  setHandler(cancelRefreshSignal, () => {
    cancelRequested = true;
  });
  const scope = new CancellationScope();
  const refresh = scope.run(() => refreshCredential(input));
  const cancelling = condition(() => cancelRequested).then(() => scope.cancel());
  try {
    return { outcome: 'completed', result: await refresh };
  } catch (err) {
    if (isCancellation(err)) return { outcome: 'cancelled' };
    throw err;
  } finally {
    cancelRequested = true;
    await cancelling;
  }
}
