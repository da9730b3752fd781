// Keeping slots alive, on the time-skipping server: weeks of scheduled refreshes
// against a real token endpoint on 127.0.0.1, permanent and transient failures.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { readTombstone, TRASH_DIR, type Tombstone } from '../../activities/slot-trash';
import { SlotClient } from '../../client/slot-client';
import type { SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { createSlotWorkers, type SlotWorkers } from '../../workers/worker';
import { timeSkippingEnv, uniqueName, workflowBundle } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const HOUR = 3600_000;
const DAY = 24 * HOUR;

let env: TestWorkflowEnvironment;
let server: TokenServer;
let slotsDir: string;
let workers: SlotWorkers;
let running: Promise<void>;
let slots: SlotClient;
let hostName: string;
let webhook: WebhookReceiver;
const notices: Array<{ slotId: string; reason: string; kind: string }> = [];
/** Slots of the running test: retired after it, so their timers and requests cannot disturb the next. */
const provisioned: string[] = [];

beforeAll(async () => {
  env = await timeSkippingEnv();
  server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
  slotsDir = await mkdtemp(join(tmpdir(), 'slots-refresh-'));
  webhook = await startWebhookReceiver(notices);
  const webhookPort = webhook.port;
  hostName = uniqueName('host');
  const sharedTaskQueue = uniqueName('shared');
  workers = await createSlotWorkers({
    connection: env.nativeConnection,
    namespace: 'default',
    slotsDir,
    host: hostName,
    sharedTaskQueue,
    workflowBundle: await workflowBundle(),
    env: {
      ...process.env,
      CLAUDE_TOKEN_URL: server.claudeTokenUrl,
      SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1',
      // No CLI may run here: a login would need an operator, and these slots adopt their credentials.
      CLAUDE_BIN: '/nonexistent/claude',
    },
    notifyWebhookUrl: `http://127.0.0.1:${webhookPort}/notify`,
    // Time skipping puts a month of refreshes into seconds of real time: the highest pace keeps their spacing short.
    pace: { claude: { requestsPerSecond: 10, concurrency: 4 } },
  });
  running = workers.run();
  slots = new SlotClient(env.client, sharedTaskQueue);
});

afterAll(async () => {
  workers?.shutdown();
  await running;
  await env?.teardown();
  await server?.close();
  webhook?.close();
  if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const slotId of provisioned.splice(0)) await slots.retire(slotId).catch(() => undefined);
  // A 429 one test provokes pauses the host's provider (activities/provider-pause.ts) at the skipped
  // clock, a month ahead of the real one that a revocation reads: the next test starts unpaused.
  if (slotsDir) await rm(join(slotsDir, '.provider-pauses'), { recursive: true, force: true });
});

/** Writes a Claude credential as the CLI would, with tokens the server issued. */
async function seedClaude(slotId: string, tokens = server.issue()): Promise<typeof tokens> {
  provisioned.push(slotId);
  await writeSecretFileAtomic(
    await ensureSlotHome(slotsDir, slotId),
    '.claude/.credentials.json',
    JSON.stringify({
      claudeAiOauth: {
        accessToken: tokens.accessToken,
        refreshToken: tokens.refreshToken,
        // The server's clock, which earlier tests moved weeks ahead of the real one.
        expiresAt: (await env.currentTimeMs()) + tokens.expiresIn * 1000,
        scopes: ['user:inference'],
        subscriptionType: 'max',
      },
      keepMe: { unrelated: true },
    }),
  );
  return tokens;
}

const readClaude = async (slotId: string): Promise<{ claudeAiOauth: { accessToken: string; refreshToken: string; expiresAt: number }; keepMe?: unknown }> =>
  JSON.parse(await readFile(join(slotsDir, slotId, '.claude', '.credentials.json'), 'utf8'));

async function until(slotId: string, check: (s: SlotStatus) => boolean, what: string, timeoutMs = 20_000): Promise<SlotStatus> {
  const { status, reached } = await slots.waitFor(slotId, check, { timeoutMs, pollMs: 100 });
  if (!reached) throw new Error(`slot ${slotId}: wanted ${what}, have ${JSON.stringify(status)}`);
  return status;
}

