// The pace settings, the send spacing, the host's provider pauses, and whether the refresh
// schedule's jitter spreads a fleet adopted at once enough for the pace to keep up.
import { mkdtemp, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nextRefreshAt } from '../../common/refresh-schedule';
import { FIRST_PAUSE_MS, MAX_PAUSE_MS, PROVIDER_PAUSES_DIR, ProviderPauses } from '../../activities/provider-pause';
import { DEFAULT_PROVIDER_PACE, parseProviderPace, SendSpacing } from '../../common/pacing';
import { noticeText } from '../../common/notices';
import { claude } from '../../providers/claude';
import { loadConfig } from '../../host/config';

const PROVIDERS = ['claude', 'codex', 'oidc-device', 'claude-setup-token'];

describe('PROVIDER_PACE', () => {
  it('defaults every provider to a few a second, and takes rate and concurrency per provider', () => {
    const none = parseProviderPace(undefined, PROVIDERS);
    expect(none).toEqual({ ok: true, value: Object.fromEntries(PROVIDERS.map((p) => [p, DEFAULT_PROVIDER_PACE])) });
    expect(DEFAULT_PROVIDER_PACE.requestsPerSecond).toBeLessThanOrEqual(5);
    const set = parseProviderPace('claude=0.5/s:1, codex=10/s:4', PROVIDERS);
    expect(set.ok && set.value.claude).toEqual({ requestsPerSecond: 0.5, concurrency: 1 });
    expect(set.ok && set.value.codex).toEqual({ requestsPerSecond: 10, concurrency: 4 });
    expect(set.ok && set.value['oidc-device']).toEqual(DEFAULT_PROVIDER_PACE);
  });

  it('refuses a rate above 10/s, a concurrency above 10, an unknown provider and a malformed entry, naming each', () => {
    const bad = parseProviderPace('claude=11/s,codex=2/s:50,gemini=1/s,claude 2', PROVIDERS);
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.problems).toEqual([
      'claude: the rate must be above 0 and at most 10/s, got 11/s',
      'codex: the concurrency must be 1 to 10, got 50',
      `"gemini" is not a provider (known: ${PROVIDERS.join(', ')})`,
      '"claude 2" is not <provider>=<rate>/s[:<concurrency>] (e.g. claude=2/s:2)',
    ]);
    expect(() => loadConfig({ PROVIDER_PACE: 'claude=20/s' })).toThrow(/PROVIDER_PACE="claude=20\/s": claude: the rate must be above 0 and at most 10\/s/);
    expect(loadConfig({ PROVIDER_PACE: 'claude=1/s:3' }).pace.claude).toEqual({ requestsPerSecond: 1, concurrency: 3 });
  });

  it('incident settings: five within ten minutes by default, and each variable checked', () => {
    expect(loadConfig({}).incidents).toEqual({ threshold: 5, windowMs: 600_000, holdRelogins: false });
    expect(loadConfig({ INCIDENT_THRESHOLD: '20', INCIDENT_WINDOW_MINUTES: '30', INCIDENT_HOLD_RELOGINS: 'true' }).incidents).toEqual({ threshold: 20, windowMs: 1_800_000, holdRelogins: true });
    expect(() => loadConfig({ INCIDENT_THRESHOLD: '1' })).toThrow(/INCIDENT_THRESHOLD/);
    expect(() => loadConfig({ INCIDENT_HOLD_RELOGINS: 'yes' })).toThrow(/INCIDENT_HOLD_RELOGINS="yes": must be true or false/);
  });
});

describe('send spacing', () => {
  it("spaces one provider's sends 1/rate apart, and leaves other providers alone", () => {
    let now = 1000;
    const spacing = new SendSpacing({ claude: { requestsPerSecond: 4, concurrency: 4 } }, () => now);
    expect([spacing.take('claude'), spacing.take('claude'), spacing.take('claude')]).toEqual([0, 250, 500]);
    expect(spacing.take('codex')).toBe(0);
    now += 2000;
    expect(spacing.take('claude')).toBe(0);
  });
});

