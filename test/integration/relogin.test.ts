// A permanent refresh failure on the real dev server: the operator is asked
// once, a new login starts by itself, and the slot is active again.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { claudeCode, expectNoProcesses, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
/** Tokens the fixture `claude` writes on login; the token server adopts them when the test says. */
const FIXTURE_TOKENS = { accessToken: 'sk-ant-oat01-fixture-access-0000000000', refreshToken: 'sk-ant-ort01-fixture-refresh-000000000' };

describe('permanent refresh failure', () => {
  let server: TokenServer;
  let webhook: WebhookReceiver;
  let rig: SlotRig;
  const notices: Array<{ slotId: string; reason: string; phase: string; kind: string }> = [];

  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    webhook = await startWebhookReceiver(notices);
    rig = await startSlotRig(
      {
        CLAUDE_TOKEN_URL: server.claudeTokenUrl,
        FIXTURE_CLAUDE_ACCESS_TOKEN: FIXTURE_TOKENS.accessToken,
        FIXTURE_CLAUDE_REFRESH_TOKEN: FIXTURE_TOKENS.refreshToken,
      },
      { notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/notify` },
    );
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
    webhook?.close();
  });

  it('asks an operator once, starts a new login, and is active again', async () => {
    const slotId = uniqueName('revoked');
    const issued = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({
        claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] },
      }),
    );
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true });
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');

    // Revoked on the provider's side (password change, admin action).
    server.revoke(issued.refreshToken);
    await rig.slots.refreshNow(slotId);
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(waiting.lastOutcome?.kind).toBe('refresh-failed');
    expect(waiting.lastOutcome?.message).toMatch(/refresh failed permanently: .*invalid_grant.*A new login was started/);
    // Sent without holding the slot up: it may land just after the new prompt.
    await vi.waitFor(() => expect(notices.filter((n) => n.slotId === slotId && n.kind === 'needs-relogin')).toHaveLength(1), { timeout: 10_000 });
    const mine = notices.filter((n) => n.slotId === slotId && n.kind === 'needs-relogin');
    expect(mine[0]?.reason).toMatch(/invalid_grant/);
    expect(mine[0]?.phase).toBe('needs-relogin');
    // The refused token was sent once and never again.
    expect(server.requests.filter((r) => r.refreshToken === issued.refreshToken)).toHaveLength(1);

    // The operator logs in; the fixture CLI writes tokens the server now knows.
    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.submitCode(slotId, claudeCode(waiting));
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.logins).toBe(1);
    await expectNoProcesses(rig.slotsDir, slotId);

    await rig.slots.refreshNow(slotId);
    const { status } = await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    expect(status.phase).toBe('active');
    const onDisk = JSON.parse(await readFile(join(rig.slotsDir, slotId, '.claude', '.credentials.json'), 'utf8'));
    expect(onDisk.claudeAiOauth.refreshToken).not.toBe(FIXTURE_TOKENS.refreshToken);
    const env = await readFile(join(rig.slotsDir, slotId, '.agent.env'), 'utf8');
    expect(env).toContain(`CLAUDE_CODE_OAUTH_TOKEN=${onDisk.claudeAiOauth.accessToken}`);
    expect(server.presentedTwice()).toEqual([]);
    // The status file beside the credential serves monitoring, without a token.
    const statusFile = await readFile(join(rig.slotsDir, slotId, 'slot-status.json'), 'utf8');
    expect(JSON.parse(statusFile)).toMatchObject({ slotId, phase: 'active', provider: 'claude' });
    for (const secret of [onDisk.claudeAiOauth.accessToken, onDisk.claudeAiOauth.refreshToken, FIXTURE_TOKENS.refreshToken, issued.refreshToken]) {
      expect(statusFile).not.toContain(secret);
    }
    // Asked once, shown the new login's URL, told it recovered; the refresh after that is no news.
    await vi.waitFor(() => expect(notices.filter((n) => n.slotId === slotId).map((n) => n.kind)).toEqual(['needs-relogin', 'awaiting-operator', 'recovered']), { timeout: 10_000 });
  });
});
