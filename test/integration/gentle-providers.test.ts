// Gentle with providers, on the real dev server with a real token endpoint and webhook
// receiver on 127.0.0.1: token requests of one provider leave a host at its pace (what
// the token server saw), a 429 holds the whole host for the time asked, and many slots
// failing at once are one incident notice with relogins an operator holds and releases.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { slotctl } from '../../cli/slotctl';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { endIncidentSignal, incidentStatusQuery, incidentWorkflowId, releaseReloginsSignal } from '../../common/incidents';
import type { NoticeBody } from '../../common/notices';
import { slotWorkflowId } from '../../common/slot';
import { SlotMetrics } from '../../workers/metrics';
import { devServerClient, uniqueName } from '../harness';
import { startTokenServer, type IssuedTokens, type TokenServer } from '../peers/token-server';
import { startWebhookReceiver, type WebhookReceiver } from '../peers/webhook-receiver';
import { startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const RATE = 2;

let server: TokenServer;
let webhook: WebhookReceiver;
const notices: NoticeBody[] = [];

beforeAll(async () => {
  server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
  webhook = await startWebhookReceiver(notices);
});
afterAll(async () => {
  await server?.close();
  webhook?.close();
});

/** A Claude credential as the CLI writes it, expiring in `expiresInMs` (due when under an hour). */
async function seedClaude(rig: SlotRig, slotId: string, expiresInMs: number): Promise<IssuedTokens> {
  const tokens = server.issue();
  await writeSecretFileAtomic(
    await ensureSlotHome(rig.slotsDir, slotId),
    '.claude/.credentials.json',
    JSON.stringify({ claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: Date.now() + expiresInMs, scopes: ['user:inference'] } }),
  );
  return tokens;
}

/** Active slots (adopted, probes off) whose grants are all revoked at once, each then asked to refresh: a provider-wide invalidation. */
async function revokedTogether(rig: SlotRig, names: readonly string[]): Promise<string[]> {
  const ids = names.map((name) => uniqueName(name));
  const tokens: IssuedTokens[] = [];
  for (const id of ids) {
    tokens.push(await seedClaude(rig, id, 6 * 3600_000));
    await rig.slots.provision({ slotId: id, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { probe: { everyMs: 0 } } });
  }
  for (const id of ids) await waitForPhase(rig.slots, id, ['active']);
  for (const t of tokens) server.revoke(t.refreshToken);
  for (const id of ids) await rig.slots.refreshNow(id);
  return ids;
}

/** Requests the token server saw per whole second, for the presented tokens. */
const perSecond = (ats: readonly number[]): number[] => {
  const counts = new Map<number, number>();
  for (const at of ats) counts.set(Math.floor(at / 1000), (counts.get(Math.floor(at / 1000)) ?? 0) + 1);
  return [...counts.values()];
};

describe('pacing per host and provider', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: server.claudeTokenUrl }, { pace: { claude: { requestsPerSecond: RATE, concurrency: 1 } } });
  });
  afterAll(async () => rig?.close());

  it('ten slots due at once reach the token server at most RATE a second, with no history event for the wait', async () => {
    const ids = Array.from({ length: 10 }, () => uniqueName('paced'));
    const tokens = new Map<string, IssuedTokens>();
    // Due at once: 30 minutes left, refreshed an hour before expiry.
    for (const id of ids) tokens.set(id, await seedClaude(rig, id, 30 * 60_000));
    const presented = new Set([...tokens.values()].map((t) => t.refreshToken));
    await Promise.all(ids.map((slotId) => rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { probe: { everyMs: 0 } } })));
    for (const id of ids) await waitForPhase(rig.slots, id, ['active'], 60_000);

    const seen = server.requests.filter((r) => r.refreshToken !== undefined && presented.has(r.refreshToken));
    expect(seen).toHaveLength(10);
    expect(seen.every((r) => r.status === 200)).toBe(true);
    // Measured at the token server: never more than RATE in one second, so the ten took at least (10 - RATE) / RATE s.
    expect(Math.max(...perSecond(seen.map((r) => r.at)))).toBeLessThanOrEqual(RATE);
    const span = (seen.at(-1)?.at ?? 0) - (seen[0]?.at ?? 0);
    expect(span).toBeGreaterThanOrEqual(((10 - RATE) / RATE) * 1000 - 500);
    // The wait was a task in the provider's queue: one scheduled refresh per slot, no timer, no retry events.
    for (const id of ids) {
      const history = await rig.slots.client.workflow.getHandle(slotWorkflowId(id)).fetchHistory();
      const events = history.events ?? [];
      const completed = events.findIndex((e) => e.activityTaskCompletedEventAttributes);
      expect(completed).toBeGreaterThan(0);
      expect(events.slice(0, completed).filter((e) => e.timerStartedEventAttributes)).toEqual([]);
      const scheduled = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes);
      expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)).toEqual(['refreshCredential']);
      expect(scheduled[0]?.activityTaskScheduledEventAttributes?.taskQueue?.name).toBe(`slots.${rig.workers.hostName}:provider:claude`);
    }
  }, 120_000);
});

