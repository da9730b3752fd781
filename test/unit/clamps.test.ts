// What servers send is clamped before any date is made of it (issue 11): a device
// `interval` of 0.0001 s does not poll in a tight loop, an `expires_in` of 1e13 makes
// no invalid date, and a rotated refresh token is never thrown away over a cosmetic field.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { createDeviceLoginActivities, DEVICE_LOGIN_FILE, startDeviceLogin, type AwaitDeviceApprovalInput, type DeviceApprovalResult } from '../../activities/device-login';
import { createRefreshActivities, type RefreshResult } from '../../activities/refresh';
import { getProvider } from '../../providers';
import { codex } from '../../providers/codex';
import { classifyTokenAnswer, MAX_TOKEN_EXPIRES_IN_S } from '../../providers/oauth';
import { startScriptedDeviceServer, type ScriptedDeviceServer, type ScriptedDeviceServerOptions } from '../peers/device-server';
import { startTokenServer, type TokenServer } from '../peers/token-server';

const SLOT = 'clamp-slot';
const YEAR_MS = MAX_TOKEN_EXPIRES_IN_S * 1000;
const quiet = new DefaultLogger('ERROR');
/** Host activities act on slot <id> only for the workflow slot:<id>. */
const AS_SLOT_WORKFLOW = { workflowExecution: { workflowId: `slot:${SLOT}`, runId: 'run-1' } };
/** The peers listen on 127.0.0.1: the host's allow-list names it, as an operator's would. */
// The test servers listen on loopback at random ports: the host lists them as its OAuth servers.
const ALLOW_LOOPBACK = { SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', SLOTS_OIDC_SERVERS: 'http://127.0.0.1:*' };

let slotsDir: string;
let home: string;
let device: ScriptedDeviceServer | undefined;
let tokens: TokenServer | undefined;

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'clamps-'));
  home = await ensureSlotHome(slotsDir, SLOT);
});
afterEach(async () => {
  await device?.close();
  await tokens?.close();
  device = undefined;
  tokens = undefined;
  await rm(slotsDir, { recursive: true, force: true });
});

/** A valid date, as the workflow turns it into text for the operator. */
const expectUsableDate = (ms: number | undefined): void => {
  expect(ms).toBeDefined();
  expect(() => new Date(ms as number).toISOString()).not.toThrow();
};

async function startLoginAgainst(options: ScriptedDeviceServerOptions, deps: { minPollIntervalMs?: number } = {}) {
  device = await startScriptedDeviceServer(options);
  const providerConfig = { issuer: device.issuer, clientId: 'device-client' };
  const started = await startDeviceLogin({ slotsDir, env: ALLOW_LOOPBACK, ...deps }, getProvider('oidc-device', providerConfig), { slotId: SLOT, loginId: 'login-1' });
  return { server: device, started, providerConfig, at: Date.now() };
}

function awaitApproval(input: AwaitDeviceApprovalInput, deps: { minPollIntervalMs?: number } = {}): Promise<DeviceApprovalResult> {
  const { awaitDeviceApproval } = createDeviceLoginActivities({ slotsDir, env: ALLOW_LOOPBACK, heartbeatMs: 200, ...deps });
  return new MockActivityEnvironment({ heartbeatTimeoutMs: 3000, ...AS_SLOT_WORKFLOW }, { logger: quiet }).run(awaitDeviceApproval, input);
}

describe('device flow: interval and expires_in are clamped', () => {
  it('an interval of 0.0001 s polls every 5 s, not in a tight loop', async () => {
    const { server, started, providerConfig, at } = await startLoginAgainst({ intervalSec: 0.0001 });
    expect(started.intervalMs).toBe(5000);
    server.script(['pending', 'approve']);
    // A workflow started before the clamp may carry an interval of 0: the activity clamps it too.
    const result = await awaitApproval({ slotId: SLOT, provider: 'oidc-device', providerConfig, loginId: 'login-1', startedAt: started.startedAt, intervalMs: 0, deadline: at + 60_000 });
    expect(result.kind).toBe('approved');
    expect(server.polls).toHaveLength(2);
    const gaps = server.polls.map((t, i) => t - (i === 0 ? at : server.polls[i - 1]!));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(4950);
  }, 30_000);

  it('an interval of an hour is clamped to 60 s', async () => {
    const { started } = await startLoginAgainst({ intervalSec: 3600 });
    expect(started.intervalMs).toBe(60_000);
  });

  it('refuses a worker floor outside 1-60 s, naming it', () => {
    expect(() => createDeviceLoginActivities({ slotsDir, env: {}, minPollIntervalMs: 10 })).toThrow(/minPollIntervalMs must be an integer from 1000 to 60000, got 10/);
  });

  it('a device code expires_in of 1e13 s makes a usable prompt: the operator is awaited 30 minutes at most', async () => {
    const { started } = await startLoginAgainst({ deviceCodeExpiresInSec: 1e13 });
    expectUsableDate(started.prompt.expiresAt);
    expect(started.prompt.expiresAt).toBeLessThanOrEqual(started.startedAt + 30 * 60_000);
    expect(started.prompt.instructions).toMatch(/the code expires at \d{4}-\d\d-\d\dT/);
    const pending = JSON.parse(await readFile(join(home, DEVICE_LOGIN_FILE), 'utf8')) as { expires_at: number };
    expect(pending.expires_at).toBeLessThanOrEqual(started.startedAt + 3600_000);
  });

  it('a device code expires_in below a second counts as a second', async () => {
    const { started } = await startLoginAgainst({ deviceCodeExpiresInSec: 0.0001 });
    expect(started.prompt.expiresAt).toBe(started.startedAt + 1000);
  });

  it('tokens with expires_in 1e13 are stored with an expiry a year ahead at most', async () => {
    const { server, started, providerConfig, at } = await startLoginAgainst({ intervalSec: 1, tokenExpiresInSec: 1e13 }, { minPollIntervalMs: 1000 });
    server.script(['approve']);
    const result = await awaitApproval(
      { slotId: SLOT, provider: 'oidc-device', providerConfig, loginId: 'login-1', startedAt: started.startedAt, intervalMs: started.intervalMs, deadline: at + 30_000 },
      { minPollIntervalMs: 1000 },
    );
    expect(result.kind).toBe('approved');
    const file = JSON.parse(await readFile(join(home, '.oidc/tokens.json'), 'utf8')) as { expires_at: number; refresh_token: string };
    expect(file.refresh_token).toBe(server.issued[0]?.refresh_token);
    expect(file.expires_at * 1000).toBeLessThanOrEqual(Date.now() + YEAR_MS);
    const facts = getProvider('oidc-device', providerConfig).credential.facts(file);
    expectUsableDate(facts.expiresAt);
  }, 20_000);
});

