// Heartbeats of long activities: how a workflow learns that the worker running one
// died, and the only way a cancellation reaches it (it comes with a heartbeat's answer).
import { CancelledFailure, Context } from '@temporalio/activity';

/** `preferredMs`, but at least three beats per heartbeat timeout, however short the workflow set it. */
export function heartbeatEvery(preferredMs: number): number {
  const timeoutMs = Context.current().info.heartbeatTimeoutMs;
  return timeoutMs ? Math.max(10, Math.min(preferredMs, timeoutMs / 3)) : preferredMs;
}

/**
 * Heartbeats every `everyMs` (with `details()`, when given) until `work` settles. The
 * first beat comes after `everyMs`, not at once: the heartbeat timeout runs from the
 * start, and work that ends sooner (a refresh: ~100 ms) costs the server no heartbeat,
 * which it would persist to the workflow's state (one write per refresh, for nothing).
 */
export async function withHeartbeat<T>(work: Promise<T>, everyMs: number, details?: () => unknown): Promise<T> {
  const ctx = Context.current();
  let done = false;
  const settled = work.then(
    () => void (done = true),
    () => void (done = true),
  );
  const beat = (async () => {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, everyMs))), settled]);
      clearTimeout(timer);
      if (done) return;
      ctx.heartbeat(details?.());
    }
  })();
  try {
    return await work;
  } finally {
    done = true;
    await beat;
  }
}

/** Throws the activity's cancellation if it was cancelled: for the points after which work must not start. */
export function throwIfCancelled(): void {
  const signal = Context.current().cancellationSignal;
  if (!signal.aborted) return;
  throw signal.reason instanceof CancelledFailure ? signal.reason : new CancelledFailure('the activity was cancelled');
}
