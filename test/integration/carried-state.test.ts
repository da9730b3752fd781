// A run continued from a run of older code takes up its carried state: the slot's state is
// carried whole now (workflows/slot-state.ts), and a state written by the first release (no
// pending requests, backups, probes or incidents) must still start a run that shows it and
// acts on the requests that come next. On the dev server, with no worker on the slot's host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slotWorkflowId } from '../../common/slot';
import type { SlotInput } from '../../common/slot-input';
import { uniqueName } from '../harness';
import { startSlotRig, type SlotRig } from '../slot-fixtures';

/** What the first release's `carry()` wrote (test/fixtures/legacy-v1/workflows/slot.ts): ten fields and the run count. */
const v1Carried = (phase: 'active' | 'needs-relogin', now: number) => ({
  phase,
  expiresAt: now + 6 * 3600_000,
  lastRefresh: now - 3600_000,
  nextRefreshAt: now + 5 * 3600_000,
  account: 'max',
  lastOutcome: { at: now - 60_000, kind: 'refresh-succeeded' as const, message: 'refreshed; next refresh later' },
  lastError: undefined,
  logins: 2,
  refreshes: 7,
  consecutiveFailures: phase === 'active' ? 0 : 1,
  runs: 4,
});

describe('a carried state written by older code', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig({}, { roles: ['workflows'] });
  });
  afterAll(async () => rig?.close());

  it('starts a run that shows it, asks for nothing by itself, and acts on the next request', { timeout: 60_000 }, async () => {
    const host = uniqueName('host-away');
    const active = uniqueName('carried-active');
    const troubled = uniqueName('carried-troubled');
    const start = (slotId: string, phase: 'active' | 'needs-relogin'): Promise<unknown> => {
      // The host is away: its status file is given up on after a second (the slot goes on without it).
      const input: SlotInput = { slotId, provider: 'claude', host, hostWaitMs: 1000, carried: v1Carried(phase, Date.now()) };
      return rig.slots.client.workflow.start('slotWorkflow', { workflowId: slotWorkflowId(slotId), taskQueue: rig.workers.sharedTaskQueue, args: [input] });
    };
    await start(active, 'active');
    await start(troubled, 'needs-relogin');
    try {
      const shown = await rig.slots.status(active);
      expect(shown).toMatchObject({ phase: 'active', account: 'max', logins: 2, refreshes: 7, consecutiveFailures: 0, lastOutcome: { kind: 'refresh-succeeded' } });
      // No request was carried: none is shown, none is acted on (its refresh is hours away).
      expect(shown.pending).toBeUndefined();
      expect(shown.nextRefreshAt).toBeGreaterThan(Date.now() + 4 * 3600_000);

      const waiting = await rig.slots.status(troubled);
      expect(waiting).toMatchObject({ phase: 'needs-relogin', logins: 2, consecutiveFailures: 1 });
      expect(waiting.pending).toBeUndefined();
      // The next request is acted on: a relogin starts the login (after the status file; its CLI would start on the host, which is away).
      await rig.slots.relogin(troubled);
      const { status, reached } = await rig.slots.waitFor(troubled, (s) => s.phase === 'logging-in', { timeoutMs: 20_000, pollMs: 200 });
      expect(reached, JSON.stringify(status)).toBe(true);
      expect(status.logins).toBe(3);
    } finally {
      for (const slotId of [active, troubled]) await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).terminate('test over');
    }
  });

  it("a forged carried state cannot stand in for the slot's identity in its status", { timeout: 60_000 }, async () => {
    const slotId = uniqueName('carried-forged');
    const host = uniqueName('host-away');
    // Anyone in the namespace may start a slot workflow with any carried state.
    const carried = { ...v1Carried('active', Date.now()), slotId: 'someone-else', host: 'attacker-host', provider: 'oidc-device' } as unknown as SlotInput['carried'];
    const input: SlotInput = { slotId, provider: 'claude', host, hostWaitMs: 1000, carried };
    await rig.slots.client.workflow.start('slotWorkflow', { workflowId: slotWorkflowId(slotId), taskQueue: rig.workers.sharedTaskQueue, args: [input] });
    try {
      expect(await rig.slots.status(slotId)).toMatchObject({ slotId, host, provider: 'claude', phase: 'active' });
    } finally {
      await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).terminate('test over');
    }
  });
});