describe('a 429 holds the provider on the whole host', () => {
  let rig: SlotRig;
  let metrics: SlotMetrics;
  let connection: Awaited<ReturnType<typeof devServerClient>>['connection'];
  beforeAll(async () => {
    const made = await devServerClient();
    connection = made.connection;
    metrics = new SlotMetrics({ client: made.client, taskQueue: uniqueName('unlisted'), processMetrics: false });
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: server.claudeTokenUrl }, { pace: { claude: { requestsPerSecond: 10, concurrency: 4 } }, metrics });
  });
  afterAll(async () => {
    await rig?.close();
    await connection?.close();
  });

  it("holds every slot's requests until the Retry-After has passed, says so in their status and in the metric", async () => {
    const [a, b, c] = [uniqueName('first'), uniqueName('second'), uniqueName('third')];
    const tokens = new Map<string, IssuedTokens>();
    for (const id of [a, b, c]) {
      tokens.set(id, await seedClaude(rig, id, 6 * 3600_000));
      await rig.slots.provision({ slotId: id, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { probe: { everyMs: 0 } } });
    }
    for (const id of [a, b, c]) await waitForPhase(rig.slots, id, ['active']);
    const ofSlot = (id: string) => server.requests.filter((r) => r.refreshToken === tokens.get(id)?.refreshToken);
    expect([a, b, c].flatMap(ofSlot)).toEqual([]);

    server.script([{ status: 429, retryAfter: 5 }]);
    await rig.slots.refreshNow(a);
    await vi.waitFor(() => expect(ofSlot(a)).toHaveLength(1), { timeout: 15_000 });
    const refusedAt = ofSlot(a)[0]?.at ?? 0;
    expect(ofSlot(a)[0]?.status).toBe(429);

    // Two other slots come due meanwhile: nothing of theirs leaves the host while the provider waits.
    await rig.slots.refreshNow(b);
    await rig.slots.refreshNow(c);
    const waiting = await vi.waitFor(
      async () => {
        const d = await rig.slots.client.workflow.getHandle(slotWorkflowId(b)).describe();
        const pending = d.raw.pendingActivities?.[0];
        expect(pending?.lastFailure?.message).toMatch(/waiting for the provider/);
        return pending?.lastFailure?.message ?? '';
      },
      { timeout: 10_000 },
    );
    expect(waiting).toMatch(/Claude Code is refusing requests from this host .*HTTP 429, Retry-After 5 s/);
    // So does the slot's status (slotctl status, SlotClient.status), and its status file on the host.
    expect((await rig.slots.status(b)).lastError).toMatch(/^waiting for the provider: Claude Code is refusing requests from this host/);
    const statusFile = JSON.parse(await readFile(join(rig.slotsDir, b, 'slot-status.json'), 'utf8')) as { lastError?: string };
    expect(statusFile.lastError).toMatch(/waiting for the provider/);
    // The refused slot's own failure says the provider refuses, not that the network failed.
    const own = await rig.slots.client.workflow.getHandle(slotWorkflowId(a)).describe();
    expect(own.raw.pendingActivities?.[0]?.lastFailure?.message).toMatch(/Claude Code is refusing refresh requests \(HTTP 429/);
    // The metric shows the pause.
    const metric = await metrics.registry.getSingleMetricAsString('slot_provisioner_provider_paused_seconds');
    const paused = Number(/provider="claude"} (\d+)/.exec(metric)?.[1]);
    expect(paused).toBeGreaterThan(0);
    expect(paused).toBeLessThanOrEqual(5);

    for (const id of [a, b, c]) await waitForPhase(rig.slots, id, ['active'], 30_000);
    await vi.waitFor(() => expect([b, c].map((id) => ofSlot(id).length)).toEqual([1, 1]), { timeout: 10_000 });
    // Nothing was sent before the five seconds the provider asked for were over.
    for (const r of [a, b, c].flatMap(ofSlot).filter((r) => r.status !== 429)) expect(r.at).toBeGreaterThanOrEqual(refusedAt + 5000 - 50);
    expect(server.presentedTwice()).toEqual([]);
  }, 90_000);
});

