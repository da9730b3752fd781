// The refresh activity against a real token endpoint (rotating single-use refresh
// tokens, reuse detection, scripted faults) and real files in a slot home: what a
// user notices is the credential on disk, the agents' env file, and the failure type.
import type { Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { createRefreshActivities, type RefreshActivityDeps, type RefreshCredentialInput, type RefreshResult } from '../../activities/refresh';
import { SLOT_STATUS_FILE } from '../../activities/slot-status';
import { claude } from '../../providers/claude';
import { codex } from '../../providers/codex';
import { classifyTokenAnswer, parseRetryAfter } from '../../providers/oauth';
import { startTokenServer, type IssuedTokens, type TokenFault, type TokenServer, type TokenServerOptions } from '../peers/token-server';

const CLAUDE_CLIENT = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CODEX_CLIENT = 'app_EMoamEEZ73f0CkXaXp7hrann';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** The workflow's clock: days ahead of the real one, as under the time-skipping test server. */
const NOW = Date.now() + 5 * DAY;
const SLOT = 'slot-1';
const CLAUDE_FILE = '.claude/.credentials.json';
const CODEX_FILE = '.codex/auth.json';
/** The token server listens on 127.0.0.1, which a worker contacts only when allow-listed. */
const LOOPBACK_ALLOWED = { SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1' };
/** Host activities act on slot <id> only for the workflow `slot:<id>`. */
const SLOT_WORKFLOW: Partial<Info> = { workflowExecution: { workflowId: 'slot:slot-1', runId: 'run-1' } };

let slotsDir: string;
let home: string;
const servers: TokenServer[] = [];

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'refresh-'));
  home = await ensureSlotHome(slotsDir, SLOT);
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await rm(slotsDir, { recursive: true, force: true });
});

async function startServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const server = await startTokenServer(options);
  servers.push(server);
  return server;
}

/** The activities as a worker on this host would register them, pointed at `server`. */
function activitiesFor(server: TokenServer, deps: Partial<RefreshActivityDeps> = {}) {
  return inActivityContext(
    createRefreshActivities({
      slotsDir,
      // Codex's own override variable, to prove it is honoured.
      env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: server.claudeTokenUrl, CODEX_REFRESH_TOKEN_URL_OVERRIDE: server.codexTokenUrl },
      ...deps,
    }),
  );
}

const quiet = new DefaultLogger('ERROR');

/** Each call runs as one activity attempt does: with a context (attempt, heartbeats, cancellation). */
function inActivityContext(activities: ReturnType<typeof createRefreshActivities>, info: Partial<Info> = {}) {
  return {
    refreshCredential: (input: RefreshCredentialInput): Promise<RefreshResult> =>
      new MockActivityEnvironment({ ...SLOT_WORKFLOW, ...info }, { logger: quiet }).run(activities.refreshCredential, input),
    writeSlotStatus: (input: Parameters<typeof activities.writeSlotStatus>[0]) =>
      new MockActivityEnvironment({ ...SLOT_WORKFLOW, ...info }, { logger: quiet }).run(activities.writeSlotStatus, input),
  };
}

const claudeInput = (over: Partial<RefreshCredentialInput> = {}): RefreshCredentialInput => ({ slotId: SLOT, provider: 'claude', now: NOW, force: false, ...over });
const codexInput = (over: Partial<RefreshCredentialInput> = {}): RefreshCredentialInput => ({ slotId: SLOT, provider: 'codex', now: NOW, force: false, ...over });

/** A Claude credential as the CLI writes it, with keys we must not lose, inside and outside `claudeAiOauth`. */
function claudeCredential(tokens: Pick<IssuedTokens, 'accessToken' | 'refreshToken'>, expiresAt: number) {
  return {
    claudeAiOauth: {
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      expiresAt,
      scopes: ['user:inference'],
      subscriptionType: 'max',
      rateLimitTier: 'default_claude_max_20x',
    },
    mcpOAuth: { 'github|8f2a': { serverName: 'github', expiresAt: 0, nested: { keep: [1, 2, 3] } } },
    organizationUuid: 'org-5d1e',
  };
}

const unsignedJwt = (claims: Record<string, unknown>): string =>
  `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;

function codexCredential(refreshToken: string, lastRefresh: number, accessExpiresAt: number) {
  return {
    OPENAI_API_KEY: null,
    auth_mode: 'chatgpt',
    tokens: {
      id_token: unsignedJwt({ email: 'ops@example.com', exp: Math.floor(accessExpiresAt / 1000) }),
      access_token: unsignedJwt({ sub: 'user-1', exp: Math.floor(accessExpiresAt / 1000) }),
      refresh_token: refreshToken,
      account_id: 'acct-77',
    },
    last_refresh: new Date(lastRefresh).toISOString(),
  };
}

async function seed(file: string, content: unknown): Promise<Buffer> {
  await writeSecretFileAtomic(home, file, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`);
  return readFile(join(home, file));
}

/** Two levels deep is all the tests look into. */
type JsonFile = Record<string, Record<string, unknown>>;
const readJson = async (file: string): Promise<JsonFile> => JSON.parse(await readFile(join(home, file), 'utf8')) as JsonFile;
const modeOf = async (file: string): Promise<number> => (await stat(join(home, file))).mode & 0o777;

