// A refresh cancelled while the token endpoint is slow, on a real Temporal server:
// the request was sent, so the worker waits for the answer and persists the rotated
// refresh token before it reports; the workflow sees the refresh done, once.
import { Worker } from '@temporalio/worker';
import { NativeConnection } from '@temporalio/worker';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { hostTaskQueue, slotWorkflowId } from '../../common/slot';
import { devServerClient, startWorkers, uniqueName, type RunningWorkers } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { cancelRefreshSignal, refreshUntilCancelled } from './refresh-cancel.workflow';

const CLAUDE_CLIENT = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CLAUDE_FILE = '.claude/.credentials.json';
const workflowsPath = fileURLToPath(new URL('./refresh-cancel.workflow.ts', import.meta.url));

describe('cancelling a refresh in flight', () => {
  const closers: Array<() => Promise<void>> = [];
  let slotsDir: string;
  let tokens: TokenServer;
  let host: RunningWorkers;

  beforeAll(async () => {
    slotsDir = await mkdtemp(join(tmpdir(), 'refresh-cancel-'));
    tokens = await startTokenServer({ accessTtlSec: 8 * 3600 });
    closers.push(() => tokens.close());
    host = await startWorkers({ slotsDir, env: { CLAUDE_TOKEN_URL: tokens.claudeTokenUrl } });
    closers.push(() => host.stop());
  });

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  it('waits for the slow answer, persists the rotated token, and reports the refresh, not a cancellation', async () => {
    const { client, connection } = await devServerClient();
    closers.push(() => connection.close());
    const native = await NativeConnection.connect({ address: inject('temporalAddress') });
    closers.push(() => native.close());
    const taskQueue = uniqueName('refresh-cancel');
    const worker = await Worker.create({ connection: native, taskQueue, workflowsPath });

    const slotId = uniqueName('cancel');
    const home = await ensureSlotHome(slotsDir, slotId);
    const issued = tokens.issue({ clientId: CLAUDE_CLIENT });
    const now = Date.now();
    await writeSecretFileAtomic(home, CLAUDE_FILE, JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: now + 60_000, scopes: ['user:inference'] } }));
    tokens.script([{ delayMs: 4000 }]);

    const outcome = await worker.runUntil(async () => {
      const handle = await client.workflow.start(refreshUntilCancelled, {
        taskQueue,
        // The host acts on a slot only for the workflow slot:<id>: this one stands in for it.
        workflowId: slotWorkflowId(slotId),
        args: [hostTaskQueue(host.hostName), { slotId, provider: 'claude', now, force: false, status: { slotId, phase: 'refreshing' } }],
      });
      const deadline = Date.now() + 20_000;
      while (tokens.requests.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(tokens.requests).toHaveLength(1);
      await handle.signal(cancelRefreshSignal);
      const result = await handle.result();
      const history = await handle.fetchHistory();
      return { result, events: (history.events ?? []).map((e) => Object.keys(e).find((k) => k.endsWith('EventAttributes'))) };
    });

    // The cancellation was asked for while the request was out, and the activity then completed (not cancelled).
    const cancelAt = outcome.events.indexOf('activityTaskCancelRequestedEventAttributes');
    const completedAt = outcome.events.indexOf('activityTaskCompletedEventAttributes');
    expect(cancelAt).toBeGreaterThan(0);
    expect(completedAt).toBeGreaterThan(cancelAt);
    expect(outcome.events).not.toContain('activityTaskCanceledEventAttributes');
    expect(outcome.result).toMatchObject({ outcome: 'completed', result: { kind: 'refreshed', attempts: 1 } });

    const grant = tokens.grant(issued.grantId)!;
    expect(grant.rotations).toBe(1);
    const written = JSON.parse(await readFile(join(home, CLAUDE_FILE), 'utf8')) as { claudeAiOauth: { refreshToken: string; accessToken: string } };
    expect(written.claudeAiOauth.refreshToken).toBe(grant.refreshToken);
    expect(tokens.accessTokenValid(written.claudeAiOauth.accessToken)).toBe(true);
    expect(JSON.parse(await readFile(join(home, 'slot-status.json'), 'utf8'))).toMatchObject({ phase: 'active' });
    // Nothing wrote the file again, and nothing asked the endpoint again.
    const mtime = (await stat(join(home, CLAUDE_FILE))).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await stat(join(home, CLAUDE_FILE))).mtimeMs).toBe(mtime);
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.presentedTwice()).toEqual([]);
  });
});
