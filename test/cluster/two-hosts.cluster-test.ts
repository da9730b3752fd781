// The scale-out path on a real Temporal cluster (temporal-server v1.29.1 on PostgreSQL,
// SQL visibility), as docker-compose.yml lays it out: two slot hosts, each a worker
// process with its own SLOT_HOST and SLOTS_DIR serving only its host's queues
// (WORKER_ROLES=host), a third process running the slot workflows (WORKER_ROLES=workflows),
// and a client on the shared queue.
// Slots pinned to each host log in through that host's worker only; killing one host's
// worker leaves the other's slot served; the slots' workflows are rows in PostgreSQL.
//
// Run: npm test, or npm run test:cluster alone (obtains the binaries first: scripts/cluster/obtain.sh).
// Without the binaries the test is skipped, unless CI is set: then it fails.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '@temporalio/client';
import { SlotClient } from '../../client/slot-client';
import { hostTaskQueue, slotWorkflowId } from '../../common/slot';
import { devServerClient, uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { claudeCode, expectNoProcesses, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';
import { findClusterBinaries, startCluster, type Cluster } from './cluster';

const { missing } = findClusterBinaries();
const skip = missing.length > 0 && !process.env.CI;
if (skip) console.warn(`[cluster] skipped: ${missing.join(', ')} missing; run scripts/cluster/obtain.sh (with CI set this fails instead)`);

interface Host {
  readonly name: string;
  readonly slotsDir: string;
  worker?: WorkerProcess;
}

/** Claude Code's OAuth client id: the token server's grants are for it. */
const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';

const credentialOf = (host: Host, slotId: string): string => join(host.slotsDir, slotId, '.claude', '.credentials.json');
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

describe.skipIf(skip)('two slot hosts on a Temporal cluster on PostgreSQL', () => {
  let cluster: Cluster;
  let connection: Connection;
  let slots: SlotClient;
  let tokens: TokenServer;
  const sharedQueue = uniqueName('shared');
  const hosts: Host[] = [];
  const slotOf = new Map<string, string>();

  let workflowsHost: Host;

  function startWorker(host: Host, roles = 'host'): WorkerProcess {
    host.worker = spawnWorkerProcess({
      ...fixtureWorkerEnv({ temporalAddress: cluster.address, host: host.name, sharedQueue, slotsDir: host.slotsDir }),
      WORKER_ROLES: roles,
      // Refreshes go to the token server on loopback, which a worker contacts only when allow-listed.
      CLAUDE_TOKEN_URL: tokens.claudeTokenUrl,
      SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1,localhost',
    });
    return host.worker;
  }

  beforeAll(async () => {
    const started = Date.now();
    tokens = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    cluster = await startCluster({ log: (line) => console.log(`[cluster +${Date.now() - started} ms] ${line}`) });
    for (const name of ['host-a', 'host-b']) {
      hosts.push({ name: uniqueName(name), slotsDir: await mkdtemp(join(tmpdir(), `slots-${name}-`)) });
    }
    const opened = await devServerClient(cluster.address, 'default');
    connection = opened.connection;
    slots = new SlotClient(opened.client, sharedQueue);
    for (const host of hosts) startWorker(host);
    workflowsHost = { name: uniqueName('workflows'), slotsDir: await mkdtemp(join(tmpdir(), 'slots-workflows-')) };
    startWorker(workflowsHost, 'workflows');
    await Promise.all([...hosts.map((host) => untilPolling(host.worker!, slots.client, host.name, 180_000)), untilPollingShared(workflowsHost.worker!)]);
  });

  /** Pollers of the shared queue's workflow tasks (TaskQueueType 1) or of a host's activities (2). */
  async function pollerPids(taskQueue: string, type: 1 | 2): Promise<number[]> {
    const { pollers } = await slots.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue }, taskQueueType: type });
    return pollers.map((p) => Number(p.identity?.split('@')[0]));
  }

  async function untilPollingShared(worker: WorkerProcess): Promise<void> {
    const deadline = Date.now() + 180_000;
    while (!(await pollerPids(sharedQueue, 1)).includes(worker.child.pid!)) {
      if (worker.child.exitCode !== null || Date.now() > deadline) throw new Error(`the workflows worker did not poll ${sharedQueue}:\n${worker.output().slice(-5000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  afterAll(async () => {
    await Promise.all([...hosts, workflowsHost].map((host) => (host?.worker ? stopWorkerProcess(host.worker, 'SIGTERM') : undefined)));
    await connection?.close();
    await cluster?.stop();
    await tokens?.close();
    await Promise.all([...hosts, workflowsHost].filter(Boolean).map((host) => rm(host.slotsDir, { recursive: true, force: true })));
  });

  it('logs in one slot on each host, each credential only in its own host\'s slot directory', async () => {
    for (const host of hosts) slotOf.set(host.name, uniqueName('cl'));
    await Promise.all(hosts.map((host) => slots.provision({ slotId: slotOf.get(host.name)!, provider: 'claude', host: host.name })));
    const prompts = await Promise.all(hosts.map((host) => waitForPrompt(slots, slotOf.get(host.name)!)));
    await Promise.all(hosts.map((host, i) => slots.submitCode(slotOf.get(host.name)!, claudeCode(prompts[i]!))));
    const ended = await Promise.all(hosts.map((host) => waitForPhase(slots, slotOf.get(host.name)!, ['active', 'needs-relogin'], 60_000)));
    expect(ended.map((s) => [s.slotId, s.phase, s.host, s.lastError])).toEqual(hosts.map((h) => [slotOf.get(h.name), 'active', h.name, undefined]));

    for (const host of hosts) {
      const slotId = slotOf.get(host.name)!;
      const credential = credentialOf(host, slotId);
      expect((await stat(credential)).mode & 0o777).toBe(0o600);
      expect(JSON.parse(await readFile(credential, 'utf8')).claudeAiOauth.accessToken).toMatch(/^sk-ant-oat01-/);
      // The other host never saw this slot.
      for (const other of hosts.filter((h) => h !== host)) {
        expect(await exists(join(other.slotsDir, slotId))).toBe(false);
      }
      await expectNoProcesses(host.slotsDir, slotId);
    }
  });

  it('keeps the slots\' workflows and search attributes in PostgreSQL (SQL visibility)', async () => {
    const ids = [...slotOf.values()].map(slotWorkflowId);
    const inList = ids.map((id) => `'${id}'`).join(',');
    // The execution store: one current run per slot, still running
    // (state 2 = WORKFLOW_EXECUTION_STATE_RUNNING, status 1 = WORKFLOW_EXECUTION_STATUS_RUNNING).
    const current = cluster.psql('temporal', `select workflow_id, state, status from current_executions where workflow_id in (${inList}) order by workflow_id`);
    expect(current).toEqual([...ids].sort().map((id) => `${id}|2|1`));
    const executions = Number(cluster.psql('temporal', `select count(*) from executions where workflow_id in (${inList})`)[0]);
    expect(executions).toBe(ids.length);
    // The visibility store answers queries on the project's search attributes.
    for (const host of hosts) {
      const listed: string[] = [];
      for await (const wf of slots.client.workflow.list({ query: `SlotHost = '${host.name}' AND SlotPhase = 'active'` })) listed.push(wf.workflowId);
      expect(listed).toEqual([slotWorkflowId(slotOf.get(host.name)!)]);
    }
    const visible = Number(cluster.psql('temporal_visibility', `select count(*) from executions_visibility where workflow_id in (${inList})`)[0]);
    expect(visible).toBe(ids.length);
  });

  it('serves and refreshes host B\'s slot while host A\'s worker is dead, and host A\'s slot again when it comes back', async () => {
    const [a, b] = hosts as [Host, Host];
    const slotA = slotOf.get(a.name)!;
    const slotB = slotOf.get(b.name)!;
    const credentialA = await readFile(credentialOf(a, slotA), 'utf8');
    const loggedIn = JSON.parse(await readFile(credentialOf(b, slotB), 'utf8')).claudeAiOauth as { accessToken: string; refreshToken: string };
    // The provider knows the tokens the fixture CLI's login minted.
    tokens.issue({ tokens: { accessToken: loggedIn.accessToken, refreshToken: loggedIn.refreshToken } });
    await stopWorkerProcess(a.worker!, 'SIGKILL');

    // The workflows process runs the workflow tasks; host B's worker serves B's activities.
    const statusB = await slots.status(slotB, { queryTimeoutMs: 30_000 });
    expect([statusB.phase, statusB.host]).toEqual(['active', b.name]);
    // The workflow of A's slot is served too (the workflow is not pinned to a host; its activities are).
    expect((await slots.status(slotA, { queryTimeoutMs: 30_000 })).phase).toBe('active');
    // A refresh of B's slot runs on host B, with host A down.
    await slots.refreshNow(slotB);
    const { status: refreshed, reached } = await slots.waitFor(slotB, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, {
      timeoutMs: 30_000,
      pollMs: 200,
    });
    expect(reached, JSON.stringify(refreshed)).toBe(true);
    expect(refreshed.phase).toBe('active');
    const rotated = JSON.parse(await readFile(credentialOf(b, slotB), 'utf8')).claudeAiOauth as { accessToken: string; refreshToken: string };
    expect(rotated.refreshToken).not.toBe(loggedIn.refreshToken);
    expect(tokens.accessTokenValid(rotated.accessToken)).toBe(true);
    expect(tokens.presentedTwice()).toEqual([]);
    // Host A's files were not touched, and host A has no copy of B's slot.
    expect(await readFile(credentialOf(a, slotA), 'utf8')).toBe(credentialA);
    expect(await exists(join(a.slotsDir, slotB))).toBe(false);
    expect(b.worker!.child.exitCode).toBeNull();

    // Host A back: its worker polls its queue again and its slot is untouched.
    startWorker(a);
    await untilPolling(a.worker!, slots.client, a.name, 180_000);
    expect((await slots.status(slotA, { queryTimeoutMs: 30_000 })).phase).toBe('active');
    expect(await readFile(credentialOf(a, slotA), 'utf8')).toBe(credentialA);
  });

  it('runs the slot workflows only in the workflows process, and each host\'s activities only on that host', async () => {
    const [a, b] = hosts as [Host, Host];
    // The server lists pollers seen in the last minutes: host A's killed worker may still be there.
    const [pidA, pidB, pidW] = [a.worker!.child.pid!, b.worker!.child.pid!, workflowsHost.worker!.child.pid!];
    const shared = await pollerPids(sharedQueue, 1);
    expect(shared).toContain(pidW);
    expect(shared).not.toContain(pidA);
    expect(shared).not.toContain(pidB);
    const onA = await pollerPids(hostTaskQueue(a.name), 2);
    expect(onA).toContain(pidA);
    expect(onA).not.toContain(pidB);
    expect(onA).not.toContain(pidW);
    expect(await pollerPids(hostTaskQueue(b.name), 2)).toEqual([pidB]);
    expect(await pollerPids(hostTaskQueue(workflowsHost.name), 2)).toEqual([]);

    // With the workflows process down, nothing runs the slots' workflow tasks; a request waits in the history.
    const slotB = slotOf.get(b.name)!;
    const before = await slots.status(slotB, { queryTimeoutMs: 30_000 });
    await stopWorkerProcess(workflowsHost.worker!, 'SIGKILL');
    await slots.refreshNow(slotB);
    // slotctl still answers, from the search attributes, and says the answer is not live.
    const unserved = await slots.status(slotB, { queryTimeoutMs: 3000 });
    expect([unserved.phase, unserved.stale]).toEqual(['active', expect.stringMatching(/no worker answered/)]);
    // Back: the refresh asked for meanwhile runs, on host B.
    startWorker(workflowsHost, 'workflows');
    await untilPollingShared(workflowsHost.worker!);
    const { status, reached } = await slots.waitFor(slotB, (s) => s.refreshes > before.refreshes && s.phase === 'active', { timeoutMs: 60_000, pollMs: 300 });
    expect(reached, JSON.stringify(status)).toBe(true);
    expect([status.phase, status.host]).toEqual(['active', b.name]);
    expect(await exists(join(workflowsHost.slotsDir, slotB))).toBe(false);
  });

  it('loses no slot, and no login awaiting its operator, when the Temporal server is killed (kill -9) and started again', async () => {
    // A login waits for its operator on host B while the server dies.
    const host = hosts[1]!;
    const slotId = uniqueName('cl-wait');
    await slots.provision({ slotId, provider: 'claude', host: host.name });
    const prompt = await waitForPrompt(slots, slotId);

    await cluster.restartServer();
    for (const h of hosts) {
      const status = await slots.status(slotOf.get(h.name)!, { queryTimeoutMs: 30_000 });
      expect([status.phase, status.host]).toEqual(['active', h.name]);
    }
    // The code submitted after the restart reaches the same CLI (same URL) and completes the login.
    const still = await waitForPrompt(slots, slotId);
    expect(still.prompt.url).toBe(prompt.prompt.url);
    await slots.submitCode(slotId, claudeCode(still));
    expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin'], 60_000)).phase).toBe('active');
    expect(await exists(credentialOf(host, slotId))).toBe(true);
    expect(await exists(join(hosts[0]!.slotsDir, slotId))).toBe(false);
    await expectNoProcesses(host.slotsDir, slotId);
  });
});