/** `KEY=value` lines of the agents' env file. */
async function agentEnv(): Promise<Record<string, string>> {
  const text = await readFile(join(home, '.agent.env'), 'utf8');
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** Every token the server ever issued or was shown, plus strings a test planted. */
function knownSecrets(server: TokenServer, planted: readonly string[] = []): string[] {
  const secrets = new Set(planted);
  for (const r of server.requests) if (r.refreshToken) secrets.add(r.refreshToken);
  for (let i = 1; ; i++) {
    const grant = server.grant(`g${i}`);
    if (!grant) break;
    secrets.add(grant.refreshToken).add(grant.accessToken);
  }
  return [...secrets];
}

/** The ApplicationFailure a call throws; its message, details and causes hold none of `secrets`. */
async function failureOf(call: Promise<unknown>, secrets: () => readonly string[]): Promise<ApplicationFailure> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  const failure = err as ApplicationFailure;
  const seen: string[] = [];
  for (let e: unknown = failure; e instanceof Error; e = e.cause) seen.push(e.message, String(e.stack));
  seen.push(JSON.stringify(failure.details ?? null));
  for (const secret of secrets()) for (const text of seen) expect(text).not.toContain(secret);
  return failure;
}

describe('refreshCredential: Claude', () => {
  it('refreshes a due credential: new tokens on disk, unrelated keys kept, 0600, env file rewritten', async () => {
    const server = await startServer({ accessTtlSec: 8 * 3600 });
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const before = claudeCredential(issued, NOW + 30 * MINUTE);
    await seed(CLAUDE_FILE, before);

    const result = await activitiesFor(server).refreshCredential(claudeInput());

    const grant = server.grant(issued.grantId)!;
    expect(grant.rotations).toBe(1);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ path: '/v1/oauth/token', grantType: 'refresh_token', clientId: CLAUDE_CLIENT, refreshToken: issued.refreshToken, status: 200 });
    expect(server.requests[0]!.contentType).toMatch(/^application\/json/);

    const after = await readJson(CLAUDE_FILE);
    expect(after).toEqual({
      ...before,
      claudeAiOauth: {
        ...before.claudeAiOauth,
        accessToken: grant.accessToken,
        refreshToken: grant.refreshToken,
        // From the workflow's clock, not the host's.
        expiresAt: NOW + 8 * HOUR,
        scopes: ['user:inference', 'user:profile'],
      },
    });
    expect(await modeOf(CLAUDE_FILE)).toBe(0o600);
    expect(await agentEnv()).toEqual({ CLAUDE_CODE_OAUTH_TOKEN: grant.accessToken, CLAUDE_CONFIG_DIR: join(home, 'agent', 'claude') });
    expect(await modeOf('.agent.env')).toBe(0o600);
    // What a running claude re-reads on a 401: the new access token, no refresh token at all.
    const agentCopy = await readJson('agent/claude/.credentials.json');
    expect(agentCopy.claudeAiOauth).toEqual({ accessToken: grant.accessToken, expiresAt: NOW + 8 * HOUR, scopes: ['user:inference', 'user:profile'], subscriptionType: 'max' });
    expect(await modeOf('agent/claude/.credentials.json')).toBe(0o600);
    expect(server.accessTokenValid(grant.accessToken)).toBe(true);

    expect(result).toMatchObject({ kind: 'refreshed', expiresAt: NOW + 8 * HOUR, lastRefresh: NOW, account: 'max subscription' });
    // One hour before expiry, up to five minutes earlier.
    expect(result.nextRefreshAt).toBeLessThanOrEqual(NOW + 7 * HOUR);
    expect(result.nextRefreshAt).toBeGreaterThanOrEqual(NOW + 7 * HOUR - 90 * MINUTE);
    for (const secret of knownSecrets(server)) expect(JSON.stringify(result)).not.toContain(secret);
  });

  it('leaves a fresh credential alone: no request, file byte-identical, env file materialised', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW + 10 * HOUR));

    const result = await activitiesFor(server).refreshCredential(claudeInput());

    expect(server.requests).toEqual([]);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);
    expect(result).toMatchObject({ kind: 'fresh', expiresAt: NOW + 10 * HOUR });
    expect(result.nextRefreshAt).toBeLessThanOrEqual(NOW + 9 * HOUR);
    expect(result.nextRefreshAt).toBeGreaterThanOrEqual(NOW + 9 * HOUR - 90 * MINUTE);
    expect(await agentEnv()).toEqual({ CLAUDE_CODE_OAUTH_TOKEN: issued.accessToken, CLAUDE_CONFIG_DIR: join(home, 'agent', 'claude') });
  });

  it('refreshes a fresh credential when forced', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW + 10 * HOUR));

    const result = await activitiesFor(server).refreshCredential(claudeInput({ force: true }));

    expect(result.kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect((await readJson(CLAUDE_FILE)).claudeAiOauth?.refreshToken).toBe(server.grant(issued.grantId)!.refreshToken);
  });

  it('counts a wake-up within the jitter window as due, and honours schedule overrides', async () => {
    const server = await startServer({ accessTtlSec: 8 * 3600 });
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    // Due at NOW + 2 min; the workflow woke up to 5 min early on purpose.
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW + HOUR + 2 * MINUTE));
    const activities = activitiesFor(server);
    expect((await activities.refreshCredential(claudeInput())).kind).toBe('refreshed');

    const overridden = await activities.refreshCredential(claudeInput({ now: NOW + MINUTE, schedule: { beforeExpiryMs: 2 * HOUR, jitterMs: 0 } }));
    expect(overridden).toMatchObject({ kind: 'fresh', nextRefreshAt: NOW + 6 * HOUR });
    expect(server.requests).toHaveLength(1);
  });

  it('schedules a credential that stays due no sooner than a minute ahead', async () => {
    const server = await startServer({ accessTtlSec: 1800 });
    await seed(CLAUDE_FILE, claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW - HOUR));
    const result = await activitiesFor(server).refreshCredential(claudeInput());
    expect(result).toMatchObject({ kind: 'refreshed', expiresAt: NOW + 30 * MINUTE, nextRefreshAt: NOW + MINUTE });
  });

  it('rotates correctly over refreshes in a row, never presenting a refresh token twice', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const activities = activitiesFor(server);

    await activities.refreshCredential(claudeInput());
    const first = server.grant(issued.grantId)!;
    await activities.refreshCredential(claudeInput({ now: NOW + MINUTE, force: true }));
    await activities.refreshCredential(claudeInput({ now: NOW + 2 * MINUTE, force: true }));

    const grant = server.grant(issued.grantId)!;
    expect(grant).toMatchObject({ alive: true, rotations: 3 });
    expect(server.requests.map((r) => r.refreshToken)).toEqual([issued.refreshToken, first.refreshToken, expect.any(String)]);
    expect(server.presentedTwice()).toEqual([]);
    const file = await readJson(CLAUDE_FILE);
    expect(file.claudeAiOauth).toMatchObject({ accessToken: grant.accessToken, refreshToken: grant.refreshToken });
    expect(await agentEnv()).toEqual({ CLAUDE_CODE_OAUTH_TOKEN: grant.accessToken, CLAUDE_CONFIG_DIR: join(home, 'agent', 'claude') });
  });
});