describe('scheduled refresh', () => {
  it('keeps a slot active through thirty simulated days, rotating tokens, with bounded history', async () => {
    const slotId = uniqueName('month');
    const issued = await seedClaude(slotId);
    // Refreshes only: scheduled live probes (every 6 h) are tested in probes.test.ts.
    await slots.provision({ slotId, provider: 'claude', host: hostName, adoptExisting: true, options: { maxHistoryEvents: 300, probe: { everyMs: 0 } } });
    const first = await until(slotId, (s) => s.phase === 'active', 'active');
    // Adopted a fresh credential: nothing to refresh yet, and a timer set before expiry.
    expect(server.requests).toHaveLength(0);
    // Due an hour before expiry, up to 90 minutes earlier (the jitter that spreads a fleet): 5.5 to 7 h from now.
    expect(first.nextRefreshAt).toBeGreaterThan(Date.now() + 5 * HOUR);
    expect(first.nextRefreshAt).toBeLessThanOrEqual((first.expiresAt ?? 0) - HOUR);

    const started = await env.currentTimeMs();
    await env.sleep(30 * DAY);
    const after = await until(slotId, (s) => s.phase === 'active', 'active after a month');
    const grant = server.grant(issued.grantId);

    // ~7 h between refreshes for 8 h tokens refreshed 1 h early (minus jitter): 30 days ≈ 100.
    expect(grant?.rotations).toBeGreaterThanOrEqual(95);
    expect(grant?.alive).toBe(true);
    expect(server.presentedTwice()).toEqual([]);
    expect(server.requests.every((r) => r.status === 200)).toBe(true);
    const onDisk = await readClaude(slotId);
    expect(onDisk.claudeAiOauth.refreshToken).toBe(grant?.refreshToken);
    expect(onDisk.claudeAiOauth.accessToken).toBe(grant?.accessToken);
    expect(onDisk.keepMe).toEqual({ unrelated: true });
    expect(after.expiresAt).toBeGreaterThan(started + 30 * DAY);
    expect(after.lastOutcome?.kind).toBe('refresh-succeeded');
    expect(notices.filter((n) => n.slotId === slotId)).toEqual([]);

    // Continue-as-new kept each run's history small.
    const handle = env.client.workflow.getHandle(slotWorkflowId(slotId));
    const history = await handle.fetchHistory();
    expect(history.events?.length).toBeLessThan(400);
    const description = await handle.describe();
    expect(description.runId).not.toBe(description.raw.workflowExecutionInfo?.firstRunId);
    expect(after.refreshes).toBeGreaterThanOrEqual(95);
  });

  it('rides out a run of 5xx, 429 and garbage answers without a person, then recovers', async () => {
    const slotId = uniqueName('flaky');
    const issued = await seedClaude(slotId);
    await slots.provision({ slotId, provider: 'claude', host: hostName, adoptExisting: true, options: { degradedWithinMs: 12 * HOUR } });
    await until(slotId, (s) => s.phase === 'active', 'active');
    const before = await readFile(join(slotsDir, slotId, '.claude', '.credentials.json'), 'utf8');

    server.script([{ status: 500 }, { status: 503 }, { status: 429, retryAfter: 600 }, { html: true }, { body: 'not json', status: 200 }, { dropConnection: true }]);
    await slots.refreshNow(slotId);
    const degraded = await until(slotId, (s) => s.phase === 'degraded', 'degraded');
    expect(degraded.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(degraded.lastError).toMatch(/500|503|429/);
    // Failed attempts never touch the file.
    expect(await readFile(join(slotsDir, slotId, '.claude', '.credentials.json'), 'utf8')).toBe(before);

    await env.sleep(2 * HOUR);
    const recovered = await until(slotId, (s) => s.phase === 'active', 'recovered');
    expect(recovered.consecutiveFailures).toBe(0);
    // Attempts are counted since the slot turned degraded; the server saw all seven (below).
    expect(recovered.lastOutcome?.message).toMatch(/refreshed after \d+ attempts/);
    expect(server.pendingFaults()).toBe(0);
    expect(server.grant(issued.grantId)?.rotations).toBe(1);
    expect(server.presentedTwice()).toEqual([]);
    // Six failed attempts and the seventh that rotated: each one a single presentation.
    expect(server.requests.filter((r) => r.refreshToken === issued.refreshToken)).toHaveLength(7);
    // Nobody was asked to act; they were told it degraded and that it recovered, once each.
    await vi.waitFor(() => expect(notices.filter((n) => n.slotId === slotId).map((n) => n.kind)).toEqual(['degraded', 'recovered']), { timeout: 10_000 });
  });

  it("retire revokes the refresh token and moves the slot files to the host's trash, --remove-files or not: the slot directory is empty, the trash holds the credential", async () => {
    const kept = uniqueName('kept');
    const removed = uniqueName('removed');
    for (const slotId of [kept, removed]) {
      await seedClaude(slotId);
      await slots.provision({ slotId, provider: 'claude', host: hostName, adoptExisting: true });
      await until(slotId, (s) => s.phase === 'active', 'active');
    }
    const held = await Promise.all([kept, removed].map(async (slotId) => (await readClaude(slotId)).claudeAiOauth));
    const refreshTokens = held.map((c) => c.refreshToken);
    await slots.retire(kept);
    await slots.retire(removed, { removeFiles: true });
    const retired = await until(kept, (s) => s.phase === 'retired', 'retired');
    await until(removed, (s) => s.phase === 'retired', 'retired');
    // Revoked as Claude Code revokes at logout: the refresh token, JSON, at <token endpoint>/revoke; the grant ends.
    expect(retired.lastOutcome?.message).toMatch(/^retired; the refresh token was revoked at http:\/\/127\.0\.0\.1:\d+ \(the access token lapses when it expires\); the slot home was moved to the trash on host /);
    const revocations = server.requests.filter((r) => r.outcome === 'token-revoked');
    for (const token of refreshTokens) {
      expect(revocations.filter((r) => r.revokedToken === token)).toEqual([
        expect.objectContaining({ method: 'POST', path: '/v1/oauth/token/revoke', contentType: 'application/json', tokenTypeHint: 'refresh_token', clientId: CLAUDE_CLIENT_ID, status: 200 }),
      ]);
    }
    // The grant is over: its access token no longer works at this server either.
    for (const c of held) expect(server.accessTokenValid(c.accessToken)).toBe(false);
    for (const slotId of [kept, removed]) {
      await expect(readClaude(slotId)).rejects.toThrow(/ENOENT/);
      const tombstone = await readTombstone(slotsDir, slotId);
      expect(tombstone).toMatchObject({ kind: 'retired', record: { provider: 'claude' }, ...(slotId === removed ? { removeFilesAsked: true } : {}) });
      const trashed = (tombstone as Tombstone).trashed as string;
      expect(JSON.parse(await readFile(join(slotsDir, TRASH_DIR, trashed, '.claude', '.credentials.json'), 'utf8'))).toMatchObject({ claudeAiOauth: { refreshToken: expect.any(String) } });
    }
  });
});
