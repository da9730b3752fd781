// A setup-token slot near and at its expiry, on the real dev server: the operator is
// told once through the webhook (a setup-token-expiring notice), and at expiry the slot needs a login
// and starts one, without ever asking a token endpoint.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handOverCredential } from '../../activities/adoption';
import { uniqueName } from '../harness';
import { startSlotRig, waitForPhase, type SlotRig } from '../slot-fixtures';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';

const TOKEN = `sk-ant-oat01-${'EXPIRINGtoken'.repeat(6)}-xxAA`;

describe('claude-setup-token expiry', () => {
  let rig: SlotRig;
  let webhook: WebhookReceiver;
  let tokenRequests = 0;
  let tokenServer: Server;
  const notices: Array<{ slotId: string; kind: string; phase: string; reason: string }> = [];
  beforeAll(async () => {
    tokenServer = createServer((_req, res) => {
      tokenRequests += 1;
      res.writeHead(500).end();
    });
    webhook = await startWebhookReceiver(notices);
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    rig = await startSlotRig(
      { CLAUDE_TOKEN_URL: `http://127.0.0.1:${(tokenServer.address() as { port: number }).port}/v1/oauth/token` },
      { notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/notify` },
    );
  });
  afterAll(async () => {
    await rig?.close();
    webhook?.close();
    tokenServer?.close();
  });

  it('notifies once before expiry, then at expiry needs a login and starts one', async () => {
    const slotId = uniqueName('st-expiry');
    const now = Date.now();
    // A token issued a year ago that expires in 65 s: every notice window is entered.
    const expiresAt = now + 65_000;
    await handOverCredential(rig.slotsDir, slotId, 'claude-setup-token', { oauthToken: TOKEN, issuedAt: now - 365 * 86_400_000 + 65_000, expiresAt, source: 'adopted' }, now);
    await rig.slots.provision({ slotId, provider: 'claude-setup-token', host: rig.workers.hostName, adoptExisting: true });

    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.expiresAt).toBe(expiresAt);
    // The next look is at expiry (at least a minute away), not a refresh.
    expect(active.nextRefreshAt).toBeGreaterThanOrEqual(expiresAt);
    await expect.poll(() => notices.filter((n) => n.slotId === slotId).length, { timeout: 10_000 }).toBe(1);
    expect(notices.find((n) => n.slotId === slotId)).toMatchObject({
      kind: 'setup-token-expiring',
      phase: 'active',
      reason: expect.stringMatching(/expires in less than an hour .* cannot be refreshed: log in again before then with `slotctl relogin/),
    });
    expect(active.lastOutcome?.message).toMatch(/expires in less than an hour/);

    // At expiry: needs-relogin, the operator is told, and a login starts by itself.
    const relogin = await waitForPhase(rig.slots, slotId, ['awaiting-operator'], 120_000);
    expect(relogin.prompt?.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?/);
    const mine = (): typeof notices => notices.filter((n) => n.slotId === slotId);
    // One notice per event: the warning, the expiry, and the new login's URL waiting for a person.
    await expect.poll(() => mine().map((n) => n.kind), { timeout: 10_000 }).toEqual(['setup-token-expiring', 'needs-relogin', 'awaiting-operator']);
    expect(mine()[1]).toMatchObject({ phase: 'needs-relogin', reason: expect.stringMatching(/token expired at .*a new login is needed/) });
    expect(tokenRequests).toBe(0);
    expect(JSON.stringify(notices)).not.toContain('sk-ant');
    await rig.slots.retire(slotId);
  }, 150_000);
});