describe('refreshCredential: what interrupted writes left', () => {
  it('removes stale temp files of the credential, the env file and the status file, and keeps fresh ones (a write in progress)', async () => {
    const server = await startServer({ accessTtlSec: 8 * 3600 });
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW + 30 * MINUTE));
    const stale = ['.claude/..credentials.json.tmp-0123456789abcdef', '..agent.env.tmp-00aa11bb22cc33dd', `.${SLOT_STATUS_FILE}.tmp-feedfacecafebeef`];
    const fresh = `.${SLOT_STATUS_FILE}.tmp-0000000000000001`;
    const longAgo = new Date(Date.now() - 10 * MINUTE);
    for (const name of stale) {
      await writeFile(join(home, name), '{"torn', { mode: 0o600 });
      await utimes(join(home, name), longAgo, longAgo);
    }
    await writeFile(join(home, fresh), '{"torn', { mode: 0o600 });

    const result = await activitiesFor(server).refreshCredential(claudeInput({ status: { slotId: SLOT, provider: 'claude', phase: 'refreshing' } }));

    expect(result.kind).toBe('refreshed');
    for (const name of stale) await expect(stat(join(home, name))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(join(home, fresh))).isFile()).toBe(true);
    expect(JSON.parse(await readFile(join(home, SLOT_STATUS_FILE), 'utf8'))).toMatchObject({ phase: 'active' });
  });
});

describe('refreshCredential: one at a time per slot', () => {
  it('a second refresh started while the first is still writing waits, re-reads, and never presents a spent token', async () => {
    // As when the server gave up on an attempt (a deadline, a timeout) that is still running.
    const server = await startServer({ accessTtlSec: 8 * 3600 });
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    server.script([{ delayMs: 800 }]);
    const activities = activitiesFor(server);
    const [first, second] = await Promise.all([
      activities.refreshCredential(claudeInput()),
      new Promise((resolve) => setTimeout(resolve, 100)).then(() => activities.refreshCredential(claudeInput())),
    ]);
    expect(first.kind).toBe('refreshed');
    // The second found the first one's tokens on disk: nothing left to do.
    expect(second.kind).toBe('fresh');
    expect(server.requests).toHaveLength(1);
    expect(server.presentedTwice()).toEqual([]);
    const grant = server.grant(issued.grantId)!;
    expect((await readJson(CLAUDE_FILE)).claudeAiOauth).toMatchObject({ refreshToken: grant.refreshToken });
  });

  it('forced twice at once, the refreshes run one after the other, each with the newest token', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW + 8 * 60 * MINUTE));
    server.script([{ delayMs: 500 }]);
    const activities = activitiesFor(server);
    const results = await Promise.all([activities.refreshCredential(claudeInput({ force: true })), activities.refreshCredential(claudeInput({ force: true }))]);
    expect(results.map((r) => r.kind)).toEqual(['refreshed', 'refreshed']);
    expect(server.grant(issued.grantId)).toMatchObject({ alive: true, rotations: 2 });
    expect(server.presentedTwice()).toEqual([]);
  });
});

