// A status pieced together from search attributes, because the slot's worker did not
// answer the query in time (busy with hundreds of logins, or gone): a slot awaiting the
// operator must still give the operator the URL to act on, as data and not only as prose.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotStatusSchema } from '../../common/schemas';
import { uniqueName } from '../harness';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

describe('status when the worker does not answer in time', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig();
  });
  afterAll(async () => rig?.close());

  it('a slot awaiting the operator still shows the URL it published, and a code for it logs in', async () => {
    const slotId = uniqueName('claude-stale');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const fresh = await waitForPrompt(rig.slots, slotId);

    // The worker is alive; the answer just cannot arrive within the caller's deadline
    // (what a query behind 200 logins' workflow tasks met in bench/logins.ts).
    const stale = await rig.slots.status(slotId, { queryTimeoutMs: 1 });
    expect(stale.stale).toMatch(/no worker answered \(timed out\)/);
    expect(stale.phase).toBe('awaiting-operator');
    // The full prompt (deadline, code format) only the workflow knows; what it published is the URL.
    expect(stale.prompt).toBeUndefined();
    expect(stale.publishedPrompt).toEqual({ url: fresh.prompt.url });
    expect(stale.stale).toMatch(/ask again for the full prompt/);
    // It is the contract's shape (what `slotctl status --json` and other languages' clients read).
    expect(SlotStatusSchema.strict().safeParse(stale).error).toBeUndefined();

    // The operator acts on the stale answer alone: its URL's state makes a code the slot takes.
    const accepted = await rig.slots.submitCode(slotId, claudeCode({ prompt: stale.publishedPrompt as { url: string } }));
    expect(accepted.answer).toBe('succeeded');
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');

    // A slot with nothing to act on publishes no prompt, and a stale status invents none.
    const later = await rig.slots.status(slotId, { queryTimeoutMs: 1 });
    expect([later.phase, later.publishedPrompt, later.prompt]).toEqual(['active', undefined, undefined]);
    expect(later.stale).toMatch(/no worker answered/);
  });
});
