// The worker's Prometheus endpoint, scraped by a real Prometheus: a slot logged in
// with the fixture CLI, a code submitted, refreshed (once after a 503), then refused
// for good. The figures Prometheus stores are the ones that lifecycle must produce. A pool
// of two slots grants two leases, refuses a third and cools a rate-limited slot down.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { PoolClient, PoolRequestError } from '../../client/pool-client';
import { SlotClient } from '../../client/slot-client';
import { devServerClient, uniqueName } from '../harness';
import { availableOrSkip, freePort, prometheusBinaries, startPrometheus } from '../peers/observability';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { stateOf, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { fixtureWorkerEnv, spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const RULES = fileURLToPath(new URL('../../observability/slot-alerts.rules.yml', import.meta.url));
const PLANTED = {
  code: 'metrics-code-5f1e9a7c3b',
  accessToken: 'sk-ant-oat01-METRICSACCESS-0c4a8e2f6b1d',
  refreshToken: 'sk-ant-ort01-METRICSREFRESH-9b3d7f1a5c2e',
};
const tools = await availableOrSkip('Prometheus (Debian package prometheus)', prometheusBinaries);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!tools.ok)(`metrics scraped by a real Prometheus${tools.ok ? '' : ` (skipped: ${tools.reason})`}`, () => {
  const host = uniqueName('host');
  const queue = uniqueName('shared');
  let server: TokenServer;
  let slotsDir: string;
  let worker: WorkerProcess;
  let prometheus: Awaited<ReturnType<typeof startPrometheus>>;
  let slots: SlotClient;
  let metricsUrl: string;
  let closeConnection: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    if (!tools.ok) return;
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-metrics-'));
    const [metricsPort, corePort] = [await freePort(), await freePort()];
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    worker = spawnWorkerProcess({
      ...fixtureWorkerEnv({ temporalAddress: inject('temporalAddress'), host, sharedQueue: queue, slotsDir }),
      METRICS_PORT: String(metricsPort),
      TEMPORAL_METRICS_PORT: String(corePort),
      CLAUDE_TOKEN_URL: server.claudeTokenUrl,
      FIXTURE_CLAUDE_CODE: PLANTED.code,
      FIXTURE_CLAUDE_ACCESS_TOKEN: PLANTED.accessToken,
      FIXTURE_CLAUDE_REFRESH_TOKEN: PLANTED.refreshToken,
    });
    const { client, connection } = await devServerClient();
    closeConnection = () => connection.close();
    slots = new SlotClient(client, queue);
    await untilPolling(worker, client, host);
    prometheus = await startPrometheus(tools.value, { job: 'slot-worker', targets: [`127.0.0.1:${metricsPort}`], ruleFiles: [RULES] });
  });

  afterAll(async () => {
    await prometheus?.stop();
    if (worker) await stopWorkerProcess(worker, 'SIGTERM');
    await closeConnection?.();
    await server?.close();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  /** The value of `expr` once Prometheus has scraped it and it satisfies `check` (scrapes are a second apart). */
  async function eventually(expr: string, check: (value: number | undefined) => boolean, timeoutMs = 30_000): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    let last: number | undefined;
    while (Date.now() < deadline) {
      const result = await prometheus.query(expr);
      last = result.length === 0 ? undefined : result.reduce((sum, r) => sum + r.value, 0);
      if (check(last)) return last;
      await sleep(500);
    }
    throw new Error(`${expr}: still ${last} after ${timeoutMs} ms\n${worker.output().slice(-3000)}`);
  }
  const is = (want: number) => (v: number | undefined) => v === want;

  // A whole lifecycle read through scrapes a second apart: not a timing target.
  it('counts the slot by phase, its login, the wait for the operator, its refreshes and its expiry, as Prometheus stores them', { timeout: 240_000 }, async () => {
    const slotId = uniqueName('metrics');
    const sel = `provider="claude"`;
    const slot = `slot="${slotId}"`;
    const issued = server.issue({ tokens: { accessToken: PLANTED.accessToken, refreshToken: PLANTED.refreshToken } });
    // Prometheus really scrapes the worker.
    await eventually(`up{job="slot-worker"}`, is(1));

    await slots.provision({ slotId, provider: 'claude', host });
    const prompted = await waitForPrompt(slots, slotId);
    const promptSeenAt = Date.now();
    await eventually(`slot_provisioner_slots{phase="awaiting-operator",${sel},host="${host}"}`, is(1));
    await eventually(`slot_provisioner_slot_phase{${slot},phase="awaiting-operator"}`, is(1));
    await eventually(`slot_provisioner_login_time_to_prompt_seconds_count{${sel}}`, is(1));

    // The operator takes a few seconds to answer.
    await sleep(3000);
    await slots.submitCode(slotId, `${PLANTED.code}#${stateOf(prompted.prompt.url)}`);
    const answeredAt = Date.now();
    const active = await waitForPhase(slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    await eventually(`slot_provisioner_slots{phase="active",${sel},host="${host}"}`, is(1));
    await eventually(`slot_provisioner_slots{phase="awaiting-operator",${sel},host="${host}"}`, (v) => v === undefined);
    await eventually(`slot_provisioner_logins_total{${sel},outcome="verified"}`, is(1));
    await eventually(`slot_provisioner_login_codes_total{${sel},answer="succeeded"}`, is(1));
    await eventually(`slot_provisioner_operator_wait_seconds_count{${sel},interaction="paste-code"}`, is(1));
    const waited = await prometheus.query(`slot_provisioner_operator_wait_seconds_sum{${sel},interaction="paste-code"}`);
    expect(waited[0]?.value).toBeGreaterThanOrEqual(3);
    expect(waited[0]?.value).toBeLessThanOrEqual((answeredAt - promptSeenAt) / 1000 + 2);
    await eventually(`slot_provisioner_login_time_to_active_seconds_count{${sel}}`, is(1));
    // The fixture's token lasts 8 hours.
    const expiry = await eventually(`slot_provisioner_token_expiry_seconds{${slot}}`, (v) => v !== undefined);
    expect(expiry).toBeGreaterThan(7.9 * 3600);
    expect(expiry).toBeLessThanOrEqual(8 * 3600);
    const expiresAt = await eventually(`slot_provisioner_token_expiry_timestamp_seconds{${slot}}`, (v) => v !== undefined);
    expect(Math.abs((expiresAt ?? 0) - (active.expiresAt ?? 0) / 1000)).toBeLessThan(1);
    // The check after the login found the token fresh: no refresh was asked yet.
    // (Every outcome is exported from the start, at 0, so that increase() sees the first failure.)
    await eventually(`sum(slot_provisioner_refreshes_total{${sel}})`, is(0));
    expect((await prometheus.query(`slot_provisioner_refreshes_total{${sel}}`)).map((r) => r.metric.outcome).sort()).toEqual(['error', 'permanent', 'success', 'transient']);

    // A refresh that meets a 503 once (retried after its Retry-After), then succeeds.
    server.script([{ status: 503, retryAfter: 1, body: '{"error":"overloaded"}' }]);
    await slots.refreshNow(slotId);
    const refreshed = await slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 30_000, pollMs: 200 });
    expect(refreshed.reached).toBe(true);
    await eventually(`slot_provisioner_refreshes_total{${sel},outcome="transient"}`, is(1));
    await eventually(`slot_provisioner_refreshes_total{${sel},outcome="success"}`, is(1));
    const newExpiry = await eventually(`slot_provisioner_token_expiry_timestamp_seconds{${slot}}`, (v) => v !== undefined && v * 1000 > (active.expiresAt ?? 0));
    expect(Math.abs((newExpiry ?? 0) - (refreshed.status.expiresAt ?? 0) / 1000)).toBeLessThan(1);

    // The endpoint says the refresh token is dead: permanent, and the slot needs a person again.
    server.script([{ status: 400, body: JSON.stringify({ error: 'invalid_grant', error_description: 'refresh token revoked' }) }]);
    await slots.refreshNow(slotId);
    await eventually(`slot_provisioner_refreshes_total{${sel},outcome="permanent"}`, is(1));
    await eventually(`slot_provisioner_slot_phase{${slot},phase=~"awaiting-operator|needs-relogin"}`, is(1));
    await eventually(`slot_provisioner_slots{phase="active",${sel},host="${host}"}`, (v) => v === undefined);
    expect(await prometheus.query(`slot_provisioner_refreshes_total{${sel},outcome="transient"}`)).toMatchObject([{ value: 1 }]);

    // The SDK core's own metrics arrive through the same endpoint.
    await eventually(`sum(temporal_activity_execution_latency_seconds_count{activity_type="refreshCredential"})`, (v) => (v ?? 0) >= 3);
    await eventually(`sum(temporal_workflow_task_execution_latency_seconds_count)`, (v) => (v ?? 0) > 0);

    // The example rules load and evaluate against these series without error.
    const rules = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string }> }> } };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name).sort()).toEqual(['PoolLeasesRefused', 'SlotNeedsPerson', 'SlotRefreshFailures', 'SlotTokenExpiringSoon']);
    await eventually('count(ALERTS{alertname="SlotRefreshFailures",outcome="permanent"})', is(1));
    await eventually('count(ALERTS{alertname="SlotRefreshFailures",outcome="transient"})', is(1));
    expect(((await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as typeof rules).data.groups.flatMap((g) => g.rules).map((r) => r.health)).toEqual(['ok', 'ok', 'ok', 'ok']);

    // What the endpoint says never holds a token or a code.
    const text = await (await fetch(metricsUrl)).text();
    expect(text).toContain('slot_provisioner_slots');
    const grant = server.grant(issued.grantId);
    for (const secret of [PLANTED.code, PLANTED.accessToken, PLANTED.refreshToken, grant?.accessToken, grant?.refreshToken]) {
      if (secret) expect(text).not.toContain(secret);
    }
    await slots.retire(slotId);
    await eventually(`slot_provisioner_slot_phase{${slot}}`, (v) => v === undefined);
  });
  it('counts a pool\'s leases granted and refused, its slots by state and its cooldown, as Prometheus stores them', { timeout: 240_000 }, async () => {
    // Two active Claude slots, adopted from credentials the token server issued.
    const ids = [uniqueName('pooled0'), uniqueName('pooled1')];
    for (const slotId of ids) {
      const issued = server.issue();
      await writeSecretFileAtomic(
        await ensureSlotHome(slotsDir, slotId),
        '.claude/.credentials.json',
        JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
      );
      await slots.provision({ slotId, provider: 'claude', host, adoptExisting: true });
    }
    for (const slotId of ids) expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    const pools = new PoolClient(slots);
    const pool = uniqueName('mpool');
    const sel = `pool="${pool}",provider="claude"`;
    await pools.create({ pool, provider: 'claude', slots: ids, maxLeasesPerSlot: 1 });
    await pools.status(pool);
    // Before any lease the pool has not asked its slots (it does at the first lease): both are out,
    // and the counters are there at 0 (so that increase() sees the first refusal).
    await eventually(`slot_provisioner_pool_slots{${sel},state="out"}`, is(2));
    await eventually(`slot_provisioner_pool_leases_refused_total{${sel}}`, is(0));
    expect(await prometheus.query(`slot_provisioner_pool_slots{${sel},state="available"}`)).toMatchObject([{ value: 0 }]);
    expect(await prometheus.query(`slot_provisioner_pool_leases_granted_total{${sel}}`)).toMatchObject([{ value: 0 }]);

    const first = await pools.lease(pool, { holder: 'runner-1' });
    const second = await pools.lease(pool, { holder: 'runner-2' });
    expect(new Set([first.slotId, second.slotId])).toEqual(new Set(ids));
    const refused = await pools.lease(pool, { holder: 'runner-3' }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(PoolRequestError);
    expect((refused as PoolRequestError).type).toBe('PoolExhausted');
    await eventually(`slot_provisioner_pool_leases_granted_total{${sel}}`, is(2));
    await eventually(`slot_provisioner_pool_leases_refused_total{${sel}}`, is(1));
    await eventually(`slot_provisioner_pool_leases{${sel}}`, is(2));
    await eventually(`slot_provisioner_pool_slots{${sel},state="leased"}`, is(2));
    await eventually(`slot_provisioner_pool_slots{${sel},state="available"}`, is(0));
    await eventually(`count(ALERTS{alertname="PoolLeasesRefused",pool="${pool}"})`, is(1));

    // The first runner meets a 429: its slot rests for an hour, the lease ends.
    await pools.reportRateLimited(pool, { leaseId: first.leaseId, retryAfterSec: 3600 });
    await eventually(`slot_provisioner_pool_slots{${sel},state="cooling-down"}`, is(1));
    await eventually(`slot_provisioner_pool_leases{${sel}}`, is(1));
    const cooldown = await eventually(`slot_provisioner_pool_cooldown_seconds{${sel}}`, (v) => v !== undefined && v > 0);
    expect(cooldown).toBeGreaterThan(3500);
    expect(cooldown).toBeLessThanOrEqual(3600);
    // The second gives its lease back: its slot is available again; the counts stay.
    await pools.release(pool, { leaseId: second.leaseId });
    await eventually(`slot_provisioner_pool_slots{${sel},state="available"}`, is(1));
    expect(await prometheus.query(`slot_provisioner_pool_leases_granted_total{${sel}}`)).toMatchObject([{ value: 2 }]);

    await Promise.all(ids.map((slotId) => slots.retire(slotId)));
    await slots.client.workflow.getHandle(`pool:${pool}`).terminate('test over');
    await eventually(`slot_provisioner_pool_leases{${sel}}`, (v) => v === undefined);
  });
});