describe('refreshCredential: Codex', () => {
  it('refreshes a credential whose last refresh is older than 8 days, keeping every other key', async () => {
    const server = await startServer({ idToken: true });
    const issued = server.issue({ clientId: CODEX_CLIENT });
    const before = codexCredential(issued.refreshToken, NOW - 9 * DAY, NOW + 10 * DAY);
    await seed(CODEX_FILE, before);

    const result = await activitiesFor(server).refreshCredential(codexInput());

    const grant = server.grant(issued.grantId)!;
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ path: '/oauth/token', clientId: CODEX_CLIENT, refreshToken: issued.refreshToken, status: 200 });
    const after = await readJson(CODEX_FILE);
    expect(after).toEqual({
      ...before,
      tokens: { ...before.tokens, access_token: grant.accessToken, refresh_token: grant.refreshToken, id_token: expect.stringMatching(/^eyJ/) },
      last_refresh: new Date(NOW).toISOString(),
    });
    expect(after.tokens?.id_token).not.toBe(before.tokens.id_token);
    expect(await modeOf(CODEX_FILE)).toBe(0o600);
    expect(await agentEnv()).toEqual({ CODEX_HOME: join(home, 'agent', 'codex') });
    // The agent's own CODEX_HOME: the current access token, and the agent secret where the refresh token was.
    const agentAuth = await readJson('agent/codex/auth.json');
    expect(agentAuth.tokens).toMatchObject({ access_token: after.tokens?.access_token, refresh_token: expect.stringMatching(/^slot-agent-/) });
    expect(JSON.stringify(agentAuth)).not.toContain(String(after.tokens?.refresh_token));
    expect(await modeOf('agent/codex/auth.json')).toBe(0o600);
    // The test server's access tokens are opaque (no JWT expiry): the 8-day limit schedules the next one.
    expect(result).toMatchObject({ kind: 'refreshed', lastRefresh: NOW, account: 'chatgpt login' });
    expect(result.nextRefreshAt).toBeLessThanOrEqual(NOW + 8 * DAY);
    expect(result.nextRefreshAt).toBeGreaterThanOrEqual(NOW + 8 * DAY - 5 * MINUTE);
  });

  it('leaves a credential refreshed yesterday alone, scheduling by age and JWT expiry', async () => {
    const server = await startServer();
    const bytes = await seed(CODEX_FILE, codexCredential(server.issue({ clientId: CODEX_CLIENT }).refreshToken, NOW - DAY, NOW + 3 * DAY));
    const result = await activitiesFor(server).refreshCredential(codexInput({ schedule: { jitterMs: 0 } }));
    expect(server.requests).toEqual([]);
    expect(await readFile(join(home, CODEX_FILE))).toEqual(bytes);
    // Expiry is read from the JWT in whole seconds.
    expect(result).toMatchObject({ kind: 'fresh', lastRefresh: NOW - DAY, nextRefreshAt: Math.floor((NOW + 3 * DAY) / 1000) * 1000 - HOUR });
  });

  it.each([
    ['openai', 'refresh_token_reused'],
    ['openai-flat', 'refresh_token_reused'],
  ] as const)('treats a reused refresh token (%s error shape) as permanent', async (errorStyle, code) => {
    const server = await startServer({ errorStyle });
    const issued = server.issue({ clientId: CODEX_CLIENT });
    await fetch(server.codexTokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: issued.refreshToken, client_id: CODEX_CLIENT }),
    });
    const bytes = await seed(CODEX_FILE, codexCredential(issued.refreshToken, NOW - 9 * DAY, NOW + DAY));

    const failure = await failureOf(activitiesFor(server).refreshCredential(codexInput()), () => knownSecrets(server));

    expect(failure).toMatchObject({ type: 'RefreshPermanent', nonRetryable: true });
    expect(failure.message).toContain(code);
    expect(failure.message).toContain('HTTP 401');
    expect(await readFile(join(home, CODEX_FILE))).toEqual(bytes);
  });

  it('treats an expired refresh token as permanent', async () => {
    const server = await startServer({ errorStyle: 'openai' });
    const issued = server.issue({ clientId: CODEX_CLIENT, refreshTtlSec: 0 });
    await seed(CODEX_FILE, codexCredential(issued.refreshToken, NOW - 9 * DAY, NOW + DAY));
    const failure = await failureOf(activitiesFor(server).refreshCredential(codexInput()), () => knownSecrets(server));
    expect(failure).toMatchObject({ type: 'RefreshPermanent', nonRetryable: true });
    expect(failure.message).toContain('refresh_token_expired');
  });
});

describe('refreshCredential: permanent failures', () => {
  it('answers a reused (already rotated) refresh token with RefreshPermanent invalid_grant, file untouched', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    // Someone else refreshed with this token: the one in the file is spent.
    const spent = await fetch(server.claudeTokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: issued.refreshToken, client_id: CLAUDE_CLIENT }),
    });
    expect(spent.status).toBe(200);
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));

    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput()), () => knownSecrets(server));

    expect(failure).toMatchObject({ type: 'RefreshPermanent', nonRetryable: true });
    expect(failure.message).toMatch(/invalid_grant/);
    expect(failure.message).toMatch(/HTTP 400/);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);
    await expect(stat(join(home, '.agent.env'))).rejects.toThrow();
  });

  it('answers 401 invalid_client with RefreshPermanent', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: 'some-other-client' });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput()), () => knownSecrets(server));
    expect(failure).toMatchObject({ type: 'RefreshPermanent', nonRetryable: true });
    expect(failure.message).toMatch(/HTTP 401 invalid_client/);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);
  });

  it('never repeats a token the server echoes in its error description', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    server.script([
      { status: 400, body: JSON.stringify({ error: 'invalid_grant', error_description: `refresh token ${issued.refreshToken} (access ${issued.accessToken}) was revoked` }) },
    ]);
    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput()), () => knownSecrets(server));
    expect(failure.type).toBe('RefreshPermanent');
    expect(failure.message).toMatch(/invalid_grant: refresh token \[redacted\]/);
  });
});