describe('one incident instead of a storm', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig(
      { CLAUDE_TOKEN_URL: server.claudeTokenUrl },
      { notifyWebhookUrl: `http://127.0.0.1:${webhook.port}/hook`, incidents: { threshold: 3, windowMs: 60_000, holdRelogins: true } },
    );
  });
  afterAll(async () => rig?.close());

  it('five slots revoked at once: one incident notice, held relogins, released by the operator, per-slot notices after it ends', async () => {
    const ids = Array.from({ length: 5 }, (_, i) => uniqueName(`storm${i}`));
    const tokens = new Map<string, IssuedTokens>();
    for (const id of ids) {
      tokens.set(id, await seedClaude(rig, id, 6 * 3600_000));
      await rig.slots.provision({ slotId: id, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { probe: { everyMs: 0 } } });
    }
    for (const id of ids) await waitForPhase(rig.slots, id, ['active']);
    // A provider-wide invalidation: every grant revoked.
    for (const t of tokens.values()) server.revoke(t.refreshToken);
    for (const id of ids) {
      await rig.slots.refreshNow(id);
      await waitForPhase(rig.slots, id, ['needs-relogin', 'logging-in', 'awaiting-operator']);
    }
    const incident = rig.slots.client.workflow.getHandle(incidentWorkflowId('claude', rig.workers.sharedTaskQueue));
    const status = await incident.query(incidentStatusQuery);
    expect(status.open).toBe(true);
    expect(status.held).toBe(true);
    expect(status.slots.map((s) => s.slotId).sort()).toEqual([...ids].sort());

    // Exactly one incident notice, naming the provider, the count, the common failure and the command.
    await vi.waitFor(() => expect(notices.filter((n) => n.kind === 'provider-incident')).toHaveLength(1), { timeout: 15_000 });
    const [notice] = notices.filter((n) => n.kind === 'provider-incident');
    expect(notice?.provider).toBe('claude');
    expect(notice?.reason).toMatch(/^3 claude slots failed permanently within 1 minute \(on host /);
    expect(notice?.reason).toMatch(/invalid_grant/);
    expect(notice?.action?.command).toBe(`slotctl relogin --where "SlotProvider = 'claude' AND SlotPhase = 'needs-relogin'"`);
    expect(notice?.text).toContain('slotctl incident release claude');
    // The slots that failed from the threshold on said nothing themselves; the first two did (before there was an incident).
    await new Promise((r) => setTimeout(r, 2000));
    const perSlot = (id: string) => notices.filter((n) => n.slotId === id);
    for (const id of ids.slice(2)) expect(perSlot(id)).toEqual([]);
    for (const id of ids.slice(0, 2)) expect(perSlot(id).map((n) => n.kind)[0]).toBe('needs-relogin');

    // Held: the last three start no login; their status says why and how to release.
    for (const id of ids.slice(2)) {
      const s = await rig.slots.status(id);
      expect(s.phase).toBe('needs-relogin');
      expect(s.logins).toBe(0);
      expect(s.lastOutcome?.message).toMatch(/held by an operator: `slotctl incident release claude`/);
    }

    // The operator releases (the signal slotctl and the Web UI send): their logins start, still without per-slot notices.
    await incident.signal(releaseReloginsSignal);
    for (const id of ids.slice(2)) await waitForPrompt(rig.slots, id);
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of ids.slice(2)) expect(perSlot(id)).toEqual([]);

    // The incident ends: one ended notice, and each slot speaks for itself again.
    await incident.signal(endIncidentSignal);
    await vi.waitFor(() => expect(notices.filter((n) => n.kind === 'provider-incident-ended')).toHaveLength(1), { timeout: 15_000 });
    const last = ids[4] ?? '';
    const before = (await rig.slots.status(last)).prompt?.url;
    // The slots are told by signal that it ended.
    await new Promise((r) => setTimeout(r, 1000));
    await rig.slots.relogin(last);
    await waitForPrompt(rig.slots, last, before);
    await vi.waitFor(() => expect(perSlot(last).map((n) => n.kind)).toContain('awaiting-operator'), { timeout: 15_000 });
    expect(notices.filter((n) => n.kind === 'provider-incident')).toHaveLength(1);
    // Never a token in any notice.
    const everything = JSON.stringify(notices);
    for (const t of tokens.values()) expect(everything).not.toContain(t.refreshToken);
  }, 120_000);
});

