// Two worker processes for one host (a rolling restart, or more capacity): either may
// start a slot's login, and the login is then finished through the queue of the one
// process that holds its PTY. Real worker processes, real PTYs, the fixture CLI.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { hostTaskQueue, slotWorkflowId } from '../../common/slot';
import { devServerClient, uniqueName } from '../harness';
import { claudeCode, expectNoProcesses, processesOfSlot, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const LOGINS_PER_BATCH = 4;
/** Which process gets a login is the server's choice; a batch that all went to one process is followed by another. */
const MAX_BATCHES = 3;

/** The parent of a process, from /proc. */
async function parentOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
}

/** The worker process whose descendant `pid` is, if any. */
async function workerOf(pid: number, workers: ReadonlySet<number>): Promise<number | undefined> {
  for (let current: number | undefined = pid, depth = 0; current !== undefined && depth < 16; depth++) {
    if (workers.has(current)) return current;
    current = await parentOf(current);
  }
  return undefined;
}

describe('two worker processes on one host', () => {
  const workers: WorkerProcess[] = [];
  let slotsDir: string;
  let slots: SlotClient;
  let closeConnection: () => Promise<void>;
  const host = uniqueName('host');
  const sharedQueue = uniqueName('shared');

  function spawnWorker(): WorkerProcess {
    const worker = spawnWorkerProcess(fixtureWorkerEnv({ temporalAddress: inject('temporalAddress'), host, sharedQueue, slotsDir }));
    workers.push(worker);
    return worker;
  }

  beforeAll(async () => {
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-two-'));
    const { client, connection } = await devServerClient();
    slots = new SlotClient(client, sharedQueue);
    closeConnection = () => connection.close();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopWorkerProcess(w)));
    await closeConnection?.();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  /** The task queues the slot's workflow sent its session activities (watch, type the code) to. */
  async function sessionQueuesOf(slotId: string): Promise<Set<string>> {
    const history = await slots.client.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory();
    const queues = new Set<string>();
    for (const event of history.events ?? []) {
      const scheduled = event.activityTaskScheduledEventAttributes;
      if (scheduled && ['watchLogin', 'submitLoginCode'].includes(scheduled.activityType?.name ?? '')) queues.add(scheduled.taskQueue?.name ?? '');
    }
    return queues;
  }

  it('logs in slots provisioned concurrently on either process, each through the process holding its CLI', { timeout: 300_000 }, async () => {
    const a = spawnWorker();
    const b = spawnWorker();
    // Both poll the host's queue before any login starts, or the first would take them all.
    await Promise.all([untilPolling(a, slots.client, host, 120_000), untilPolling(b, slots.client, host, 120_000)]);
    const pids = new Set([a.child.pid!, b.child.pid!]);
    const loginsOf = new Map<number, string[]>([...pids].map((pid) => [pid, []]));

    for (let batch = 0; batch < MAX_BATCHES && [...loginsOf.values()].some((ids) => ids.length === 0); batch++) {
      const ids = Array.from({ length: LOGINS_PER_BATCH }, () => uniqueName('two'));
      await Promise.all(ids.map((slotId) => slots.provision({ slotId, provider: 'claude', host })));
      const prompts = await Promise.all(ids.map((slotId) => waitForPrompt(slots, slotId)));

      // The CLI is a child of the worker process that started it.
      const owners = await Promise.all(
        ids.map(async (slotId) => {
          const cli = await processesOfSlot(slotsDir, slotId);
          expect(cli.length).toBeGreaterThan(0);
          const owner = await workerOf(cli[0]!, pids);
          expect(owner, `the CLI of ${slotId} runs under neither worker`).toBeDefined();
          return owner!;
        }),
      );

      await Promise.all(ids.map((slotId, i) => slots.submitCode(slotId, claudeCode(prompts[i]!))));
      const ended = await Promise.all(ids.map((slotId) => waitForPhase(slots, slotId, ['active', 'needs-relogin'], 60_000)));
      expect(ended.map((s) => [s.slotId, s.phase, s.lastError])).toEqual(ids.map((slotId) => [slotId, 'active', undefined]));

      for (const [i, slotId] of ids.entries()) {
        const owner = owners[i]!;
        loginsOf.get(owner)!.push(slotId);
        // Watching and typing went to the owner's own queue, never to the host's shared one.
        const queues = [...(await sessionQueuesOf(slotId))];
        expect(queues).toHaveLength(1);
        expect(queues[0]).not.toBe(hostTaskQueue(host));
        expect(queues[0]).toMatch(new RegExp(`^slots\\.${host}\\.${owner}-[0-9a-f]{8}$`));
        const credential = join(slotsDir, slotId, '.claude', '.credentials.json');
        expect((await stat(credential)).mode & 0o777).toBe(0o600);
        expect(JSON.parse(await readFile(credential, 'utf8')).claudeAiOauth.accessToken).toMatch(/^sk-ant-oat01-/);
        await expectNoProcesses(slotsDir, slotId);
      }
    }

    expect(loginsOf.get(a.child.pid!)!.length).toBeGreaterThan(0);
    expect(loginsOf.get(b.child.pid!)!.length).toBeGreaterThan(0);
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
  });
});