describe('refreshCredential: transient failures leave the credential as it was', () => {
  const cases: { name: string; fault: TokenFault; reason: RegExp; retryAfterMs?: number }[] = [
    { name: '500', fault: { status: 500 }, reason: /HTTP 500 server_error/ },
    { name: '503', fault: { status: 503 }, reason: /HTTP 503 temporarily_unavailable/ },
    { name: 'garbage body', fault: { body: 'garbage', contentType: 'text/plain' }, reason: /HTTP 200 with an unparseable body/ },
    { name: 'JSON without access_token', fault: { body: '{"token_type":"Bearer"}' }, reason: /missing access_token/ },
    { name: 'an HTML error page', fault: { html: true }, reason: /HTTP 502 \(body is not JSON\)/ },
    { name: 'a dropped connection', fault: { dropConnection: true }, reason: /connection closed before an answer/ },
    { name: 'a slow answer', fault: { delayMs: 1500 }, reason: /timed out after 300 ms/ },
    { name: 'a 50 MB body', fault: { hugeBodyBytes: 50_000_000 }, reason: /answer larger than 1048576 bytes/ },
    { name: 'an empty refresh token', fault: { body: JSON.stringify({ access_token: 'at-new-0123456789abcdef', refresh_token: '' }) }, reason: /refresh_token is empty/ },
  ];

  it.each(cases)('$name → RefreshTransient, then recovers with the same refresh token', async ({ fault, reason, retryAfterMs }) => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const activities = activitiesFor(server, { fetchTimeoutMs: 300 });
    server.script([fault]);

    const started = performance.now();
    const failure = await failureOf(activities.refreshCredential(claudeInput()), () => knownSecrets(server, ['at-new-0123456789abcdef']));
    expect(performance.now() - started).toBeLessThan(5000);

    expect(failure).toMatchObject({ type: 'RefreshTransient', nonRetryable: false });
    expect(failure.message).toMatch(reason);
    if (retryAfterMs !== undefined) expect(failure.nextRetryDelay).toBe(retryAfterMs);
    else expect(failure.nextRetryDelay ?? undefined).toBeUndefined();
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);

    // The endpoint is well again: the refresh token in the file still works (faults strike first).
    expect((await activities.refreshCredential(claudeInput())).kind).toBe('refreshed');
    expect(server.presentedTwice()).toEqual([]);
  });

  it('a 429 says the provider refuses (not a network failure), pauses the provider on the host for the Retry-After, and sends nothing meanwhile', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const activities = activitiesFor(server);
    server.script([{ status: 429, retryAfter: 7 }]);
    const refused = await failureOf(activities.refreshCredential(claudeInput()), () => knownSecrets(server));
    expect(refused).toMatchObject({ type: 'ProviderRefusing', nonRetryable: false, nextRetryDelay: 7000 });
    expect(refused.message).toMatch(/^Claude Code is refusing refresh requests \(HTTP 429: token endpoint answered HTTP 429 rate_limit_exceeded/);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);

    // Any slot of the host within the seven seconds: held back, nothing sent, retried when the pause ends.
    const held = await failureOf(activities.refreshCredential(claudeInput({ now: NOW + 3000 })), () => knownSecrets(server));
    expect(held).toMatchObject({ type: 'ProviderPaused', nonRetryable: false });
    expect(held.message).toMatch(/^waiting for the provider: Claude Code is refusing requests from this host \(HTTP 429, Retry-After 7 s\)/);
    expect(held.nextRetryDelay).toBeGreaterThanOrEqual(4000 + 1000);
    expect(held.nextRetryDelay).toBeLessThanOrEqual(4000 + 3000);
    expect(server.requests).toHaveLength(1);

    expect((await activities.refreshCredential(claudeInput({ now: NOW + 7000 }))).kind).toBe('refreshed');
    expect(server.presentedTwice()).toEqual([]);
  });

  it('a 429 without Retry-After pauses the provider for longer each time in a row, until an answer that is no 429', async () => {
    const server = await startServer();
    await seed(CLAUDE_FILE, claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW - MINUTE));
    const activities = activitiesFor(server);
    server.script([{ status: 429 }, { status: 429 }, { status: 429 }]);
    const delays: unknown[] = [];
    let now = NOW;
    for (let i = 0; i < 3; i++) {
      const failure = await failureOf(activities.refreshCredential(claudeInput({ now })), () => knownSecrets(server));
      expect(failure.type).toBe('ProviderRefusing');
      delays.push(failure.nextRetryDelay);
      now += failure.nextRetryDelay as number;
    }
    expect(delays).toEqual([15_000, 30_000, 60_000]);
    // Answered at last: the next 429 starts over at the first pause.
    expect((await activities.refreshCredential(claudeInput({ now }))).kind).toBe('refreshed');
    server.script([{ status: 429 }]);
    const again = await failureOf(activities.refreshCredential(claudeInput({ now: now + 1000, force: true })), () => knownSecrets(server));
    expect(again.nextRetryDelay).toBe(15_000);
  });

  it('honours a Retry-After HTTP date on a 503', async () => {
    const server = await startServer();
    await seed(CLAUDE_FILE, claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW - MINUTE));
    server.script([{ status: 503, retryAfter: new Date(Date.now() + 120_000).toUTCString() }]);
    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput()), () => knownSecrets(server));
    expect(failure.type).toBe('RefreshTransient');
    expect(failure.nextRetryDelay).toBeGreaterThan(117_000);
    expect(failure.nextRetryDelay).toBeLessThanOrEqual(120_000);
  });

  it('says "connection refused" when nothing listens', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const url = server.claudeTokenUrl;
    await server.close();
    const activities = inActivityContext(createRefreshActivities({ slotsDir, env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: url } }));
    const failure = await failureOf(activities.refreshCredential(claudeInput()), () => [issued.accessToken, issued.refreshToken]);
    expect(failure).toMatchObject({ type: 'RefreshTransient', nonRetryable: false });
    expect(failure.message).toMatch(/connection refused/);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);
  });
});