describe("the host's provider pauses", () => {
  let slotsDir: string;
  beforeEach(async () => {
    slotsDir = await mkdtemp(join(tmpdir(), 'pauses-'));
  });
  afterEach(async () => rm(slotsDir, { recursive: true, force: true }));

  it('is shared by every process of the host (a file), honours Retry-After up to an hour, and keeps a longer pause', async () => {
    const now = 1_000_000;
    const a = new ProviderPauses(slotsDir, () => now);
    const b = new ProviderPauses(slotsDir, () => now);
    await a.pause('claude', { status: 429, retryAfterMs: 30_000 });
    expect(await b.current('claude')).toMatchObject({ until: now + 30_000, reason: 'HTTP 429, Retry-After 30 s' });
    expect(await b.current('codex')).toBeUndefined();
    expect(await b.current('claude', now + 30_000)).toBeUndefined();
    // A shorter one does not cut it short; an absurd one is believed for an hour.
    await b.pause('claude', { status: 503, retryAfterMs: 1000 });
    expect((await a.current('claude'))?.until).toBe(now + 30_000);
    await b.pause('claude', { status: 429, retryAfterMs: 10 * 3600_000 });
    expect((await a.current('claude'))?.until).toBe(now + 3600_000);
    expect(((await stat(join(slotsDir, PROVIDER_PAUSES_DIR, 'claude.json'))).mode & 0o777).toString(8)).toBe('600');
  });

  it('grows without Retry-After (doubling, capped), and starts over after an answer', async () => {
    let now = 0;
    const pauses = new ProviderPauses(slotsDir, () => now);
    const waits: number[] = [];
    for (let i = 0; i < 12; i++) {
      const p = await pauses.pause('codex', { status: 429 });
      waits.push(p.until - now);
      now = p.until;
    }
    expect(waits.slice(0, 4)).toEqual([FIRST_PAUSE_MS, 2 * FIRST_PAUSE_MS, 4 * FIRST_PAUSE_MS, 8 * FIRST_PAUSE_MS]);
    expect(Math.max(...waits)).toBe(MAX_PAUSE_MS);
    await pauses.answered('codex');
    expect((await pauses.pause('codex', { status: 429 })).until - now).toBe(FIRST_PAUSE_MS);
  });

  it('reads a torn or foreign file as no pause, and never a name that is not a provider', async () => {
    await mkdir(join(slotsDir, PROVIDER_PAUSES_DIR), { recursive: true });
    await writeFile(join(slotsDir, PROVIDER_PAUSES_DIR, 'claude.json'), '{"provider":"claude","until":');
    await writeFile(join(slotsDir, PROVIDER_PAUSES_DIR, 'codex.json'), JSON.stringify({ provider: 'claude', until: Date.now() + 60_000, strikes: 1, reason: 'x', at: 0 }));
    const pauses = new ProviderPauses(slotsDir);
    expect(await pauses.current('claude')).toBeUndefined();
    expect(await pauses.current('codex')).toBeUndefined();
    await expect(pauses.current('../etc')).rejects.toThrow(/not a provider name/);
  });
});

describe('the refresh schedule spreads a fleet adopted at once', () => {
  /** Finishing times when every slot's refresh, at its jittered due time, waits its turn at `rate` per second. */
  const drain = (dueTimes: number[], rate: number): number => {
    let free = 0;
    for (const due of [...dueTimes].sort((a, b) => a - b)) free = Math.max(due, free) + 1000 / rate;
    return free;
  };

  it("10 000 Claude slots with one expiry are all refreshed at the default pace before any nears expiry", () => {
    const now = Date.UTC(2026, 0, 1);
    const expiresAt = now + 8 * 3600_000;
    const schedule = claude.refresh.schedule;
    const dueAt = expiresAt - schedule.beforeExpiryMs;
    const due = Array.from({ length: 10_000 }, () => nextRefreshAt(dueAt, schedule, now));
    const lastDone = drain(due, DEFAULT_PROVIDER_PACE.requestsPerSecond);
    // A slot turns degraded 30 minutes before expiry (degradedWithinMs): the last is refreshed well before.
    expect(lastDone).toBeLessThan(expiresAt - 30 * 60_000);
    // The provider's former 5 minutes would not do: the queue would still drain when the tokens expire.
    const narrow = Array.from({ length: 10_000 }, () => nextRefreshAt(dueAt, { ...schedule, jitterMs: 5 * 60_000 }, now));
    expect(drain(narrow, DEFAULT_PROVIDER_PACE.requestsPerSecond)).toBeGreaterThan(expiresAt - 30 * 60_000);
  });
});

describe('incident notices', () => {
  it('one line: which provider, how many, the common failure and the command', () => {
    const text = noticeText({
      eventId: 'x/y/1',
      kind: 'provider-incident',
      at: 0,
      provider: 'claude',
      reason: '5 claude slots failed permanently within 10 minutes (on host h1); most with: invalid_grant.',
      action: { command: `slotctl relogin --where "SlotProvider = 'claude' AND SlotPhase = 'needs-relogin'"` },
    });
    expect(text).toBe(
      `:fire: Provider \`claude\` incident: 5 claude slots failed permanently within 10 minutes (on host h1); most with: invalid_grant. To relogin them all: \`slotctl relogin --where "SlotProvider = 'claude' AND SlotPhase = 'needs-relogin'"\`.`,
    );
  });
});
