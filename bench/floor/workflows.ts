// The engine's floor: the slot workflow's shape with nothing of ours in it. A timer (a
// condition with a timeout, woken early by a signal as refreshNow wakes a slot) → a
// no-op activity on a host-style queue → the timer again; and an update that runs a
// no-op activity on a session-style queue, as submitCode types into a PTY.
import { condition, defineSignal, defineUpdate, proxyActivities, setHandler } from '@temporalio/workflow';
import type * as activities from './activities';

export const pokeSignal = defineSignal('poke');
/** Returns the moment (epoch ms) the activity started, for update → activity-start latency. */
export const submitUpdate = defineUpdate<number, [string]>('submit');

export async function floorSlotWorkflow(queues: { host: string; session: string }): Promise<void> {
  const { noop } = proxyActivities<typeof activities>({ taskQueue: queues.host, startToCloseTimeout: '90 seconds', retry: { maximumAttempts: 3 } });
  const { touch } = proxyActivities<typeof activities>({ taskQueue: queues.session, scheduleToCloseTimeout: '2 minutes', retry: { maximumAttempts: 1 } });
  let poked = false;
  setHandler(pokeSignal, () => void (poked = true));
  setHandler(submitUpdate, (code: string) => touch(code));
  for (;;) {
    await condition(() => poked, '8 hours');
    poked = false;
    await noop();
  }
}
