// A refresh that runs out of time is neither a configuration problem nor a permanent
// failure: a degraded slot (as continue-as-new carries it) stays degraded, says it tries
// again, and does. On the time-skipping server, every attempt of the refresh's minute is
// refused with 503 (the retry policy gives up: its deadline); on the dev server, no worker
// of the slot's host takes the activity (it times out). Before, the first went to
// needs-relogin as "failed permanently", the second as "fix the slot's provider configuration".
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { SlotClient } from '../../client/slot-client';
import type { SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import type { SlotInput } from '../../common/slot-input';
import { createSlotWorkers, type SlotWorkers } from '../../workers/worker';
import { timeSkippingEnv, uniqueName, workflowBundle } from '../harness';
import { startSlotRig, type SlotRig } from '../slot-fixtures';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const MINUTE = 60_000;

/** The input of a run continued (continue-as-new) from a degraded slot: its refresh is due, its token expires in 20 minutes. */
const degraded = (slotId: string, now: number, host?: string): SlotInput => ({
  slotId,
  provider: 'claude',
  host: host ?? '',
  carried: {
    phase: 'degraded',
    expiresAt: now + 20 * MINUTE,
    lastRefresh: now - 7 * 3600_000,
    nextRefreshAt: now - MINUTE,
    account: 'max',
    logins: 0,
    refreshes: 3,
    consecutiveFailures: 2,
    lastError: 'the token endpoint answered HTTP 503',
    runs: 1,
    nextProbeAt: now + 6 * 3600_000,
    pending: { login: false, refresh: false, retire: undefined },
  },
});

describe('a refresh that runs out of time, on the time-skipping server', () => {
  let env: TestWorkflowEnvironment;
  let server: TokenServer;
  let webhook: WebhookReceiver;
  let slotsDir: string;
  let hostName: string;
  let sharedTaskQueue: string;
  let shared: SlotWorkers;
  let host: SlotWorkers | undefined;
  const running: Array<Promise<void>> = [];
  let slots: SlotClient;
  const notices: Array<{ slotId: string; kind: string; reason: string }> = [];

  const hostWorkers = (): Promise<SlotWorkers> =>
    createSlotWorkers({
      connection: env.nativeConnection,
      namespace: 'default',
      slotsDir,
      host: hostName,
      sharedTaskQueue,
      roles: ['host'],
      env: { ...process.env, CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_BIN: '/nonexistent/claude' },
      notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/notify`,
    });

  beforeAll(async () => {
    env = await timeSkippingEnv();
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    webhook = await startWebhookReceiver(notices);
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-refresh-timeout-'));
    hostName = uniqueName('host');
    sharedTaskQueue = uniqueName('shared');
    // The shared queue only: the slot's host has no worker yet.
    shared = await createSlotWorkers({
      connection: env.nativeConnection,
      namespace: 'default',
      slotsDir,
      host: hostName,
      sharedTaskQueue,
      roles: ['workflows'],
      workflowBundle: await workflowBundle(),
      notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/notify`,
    });
    running.push(shared.run());
    slots = new SlotClient(env.client, sharedTaskQueue);
  });

  afterAll(async () => {
    shared?.shutdown();
    host?.shutdown();
    await Promise.all(running);
    await env?.teardown();
    await server?.close();
    webhook?.close();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  async function until(slotId: string, check: (s: SlotStatus) => boolean, what: string): Promise<SlotStatus> {
    const { status, reached } = await slots.waitFor(slotId, check, { timeoutMs: 20_000, pollMs: 100 });
    if (!reached) throw new Error(`slot ${slotId}: wanted ${what}, have ${JSON.stringify(status)}`);
    return status;
  }

  it('a degraded slot whose refreshes keep failing until the deadline stays degraded and retries, not "failed permanently"; it recovers', async () => {
    host = await hostWorkers();
    running.push(host.run());
    const slotId = uniqueName('deadline');
    const now = await env.currentTimeMs();
    const issued = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: now + 20 * MINUTE, scopes: ['user:inference'] } }),
    );
    // Every attempt within the refresh's minute answers 503 (attempts at 0, 5, 15 and 35 s; the next would land past it).
    server.script(Array.from({ length: 4 }, () => ({ status: 503 })));
    await env.client.workflow.start('slotWorkflow', { workflowId: slotWorkflowId(slotId), taskQueue: sharedTaskQueue, args: [{ ...degraded(slotId, now), host: hostName }] });

    // Time passes over the retries' back-off (skipped): the refresh runs out of its minute.
    await env.sleep(90_000);
    const failed = await until(slotId, (s) => s.lastOutcome?.kind === 'refresh-failed', 'a refresh that ran out of time');
    expect(failed.phase).toBe('degraded');
    expect(failed.lastOutcome?.message).toMatch(/^refresh did not finish: .*503.*; not a configuration problem, trying again at /);
    expect(failed.lastOutcome?.message).not.toMatch(/permanently|relogin/);
    expect(failed.consecutiveFailures).toBe(3);

    // The endpoint answers again: the next try (a minute later) refreshes, with no person involved.
    await env.sleep(2 * MINUTE);
    const recovered = await until(slotId, (s) => s.phase === 'active', 'active once the endpoint answers');
    expect(recovered.consecutiveFailures).toBe(0);
    expect(server.grant(issued.grantId)?.rotations).toBe(1);
    expect(server.presentedTwice()).toEqual([]);
    expect(notices.filter((n) => n.slotId === slotId && n.kind === 'needs-relogin')).toEqual([]);
    await slots.retire(slotId);
    await until(slotId, (s) => s.phase === 'retired', 'retired');
  });
});

describe('a refresh whose activity times out (no worker of its host takes it), on the dev server', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    // The shared queue's worker only: no host worker for the slot's host.
    rig = await startSlotRig({}, { roles: ['workflows'] });
  });
  afterAll(async () => rig?.close());

  it('is not a configuration problem: the degraded slot stays degraded and tries again a minute later', { timeout: 150_000 }, async () => {
    const slotId = uniqueName('timeout');
    const id = slotWorkflowId(slotId);
    await rig.slots.client.workflow.start('slotWorkflow', { workflowId: id, taskQueue: rig.workers.sharedTaskQueue, args: [degraded(slotId, Date.now(), uniqueName('host-down'))] });
    // The refresh's activity is never taken: it times out after its minute (ScheduleToClose).
    const { status: failed, reached } = await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.kind === 'refresh-failed', { timeoutMs: 120_000, pollMs: 500 });
    expect(reached).toBe(true);
    expect(failed.phase).toBe('degraded');
    expect(failed.lastOutcome?.message).toMatch(/^refresh did not finish: .*timeout.*; not a configuration problem, trying again at /i);
    expect(failed.lastOutcome?.message).not.toMatch(/configuration on its host|Fix the slot/);
    expect(failed.nextRefreshAt).toBeGreaterThan(Date.now() + 30_000);
    // Its host is down for good: retiring would wait for it.
    await rig.slots.client.workflow.getHandle(id).terminate('test over');
  });
});
