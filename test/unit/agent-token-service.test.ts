// The agent token service over real HTTP on 127.0.0.1 and real slot files: an agent
// with its slot's secret gets the slot's current access token (never the refresh
// token), another slot's secret is refused, floods are cut off, a token near expiry
// makes it ask the slot to refresh, and nothing it logs holds a token or a secret.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rotateAgentSecret } from '../../activities/agent-files';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { SLOT_RECORD_FILE } from '../../activities/slot-record';
import { startAgentTokenService, type AgentTokenService } from '../../host/agent-token-service';
import { createLogger } from '../../workers/logger';

let slotsDir: string;
let service: AgentTokenService | undefined;
let logs: string;
let refreshAsked: string[];

const jwt = (claims: Record<string, unknown>): string =>
  `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

interface SeededSlot {
  readonly secret: string;
  readonly accessToken: string;
  readonly idToken: string;
  readonly refreshToken: string;
}

/** A codex slot as the host holds it: record, credential (with the real refresh token), agent secret. */
async function seedCodexSlot(slotId: string, expiresAt: number): Promise<SeededSlot> {
  const home = await ensureSlotHome(slotsDir, slotId);
  const record = { version: 1, slotId, provider: 'codex', providerConfig: null, createdBy: { workflowId: `slot:${slotId}`, runId: 'r' }, createdAt: new Date().toISOString() };
  await writeSecretFileAtomic(home, SLOT_RECORD_FILE, JSON.stringify(record));
  const accessToken = jwt({ exp: Math.floor(expiresAt / 1000), n: `${slotId}-access` });
  const idToken = jwt({ exp: Math.floor(expiresAt / 1000), email: `${slotId}@example.com` });
  const refreshToken = `rt_${slotId}_REAL_REFRESH_TOKEN_0123456789`;
  await writeSecretFileAtomic(
    home,
    '.codex/auth.json',
    JSON.stringify({ auth_mode: 'chatgpt', tokens: { id_token: idToken, access_token: accessToken, refresh_token: refreshToken, account_id: 'acct' }, last_refresh: new Date().toISOString() }),
  );
  const secret = await rotateAgentSecret(home);
  return { secret, accessToken, idToken, refreshToken };
}

async function start(options: { perSlotPerMinute?: number } = {}): Promise<AgentTokenService> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs += chunk.toString('utf8');
      done();
    },
  });
  service = await startAgentTokenService({
    slotsDir,
    port: 0,
    log: createLogger('debug', sink),
    requestRefresh: async (slotId) => {
      refreshAsked.push(slotId);
    },
    ...options,
  });
  return service;
}

const refreshAt = (s: AgentTokenService, slotId: string, refreshToken: string): Promise<Response> =>
  fetch(`${s.url}/slots/${slotId}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_id: 'app_EMoamEEZ73f0CkXaXp7hrann', grant_type: 'refresh_token', refresh_token: refreshToken }),
  });

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'agent-token-service-'));
  logs = '';
  refreshAsked = [];
});
afterEach(async () => {
  await service?.close();
  service = undefined;
  await rm(slotsDir, { recursive: true, force: true });
});

