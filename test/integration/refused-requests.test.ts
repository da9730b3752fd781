// An operator's signal the slot cannot act on is answered in its status with an outcome
// that says so (`request-refused`), not as a code that was not used; a refused code
// stays `code-not-used`. On the dev server with the fixture claude.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { cancelLoginSignal, probeNowSignal, submitCodeSignal } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { uniqueName } from '../harness';
import { startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

describe('refused requests', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig();
  });
  afterAll(async () => rig?.close());

  const handle = (slotId: string) => rig.slots.client.workflow.getHandle(slotWorkflowId(slotId));
  const outcomeAfter = async (slotId: string, before: number) => {
    const { status, reached } = await rig.slots.waitFor(slotId, (s) => (s.lastOutcome?.at ?? 0) > before, { timeoutMs: 10_000, pollMs: 50 });
    expect(reached).toBe(true);
    return status.lastOutcome;
  };

  it('cancelLogin with no login in progress is request-refused, saying why', async () => {
    const slotId = uniqueName('refused-cancel');
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: 'sk-ant-oat01-refused-access', refreshToken: 'sk-ant-ort01-refused-refresh', expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
    );
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true });
    const active = await waitForPhase(rig.slots, slotId, ['active']);
    await handle(slotId).signal(cancelLoginSignal);
    const outcome = await outcomeAfter(slotId, active.lastOutcome?.at ?? 0);
    expect(outcome).toMatchObject({ kind: 'request-refused', message: 'cancelLogin was not used: no login is in progress (phase: active)' });
    expect((await rig.slots.status(slotId)).phase).toBe('active');
    await rig.slots.retire(slotId, { removeFiles: true });
  });

  it('probeNow during a login is request-refused; a code with no login waiting for it is code-not-used', async () => {
    const slotId = uniqueName('refused-probe');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const asked = Date.now();
    await handle(slotId).signal(probeNowSignal);
    expect(await outcomeAfter(slotId, Math.max(asked, waiting.lastOutcome?.at ?? 0) - 1)).toMatchObject({
      kind: 'request-refused',
      message: `probeNow was not used: slot ${slotId} has no credential to probe (phase: awaiting-operator)`,
    });
    // Another URL's state: the CLI never sees it; the slot says the code was not used.
    const typed = Date.now();
    await handle(slotId).signal(submitCodeSignal, { code: 'some-code#not-this-urls-state' });
    const refusedCode = await outcomeAfter(slotId, typed - 1);
    expect(refusedCode?.kind).toBe('code-not-used');
    expect(refusedCode?.message).toMatch(/^a submitted code was not used: /);
    await rig.slots.retire(slotId, { removeFiles: true });
  });
});
