// A host at its memory budget for live login CLIs (issue 23): a second login on a worker
// with room for one Claude CLI is refused (LoginHostBusy), the slot says so and waits
// (still logging in, never needs-relogin), and it gets its URL once the first CLI is closed.
// The real dev server, a worker with LOGIN_CLI_MEMORY_BUDGET_MB, fixture CLIs under real PTYs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../harness';
import { processesOfSlot, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

describe('the per-process cap on live login CLIs', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    // Room for one Claude CLI (140 MiB as measured), not two.
    rig = await startSlotRig({ LOGIN_CLI_MEMORY_BUDGET_MB: '150' });
  });
  afterAll(async () => rig?.close());

  it('defers a login beyond the budget and starts it once room is freed', { timeout: 180_000 }, async () => {
    const first = uniqueName('cap-first');
    const second = uniqueName('cap-second');
    await rig.slots.provision({ slotId: first, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, first);
    await rig.slots.provision({ slotId: second, provider: 'claude', host: rig.workers.hostName });

    const { status, reached } = await rig.slots.waitFor(second, (s) => /login deferred/.test(s.lastOutcome?.message ?? ''), { timeoutMs: 30_000, pollMs: 200 });
    expect(reached).toBe(true);
    expect(status.phase).toBe('logging-in');
    expect(status.lastOutcome?.message).toMatch(/login deferred: .*would pass its memory budget of 150 MiB \(LOGIN_CLI_MEMORY_BUDGET_MB\)/);
    expect(await processesOfSlot(rig.slotsDir, second)).toEqual([]);

    // The first login ends (its CLI is closed): the deferred one starts within a minute.
    await rig.slots.cancelLogin(first);
    await waitForPhase(rig.slots, first, ['needs-relogin']);
    const { reached: prompted, status: later } = await rig.slots.waitFor(second, (s) => s.phase === 'awaiting-operator' && s.prompt !== undefined, { timeoutMs: 90_000, pollMs: 500 });
    expect(prompted, JSON.stringify(later)).toBe(true);
  });
});