describe('an incident ends by itself', () => {
  let rig: SlotRig;
  const seen: NoticeBody[] = [];
  let hook: WebhookReceiver;
  beforeAll(async () => {
    hook = await startWebhookReceiver(seen);
    rig = await startSlotRig(
      { CLAUDE_TOKEN_URL: server.claudeTokenUrl },
      { notifyWebhookUrl: `http://127.0.0.1:${hook.port}/hook`, incidents: { threshold: 2, windowMs: 4000, holdRelogins: false } },
    );
  });
  afterAll(async () => {
    await rig?.close();
    hook?.close();
  });

  it('after a quiet window: one ended notice, and relogins were not held', async () => {
    const ids = await revokedTogether(rig, ['quiet0', 'quiet1']);
    // Not held: both logins start by themselves, at the pace.
    for (const id of ids) await waitForPrompt(rig.slots, id);
    await vi.waitFor(() => expect(seen.filter((n) => n.kind === 'provider-incident')).toHaveLength(1), { timeout: 15_000 });
    expect(seen.find((n) => n.kind === 'provider-incident')?.text).toContain('slotctl incident hold claude');
    // Four quiet seconds after the last failure: over, by itself.
    await vi.waitFor(() => expect(seen.filter((n) => n.kind === 'provider-incident-ended').map((n) => n.reason)).toEqual([expect.stringMatching(/^the claude incident is over \(2 slots, no slot failed for 4 seconds\)/)]), { timeout: 20_000 });
    const handle = rig.slots.client.workflow.getHandle(incidentWorkflowId('claude', rig.workers.sharedTaskQueue));
    await vi.waitFor(async () => expect((await handle.describe()).status.name).toBe('COMPLETED'), { timeout: 10_000 });
    // The slot whose failure opened the incident never spoke for itself while it lasted; the one before it
    // (below the threshold) did. Which of the two refreshes reported first is the pace's choice.
    expect(ids.map((id) => seen.filter((n) => n.slotId === id).length).sort()).toEqual([0, 1]);
  }, 90_000);
});

describe('an incident workflow terminated while it holds relogins', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: server.claudeTokenUrl }, { incidents: { threshold: 2, windowMs: 60_000, holdRelogins: true } });
  });
  afterAll(async () => rig?.close());

  it('anyone may terminate it; `slotctl incident release` still releases the slots it held', async () => {
    const ids = await revokedTogether(rig, ['orphan0', 'orphan1']);
    // The slot whose failure opened the incident is held (the one before it, below the threshold, logs in by itself).
    const incident = rig.slots.client.workflow.getHandle(incidentWorkflowId('claude', rig.workers.sharedTaskQueue));
    let held = '';
    await vi.waitFor(
      async () => {
        for (const id of ids) {
          const s = await rig.slots.status(id);
          if (/held by an operator/.test(s.lastOutcome?.message ?? '')) held = id;
        }
        expect(held).not.toBe('');
      },
      { timeout: 20_000, interval: 250 },
    );
    expect((await rig.slots.status(held)).logins).toBe(0);

    // A namespace user terminates the incident workflow: nothing will ever signal the held slot.
    await incident.terminate('terminated by someone in the namespace');
    const slotctlIn = async (argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), readStdin: async () => '', stdinIsTTY: false };
      const code = await slotctl(argv, io, { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName });
      return { code, stdout: out.join('\n'), stderr: err.join('\n') };
    };
    // Visibility is eventually consistent: the held slot shows in needs-relogin within a moment.
    let released = { code: -1, stdout: '', stderr: '' };
    await vi.waitFor(
      async () => {
        released = await slotctlIn(['incident', 'release', 'claude', '--json']);
        expect(released.code).toBe(0);
      },
      { timeout: 10_000, interval: 500 },
    );
    expect(JSON.parse(released.stdout)).toMatchObject({ ok: true, provider: 'claude', told: expect.any(Number), failed: [] });
    expect(JSON.parse(released.stdout).message).toMatch(/^no claude incident is running \(it ended or was terminated\); \d+ claude slot\(s\) in needs-relogin were told it is over/);
    // The held slot's login starts.
    await waitForPrompt(rig.slots, held);

    // `hold` has nothing to act on without the workflow: a clear input error, as before.
    const hold = await slotctlIn(['incident', 'hold', 'claude']);
    expect(hold.code).toBe(2);
    expect(hold.stderr).toMatch(/no claude incident is open/);
  }, 90_000);
});
