// Bulk actions stay within this deployment's slots (issue 23): a `--where` built to close the
// scope's parentheses (`x') OR ('y`, `…') OR (WorkflowType='slotWorkflow'`) is refused before
// any query, and another team's running slot on another task queue of the same namespace is
// never selected. The real dev server's visibility answers.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Client, Connection } from '@temporalio/client';
import { slotctl } from '../../cli/slotctl';
import { devServerClient, uniqueName } from '../harness';

type Io = NonNullable<Parameters<typeof slotctl>[1]>;

describe('slotctl --where cannot leave its task queue', () => {
  let client: Client;
  let connection: Connection;
  const theirQueue = uniqueName('other-team');
  const ourQueue = uniqueName('our-team');
  const theirSlot = `slot:${uniqueName('their-slot')}`;

  const run = async (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => '', stdinIsTTY: false };
    const code = await slotctl(argv, io, { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: ourQueue, SLOT_HOST: 'our-host' });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  };

  beforeAll(async () => {
    ({ client, connection } = await devServerClient());
    // Another team's slot: a running slotWorkflow on its own queue (no worker needed to be listed).
    await client.workflow.start('slotWorkflow', { taskQueue: theirQueue, workflowId: theirSlot, args: [] });
    // Visibility is eventually consistent: wait until the plain listing sees it.
    for (let i = 0; i < 100; i++) {
      const page = await client.workflowService.listWorkflowExecutions({ namespace: 'default', query: `WorkflowId = '${theirSlot}'` });
      if ((page.executions ?? []).length > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(async () => {
    await client?.workflow.getHandle(theirSlot).terminate('test over').catch(() => undefined);
    await connection?.close();
  });

  for (const where of ["x') OR ('y", "SlotPhase='active') OR (WorkflowType='slotWorkflow'", "SlotPhase='a' /* ( */ ) OR (WorkflowType='slotWorkflow'"]) {
    it(`refuses --where ${JSON.stringify(where)} and selects nothing of another task queue`, async () => {
      const result = await run(['retire', '--where', where, '--dry-run', '--json']);
      expect(result.stdout).not.toContain(theirSlot.replace(/^slot:/, ''));
      expect(result.code).toBe(2);
      // Refused here, or (the first, which SQL reads as a misplaced string) by the server's parser.
      expect(result.stderr).toMatch(/is refused: .*; it must be one condition that stays within its parentheses|the server refused the query/);
    });
  }

  it('a condition with quoted parentheses is still accepted, within the scope', async () => {
    const result = await run(['retire', '--where', "SlotPhase='it''s (not) a phase' OR (SlotHost='nowhere')", '--dry-run', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain(theirSlot.replace(/^slot:/, ''));
  });
});
