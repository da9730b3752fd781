// The Web UI as the operator's screen, read the way the UI reads it: the
// `__temporal_workflow_metadata` query (current details, handler definitions) and
// the workflow's static summary. At each phase the page must say what to do next,
// in the UI's signal form and in slotctl, and never show a submitted code.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { slotctl } from '../../cli/slotctl';
import { slotWorkflowId } from '../../common/slot';
import { uniqueName } from '../harness';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

interface Definition {
  name: string;
  description?: string;
}
interface Metadata {
  currentDetails?: string;
  definition?: { type?: string; signalDefinitions?: Definition[]; updateDefinitions?: Definition[]; queryDefinitions?: Definition[] };
}

/** The SDK's own queries, which every workflow answers. */
const BUILT_IN_QUERIES = ['__stack_trace', '__enhanced_stack_trace', '__temporal_workflow_metadata'];

describe("the slot's page in the Web UI", () => {
  let rig: SlotRig;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    rig = await startSlotRig();
    env = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName };
  });
  afterAll(async () => rig?.close());

  const metadata = async (slotId: string): Promise<Metadata> =>
    (await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).query('__temporal_workflow_metadata')) as Metadata;

  /** The details once they say `phase` (they are set by the workflow task that changes it). */
  async function detailsIn(slotId: string, phase: string): Promise<string> {
    let details = '';
    for (let i = 0; i < 100; i++) {
      details = (await metadata(slotId)).currentDetails ?? '';
      if (details.includes(`: **${phase}**`)) return details;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`details never said ${phase}:\n${details}`);
  }

  const silent = { out: () => undefined, err: () => undefined, readStdin: async () => '', stdinIsTTY: false };

  it('says the phase, the login URL as a link and the next step for the signal form and slotctl; every handler is described', async () => {
    const slotId = uniqueName('screen');
    expect(await slotctl(['provision', slotId, '--provider', 'claude'], silent, env)).toBe(0);
    const waiting = await waitForPrompt(rig.slots, slotId);
    const handle = rig.slots.client.workflow.getHandle(slotWorkflowId(slotId));

    // Started by slotctl: the list and the page carry a summary of what the slot is.
    expect(await (await handle.describe()).staticSummary()).toBe(`Slot ${slotId}: claude login on host ${rig.workers.hostName}`);

    const awaiting = await detailsIn(slotId, 'awaiting-operator');
    expect(awaiting).toContain(`## Slot \`${slotId}\`: **awaiting-operator**`);
    expect(awaiting).toContain(`](${waiting.prompt.url})`); // a markdown link to the exact URL
    expect(awaiting).toMatch(/\*\*Answer before:\*\* \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    expect(awaiting).toContain(`\`slotctl submit-code ${slotId}\``);
    expect(awaiting).toContain('**Send a Signal** (this page) → signal name `submitCode`, input `{"code": "<the code you copied>"}`');
    expect(awaiting).toMatch(/copy the code it shows \(`<code>#<state>`, where `<state>` is the one in the current login URL/);

    const { definition } = await metadata(slotId);
    expect(definition?.type).toBe('slotWorkflow');
    const signals = definition?.signalDefinitions ?? [];
    // Only what an operator may send: no internal plumbing is offered in the signal form.
    expect(signals.map((d) => d.name).sort()).toEqual(['cancelLogin', 'probeNow', 'refreshNow', 'relogin', 'retire', 'submitCode']);
    const updates = definition?.updateDefinitions ?? [];
    expect(updates.map((d) => d.name).sort()).toEqual(['move', 'probeNow', 'submitCode']);
    const queries = (definition?.queryDefinitions ?? []).filter((d) => !BUILT_IN_QUERIES.includes(d.name));
    expect(queries.map((d) => d.name)).toEqual(['status']);
    for (const handler of [...signals, ...updates, ...queries]) expect(handler.description?.length ?? 0, handler.name).toBeGreaterThan(30);

    const code = claudeCode(waiting);
    await rig.slots.submitCode(slotId, code);
    await waitForPhase(rig.slots, slotId, ['active']);
    const active = await detailsIn(slotId, 'active');
    expect(active).toMatch(/Nothing to do: the credential is live and is refreshed at \d{4}-/);
    expect(active).toContain(`\`slotctl refresh ${slotId}\`, or **Send a Signal** (this page) → signal name \`refreshNow\`, no input`);
    expect(active).toMatch(/Token expires \d{4}-/);
    expect(active).not.toContain(code);
    expect(active).not.toContain('valid-code');
  });

  it('a device login shows the user code and says there is nothing to submit; a cancelled one asks for a relogin', async () => {
    const slotId = uniqueName('screen-dev');
    expect(await slotctl(['provision', slotId, '--provider', 'codex'], silent, env)).toBe(0);
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(waiting.prompt.userCode).toBeTruthy();
    const awaiting = await detailsIn(slotId, 'awaiting-operator');
    expect(awaiting).toContain(`**User code:** \`${waiting.prompt.userCode}\``);
    expect(awaiting).toContain(`](${waiting.prompt.url})`);
    expect(awaiting).toMatch(/Nothing to submit: the slot sees the approval by itself/);
    expect(awaiting).not.toContain('submit-code');

    expect(await slotctl(['cancel', slotId], silent, env)).toBe(0);
    const cancelled = await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    expect(cancelled.phase).toBe('needs-relogin');
    const needs = await detailsIn(slotId, 'needs-relogin');
    expect(needs).toContain(`**A person is needed.** Start a new login: \`slotctl relogin ${slotId}\`, or **Send a Signal** (this page) → signal name \`relogin\`, no input`);
  });
});
