// A slot whose host has no worker: the slot waits without its history growing,
// and a retire with --remove-files records that the host did not retire the slot instead of failing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slotWorkflowId } from '../../common/slot';
import { uniqueName } from '../harness';
import { startSlotRig, waitForPhase, type SlotRig } from '../slot-fixtures';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('a slot host that is down', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    // Workflows run on this rig's workers; the slot's own host never comes up.
    rig = await startSlotRig();
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('waits with a history that does not grow, and retire --remove-files says the host did not retire the slot', async () => {
    const slotId = uniqueName('orphan');
    const host = uniqueName('gone');
    await rig.slots.provision({ slotId, provider: 'claude', host, adoptExisting: true, options: { hostWaitMs: 2000 } });
    const handle = rig.slots.client.workflow.getHandle(slotWorkflowId(slotId));
    await sleep(1500);
    const early = await handle.describe();
    await sleep(8000);
    const late = await handle.describe();
    expect(late.status.name).toBe('RUNNING');
    // Waiting for a host costs no events: the refresh sits on the host's queue.
    expect(late.historyLength).toBe(early.historyLength);
    expect(late.historyLength).toBeLessThan(20);
    expect((await rig.slots.status(slotId)).phase).toBe('verifying');

    await rig.slots.retire(slotId, { removeFiles: true });
    const result = await handle.result();
    expect(result.phase).toBe('retired');
    expect(result.lastOutcome?.message).toMatch(
      new RegExp(`^retired; revoking the tokens failed .*; the slot could NOT be retired on host ${host} \\(.*\\): its home is still in place; retire it again when the host answers$`),
    );
    expect((await waitForPhase(rig.slots, slotId, ['retired'])).lastError).toMatch(/could NOT be retired/);
  });
});