describe('agent token service', () => {
  it("answers a codex agent's refresh with the slot's current tokens and its secret as the refresh token", async () => {
    const a = await seedCodexSlot('slot-a', Date.now() + 3_600_000);
    const s = await start();
    const res = await refreshAt(s, 'slot-a', a.secret);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ access_token: a.accessToken, id_token: a.idToken, refresh_token: a.secret, token_type: 'Bearer' });
    expect(body.expires_in).toBeGreaterThan(3500);
    expect(JSON.stringify(body)).not.toContain(a.refreshToken);

    const plain = await fetch(`${s.url}/slots/slot-a/access-token`, { headers: { authorization: `Bearer ${a.secret}` } });
    expect(plain.status).toBe(200);
    expect(await plain.text()).toBe(a.accessToken);
    expect(refreshAsked).toEqual([]);
  });

  it("refuses another slot's secret, a wrong secret, no secret, and a secret rotated away by a relogin", async () => {
    const a = await seedCodexSlot('slot-a', Date.now() + 3_600_000);
    const b = await seedCodexSlot('slot-b', Date.now() + 3_600_000);
    const s = await start();
    for (const [slot, presented] of [
      ['slot-b', a.secret],
      ['slot-a', b.secret],
      ['slot-a', `${a.secret.slice(0, -1)}x`],
      ['slot-a', a.refreshToken],
    ] as const) {
      const res = await refreshAt(s, slot, presented);
      expect(res.status).toBe(401);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ error: 'invalid_grant' });
      for (const secret of [a.accessToken, b.accessToken, a.secret, b.secret]) expect(text).not.toContain(secret);
    }
    expect((await fetch(`${s.url}/slots/slot-a/access-token`)).status).toBe(401);
    expect((await fetch(`${s.url}/slots/slot-a/access-token`, { headers: { authorization: `Bearer ${b.secret}` } })).status).toBe(401);

    await rotateAgentSecret(join(slotsDir, 'slot-a'));
    expect((await refreshAt(s, 'slot-a', a.secret)).status).toBe(401);
    expect((await refreshAt(s, 'slot-c', a.secret)).status).toBe(401);
  });

  it("cuts a flood off with 429 per slot, its agents' and wrong secrets' apart, without affecting other slots", async () => {
    const a = await seedCodexSlot('slot-a', Date.now() + 3_600_000);
    const b = await seedCodexSlot('slot-b', Date.now() + 3_600_000);
    const s = await start({ perSlotPerMinute: 5 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await refreshAt(s, 'slot-a', a.secret)).status);
    const limited = await refreshAt(s, 'slot-a', a.secret);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    const guesses: number[] = [];
    for (let i = 0; i < 6; i++) guesses.push((await refreshAt(s, 'slot-b', 'slot-agent-guess')).status);
    expect(guesses).toEqual([401, 401, 401, 401, 401, 429]);
    expect((await refreshAt(s, 'slot-b', b.secret)).status).toBe(200);
  });

  it("61 requests a minute with a wrong secret, from any local process, never lock the slot's agents out (issue 23)", async () => {
    const a = await seedCodexSlot('slot-a', Date.now() + 3_600_000);
    const s = await start();
    const guesses = await Promise.all(Array.from({ length: 61 }, () => refreshAt(s, 'slot-a', 'not-the-secret').then((r) => r.status)));
    expect(guesses.filter((status) => status === 401)).toHaveLength(60);
    expect(guesses.filter((status) => status === 429)).toHaveLength(1);
    const agent = await refreshAt(s, 'slot-a', a.secret);
    expect(agent.status).toBe(200);
    expect(((await agent.json()) as { access_token: string }).access_token).toBe(a.accessToken);
  });

  it('asks the slot workflow to refresh (once) when the token is near expiry, and never hands out an expired one', async () => {
    const a = await seedCodexSlot('slot-a', Date.now() + 60_000);
    const s = await start();
    expect((await refreshAt(s, 'slot-a', a.secret)).status).toBe(200);
    expect((await refreshAt(s, 'slot-a', a.secret)).status).toBe(200);
    expect(refreshAsked).toEqual(['slot-a']);

    const expired = await seedCodexSlot('slot-x', Date.now() - 1000);
    const res = await refreshAt(s, 'slot-x', expired.secret);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.text()).not.toContain(expired.accessToken);
    expect(refreshAsked).toEqual(['slot-a', 'slot-x']);
  });

  it('logs every answer without a token or a secret in it', async () => {
    const a = await seedCodexSlot('slot-a', Date.now() + 3_600_000);
    const b = await seedCodexSlot('slot-b', Date.now() + 3_600_000);
    const s = await start();
    await refreshAt(s, 'slot-a', a.secret);
    await refreshAt(s, 'slot-a', b.secret);
    await fetch(`${s.url}/slots/slot-a/access-token`, { headers: { authorization: `Bearer ${a.secret}` } });
    await fetch(`${s.url}/slots/slot-a/oauth/token`, { method: 'POST', body: `not json ${a.secret}` });
    // The search can find what it looks for: the log has one line per answer, naming the slot.
    expect(logs.split('\n').filter((l) => l.includes('"slotId":"slot-a"')).length).toBe(4);
    for (const secret of [a.secret, b.secret, a.accessToken, a.idToken, a.refreshToken]) expect(logs).not.toContain(secret);
  });

  it('says what is wrong with a bad request, in OAuth terms', async () => {
    await seedCodexSlot('slot-a', Date.now() + 3_600_000);
    const s = await start();
    const wrongGrant = await fetch(`${s.url}/slots/slot-a/oauth/token`, { method: 'POST', body: JSON.stringify({ grant_type: 'password' }) });
    expect(wrongGrant.status).toBe(400);
    expect(await wrongGrant.json()).toMatchObject({ error: 'unsupported_grant_type' });
    expect((await fetch(`${s.url}/slots/slot-a/oauth/token`)).status).toBe(405);
    expect((await fetch(`${s.url}/slots/..%2Fetc/oauth/token`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${s.url}/slots/%E0%A4%A/oauth/token`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${s.url}/elsewhere`)).status).toBe(404);
  });
});