describe('refreshCredential: unusable credentials and configuration', () => {
  it('refuses malformed credential JSON with CredentialInvalid, quoting none of it', async () => {
    const server = await startServer();
    const planted = 'sk-ant-ort01-PLANTEDplantedPLANTED';
    const text = `{"claudeAiOauth": {"accessToken": "sk-ant-oat01-PLANTEDaccess", "refreshToken": "${planted}", `;
    await seed(CLAUDE_FILE, text);
    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput({ force: true })), () => [planted, 'sk-ant-oat01-PLANTEDaccess']);
    expect(failure).toMatchObject({ type: 'CredentialInvalid', nonRetryable: true });
    expect(failure.message).toContain(CLAUDE_FILE);
    expect(failure.message).toMatch(/not valid JSON/);
    expect(await readFile(join(home, CLAUDE_FILE), 'utf8')).toBe(text);
    expect(server.requests).toEqual([]);
  });

  it('refuses a credential without a refresh token, naming the field', async () => {
    const server = await startServer();
    const content = claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW - MINUTE);
    const { refreshToken: _dropped, ...oauth } = content.claudeAiOauth;
    await seed(CLAUDE_FILE, { ...content, claudeAiOauth: oauth });
    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput()), () => knownSecrets(server));
    expect(failure.type).toBe('CredentialInvalid');
    expect(failure.message).toContain('claudeAiOauth.refreshToken');
    expect(server.requests).toEqual([]);
  });

  it('refuses a missing credential with CredentialInvalid', async () => {
    const server = await startServer();
    const failure = await failureOf(activitiesFor(server).refreshCredential(codexInput()), () => []);
    expect(failure).toMatchObject({ type: 'CredentialInvalid', nonRetryable: true });
    expect(failure.message).toMatch(/auth\.json.*(missing|does not exist)/);
  });

  it('will not send a refresh token over plain http to a remote host', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const activities = inActivityContext(createRefreshActivities({ slotsDir, env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: 'http://tokens.example.com/v1/oauth/token' } }));
    const failure = await failureOf(activities.refreshCredential(claudeInput()), () => knownSecrets(server));
    expect(failure).toMatchObject({ type: 'RefreshMisconfigured', nonRetryable: true });
    expect(failure.message).toMatch(/http:\/\/tokens\.example\.com/);
  });

  it('rejects bad input before touching anything', async () => {
    const server = await startServer();
    const activities = activitiesFor(server);
    const badSlot = await failureOf(activities.refreshCredential(claudeInput({ slotId: '../etc' })), () => []);
    expect(badSlot.type).toBe('RefreshMisconfigured');
    const badProvider = await failureOf(activities.refreshCredential(claudeInput({ provider: 'gemini' })), () => []);
    expect(badProvider.message).toMatch(/unknown provider "gemini"/);
  });
});

const until = async (condition: () => boolean, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('refreshCredential: cancellation', () => {
  it('once the request is sent, a cancellation waits for the answer: the rotated token is on disk, written once', async () => {
    const server = await startServer({ accessTtlSec: 8 * 3600 });
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW + 30 * MINUTE));
    server.script([{ delayMs: 2500 }]);
    const env = new MockActivityEnvironment({ ...SLOT_WORKFLOW, heartbeatTimeoutMs: 3000 }, { logger: quiet });
    let heartbeats = 0;
    env.on('heartbeat', () => heartbeats++);
    const activities = createRefreshActivities({ slotsDir, env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: server.claudeTokenUrl } });

    const running = env.run(activities.refreshCredential, claudeInput({ status: { slotId: SLOT, phase: 'refreshing' } }));
    await until(() => server.requests.length === 1);
    const cancelledAt = Date.now();
    env.cancel();
    const result = await running;

    // It waited for the slow answer instead of dropping it.
    expect(Date.now() - cancelledAt).toBeGreaterThan(1000);
    expect(result).toMatchObject({ kind: 'refreshed', attempts: 1, expiresAt: NOW + 8 * HOUR });
    // Heartbeats (a beat per second, the first after one second, for a 3 s timeout) are what carry a cancellation to it.
    expect(heartbeats).toBeGreaterThanOrEqual(2);
    const grant = server.grant(issued.grantId)!;
    expect(grant.rotations).toBe(1);
    const written = await readJson(CLAUDE_FILE);
    expect(written.claudeAiOauth!.refreshToken).toBe(grant.refreshToken);
    expect(await agentEnv()).toEqual({ CLAUDE_CODE_OAUTH_TOKEN: grant.accessToken, CLAUDE_CONFIG_DIR: join(home, 'agent', 'claude') });
    expect((await readJson(SLOT_STATUS_FILE)).phase).toBe('active');

    // Nothing happens after it returned: no second request, no second write.
    const mtime = (await stat(join(home, CLAUDE_FILE))).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(server.requests).toHaveLength(1);
    expect((await stat(join(home, CLAUDE_FILE))).mtimeMs).toBe(mtime);
    expect(server.presentedTwice()).toEqual([]);
  });

  it('cancelled before the request is sent, it throws the cancellation and sends nothing', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW + 30 * MINUTE));
    const env = new MockActivityEnvironment(SLOT_WORKFLOW, { logger: quiet });
    env.cancel();
    const activities = createRefreshActivities({ slotsDir, env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: server.claudeTokenUrl } });

    await expect(env.run(activities.refreshCredential, claudeInput({ force: true }))).rejects.toBeInstanceOf(CancelledFailure);
    expect(server.requests).toEqual([]);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);
  });
});

