// Pools on the real dev server: three adopted Claude slots leased to twenty clients at
// once, 429s with reset times, leases that expire, and a slot whose token is revoked
// leaving the rotation (needs-relogin) and coming back after its relogin.
import { Client, Connection } from '@temporalio/client';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { PoolClient, PoolRequestError } from '../../client/pool-client';
import { slotctl } from '../../cli/slotctl';
import { SlotClient } from '../../client/slot-client';
import type { NoticeBody } from '../../common/notices';
import type { LeaseGrant } from '../../common/pool';
import { uniqueName } from '../harness';
import { startTokenServer, type IssuedTokens, type TokenServer } from '../peers/token-server';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const FIXTURE_TOKENS = { accessToken: 'sk-ant-oat01-pool-access-000000000000', refreshToken: 'sk-ant-ort01-pool-refresh-00000000000' };

describe('pools', () => {
  let server: TokenServer;
  let rig: SlotRig;
  let pools: PoolClient;
  const grants = new Map<string, IssuedTokens>();
  let webhook: WebhookReceiver;
  const notices: NoticeBody[] = [];

  /** Three active slots, adopted from credentials the token server issued. */
  const threeSlots = async (prefix: string): Promise<string[]> => {
    const ids = [0, 1, 2].map((i) => uniqueName(`${prefix}${i}`));
    for (const slotId of ids) {
      const issued = server.issue();
      grants.set(slotId, issued);
      await writeSecretFileAtomic(
        await ensureSlotHome(rig.slotsDir, slotId),
        '.claude/.credentials.json',
        JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
      );
      await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true });
    }
    for (const slotId of ids) await waitForPhase(rig.slots, slotId, ['active']);
    return ids;
  };

  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    webhook = await startWebhookReceiver(notices);
    rig = await startSlotRig(
      {
        CLAUDE_TOKEN_URL: server.claudeTokenUrl,
        FIXTURE_CLAUDE_ACCESS_TOKEN: FIXTURE_TOKENS.accessToken,
        FIXTURE_CLAUDE_REFRESH_TOKEN: FIXTURE_TOKENS.refreshToken,
      },
      { notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/hook` },
    );
    pools = new PoolClient(rig.slots);
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
    webhook?.close();
  });

  it('twenty clients lease at once: every lease granted, spread over the three slots', async () => {
    const slots = await threeSlots('spread');
    const pool = uniqueName('spread');
    await pools.create({ pool, provider: 'claude', slots });
    const connections = await Promise.all(Array.from({ length: 20 }, () => Connection.connect({ address: inject('temporalAddress') })));
    try {
      const clients = connections.map((connection) => new PoolClient(new SlotClient(new Client({ connection }), rig.workers.sharedTaskQueue)));
      const started = Date.now();
      const leases = await Promise.all(clients.map((c, i) => c.lease(pool, { holder: `runner-${i}` })));
      expect(new Set(leases.map((l) => l.leaseId)).size).toBe(20);
      const perSlot = slots.map((s) => leases.filter((l) => l.slotId === s).length);
      expect(perSlot.sort()).toEqual([6, 7, 7]);
      for (const l of leases) {
        expect(l.provider).toBe('claude');
        expect(l.host).toBe(rig.workers.hostName);
        expect(l.expiresAt).toBeGreaterThanOrEqual(started + 600_000 - 5000);
      }
      const status = await pools.status(pool);
      expect(status.leases).toHaveLength(20);
      expect(status.available).toBe(3);
      await Promise.all(leases.map((l, i) => (clients[i] as PoolClient).release(pool, { leaseId: l.leaseId })));
      expect((await pools.status(pool)).leases).toHaveLength(0);
      // A released lease is gone: reporting on it is refused, saying so.
      await expect(pools.release(pool, { leaseId: (leases[0] as LeaseGrant).leaseId })).rejects.toThrow(/is not held in pool .*: it expired, was released, or never existed/);
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
  });

  it('a 429 cools the slot down until its reset; exclusive leases run out and expire unless renewed', async () => {
    const slots = await threeSlots('limit');
    const pool = uniqueName('limit');
    await pools.create({ pool, provider: 'claude', slots, maxLeasesPerSlot: 1 });
    const [a, b, c] = [await pools.lease(pool), await pools.lease(pool), await pools.lease(pool)];
    expect(new Set([a.slotId, b.slotId, c.slotId]).size).toBe(3);
    const refused = await pools.lease(pool).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PoolRequestError);
    expect((refused as PoolRequestError).type).toBe('PoolExhausted');
    expect((refused as Error).message).toMatch(new RegExp(`pool ${pool} has no slot to lease: .*holds 1 lease`));

    // a: 429 with a reset in 4 s; b: Retry-After 3600 s; c released.
    const resetAt = Date.now() + 4000;
    expect((await pools.reportRateLimited(pool, { leaseId: a.leaseId, resetAt })).coolUntil).toBe(resetAt);
    const { coolUntil } = await pools.reportRateLimited(pool, { leaseId: b.leaseId, retryAfterSec: 3600 });
    expect(coolUntil).toBeGreaterThan(Date.now() + 3500_000);
    await pools.release(pool, { leaseId: c.leaseId });
    const status = await pools.status(pool);
    expect(status.slots.find((s) => s.slotId === a.slotId)).toMatchObject({ eligible: false, coolUntil: resetAt });
    expect(status.slots.find((s) => s.slotId === b.slotId)?.why).toMatch(/^rate limited until /);
    // Only c can be leased now, and only once.
    const onlyC = await pools.lease(pool, { ttlMs: 1500 });
    expect(onlyC.slotId).toBe(c.slotId);
    await expect(pools.lease(pool)).rejects.toThrow(/has no slot to lease/);
    await expect(pools.lease(pool)).rejects.toThrow(/has no slot to lease/);
    // One notice per run of refusals: the first refusal, and the one after a lease succeeded; not the repeat.
    await vi.waitFor(() => expect(notices.filter((n) => n.pool === pool).map((n) => n.kind)).toEqual(['pool-exhausted', 'pool-exhausted']), { timeout: 10_000 });
    expect(notices.find((n) => n.pool === pool)?.text).toMatch(new RegExp(`Pool \`${pool}\` \\(claude\\) has no slot to lease: .*See \`slotctl pool status ${pool}\``));

    // Not renewed: the lease expires and c is free again; after its reset, a is back.
    await new Promise((r) => setTimeout(r, Math.max(resetAt - Date.now(), 1600) + 200));
    await expect(pools.renew(pool, onlyC.leaseId)).rejects.toThrow(/is not held/);
    const again = [await pools.lease(pool), await pools.lease(pool)];
    expect(again.map((l) => l.slotId).sort()).toEqual([a.slotId, c.slotId].sort());
    const renewed = await pools.renew(pool, (again[0] as LeaseGrant).leaseId, 120_000);
    expect(renewed.expiresAt).toBeGreaterThan(Date.now() + 100_000);
  });

  it('soonest-reset leases the slot whose quota resets first', async () => {
    const slots = await threeSlots('soon');
    const pool = uniqueName('soon');
    await pools.create({ pool, provider: 'claude', slots, policy: 'soonest-reset' });
    const leases = [await pools.lease(pool), await pools.lease(pool), await pools.lease(pool)];
    const hour = Date.now() + 3600_000;
    const [late, early, unknown] = leases as [LeaseGrant, LeaseGrant, LeaseGrant];
    await pools.release(pool, { leaseId: late.leaseId, resetAt: hour });
    await pools.release(pool, { leaseId: early.leaseId, resetAt: hour - 3000_000 });
    await pools.release(pool, { leaseId: unknown.leaseId });
    expect((await pools.lease(pool)).slotId).toBe(early.slotId);
    expect((await pools.lease(pool)).slotId).toBe(early.slotId);
  });

  it('a slot whose token is revoked leaves the rotation (needs-relogin) and comes back after its relogin', async () => {
    const slots = await threeSlots('auth');
    const pool = uniqueName('auth');
    await pools.create({ pool, provider: 'claude', slots });
    const victim = slots[1] as string;
    server.revoke((grants.get(victim) as IssuedTokens).refreshToken);
    let lease: LeaseGrant;
    do lease = await pools.lease(pool);
    while (lease.slotId !== victim);
    await pools.reportAuthFailure(pool, lease.leaseId);

    // The slot, not the pool, decides: its refresh is refused, it needs a login and starts one.
    const waiting = await waitForPrompt(rig.slots, victim);
    expect(waiting.lastOutcome?.message).toMatch(/invalid_grant/);
    const during = await Promise.all(Array.from({ length: 6 }, () => pools.lease(pool)));
    expect(during.every((l) => l.slotId !== victim)).toBe(true);
    expect((await pools.status(pool)).slots.find((s) => s.slotId === victim)?.eligible).toBe(false);

    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.submitCode(victim, claudeCode(waiting));
    await waitForPhase(rig.slots, victim, ['active']);
    // Back in rotation at the next census (leases ask the slots when their answer is 2 s old).
    const back: string[] = [];
    for (const deadline = Date.now() + 20_000; !back.includes(victim) && Date.now() < deadline; await new Promise((r) => setTimeout(r, 300))) {
      back.push((await pools.lease(pool)).slotId);
    }
    expect(back).toContain(victim);
  });

  it("a lease carries the leased slot's agent plan from its host, as slotctl agent-plan gives it", async () => {
    const slots = await threeSlots('plan');
    const pool = uniqueName('plan');
    await pools.create({ pool, provider: 'claude', slots });
    const leases = await Promise.all(slots.map((_, i) => pools.lease(pool, { holder: `plan-${i}` })));
    expect(new Set(leases.map((l) => l.slotId))).toEqual(new Set(slots));
    for (const lease of leases) {
      expect(lease.agentPlanProblem).toBeUndefined();
      expect(lease.agentPlan).toEqual(await rig.slots.agentPlan(lease.slotId, { slotsDir: rig.slotsDir }));
      const plan = lease.agentPlan as { slotId: string; provider: string; mounts: Array<{ hostPath: string }> };
      expect(plan).toMatchObject({ slotId: lease.slotId, provider: 'claude' });
      expect(plan.mounts[0]?.hostPath.startsWith(join(rig.slotsDir, lease.slotId))).toBe(true);
      // The plan never carries the slot's tokens.
      const grant = grants.get(lease.slotId) as IssuedTokens;
      expect(JSON.stringify(lease)).not.toContain(grant.refreshToken);
    }
    await Promise.all(leases.map((l) => pools.release(pool, { leaseId: l.leaseId })));
    // A host that lost the slot's files (and its record) gives no plan: the lease stands and says why.
    const [gone] = slots as [string];
    await rm(join(rig.slotsDir, gone), { recursive: true, force: true });
    await pools.remove(pool, slots.filter((s) => s !== gone));
    const lease = await pools.lease(pool);
    expect(lease.slotId).toBe(gone);
    expect(lease.agentPlan).toBeUndefined();
    expect(lease.agentPlanProblem).toBe(`this host has no record of slot ${gone} (it was never set up here, or its files were removed)`);
  });

  it('refuses a slot of another provider, an unknown pool and bad input', async () => {
    await expect(pools.status('no-such-pool')).rejects.toThrow(/pool no-such-pool does not exist; create it with: slotctl pool create/);
    await expect(pools.create({ pool: 'Bad Name', provider: 'claude' })).rejects.toThrow(/invalid pool name "Bad Name"/);
    const [slot] = await threeSlots('kind');
    await expect(pools.create({ pool: uniqueName('kind'), provider: 'codex', slots: [slot as string] })).rejects.toThrow(/is a claude slot; this pool is for codex/);
    const pool = uniqueName('kind');
    await pools.create({ pool, provider: 'claude' });
    await expect(pools.lease(pool)).rejects.toThrow(/the pool has no slots/);
    await expect(pools.lease(pool, { ttlMs: -5 })).rejects.toThrow(/ttlMs must be a whole number of ms/);
    expect(await pools.add(pool, [slot as string])).toEqual([slot]);
    expect((await pools.lease(pool)).slotId).toBe(slot);
  });

  it('slotctl pool create|add|remove|status|lease', async () => {
    const [s0, s1] = await threeSlots('cli');
    const pool = uniqueName('cli');
    const env = { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue };
    const run = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await slotctl(argv, { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => '', stdinIsTTY: false }, env);
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    expect((await run('pool', 'create', pool, '--provider', 'claude', '--slot', s0 as string, '--max-leases-per-slot', '1')).code).toBe(0);
    expect((await run('pool', 'add', pool, s1 as string)).out).toBe(`pool ${pool} now has 2 slots: ${s0}, ${s1}`);
    const leased = await run('pool', 'lease', pool, '--holder', 'ci', '--json');
    expect(leased.code).toBe(0);
    const grant = JSON.parse(leased.out) as LeaseGrant;
    expect([s0, s1]).toContain(grant.slotId);
    const status = await run('pool', 'status', pool);
    expect(status.out).toMatch(new RegExp(`available 1 of 2; 1 lease held`));
    expect(status.out).toMatch(new RegExp(`${grant.slotId}\\s+active\\s+1\\s+no: holds 1 lease`));
    expect((await run('pool', 'remove', pool, grant.slotId)).code).toBe(0);
    expect((await run('pool', 'lease', pool)).code).toBe(0);
    const none = await run('pool', 'lease', pool);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/has no slot to lease/);
    const missing = await run('pool', 'status', 'no-such-pool');
    expect(missing.code).toBe(3);
    const bad = await run('pool', 'create', uniqueName('x'), '--provider', 'claude', '--policy', 'random');
    expect(bad.code).toBe(2);
  });
});