describe('token answers: a rotated refresh token is kept whatever the cosmetic fields say', () => {
  it.each([
    ['1e13', 1e13, MAX_TOKEN_EXPIRES_IN_S],
    ['0.0001', 0.0001, 1],
    ['-5', -5, 1],
    ['"1e13" as a string', '10000000000000', MAX_TOKEN_EXPIRES_IN_S],
  ] as const)('expires_in %s is clamped', (_what, expiresIn, clamped) => {
    expect(classifyTokenAnswer({ status: 200, json: { access_token: 'a', refresh_token: 'r', expires_in: expiresIn } })).toMatchObject({
      kind: 'success',
      tokens: { refresh_token: 'r', expires_in: clamped },
    });
  });

  it('an unreadable expires_in, scope or id_token is dropped, not a refusal', () => {
    const verdict = classifyTokenAnswer({ status: 200, json: { access_token: 'a', refresh_token: 'r', expires_in: 'soon', scope: 42, id_token: '' } });
    expect(verdict.kind).toBe('success');
    const answer = verdict.kind === 'success' ? verdict.tokens : undefined;
    expect(answer?.refresh_token).toBe('r');
    expect(answer?.expires_in).toBeUndefined();
    expect(answer?.scope).toBeUndefined();
    expect(answer?.id_token).toBeUndefined();
  });

  it('oidc-device: a file with expires_at far in the future gives a usable expiry', () => {
    const provider = getProvider('oidc-device', { issuer: 'https://login.example.com', clientId: 'c' });
    const now = Date.now();
    const next = provider.refresh.apply({ access_token: 'a', refresh_token: 'r' }, { access_token: 'a2', refresh_token: 'r2', expires_in: 1e13 }, now);
    expect(provider.credential.schema.safeParse(next).success).toBe(true);
    const facts = provider.credential.facts(next);
    expect(facts.expiresAt).toBeLessThanOrEqual(now + YEAR_MS + 1000);
    // Written by something else before the clamp:
    expectUsableDate(provider.credential.facts({ access_token: 'a', refresh_token: 'r', expires_at: 1e13 + 1 }).expiresAt);
  });

  it('codex: an access token whose exp is absurd gives a usable expiry', () => {
    const jwt = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ exp: 1e13 })).toString('base64url')}.`;
    const facts = codex.credential.facts({ tokens: { id_token: 'i', access_token: jwt, refresh_token: 'r' } });
    expectUsableDate(facts.expiresAt);
    expect(facts.expiresAt).toBeLessThanOrEqual(Date.now() + YEAR_MS + 1000);
  });

  it('claude: a refresh answered with expires_in 1e13 persists the rotated token with an expiry a year ahead at most', async () => {
    tokens = await startTokenServer();
    const issued = tokens.issue({ clientId: '9d1c250a-e61b-44d9-88ed-5944d1962f5e', accessTtlSec: 1e13 });
    const now = Date.now();
    await writeSecretFileAtomic(
      home,
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: now - 1000, scopes: ['user:inference'] } }),
    );
    const { refreshCredential } = createRefreshActivities({ slotsDir, env: { ...ALLOW_LOOPBACK, CLAUDE_TOKEN_URL: tokens.claudeTokenUrl } });
    const result: RefreshResult = await new MockActivityEnvironment(AS_SLOT_WORKFLOW, { logger: quiet }).run(refreshCredential, { slotId: SLOT, provider: 'claude', now, force: false });
    expect(result.kind).toBe('refreshed');
    expectUsableDate(result.expiresAt);
    expect(result.expiresAt).toBeLessThanOrEqual(now + YEAR_MS);
    const file = JSON.parse(await readFile(join(home, '.claude/.credentials.json'), 'utf8')) as { claudeAiOauth: { refreshToken: string; expiresAt: number } };
    expect(file.claudeAiOauth.refreshToken).toBe(tokens.grant(issued.grantId)?.refreshToken);
    expect(file.claudeAiOauth.refreshToken).not.toBe(issued.refreshToken);
    expect(file.claudeAiOauth.expiresAt).toBe(result.expiresAt);
  });
});