describe('refreshCredential: the status file and attempts', () => {
  const status = { slotId: SLOT, provider: 'claude', phase: 'refreshing', logins: 1, refreshes: 3 };

  it('rewrites slot-status.json with the status it was given and the new facts', async () => {
    const server = await startServer({ accessTtlSec: 8 * 3600 });
    await seed(CLAUDE_FILE, claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW + 30 * MINUTE));
    const activities = inActivityContext(createRefreshActivities({ slotsDir, env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: server.claudeTokenUrl } }), { attempt: 4 });

    const result = await activities.refreshCredential(claudeInput({ status }));

    expect(result.attempts).toBe(4);
    expect(await readJson(SLOT_STATUS_FILE)).toEqual({
      ...status,
      phase: 'active',
      expiresAt: NOW + 8 * HOUR,
      lastRefresh: NOW,
      nextRefreshAt: result.nextRefreshAt,
      account: 'max subscription',
      updatedAt: NOW,
    });
    expect(await modeOf(SLOT_STATUS_FILE)).toBe(0o600);
    const text = await readFile(join(home, SLOT_STATUS_FILE), 'utf8');
    for (const secret of knownSecrets(server)) expect(text).not.toContain(secret);
  });

  it('writes the status of a fresh credential too, without a request', async () => {
    const server = await startServer();
    await seed(CLAUDE_FILE, claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW + 10 * HOUR));
    const result = await activitiesFor(server).refreshCredential(claudeInput({ status }));
    expect(result).toMatchObject({ kind: 'fresh', attempts: 1 });
    expect(await readJson(SLOT_STATUS_FILE)).toMatchObject({ phase: 'active', expiresAt: NOW + 10 * HOUR, nextRefreshAt: result.nextRefreshAt });
    expect(server.requests).toEqual([]);
  });

  it('after a transient failure, the status file says why and which attempt it was', async () => {
    const server = await startServer();
    await seed(CLAUDE_FILE, claudeCredential(server.issue({ clientId: CLAUDE_CLIENT }), NOW - MINUTE));
    server.script([{ status: 503 }]);
    const activities = inActivityContext(createRefreshActivities({ slotsDir, env: { ...LOOPBACK_ALLOWED, CLAUDE_TOKEN_URL: server.claudeTokenUrl } }), { attempt: 2 });

    const failure = await failureOf(activities.refreshCredential(claudeInput({ status })), () => knownSecrets(server));

    expect(failure).toMatchObject({ type: 'RefreshTransient', nonRetryable: false });
    const written = await readJson(SLOT_STATUS_FILE);
    expect(written).toMatchObject({ ...status, attempt: 2, updatedAt: NOW });
    expect(written.lastError).toMatch(/HTTP 503/);
  });

  it('refuses a status that looks like it holds a token before sending anything', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const bytes = await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    const planted = 'sk-ant-oat01-PLANTEDplantedPLANTED';

    const failure = await failureOf(activitiesFor(server).refreshCredential(claudeInput({ status: { ...status, note: planted } })), () => [planted]);

    expect(failure).toMatchObject({ type: 'SlotStatusRefused', nonRetryable: true });
    expect(failure.message).toMatch(/status\.note looks like a token/);
    expect(server.requests).toEqual([]);
    expect(await readFile(join(home, CLAUDE_FILE))).toEqual(bytes);
  });

  it('a status file that cannot be written does not fail the refresh', async () => {
    const server = await startServer();
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seed(CLAUDE_FILE, claudeCredential(issued, NOW - MINUTE));
    await mkdir(join(home, SLOT_STATUS_FILE));

    const result = await activitiesFor(server).refreshCredential(claudeInput({ status }));

    expect(result.kind).toBe('refreshed');
    expect((await readJson(CLAUDE_FILE)).claudeAiOauth!.refreshToken).toBe(server.grant(issued.grantId)!.refreshToken);
  });
});

