// A status pieced together from search attributes, because the slot's worker did not
// answer the query in time (busy with hundreds of logins, or gone): a slot awaiting the
// operator must still give the operator the URL to act on, as data and not only as prose.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { slotctl } from '../../cli/slotctl';
import { SlotStatusSchema } from '../../common/schemas';
import { SlotHostKey, SlotIdKey, SlotPhaseKey, SlotPromptKey, SlotProviderKey } from '../../common/search-attributes';
import { slotWorkflowId } from '../../common/slot';
import { devServerClient, uniqueName } from '../harness';
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

describe('slotctl … --wait when no worker answers', () => {
  it('shows the prompt the slot published, marked stale, and gives up at its timeout', { timeout: 60_000 }, async () => {
    // A slot awaiting its operator whose worker is gone: its workflow sits on a queue nobody polls,
    // with what the slot had published (search attributes), as a slot whose workers all died has.
    const { client, connection } = await devServerClient();
    const slotId = uniqueName('wait-stale');
    const queue = uniqueName('nobody');
    const url = `https://claude.ai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&state=${uniqueName('st')}`;
    const handle = await client.workflow.start('slotWorkflow', {
      workflowId: slotWorkflowId(slotId),
      taskQueue: queue,
      args: [{ slotId, provider: 'claude', host: 'h1' }],
      typedSearchAttributes: [
        { key: SlotIdKey, value: slotId },
        { key: SlotProviderKey, value: 'claude' },
        { key: SlotHostKey, value: 'h1' },
        { key: SlotPhaseKey, value: 'awaiting-operator' },
        { key: SlotPromptKey, value: url },
      ],
    });
    try {
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (line: string) => out.push(line), err: (line: string) => err.push(line), readStdin: async () => '', stdinIsTTY: false };
      const env = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: queue, SLOT_HOST: 'h1' };
      expect(await slotctl(['status', slotId, '--wait', '--timeout', '2'], io, env)).toBe(1);
      const printed = out.join('\n');
      // Once, before the final status: what to open, marked as the last published prompt.
      expect(printed).toMatch(/^\(stale: no worker answered \((timed out|no worker polling)\); this is the prompt the slot last published, the full one follows when its worker answers\)\n {2}URL: {2}(\S+)$/m);
      expect(printed).toContain(`  URL:  ${url}\n`);
      expect(printed.split(`URL:  ${url}`).length - 1).toBe(1);
      expect(printed).toMatch(/^phase {5}awaiting-operator$/m);
      expect(err.join('\n')).toMatch(/gave up waiting after 2 s; the slot is still awaiting-operator/);
    } finally {
      await handle.terminate('test over');
      await connection.close();
    }
  });
});
