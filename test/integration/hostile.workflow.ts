// Workflows an attacker with namespace access runs on their own worker, for
// hostile-workflow.test.ts: each calls one host or session activity by name and
// returns what came back, or the failure's type and message.
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { HostActivities, SessionActivities } from '../../activities/index';

export type Attempt = { readonly ok: true; readonly result: unknown } | { readonly ok: false; readonly type?: string; readonly message: string };

async function attempt(call: () => Promise<unknown>): Promise<Attempt> {
  try {
    return { ok: true, result: await call() };
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof ApplicationFailure) return { ok: false, type: cause.type ?? undefined, message: cause.message };
    return { ok: false, message: (err as Error).message };
  }
}

const once = { scheduleToCloseTimeout: '30 seconds', retry: { maximumAttempts: 1 } } as const;

/** Registered as `refreshWorkflow` (a v1 child's type) and started as `refresh:<slot>:<n>`: asks the host to remove the slot's files. */
export async function refreshWorkflow(hostQueue: string, slotId: string): Promise<Attempt> {
  const { removeSlotFiles } = proxyActivities<HostActivities>({ taskQueue: hostQueue, ...once });
  return attempt(() => removeSlotFiles({ slotId }));
}

/** Types bytes into, then closes, a live login session it read the queue and id of from the victim's history. */
export async function sessionIntruder(sessionQueue: string, loginId: string, slotId: string | undefined): Promise<{ submit: Attempt; close: Attempt }> {
  const { submitLoginCode, closeLogin } = proxyActivities<SessionActivities>({ taskQueue: sessionQueue, ...once });
  const submit = await attempt(() => submitLoginCode({ loginId, code: 'attacker-code', ...(slotId ? { slotId } : {}) }));
  const close = await attempt(() => closeLogin({ loginId, ...(slotId ? { slotId } : {}) }));
  return { submit, close };
}
