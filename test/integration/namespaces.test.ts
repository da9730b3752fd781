// Namespaces are the boundary between teams: two teams on one Temporal server, each
// with its own workers and client, and one team's slotctl neither sees nor touches the
// other team's slots.
import { spawn } from 'node:child_process';
import { msToTs } from '@temporalio/common/lib/time';
import type { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT, slotctl } from '../../cli/slotctl';
import { SlotNotFoundError } from '../../common/failures';
import { ALL_SEARCH_ATTRIBUTES } from '../../common/search-attributes';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';
import { registerSearchAttributes } from '../../workers/worker';
import { devServerClient, uniqueName } from '../harness';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

/** Registers `namespace` with the project's search attributes and waits until workflows can be listed in it. */
async function registerTeamNamespace(connection: Connection, namespace: string): Promise<void> {
  await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await registerSearchAttributes(connection, namespace);
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = ALL_SEARCH_ATTRIBUTES.filter((key) => !(key.name in (customAttributes ?? {})));
      if (missing.length === 0) {
        // A list is what `slotctl status` does: the namespace is usable when that answers.
        await connection.workflowService.listWorkflowExecutions({ namespace, query: `WorkflowType = 'slotWorkflow'` });
        return;
      }
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`namespace ${namespace} did not become usable: ${(err as Error).message}`);
    }
    if (Date.now() > deadline) throw new Error(`namespace ${namespace} has no search attributes after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** `npx tsx cli/slotctl.ts …` as an operator runs it, with only `env` added to the environment. */
function runSlotctlProcess(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'cli/slotctl.ts', ...args], { cwd: PROJECT_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

type Io = NonNullable<Parameters<typeof slotctl>[1]>;
async function runSlotctl(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => '', stdinIsTTY: false };
  const code = await slotctl(argv, io, env);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('one namespace per team', () => {
  const teamA = uniqueName('team-a');
  const teamB = uniqueName('team-b');
  let rigA: SlotRig;
  let rigB: SlotRig;
  let envOf: (rig: SlotRig, namespace: string) => Record<string, string>;

  beforeAll(async () => {
    const { connection } = await devServerClient();
    try {
      await registerTeamNamespace(connection, teamA);
      await registerTeamNamespace(connection, teamB);
    } finally {
      await connection.close();
    }
    [rigA, rigB] = await Promise.all([startSlotRig({}, { namespace: teamA }), startSlotRig({}, { namespace: teamB })]);
    envOf = (rig, namespace) => ({
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      TEMPORAL_NAMESPACE: namespace,
      SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue,
      SLOT_HOST: rig.workers.hostName,
    });
  }, 90_000);
  afterAll(async () => {
    await Promise.all([rigA?.close(), rigB?.close()]);
  });

  it("team B's slotctl cannot see, read, answer or retire team A's slot; team A can", async () => {
    const slotId = uniqueName('team-a-slot');
    await rigA.slots.provision({ slotId, provider: 'claude', host: rigA.workers.hostName });
    const waiting = await waitForPrompt(rigA.slots, slotId);

    // Team A sees its slot in the list (search attributes follow the workflow a moment later)…
    let listedByA = false;
    for (let i = 0; i < 50 && !listedByA; i++) {
      listedByA = (await rigA.slots.list()).some((s) => s.slotId === slotId);
      if (!listedByA) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(listedByA, 'team A lists its own slot').toBe(true);

    // …team B does not, neither through the client API nor with slotctl as its operators run it.
    expect((await rigB.slots.list({ includeClosed: true })).map((s) => s.slotId)).not.toContain(slotId);
    const listedByB = await runSlotctlProcess(['status', '--all', '--json'], envOf(rigB, teamB));
    expect(listedByB.stderr).toBe('');
    expect(listedByB.code).toBe(0);
    const documentB = JSON.parse(listedByB.stdout) as { slots: { slotId: string }[] };
    expect(documentB.slots.map((s) => s.slotId)).not.toContain(slotId);
    expect(listedByB.stdout).not.toContain(waiting.prompt.url);

    // Nothing team B can address by the slot's name exists in its namespace.
    await expect(rigB.slots.status(slotId)).rejects.toBeInstanceOf(SlotNotFoundError);
    await expect(rigB.slots.submitCode(slotId, claudeCode(waiting))).rejects.toBeInstanceOf(SlotNotFoundError);
    await expect(rigB.slots.retire(slotId, { removeFiles: true })).rejects.toBeInstanceOf(SlotNotFoundError);
    const statusByB = await runSlotctl(['status', slotId, '--json'], envOf(rigB, teamB));
    expect(statusByB.code).toBe(EXIT.notFound);
    expect(statusByB.stderr).toContain(`slot ${slotId} does not exist`);
    const retireByB = await runSlotctl(['retire', slotId], envOf(rigB, teamB));
    expect(retireByB.stderr).toContain(`slot ${slotId} does not exist`);

    // Team A's slot did not notice: same prompt, and its own operator still finishes the login and retires it.
    const after = await rigA.slots.status(slotId);
    expect(after.phase).toBe('awaiting-operator');
    expect(after.prompt?.url).toBe(waiting.prompt.url);
    const listedByA2 = await runSlotctl(['status', slotId, '--json'], envOf(rigA, teamA));
    expect(listedByA2.code).toBe(0);
    expect((JSON.parse(listedByA2.stdout) as { slotId: string }).slotId).toBe(slotId);
    await rigA.slots.submitCode(slotId, claudeCode(waiting));
    await waitForPhase(rigA.slots, slotId, ['active']);
    await rigA.slots.retire(slotId);
    await waitForPhase(rigA.slots, slotId, ['retired']);
  }, 120_000);
});
