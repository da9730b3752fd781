// A slot that pins its account (issue 23, the device flow's account swap): whoever approves
// the device code first binds the login to their account, so a slot with
// `login.expectedAccount` refuses a login to another account and removes its credential
// before anything uses it. The real dev server, the codex fixture under a real PTY (its
// id_token says fixture@example.com).
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../harness';
import { answerDevice, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

describe('a slot pinned to its account', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig();
  });
  afterAll(async () => rig?.close());

  const login = async (expectedAccount: string): Promise<{ slotId: string; phase: string; message: string }> => {
    const slotId = uniqueName('pinned');
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName, login: { expectedAccount } });
    const waiting = await waitForPrompt(rig.slots, slotId);
    await answerDevice(rig, waiting.prompt.userCode as string, 'approve');
    const done = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    return { slotId, phase: done.phase, message: done.lastOutcome?.message ?? '' };
  };

  it('refuses a login approved with another account and removes its credential', { timeout: 120_000 }, async () => {
    const refused = await login('owner@example.com');
    expect(refused.phase).toBe('needs-relogin');
    expect(refused.message).toMatch(/the login is for f…@example\.com, not o…@example\.com as the slot requires: its credential was removed/);
    await expect(access(join(rig.slotsDir, refused.slotId, '.codex', 'auth.json'))).rejects.toThrow(/ENOENT/);
  });

  it('accepts the expected account (compared without case)', { timeout: 120_000 }, async () => {
    const accepted = await login('Fixture@Example.com');
    expect(accepted.phase).toBe('active');
  });
});