describe('writeSlotStatus', () => {
  it('writes slot-status.json in the slot home, 0600', async () => {
    const server = await startServer();
    const status = { slotId: SLOT, phase: 'active', expiresAt: NOW + HOUR, lastOutcome: { kind: 'refresh-succeeded', message: 'refreshed' } };
    expect(await activitiesFor(server).writeSlotStatus({ slotId: SLOT, status })).toEqual({ file: SLOT_STATUS_FILE });
    expect(await readJson(SLOT_STATUS_FILE)).toEqual(status);
    expect(await modeOf(SLOT_STATUS_FILE)).toBe(0o600);
  });

  it.each([
    ['a JWT', unsignedJwt({ sub: 'user-1', exp: 1 })],
    ['a Claude token', 'sk-ant-oat01-abcdefgh'],
    ['an OpenAI refresh token', 'rt_0123456789abcdefABCDEF'],
  ])('refuses a status holding %s, keeping the previous file', async (_name, token) => {
    const server = await startServer();
    const activities = activitiesFor(server);
    await activities.writeSlotStatus({ slotId: SLOT, status: { phase: 'active' } });
    const before = await readFile(join(home, SLOT_STATUS_FILE));
    const failure = await failureOf(
      activities.writeSlotStatus({ slotId: SLOT, status: { phase: 'active', lastOutcome: { message: `oops ${token}` } } }),
      () => [token],
    );
    expect(failure).toMatchObject({ type: 'SlotStatusRefused', nonRetryable: true });
    expect(failure.message).toContain('status.lastOutcome.message');
    expect(await readFile(join(home, SLOT_STATUS_FILE))).toEqual(before);
  });

  it('accepts a login URL with a random state and PKCE challenge', async () => {
    const server = await startServer();
    const url =
      'https://claude.ai/oauth/authorize?code=true&client_id=9d1c250a-e61b-44d9-88ed-5944d1962f5e&code_challenge=eyJhbGciOiJIUzI1NiJ9abcdefgh-ijk_lmn&state=rt_abc';
    await activitiesFor(server).writeSlotStatus({ slotId: SLOT, status: { prompt: { url } } });
    expect((await readJson(SLOT_STATUS_FILE)).prompt?.url).toBe(url);
  });
});

describe('providers: endpoints and the RFC 6749 reading', () => {
  it('use the real endpoints unless overridden, CODEX_TOKEN_URL before the CLI’s own variable', () => {
    expect(claude.refresh.endpoint({})).toBe('https://platform.claude.com/v1/oauth/token');
    expect(claude.refresh.endpoint({ CLAUDE_TOKEN_URL: 'http://127.0.0.1:1/t' })).toBe('http://127.0.0.1:1/t');
    expect(codex.refresh.endpoint({})).toBe('https://auth.openai.com/oauth/token');
    expect(codex.refresh.endpoint({ CODEX_REFRESH_TOKEN_URL_OVERRIDE: 'http://127.0.0.1:2/t' })).toBe('http://127.0.0.1:2/t');
    expect(codex.refresh.endpoint({ CODEX_TOKEN_URL: 'http://127.0.0.1:3/t', CODEX_REFRESH_TOKEN_URL_OVERRIDE: 'http://127.0.0.1:2/t' })).toBe('http://127.0.0.1:3/t');
  });

  it('send the request shapes the CLIs send', () => {
    // The pinned CLIs' own, as recorded (test/integration/real-cli-e2e.test.ts compares them with the real CLIs' in every run).
    expect(codex.refresh.request(codexCredential('rt-x', NOW, NOW))).toEqual({
      encoding: 'json',
      body: { client_id: CODEX_CLIENT, grant_type: 'refresh_token', refresh_reason: 'proactive_expiry', refresh_token: 'rt-x' },
      headers: { originator: 'codex_exec', 'user-agent': expect.stringMatching(/^codex_exec\/0\.169\.0 \(/), accept: '*/*' },
    });
    expect(claude.refresh.request(claudeCredential({ accessToken: 'a', refreshToken: 'r' }, NOW))).toEqual({
      encoding: 'json',
      body: { grant_type: 'refresh_token', refresh_token: 'r', client_id: CLAUDE_CLIENT, scope: 'user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload' },
      headers: { 'user-agent': 'axios/1.15.2', accept: 'application/json, text/plain, */*' },
    });
  });

  it.each([
    [403, undefined, 'permanent'],
    [401, undefined, 'permanent'],
    [404, { error: 'not_found' }, 'permanent'],
    [400, { error: 'invalid_request' }, 'permanent'],
    [400, { error: 'temporarily_unavailable' }, 'transient'],
    // A redirect judges nothing: the refresh token still works, so no person is paged (and it is not followed).
    [302, undefined, 'transient'],
    [408, undefined, 'transient'],
    [425, undefined, 'transient'],
    [502, { error: 'invalid_grant' }, 'transient'],
    [200, { access_token: 42 }, 'transient'],
    [200, [1, 2], 'transient'],
  ] as const)('HTTP %s %j is %s', (status, json, kind) => {
    expect(classifyTokenAnswer({ status, json }).kind).toBe(kind);
  });

  it('adds provider codes, truncates descriptions and caps Retry-After', () => {
    const codexRefusal = codex.refresh.classify({ status: 400, json: { error: { code: 'refresh_token_invalidated', message: 'x'.repeat(5) } } });
    expect(codexRefusal).toMatchObject({ kind: 'permanent', reason: expect.stringContaining('refresh_token_invalidated: xxxxx') });
    const long = classifyTokenAnswer({ status: 400, json: { error: 'invalid_grant', error_description: 'word '.repeat(100) } });
    expect(long.kind === 'permanent' && long.reason.match(/invalid_grant: (.*)\)/)![1]!.length).toBeLessThanOrEqual(200);
    expect(classifyTokenAnswer({ status: 429, retryAfterMs: 10 * DAY, json: undefined })).toMatchObject({ kind: 'transient', retryAfterMs: HOUR });
    expect(classifyTokenAnswer({ status: 500, retryAfterMs: 5000, json: undefined })).not.toHaveProperty('retryAfterMs');
    expect(classifyTokenAnswer({ status: 200, json: { access_token: 'a', expires_in: '3600' } })).toMatchObject({ kind: 'success', tokens: { expires_in: 3600 } });
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-06-01T12:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 01 Jun 2025 12:01:30 GMT', now)).toBe(90_000);
    expect(parseRetryAfter('Sunday, 01-Jun-25 12:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Sun, 01 Jun 2025 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
