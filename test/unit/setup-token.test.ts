// The claude-setup-token provider through the login and refresh activities, with the
// fixture `claude setup-token` (the transcripts' bytes) under a real PTY: a bad code is
// retried in the same CLI with a new URL, the printed token lands 0600 in the slot and
// nowhere else, and the token is never refreshed, only watched until it expires.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHostActivities, createSessionActivities } from '../../activities/index';
import type { LoginOutcome, PtyLoginStarted, StartLoginResult } from '../../activities/login';
import type { RefreshResult } from '../../activities/refresh';
import { LoginSessions } from '../../activities/login-session';
import { FIXTURE_BIN, expectNoProcesses } from '../slot-fixtures';

const TOKEN = `sk-ant-oat01-${'Zq3'.repeat(30)}-fixtureAA`;
const quiet = new DefaultLogger('ERROR');
const DAY = 24 * 3600_000;

let slotsDir: string;
let sessions: LoginSessions;
beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'setup-token-'));
  sessions = new LoginSessions();
});
afterEach(async () => {
  await sessions.closeAll();
  await rm(slotsDir, { recursive: true, force: true });
});

function activities(extraEnv: Record<string, string> = {}) {
  const deps = {
    slotsDir,
    sessions,
    sessionQueue: 'slots.test-host.1-abc',
    env: { ...process.env, CLAUDE_BIN: join(FIXTURE_BIN, 'claude'), FIXTURE_SPEED: '0.1', FIXTURE_CLAUDE_SETUP_TOKEN: TOKEN, ...extraEnv },
    envPassthrough: ['FIXTURE_*'],
    heartbeatMs: 200,
  };
  return { host: createHostActivities(deps), session: createSessionActivities(deps) };
}

const asSlot = (slotId: string) => new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${slotId}`, runId: 'run-1' } }, { logger: quiet });
const stateOf = (url: string): string => new URL(url).searchParams.get('state') ?? '';

async function startSetupLogin(acts: ReturnType<typeof activities>, slotId: string): Promise<PtyLoginStarted> {
  const started: StartLoginResult = await asSlot(slotId).run(acts.host.startLogin, { slotId, provider: 'claude-setup-token', loginId: `${slotId}:1` });
  if (started.kind !== 'pty') throw new Error('claude-setup-token must log in under a PTY');
  return started;
}

/** As the slot's own workflow does: session activities act only for `slot:<id>` (issue 23). */
const submit = (acts: ReturnType<typeof activities>, loginId: string, code: string): Promise<LoginOutcome> => {
  const slotId = loginId.split(':')[0] ?? '';
  return asSlot(slotId).run(acts.session.submitLoginCode, { slotId, loginId, code });
};

describe('claude-setup-token login', () => {
  it('reads the hard-wrapped URL, retries a bad code in the same CLI with a new URL, and stores the printed token 0600 only', async () => {
    const acts = activities();
    const started = await startSetupLogin(acts, 'st');
    expect(started.kind).toBe('pty');
    expect(started.restartAfterRejection).toBe(false);
    expect(started.prompt.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?code=true&.*&scope=user%3Ainference&code_challenge=[\w-]{43}&code_challenge_method=S256&state=[\w-]{43}$/);
    const pid = sessions.get('st:1')?.pid;

    const bad = await submit(acts, 'st:1', `wrong#${stateOf(started.prompt.url)}`);
    expect(bad.kind).toBe('rejected');
    const retried = bad.kind === 'rejected' ? bad.prompt : undefined;
    expect(bad.message).toMatch(/^OAuth error: Invalid code\. Please make sure the full code was copied \(the CLI asked again/);
    // Enter was pressed at `Press Enter to retry.`: the same process shows a new URL and state.
    expect(retried?.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?/);
    expect(stateOf(retried?.url ?? '')).not.toBe(stateOf(started.prompt.url));
    expect(retried?.codeFormat?.pattern).toContain(stateOf(retried?.url ?? '').slice(0, 12));
    expect(sessions.get('st:1')?.pid).toBe(pid);

    const good = await submit(acts, 'st:1', `valid-code#${stateOf(retried?.url ?? '')}`);
    expect(good).toEqual({ kind: 'succeeded', message: 'Long-lived authentication token created successfully!' });
    expect(JSON.stringify(good)).not.toContain('sk-ant');

    const file = join(slotsDir, 'st', '.claude', 'setup-token.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { oauthToken: string; issuedAt: number; expiresAt: number; source: string };
    expect(stored).toMatchObject({ oauthToken: TOKEN, source: 'setup-token' });
    // "valid for 1 year".
    expect(stored.expiresAt - stored.issuedAt).toBe(365 * DAY);
    // The screen that showed the token is forgotten at once.
    expect(sessions.get('st:1')?.snapshot().text ?? '').not.toContain('sk-ant');

    const verified = await asSlot('st').run(acts.host.verifyCredential, { slotId: 'st', provider: 'claude-setup-token', notBefore: started.startedAt });
    expect(verified).toMatchObject({ file: '.claude/setup-token.json', expiresAt: stored.expiresAt, account: 'long-lived token' });
    // The file's mtime is fractional; what the slot records (lastRefresh after a login) is whole milliseconds.
    const { modifiedAt } = verified as { modifiedAt: number };
    expect(Number.isInteger(modifiedAt), `modifiedAt ${modifiedAt}`).toBe(true);
    expect(JSON.stringify(verified)).not.toContain('sk-ant');

    // The CLI never exits by itself: closing the login ends it.
    await asSlot('st').run(acts.session.closeLogin, { slotId: 'st', loginId: 'st:1' });
    await expectNoProcesses(slotsDir, 'st');
  }, 30_000);

  it('takes the lifetime the CLI states', async () => {
    const acts = activities({ FIXTURE_CLAUDE_TOKEN_VALIDITY: '90 days' });
    const started = await startSetupLogin(acts, 'st90');
    expect((await submit(acts, 'st90:1', `valid-code#${stateOf(started.prompt.url)}`)).kind).toBe('succeeded');
    const stored = JSON.parse(readFileSync(join(slotsDir, 'st90', '.claude', 'setup-token.json'), 'utf8')) as { issuedAt: number; expiresAt: number };
    expect(stored.expiresAt - stored.issuedAt).toBe(90 * DAY);
  }, 30_000);
});

