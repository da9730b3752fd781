// Notices across a slot's whole life on the real dev server: a local webhook
// receiver sees exactly one notice per event (login waiting, degraded, recovered,
// needs-relogin, the new login, recovered), each actionable, none with a secret.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NoticeBody } from '../../common/notices';
import { uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const FIXTURE_TOKENS = { accessToken: 'sk-ant-oat01-notices-access-0000000000', refreshToken: 'sk-ant-ort01-notices-refresh-000000000' };

interface Received {
  readonly raw: string;
  readonly body: NoticeBody;
  readonly idempotencyKey: string | undefined;
  readonly answered: number;
}

describe('notices for every operator event', () => {
  let server: TokenServer;
  let webhook: Server;
  let rig: SlotRig;
  const received: Received[] = [];
  /** Kinds whose first delivery the receiver refuses with 503, to see the retry. */
  const refuseFirst = new Set(['degraded']);

  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    webhook = createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        const body = JSON.parse(raw) as NoticeBody;
        const refuse = refuseFirst.delete(body.kind);
        received.push({ raw, body, idempotencyKey: req.headers['idempotency-key'] as string | undefined, answered: refuse ? 503 : 200 });
        res.statusCode = refuse ? 503 : 200;
        res.end(refuse ? 'busy' : 'ok');
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    rig = await startSlotRig(
      {
        CLAUDE_TOKEN_URL: server.claudeTokenUrl,
        FIXTURE_CLAUDE_ACCESS_TOKEN: FIXTURE_TOKENS.accessToken,
        FIXTURE_CLAUDE_REFRESH_TOKEN: FIXTURE_TOKENS.refreshToken,
      },
      { notifyWebhookUrl: `http://127.0.0.1:${(webhook.address() as { port: number }).port}/hook` },
    );
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
    webhook?.close();
  });

  /** Notices the receiver accepted for the slot, in the order the slot sent them (their event counter). */
  const accepted = (slotId: string): NoticeBody[] =>
    received
      .filter((r) => r.body.slotId === slotId && r.answered === 200)
      .map((r) => r.body)
      .sort((a, b) => Number(a.eventId.split('/').pop()) - Number(b.eventId.split('/').pop()));

  const untilNotice = async (slotId: string, count: number, timeoutMs = 30_000): Promise<NoticeBody[]> => {
    const deadline = Date.now() + timeoutMs;
    while (accepted(slotId).length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return accepted(slotId);
  };

  it('login waiting → active → degraded → recovered → needs-relogin → new login → recovered: one notice each', async () => {
    const slotId = uniqueName('noticed');
    // Degraded as soon as a refresh fails past its first deadline (the token expires within 9 h).
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, options: { degradedWithinMs: 9 * 3600_000 } });

    // 1. A login URL waits: the notice carries it and the command that submits the code.
    const waiting = await waitForPrompt(rig.slots, slotId);
    const [first] = await untilNotice(slotId, 1);
    expect(first?.kind).toBe('awaiting-operator');
    expect(first?.action?.url).toBe(waiting.prompt.url);
    expect(first?.action?.command).toBe(`slotctl submit-code ${slotId}`);
    expect(first?.text).toContain(waiting.prompt.url);
    expect(first?.text).toContain(`slotctl submit-code ${slotId}`);
    expect(first?.phase).toBe('awaiting-operator');

    const grant = server.issue({ tokens: FIXTURE_TOKENS });
    const code = claudeCode(waiting);
    await rig.slots.submitCode(slotId, code);
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');

    // 2. A 429 whose Retry-After lands past the deadline (a minute): degraded at once, and the next try,
    // once the host's pause for the provider is over, succeeds.
    server.script([{ status: 429, retryAfter: 61 }]);
    await rig.slots.refreshNow(slotId);
    const recovered = await untilNotice(slotId, 3, 120_000);
    expect(recovered.map((n) => n.kind)).toEqual(['awaiting-operator', 'degraded', 'recovered']);
    expect(recovered[1]?.reason).toMatch(/refreshes are failing/);
    expect(recovered[1]?.text).toContain(`slotctl status ${slotId}`);
    expect((await rig.slots.status(slotId)).phase).toBe('active');

    // 3. Revoked at the provider: needs-relogin, and the login it starts by itself announces its new URL.
    server.revoke(server.grant(grant.grantId)?.refreshToken ?? '');
    await rig.slots.refreshNow(slotId);
    const again = await waitForPrompt(rig.slots, slotId, waiting.prompt.url);
    const relogin = await untilNotice(slotId, 5);
    expect(relogin.map((n) => n.kind)).toEqual(['awaiting-operator', 'degraded', 'recovered', 'needs-relogin', 'awaiting-operator']);
    expect(relogin[3]?.reason).toMatch(/invalid_grant.*A new login was started/);
    expect(relogin[4]?.action?.url).toBe(again.prompt.url);

    server.issue({ tokens: FIXTURE_TOKENS });
    const code2 = claudeCode(again);
    await rig.slots.submitCode(slotId, code2);
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    const all = await untilNotice(slotId, 6);
    // Late duplicates would show up here: give them time.
    await new Promise((r) => setTimeout(r, 3000));
    expect(accepted(slotId).map((n) => n.kind)).toEqual(['awaiting-operator', 'degraded', 'recovered', 'needs-relogin', 'awaiting-operator', 'recovered']);
    expect(new Set(all.map((n) => n.eventId)).size).toBe(6);

    // The refused delivery was retried with the same event id (and Idempotency-Key).
    const degradedPosts = received.filter((r) => r.body.slotId === slotId && r.body.kind === 'degraded');
    expect(degradedPosts.map((r) => r.answered)).toEqual([503, 200]);
    expect(new Set(degradedPosts.map((r) => r.body.eventId)).size).toBe(1);
    for (const r of received.filter((x) => x.body.slotId === slotId)) expect(r.idempotencyKey).toBe(r.body.eventId);

    // Never a token or a code.
    const everything = received.filter((r) => r.body.slotId === slotId).map((r) => r.raw).join('\n');
    for (const secret of [FIXTURE_TOKENS.accessToken, FIXTURE_TOKENS.refreshToken, grant.refreshToken, grant.accessToken, code, code2, 'valid-code']) {
      expect(everything).not.toContain(secret);
    }
    // The provider asked for a minute: the whole host waits it out before the slot recovers.
  }, 180_000);
});
