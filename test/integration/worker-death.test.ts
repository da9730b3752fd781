// The worker holding a login's PTY dies mid-login: the CLI must die with it, and a
// restarted worker must offer the operator a fresh login (new URL) that completes.
// The worker runs as a real child process, as in production, and is SIGKILLed.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { devServerClient, uniqueName } from '../harness';
import {
  claudeCode,
  expectNoProcesses,
  processesOfSlot,
  stateOf,
  waitForPhase,
  waitForPrompt,
} from '../slot-fixtures';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

describe('worker death during a login', () => {
  const workers: WorkerProcess[] = [];
  let slotsDir: string;
  let slots: SlotClient;
  let closeConnection: () => Promise<void>;
  const host = uniqueName('host');
  const sharedQueue = uniqueName('shared');

  /** `npm run worker`, as a process of its own. */
  function spawnWorker(): WorkerProcess {
    const worker = spawnWorkerProcess(fixtureWorkerEnv({ temporalAddress: inject('temporalAddress'), host, sharedQueue, slotsDir }));
    workers.push(worker);
    return worker;
  }

  beforeAll(async () => {
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-death-'));
    const { client, connection } = await devServerClient();
    slots = new SlotClient(client, sharedQueue);
    closeConnection = () => connection.close();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopWorkerProcess(w)));
    await closeConnection?.();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  it('kills the CLI with its worker, restarts the login with a new URL on the next worker, and completes it', async () => {
    const first = spawnWorker();
    const slotId = uniqueName('claude-death');
    await slots.provision({ slotId, provider: 'claude', host, login: { heartbeatTimeoutMs: 3000 } });
    await untilPolling(first, slots.client, host);
    const before = await waitForPrompt(slots, slotId);
    const oldPids = await processesOfSlot(slotsDir, slotId);
    expect(oldPids.length).toBeGreaterThan(0);
    expect(before.logins).toBe(1);

    await stopWorkerProcess(first);
    expect(first.child.signalCode).toBe('SIGKILL');
    // The PTY master died with the worker: the CLI got SIGHUP and must not outlive it
    // (it may linger as a zombie until init reaps it; processesOfSlot counts only the living).
    await expectNoProcesses(slotsDir, slotId, 3000);
    // No worker can answer a query now: status falls back to the search attributes.
    const stale = await slots.status(slotId, { queryTimeoutMs: 2000 });
    expect(stale.stale).toMatch(/no worker answered/);
    expect(stale.phase).toBe('awaiting-operator');
    expect(stale.stale).toContain(before.prompt.url);

    const killedAt = Date.now();
    const second = spawnWorker();
    const after = await waitForPrompt(slots, slotId, before.prompt.url);
    const restartMs = Date.now() - killedAt;
    expect(restartMs).toBeLessThan(30_000);
    expect(second.child.exitCode).toBeNull();
    expect(stateOf(after.prompt.url)).not.toBe(stateOf(before.prompt.url));
    expect(after.lastError).toMatch(/^the login CLI was lost \(.*heartbeat.*\); started a new login with a new URL$/i);
    // Still the same login: the restart is an attempt inside it, not a new slot login.
    expect(after.logins).toBe(1);
    const newPids = await processesOfSlot(slotsDir, slotId);
    expect(newPids.length).toBeGreaterThan(0);
    expect(newPids.filter((pid) => oldPids.includes(pid))).toEqual([]);

    // A code for the dead login's URL is refused; the new one logs in.
    await expect(slots.submitCode(slotId, claudeCode(before))).rejects.toThrow(/current login URL/);
    const accepted = await slots.submitCode(slotId, claudeCode(after));
    // The second attempt (a new CLI on the surviving worker) of the slot's first login.
    expect(accepted.login).toMatch(new RegExp(`^${slotId}:[0-9a-f-]{8}:1\\.1$`));
    expect(accepted.answer).toBe('succeeded');
    const active = await waitForPhase(slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.logins).toBe(1);
    expect(active.lastError).toBeUndefined();
    const credential = join(slotsDir, slotId, '.claude', '.credentials.json');
    expect((await stat(credential)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(credential, 'utf8')).claudeAiOauth.accessToken).toMatch(/^sk-ant-oat01-/);
    await expectNoProcesses(slotsDir, slotId);
  });
});
