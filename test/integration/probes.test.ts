// Live probes on the real dev server, against a stand-in API on 127.0.0.1: the exact
// requests each provider's probe sends, and what the slot makes of each answer (a
// refused token is refreshed, then needs a person; 429 and 5xx never do).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { PoolClient } from '../../client/pool-client';
import { slotctl } from '../../cli/slotctl';
import type { SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { SlotMetrics } from '../../workers/metrics';
import { devServerClient, uniqueName } from '../harness';
import { BODY_MARKER, startProbeApi, type ProbeApi, type ProbeApiRequest } from '../peers/probe-api';
import { startTokenServer, type IssuedTokens, type TokenServer } from '../peers/token-server';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CODEX_CLIENT_ID = 'app_EMoamEEZ73f0CkXaXp7hrann';
const HOUR = 3600_000;
/** What the fixture `claude` writes on login. */
const FIXTURE_TOKENS = { accessToken: 'sk-ant-oat01-probefixture-access-00000', refreshToken: 'sk-ant-ort01-probefixture-refresh-0000' };

type Io = NonNullable<Parameters<typeof slotctl>[1]>;

describe('live probes', () => {
  let api: ProbeApi;
  let server: TokenServer;
  let codexServer: TokenServer;
  let webhook: WebhookReceiver;
  let rig: SlotRig;
  let metrics: SlotMetrics;
  let closeMetricsClient: () => Promise<void>;
  /** Tokens the stand-in API takes; anything else gets 401. */
  const accepted = new Set<string>([FIXTURE_TOKENS.accessToken]);
  const notices: Array<{ slotId: string; kind: string; reason: string }> = [];
  /** Grants whose access token is taken once it has been refreshed (not the first one). */
  const rotatedGrants: string[] = [];
  const takes = (token: string): boolean =>
    accepted.has(token) ||
    rotatedGrants.some((id) => {
      const grant = server.grant(id);
      return grant !== undefined && grant.rotations > 0 && grant.accessToken === token;
    });
  const requestsWith = (token: string): ProbeApiRequest[] => api.requests.filter((r) => r.headers.authorization === `Bearer ${token}`);

  beforeAll(async () => {
    api = await startProbeApi((token) => takes(token));
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    codexServer = await startTokenServer({ defaultClientId: CODEX_CLIENT_ID, accessTtlSec: 8 * 3600 });
    webhook = await startWebhookReceiver(notices);
    const { client, connection } = await devServerClient();
    closeMetricsClient = () => connection.close();
    metrics = new SlotMetrics({ client, taskQueue: uniqueName('unlisted'), processMetrics: false });
    rig = await startSlotRig(
      {
        CLAUDE_TOKEN_URL: server.claudeTokenUrl,
        CODEX_TOKEN_URL: codexServer.codexTokenUrl,
        CLAUDE_PROBE_BASE_URL: api.url,
        CODEX_PROBE_BASE_URL: `${api.url}/backend-api`,
        FIXTURE_CLAUDE_ACCESS_TOKEN: FIXTURE_TOKENS.accessToken,
        FIXTURE_CLAUDE_REFRESH_TOKEN: FIXTURE_TOKENS.refreshToken,
      },
      { notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/notify`, metrics },
    );
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
    await codexServer?.close();
    await api?.close();
    await closeMetricsClient?.();
    webhook?.close();
  });

  /** A Claude slot started from a credential the token server issued. */
  async function adoptClaude(slotId: string, options: NonNullable<Parameters<SlotRig['slots']['provision']>[0]['options']> = {}): Promise<IssuedTokens> {
    const issued = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * HOUR, scopes: [] } }),
    );
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options });
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    return issued;
  }

  it('probes a new login before the slot is active, with the headers Claude Code sends', async () => {
    const slotId = uniqueName('probe-login');
    const phasesSeen: string[] = [];
    api.onRequest = async () => void phasesSeen.push((await rig.slots.status(slotId)).phase);
    server.issue({ tokens: FIXTURE_TOKENS });
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await rig.slots.submitCode(slotId, claudeCode(await waitForPrompt(rig.slots, slotId)));
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    api.onRequest = undefined;
    expect(active.phase).toBe('active');

    const sent = requestsWith(FIXTURE_TOKENS.accessToken);
    expect(sent).toHaveLength(1);
    // While the probe was answered, the slot was still verifying the login.
    expect(phasesSeen).toEqual(['verifying']);
    const probe = sent[0] as ProbeApiRequest;
    expect(probe.method).toBe('POST');
    expect(probe.url).toBe('/v1/messages?beta=true');
    expect(probe.headers).toMatchObject({
      authorization: `Bearer ${FIXTURE_TOKENS.accessToken}`,
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'claude-code-20250219,oauth-2025-04-20',
      'anthropic-dangerous-direct-browser-access': 'true',
      'x-app': 'cli',
      'user-agent': 'claude-cli/2.1.197 (external, cli)',
      'content-type': 'application/json',
    });
    expect(JSON.parse(probe.body)).toEqual({ model: 'claude-haiku-4-5', max_tokens: 1, messages: [{ role: 'user', content: 'quota' }] });
    expect(active.lastProbe).toMatchObject({ outcome: 'ok', httpStatus: 200 });
    expect(active.lastProbe?.detail).toBe(`${api.url}/v1/messages accepted the token`);
    // The next one is scheduled about 6 h out (up to 30 minutes early).
    expect(active.nextProbeAt).toBeGreaterThan(Date.now() + 5 * HOUR);
    expect(active.nextProbeAt).toBeLessThanOrEqual(Date.now() + 6 * HOUR);
  });

  it('a refused token is refreshed and probed again; the refreshed one is accepted and the slot stays active', async () => {
    const slotId = uniqueName('probe-refresh');
    const issued = await adoptClaude(slotId);
    // The provider stopped taking the access token early (rotated elsewhere, revoked); a refreshed one works.
    rotatedGrants.push(issued.grantId);
    const probe = await rig.slots.probe(slotId);
    expect(probe).toMatchObject({ outcome: 'ok', httpStatus: 200 });
    expect(requestsWith(issued.accessToken).map((r) => r.status)).toEqual([401]);
    const rotated = server.grant(issued.grantId)?.accessToken as string;
    expect(requestsWith(rotated).map((r) => r.status)).toEqual([200]);
    const status = await rig.slots.status(slotId);
    expect(status.phase).toBe('active');
    expect(status.lastOutcome?.kind).toBe('refresh-succeeded');
    expect(notices.filter((n) => n.slotId === slotId)).toEqual([]);
  });

  it('401 leads to a refresh, then needs-relogin with one notice when the refusal persists', async () => {
    const slotId = uniqueName('probe-401');
    const issued = await adoptClaude(slotId, { onPermanentFailure: 'wait' });
    const refreshesBefore = server.requests.filter((r) => r.refreshToken === issued.refreshToken).length;
    const probe = await rig.slots.probe(slotId);
    expect(probe).toMatchObject({ outcome: 'unauthorized', httpStatus: 401 });

    // The old token was probed, refreshed once, and the new token probed and refused too.
    expect(requestsWith(issued.accessToken)).toHaveLength(1);
    expect(server.requests.filter((r) => r.refreshToken === issued.refreshToken).length).toBe(refreshesBefore + 1);
    const rotated = server.grant(issued.grantId)?.accessToken as string;
    expect(rotated).not.toBe(issued.accessToken);
    expect(requestsWith(rotated)).toHaveLength(1);

    const status = await rig.slots.status(slotId);
    expect(status.phase).toBe('needs-relogin');
    expect(status.lastOutcome?.kind).toBe('probe-failed');
    expect(status.lastOutcome?.message).toMatch(/^the provider refuses the credential even after a refresh \(.*\/v1\/messages refused the token\)\. Run `slotctl relogin /);
    await vi.waitFor(() => expect(notices.filter((n) => n.slotId === slotId && n.kind === 'needs-relogin')).toHaveLength(1), { timeout: 10_000 });
    expect(notices.find((n) => n.slotId === slotId && n.kind === 'needs-relogin')?.reason).toMatch(/even after a refresh/);
  });

  it('slotctl probe waits for the outcome and prints it; exit 1 when the token is refused', async () => {
    const slotId = uniqueName('probe-cli');
    const issued = await adoptClaude(slotId, { onPermanentFailure: 'wait' });
    accepted.add(issued.accessToken);
    const ok = await run(['probe', slotId]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^probe of ${slotId}: ok \\(HTTP 200\\) at \\d{4}-\\d\\d-\\d\\dT[\\d:]+Z: ${api.url}/v1/messages accepted the token$`));
    const json = await run(['probe', slotId, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, slotId, probe: { outcome: 'ok', httpStatus: 200 } });
    // status shows it too.
    expect((await run(['status', slotId])).stdout).toMatch(/^probe {5}ok \(HTTP 200\)/m);

    api.script([{ status: 403 }, { status: 403 }]);
    const refused = await run(['probe', slotId]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/: unauthorized \(HTTP 403\)/);
    expect((await rig.slots.status(slotId)).phase).toBe('needs-relogin');
  });

  it('a login under way has nothing to probe: slotctl says so', async () => {
    const slotId = uniqueName('probe-early');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, slotId);
    const early = await run(['probe', slotId]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/probe not made: slot .* has no credential to probe \(phase: awaiting-operator\)/);
    await rig.slots.retire(slotId);
  });

  it('429 is recorded with its reset time, the slot stays active and nobody is paged; SlotLastProbe lists it', async () => {
    const slotId = uniqueName('probe-429');
    const issued = await adoptClaude(slotId);
    const before = Date.now();
    const resetSec = Math.floor(Date.now() / 1000) + 2 * 3600;
    api.script([{ status: 429, headers: { 'anthropic-ratelimit-unified-reset': String(resetSec), 'retry-after': '60' } }]);
    const refreshes = server.requests.filter((r) => r.refreshToken === issued.refreshToken).length;
    const probe = await rig.slots.probe(slotId);
    expect(probe).toMatchObject({ outcome: 'rate-limited', httpStatus: 429, resetAt: resetSec * 1000 });
    const status = await rig.slots.status(slotId);
    expect(status.phase).toBe('active');
    expect(status.lastProbe).toEqual(probe);
    // Not a failure: no refresh, no notice.
    expect(server.requests.filter((r) => r.refreshToken === issued.refreshToken).length).toBe(refreshes);
    expect(status.consecutiveFailures).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(notices.filter((n) => n.slotId === slotId)).toEqual([]);

    const { client, connection } = await devServerClient();
    try {
      const query = `SlotId = '${slotId}' AND SlotLastProbe = 'rate-limited' AND SlotLastProbeAt >= '${new Date(before - 1000).toISOString()}'`;
      await vi.waitFor(
        async () => {
          const found: string[] = [];
          for await (const wf of client.workflow.list({ query })) found.push(wf.workflowId);
          expect(found).toEqual([slotWorkflowId(slotId)]);
        },
        { timeout: 20_000, interval: 500 },
      );
    } finally {
      await connection.close();
    }
  });

  it('5xx and network errors are transient: noted in status, the slot stays active, no notice', async () => {
    const slotId = uniqueName('probe-5xx');
    await adoptClaude(slotId);
    api.script([{ status: 503 }]);
    const probe = await rig.slots.probe(slotId);
    expect(probe).toMatchObject({ outcome: 'transient', httpStatus: 503, detail: `${api.url}/v1/messages answered HTTP 503` });
    const status = await rig.slots.status(slotId);
    expect(status.phase).toBe('active');
    expect(status.lastProbe?.outcome).toBe('transient');
    expect(status.lastOutcome?.kind).not.toBe('probe-failed');
    // A connection closed without an answer: the same.
    api.script([{ status: 0, drop: true }]);
    const dropped = await rig.slots.probe(slotId);
    expect(dropped.outcome).toBe('transient');
    expect(dropped.httpStatus).toBeUndefined();
    expect(dropped.detail).toMatch(new RegExp(`^${api.url}/v1/messages: connection closed before an answer$`));
    expect((await rig.slots.status(slotId)).phase).toBe('active');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(notices.filter((n) => n.slotId === slotId)).toEqual([]);
  });

  it('probes on a schedule by itself', async () => {
    const slotId = uniqueName('probe-schedule');
    const issued = await adoptClaude(slotId, { probe: { everyMs: 2000, jitterMs: 0 } });
    accepted.add(issued.accessToken);
    await vi.waitFor(() => expect(requestsWith(issued.accessToken).length).toBeGreaterThanOrEqual(2), { timeout: 30_000, interval: 200 });
    const status = await rig.slots.status(slotId);
    expect(status.lastProbe?.outcome).toBe('ok');
    expect(status.nextProbeAt).toBeGreaterThan(status.lastProbe?.at ?? Infinity);
    await rig.slots.retire(slotId);
    await waitForPhase(rig.slots, slotId, ['retired']);
  });

  it("Codex: GET /backend-api/wham/usage with the CLI's headers; a 429's Retry-After is its reset", async () => {
    const slotId = uniqueName('probe-codex');
    const access = `codex-access-${slotId}`;
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.codex/auth.json',
      JSON.stringify({ auth_mode: 'chatgpt', tokens: { id_token: 'codex-id-token', access_token: access, refresh_token: `codex-refresh-${slotId}`, account_id: 'acct-probe-7' }, last_refresh: new Date().toISOString() }),
    );
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName, adoptExisting: true });
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    accepted.add(access);
    expect(await rig.slots.probe(slotId)).toMatchObject({ outcome: 'ok', httpStatus: 200 });
    const [sent] = requestsWith(access);
    expect(sent?.method).toBe('GET');
    expect(sent?.url).toBe('/backend-api/wham/usage');
    expect(sent?.headers).toMatchObject({ authorization: `Bearer ${access}`, 'chatgpt-account-id': 'acct-probe-7', originator: 'codex_cli_rs', 'user-agent': 'codex_cli_rs/0.169.0' });
    expect(sent?.body).toBe('');

    api.script([{ status: 429, headers: { 'retry-after': '120' } }]);
    const before = Date.now();
    const limited = await rig.slots.probe(slotId);
    expect(limited.outcome).toBe('rate-limited');
    expect(limited.resetAt).toBeGreaterThanOrEqual(before + 119_000);
    expect(limited.resetAt).toBeLessThanOrEqual(Date.now() + 121_000);
  });

  it('oidc-device: GET the userinfo endpoint when the server has one, else no probe', async () => {
    const endpoints = { device_authorization_endpoint: `${api.url}/device`, token_endpoint: `${api.url}/token` };
    const adopt = async (slotId: string, userinfo: boolean): Promise<string> => {
      const access = `oidc-access-${slotId}`;
      await writeSecretFileAtomic(
        await ensureSlotHome(rig.slotsDir, slotId),
        '.oidc/tokens.json',
        JSON.stringify({ access_token: access, refresh_token: `oidc-refresh-${slotId}`, expires_at: Math.floor(Date.now() / 1000) + 8 * 3600, last_refresh: new Date().toISOString() }),
      );
      const providerConfig = { endpoints: { ...endpoints, ...(userinfo ? { userinfo_endpoint: `${api.url}/userinfo` } : {}) }, clientId: 'probe-client' };
      await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig, host: rig.workers.hostName, adoptExisting: true });
      expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
      return access;
    };
    const withInfo = uniqueName('probe-oidc');
    const access = await adopt(withInfo, true);
    accepted.add(access);
    expect(await rig.slots.probe(withInfo)).toMatchObject({ outcome: 'ok', httpStatus: 200 });
    expect(requestsWith(access).map((r) => [r.method, r.url])).toEqual([['GET', '/userinfo']]);

    const without = uniqueName('probe-oidc-none');
    const other = await adopt(without, false);
    expect(await rig.slots.probe(without)).toMatchObject({ outcome: 'none' });
    expect(requestsWith(other)).toEqual([]);
  });

  it('no token and no answer body reaches a history, a status or the Web UI details', async () => {
    const { client, connection } = await devServerClient();
    try {
      const tokens = [FIXTURE_TOKENS.accessToken, FIXTURE_TOKENS.refreshToken, ...api.requests.map((r) => (r.headers.authorization ?? '').replace(/^Bearer /, '')).filter((t) => t.length > 0)];
      // The stand-in quotes each token in its answers: found there, they exist to be found.
      expect(tokens.length).toBeGreaterThan(5);
      const slots = new Set<string>();
      for await (const wf of client.workflow.list({ query: `TaskQueue = '${rig.workers.sharedTaskQueue}' AND SlotLastProbe IS NOT NULL` })) slots.add(wf.workflowId);
      expect(slots.size).toBeGreaterThan(5);
      for (const workflowId of slots) {
        const handle = client.workflow.getHandle(workflowId);
        const places: Record<string, string> = {
          history: readable(await handle.fetchHistory()),
          description: readable(await client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId } })),
          status: JSON.stringify(await handle.query<SlotStatus>('status').catch(() => ({}))),
          'Web UI details': JSON.stringify(await handle.query('__temporal_workflow_metadata').catch(() => ({}))),
        };
        // The search sees into payloads (the input is there, base64-encoded) and into the page the Web UI shows.
        expect(places.history).toContain(`"slotId":"${workflowId.replace(/^slot:/, '')}"`);
        expect(places['Web UI details']).toContain('Last probe: ');
        for (const [place, text] of Object.entries(places)) {
          expect(text.includes(BODY_MARKER), `${place} of ${workflowId} holds an answer body`).toBe(false);
          for (const token of tokens) expect(text.includes(token), `${place} of ${workflowId} holds a token (${token.slice(0, 12)}…)`).toBe(false);
        }
      }
      // The status file on the host, too.
      const file = await readFile(join(rig.slotsDir, [...slots][0]?.replace(/^slot:/, '') ?? '', 'slot-status.json'), 'utf8').catch(() => '');
      for (const token of tokens) expect(file.includes(token)).toBe(false);
    } finally {
      await connection.close();
    }
  });

  it("a pool's auth-failure report makes the slot probe (a refused token is refreshed); a probe's 429 rests the slot in the pool", async () => {
    const pools = new PoolClient(rig.slots);
    const [a, b] = [uniqueName('probe-pool-a'), uniqueName('probe-pool-b')];
    const issuedA = await adoptClaude(a);
    const issuedB = await adoptClaude(b);
    accepted.add(issuedB.accessToken);
    rotatedGrants.push(issuedA.grantId);
    const pool = uniqueName('probe-pool');
    await pools.create({ pool, provider: 'claude', slots: [a, b] });

    let lease = await pools.lease(pool);
    while (lease.slotId !== a) {
      await pools.release(pool, { leaseId: lease.leaseId });
      lease = await pools.lease(pool);
    }
    await pools.reportAuthFailure(pool, lease.leaseId);
    // The slot probes the refused token, refreshes, and the refreshed one is taken.
    const rotatedOk = await rig.slots.waitFor(a, (s) => s.lastProbe?.outcome === 'ok' && s.lastProbe.at > Date.now() - 60_000 && s.refreshes >= 2, { timeoutMs: 20_000, pollMs: 100 });
    expect(rotatedOk.reached, JSON.stringify(rotatedOk.status)).toBe(true);
    expect(requestsWith(issuedA.accessToken).map((r) => r.status)).toEqual([401]);
    expect(requestsWith(server.grant(issuedA.grantId)?.accessToken as string).map((r) => r.status)).toEqual([200]);
    // Back in rotation at the next census (a lease asks the slots when their answer is 2 s old).
    const back: string[] = [];
    for (const deadline = Date.now() + 20_000; !back.includes(a) && Date.now() < deadline; await new Promise((r) => setTimeout(r, 300))) {
      const next = await pools.lease(pool);
      back.push(next.slotId);
      await pools.release(pool, { leaseId: next.leaseId });
    }
    expect(back).toContain(a);

    // b's probe is answered 429: the pool rests b until the reset the provider gave.
    const resetSec = Math.floor(Date.now() / 1000) + 3600;
    api.script([{ status: 429, headers: { 'anthropic-ratelimit-unified-reset': String(resetSec) } }]);
    expect((await rig.slots.probe(b)).outcome).toBe('rate-limited');
    await vi.waitFor(
      async () => {
        await pools.release(pool, { leaseId: (await pools.lease(pool)).leaseId });
        const row = (await pools.status(pool)).slots.find((s) => s.slotId === b);
        expect(row?.eligible).toBe(false);
        expect(row?.coolUntil).toBe(resetSec * 1000);
      },
      { timeout: 20_000, interval: 500 },
    );
    const leases = await Promise.all(Array.from({ length: 4 }, () => pools.lease(pool)));
    expect(leases.map((l) => l.slotId)).toEqual([a, a, a, a]);
  });

  it('counts every probe by provider and outcome (slot_provisioner_probes_total), as the stand-in saw them', async () => {
    const text = await metrics.registry.getSingleMetricAsString('slot_provisioner_probes_total');
    const count = (provider: string, outcome: string): number =>
      Number(new RegExp(`^slot_provisioner_probes_total\\{provider="${provider}",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    const messages = api.requests.filter((r) => r.url.startsWith('/v1/messages'));
    const seen = (statuses: (s: number) => boolean): number => messages.filter((r) => statuses(r.status)).length;
    expect(count('claude', 'ok')).toBe(seen((s) => s === 200));
    expect(count('claude', 'unauthorized')).toBe(seen((s) => s === 401 || s === 403));
    expect(count('claude', 'rate-limited')).toBe(seen((s) => s === 429));
    expect(count('claude', 'transient')).toBe(seen((s) => s >= 500 || s === 0));
    expect(count('claude', 'unauthorized')).toBeGreaterThanOrEqual(4);
    expect(count('codex', 'ok')).toBe(1);
    expect(count('codex', 'rate-limited')).toBe(1);
    expect(count('oidc-device', 'ok')).toBe(1);
    expect(count('oidc-device', 'none')).toBe(1);
    expect(count('claude-setup-token', 'ok')).toBe(0);
  });

  async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => '', stdinIsTTY: false };
    const env = { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName, METRICS_PORT: 'off' };
    const code = await slotctl(argv, io, env);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  }
});

/** Every string (and byte string) in a document, with what base64 text decodes to. */
function readable(doc: unknown): string {
  const parts: string[] = [];
  const walk = (value: unknown, depth: number): void => {
    if (depth > 64) return;
    if (typeof value === 'string') {
      parts.push(value);
      if (/^[A-Za-z0-9+/=_-]{8,}$/.test(value)) parts.push(Buffer.from(value, 'base64').toString('latin1'));
    } else if (value instanceof Uint8Array) parts.push(Buffer.from(value).toString('latin1'));
    else if (Array.isArray(value)) for (const v of value) walk(v, depth + 1);
    else if (value && typeof value === 'object') for (const v of Object.values(value)) walk(v, depth + 1);
  };
  walk(doc, 0);
  return parts.join('\n');
}