describe('claude-setup-token refresh: never a token request, notices at 30, 7 and 1 days, a relogin at expiry', () => {
  it('checks the file only, announces each window once, and fails permanently once expired', async () => {
    // A token endpoint that must never be asked: any request fails the test.
    let requests = 0;
    const server = createServer((_req, res) => {
      requests += 1;
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const acts = activities({ CLAUDE_TOKEN_URL: `http://127.0.0.1:${port}/v1/oauth/token`, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1' });
      // Logged in (the file as a login writes it), issued a year before `expiresAt`.
      const started = await startSetupLogin(acts, 'life');
      await submit(acts, 'life:1', `valid-code#${stateOf(started.prompt.url)}`);
      const { expiresAt } = JSON.parse(readFileSync(join(slotsDir, 'life', '.claude', 'setup-token.json'), 'utf8')) as { expiresAt: number };
      const refresh = (now: number, force = false): Promise<RefreshResult> =>
        asSlot('life').run(acts.host.refreshCredential, { slotId: 'life', provider: 'claude-setup-token', now, force, status: { phase: 'active' } });

      const fresh = await refresh(expiresAt - 200 * DAY);
      expect(fresh).toMatchObject({ kind: 'fresh', expiresAt, nextRefreshAt: expiresAt - 30 * DAY });
      expect(fresh.notice).toBeUndefined();
      // Forced (`slotctl refresh`): still no request.
      expect((await refresh(expiresAt - 200 * DAY, true)).notice).toBeUndefined();

      const at30 = await refresh(expiresAt - 30 * DAY + 1000);
      expect(at30.notice).toMatch(/token of slot life expires in 30 days .* log in again before then with `slotctl relogin life`/);
      expect(at30.nextRefreshAt).toBe(expiresAt - 7 * DAY);
      // Once per window.
      expect((await refresh(expiresAt - 29 * DAY)).notice).toBeUndefined();
      expect((await refresh(expiresAt - 7 * DAY)).notice).toMatch(/expires in 7 days/);
      const at1 = await refresh(expiresAt - DAY + 60_000);
      expect(at1.notice).toMatch(/expires in 24 hours /);
      expect(at1.nextRefreshAt).toBe(expiresAt);

      const expired = await refresh(expiresAt).catch((err: unknown) => err);
      expect(expired).toMatchObject({ type: 'RefreshPermanent', nonRetryable: true });
      expect((expired as Error).message).toMatch(/token expired at .*; it cannot be refreshed, a new login is needed/);
      expect(JSON.stringify(expired)).not.toContain('sk-ant');

      // The agents' env file carries the token, as the provider's agent spec says.
      const agentEnv = readFileSync(join(slotsDir, 'life', '.agent.env'), 'utf8');
      expect(agentEnv).toContain(`CLAUDE_CODE_OAUTH_TOKEN=${TOKEN}`);
      expect(requests).toBe(0);
    } finally {
      server.close();
    }
  }, 30_000);
});
