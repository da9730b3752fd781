// startLogin on the host queue and the session activities on this process's own
// queue, with the fixture CLI under a real PTY: the result names the queue that
// reaches the session, and a CLI whose start nobody took up does not linger.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHostActivities, createSessionActivities } from '../../activities/index';
import type { LoginOutcome, StartLoginResult } from '../../activities/login';
import { LoginCapacity, loginMemoryBudgetBytes } from '../../activities/login-capacity';
import { LoginSessions } from '../../activities/login-session';
import { isProjectSetting } from '../../activities/login-environment';
import { ConfigSchema } from '../../host/config';
import { FailureType } from '../../common/failures';
import { FIXTURE_BIN, expectNoProcesses, processesOfSlot } from '../slot-fixtures';
import { SendSpacing } from '../../common/pacing';

const SESSION_QUEUE = 'slots.test-host.4242-0123abcd';
const quiet = new DefaultLogger('ERROR');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let slotsDir: string;
let sessions: LoginSessions;

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'login-activities-'));
  sessions = new LoginSessions();
});
afterEach(async () => {
  await sessions.closeAll();
  await rm(slotsDir, { recursive: true, force: true });
});

function activities(unclaimedSessionMs: number, fixtureEnv: Record<string, string> = {}, envPassthrough: string[] = ['FIXTURE_*'], spacing?: SendSpacing) {
  const deps = {
    spacing,
    slotsDir,
    sessions,
    sessionQueue: SESSION_QUEUE,
    env: { ...process.env, CLAUDE_BIN: join(FIXTURE_BIN, 'claude'), FIXTURE_SPEED: '0.2', ...fixtureEnv },
    envPassthrough,
    heartbeatMs: 200,
    unclaimedSessionMs,
  };
  return { host: createHostActivities(deps), session: createSessionActivities(deps) };
}

async function startClaudeLogin(acts: ReturnType<typeof activities>, slotId: string): Promise<StartLoginResult> {
  // Host activities act on slot <id> only for the workflow `slot:<id>`.
  const asSlotWorkflow = { workflowExecution: { workflowId: `slot:${slotId}`, runId: 'run-1' } };
  return new MockActivityEnvironment(asSlotWorkflow, { logger: quiet }).run(acts.host.startLogin, { slotId, provider: 'claude', loginId: `${slotId}:1` });
}

describe('startLogin for a PTY login', () => {
  it("returns the prompt and this process's session queue", async () => {
    const started = await startClaudeLogin(activities(60_000), 'slot-a');
    expect(started).toMatchObject({ kind: 'pty', sessionQueue: SESSION_QUEUE, prompt: { interaction: 'paste-code' } });
    expect(started.prompt.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?/);
    expect(await processesOfSlot(slotsDir, 'slot-a')).not.toEqual([]);
  });

  it('closes a CLI that no session activity reached in time (its start result was lost), and keeps a watched one', async () => {
    const acts = activities(1000);
    await startClaudeLogin(acts, 'slot-lost');
    await startClaudeLogin(acts, 'slot-watched');
    // Session activities act only for the workflow of the session's slot.
    const asWatched = { workflowExecution: { workflowId: 'slot:slot-watched', runId: 'run-1' } };
    const watching = new MockActivityEnvironment(asWatched, { logger: quiet });
    const watched: Promise<LoginOutcome | undefined> = watching.run(acts.session.watchLogin, { loginId: 'slot-watched:1' });

    await sleep(1500);
    await expectNoProcesses(slotsDir, 'slot-lost');
    expect(sessions.get('slot-lost:1')).toBeUndefined();
    expect(await processesOfSlot(slotsDir, 'slot-watched')).not.toEqual([]);

    // Cancelled, the watch ends without an outcome; closing ends the CLI.
    watching.cancel();
    expect(await watched).toBeUndefined();
    expect(await new MockActivityEnvironment(asWatched, { logger: quiet }).run(acts.session.closeLogin, { loginId: 'slot-watched:1' })).toEqual({ closed: true });
    await expectNoProcesses(slotsDir, 'slot-watched');
  });

  it("re-checks the code in the activity: control bytes or another form never reach the CLI, whoever let them through", async () => {
    const acts = activities(60_000, { FIXTURE_INPUT_LOG: join(slotsDir, 'input.log') });
    const started = await startClaudeLogin(acts, 'slot-typed');
    const state = new URL(started.prompt.url).searchParams.get('state');
    const asTyped = { workflowExecution: { workflowId: 'slot:slot-typed', runId: 'run-1' } };
    for (const code of [`abc\r\u0003#${state}`, 'no-state-here', `code#another-state`]) {
      const failure = await new MockActivityEnvironment(asTyped, { logger: quiet }).run(acts.session.submitLoginCode, { slotId: 'slot-typed', loginId: 'slot-typed:1', code }).catch((err: unknown) => err);
      expect(failure, JSON.stringify(code)).toMatchObject({ type: 'CodeRejected', nonRetryable: true });
      expect((failure as Error).message).toMatch(/^refusing to type the code into login slot-typed:1: code /);
      expect((failure as Error).message).not.toContain(code);
    }
    // A request that names another slot is refused even from that slot's workflow.
    const other = await new MockActivityEnvironment({ workflowExecution: { workflowId: 'slot:other', runId: 'run-1' } }, { logger: quiet })
      .run(acts.session.submitLoginCode, { slotId: 'other', loginId: 'slot-typed:1', code: `c#${state}` })
      .catch((err: unknown) => err);
    expect(other).toMatchObject({ type: 'SlotRequestRefused', message: expect.stringContaining('only the workflow slot:slot-typed may act on this slot') });
    expect(await readFile(join(slotsDir, 'input.log'), 'utf8').catch(() => '')).not.toMatch(/abc|no-state|another-state/);
  });

  it('a worker at its memory budget for live login CLIs refuses another login (LoginHostBusy), starts nothing, and admits it once a CLI is closed (issue 23)', async () => {
    // Room for one Claude CLI (140 MiB as measured by bench/login-cli-memory.ts), not two.
    sessions = new LoginSessions(new LoginCapacity(200 * 1024 * 1024, 1000));
    const acts = activities(60_000);
    await startClaudeLogin(acts, 'slot-first');
    const refused = await startClaudeLogin(acts, 'slot-second').catch((err: unknown) => err);
    expect(refused).toMatchObject({ type: FailureType.loginHostBusy, nonRetryable: true });
    expect((refused as Error).message).toMatch(/^not starting Claude Code's login CLI now: this worker process holds 1 live login CLIs \(about 140 MiB\) and another \(about 140 MiB\) would pass its memory budget of 200 MiB \(LOGIN_CLI_MEMORY_BUDGET_MB\)/);
    await expectNoProcesses(slotsDir, 'slot-second');
    expect(sessions.capacity?.count).toBe(1);

    expect(await new MockActivityEnvironment({ workflowExecution: { workflowId: 'slot:slot-first', runId: 'run-1' } }, { logger: quiet }).run(acts.session.closeLogin, { slotId: 'slot-first', loginId: 'slot-first:1' })).toEqual({ closed: true });
    expect(sessions.capacity?.count).toBe(0);
    const started = await startClaudeLogin(acts, 'slot-second');
    expect(started.kind).toBe('pty');
    expect(sessions.capacity?.usedBytes).toBe(140 * 1024 * 1024);
  });

  it('starts login CLIs of one provider no closer than its pace, however many are asked at once (issue 25)', async () => {
    // The queue's rate limit lets a burst of startLogin activities through; the CLIs they start
    // are still spaced at 1/rate (here 2/s). Seen where a provider would see it: when each CLI began.
    const acts = activities(60_000, {}, ['FIXTURE_*'], new SendSpacing({ claude: { requestsPerSecond: 2, concurrency: 4 } }));
    const slots = ['paced-1', 'paced-2', 'paced-3'];
    await Promise.all(slots.map((slotId) => startClaudeLogin(acts, slotId)));
    const ticksPerSecond = 100; // USER_HZ on Linux
    const startTicks: number[] = [];
    for (const slotId of slots) {
      const pids = await processesOfSlot(slotsDir, slotId);
      const ticks = await Promise.all(pids.map(async (pid) => Number((await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ')[19])));
      startTicks.push(Math.min(...ticks));
    }
    startTicks.sort((a, b) => a - b);
    const gapsMs = startTicks.slice(1).map((t, i) => ((t - (startTicks[i] as number)) * 1000) / ticksPerSecond);
    // 500 ms apart at 2/s, less one clock tick of rounding.
    for (const gap of gapsMs) expect(gap, `gaps between CLI starts: ${gapsMs.join(', ')} ms`).toBeGreaterThanOrEqual(490);
  });

  it('heartbeats while a login waits its turn at a slow pace (a wait may outlast the heartbeat timeout)', async () => {
    const spacing = new SendSpacing({ claude: { requestsPerSecond: 0.5, concurrency: 1 } });
    spacing.take('claude'); // another request of this process just took the turn: the next waits 2 s
    const acts = activities(60_000, {}, ['FIXTURE_*'], spacing);
    const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'slot:slow-pace', runId: 'run-1' } }, { logger: quiet });
    const beats: number[] = [];
    const began = Date.now();
    env.on('heartbeat', () => beats.push(Date.now() - began));
    await env.run(acts.host.startLogin, { slotId: 'slow-pace', provider: 'claude', loginId: 'slow-pace:1' });
    // heartbeatMs is 200: without heartbeats during the wait the first would come after 2 s.
    expect(beats.filter((ms) => ms < 1500).length, `heartbeats at ${beats.join(', ')} ms`).toBeGreaterThanOrEqual(3);
  });

  it('a login cancelled while it waits its turn starts no CLI and gives its memory back', async () => {
    sessions = new LoginSessions(new LoginCapacity(1024 * 1024 * 1024, 1000));
    const spacing = new SendSpacing({ claude: { requestsPerSecond: 0.5, concurrency: 1 } });
    spacing.take('claude');
    const acts = activities(60_000, {}, ['FIXTURE_*'], spacing);
    const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'slot:cancel-wait', runId: 'run-1' } }, { logger: quiet });
    const running = env.run(acts.host.startLogin, { slotId: 'cancel-wait', provider: 'claude', loginId: 'cancel-wait:1' }).catch((err: unknown) => err);
    await sleep(300);
    env.cancel();
    expect(await running).toMatchObject({ name: 'CancelledFailure' });
    await sleep(300);
    expect(await processesOfSlot(slotsDir, 'cancel-wait')).toEqual([]);
    expect(sessions.capacity?.count).toBe(0);
  });

  it("LOGIN_ENV_PASSTHROUGH=* never hands the project's own secrets (payload keys, SLOT_BACKUP_URL, Temporal's API key) to a login CLI (issue 23)", async () => {
    const secrets = {
      SLOTS_ENCRYPTION_KEYS: 'k1:PLANTED-PAYLOAD-KEY-0123456789abcdef',
      SLOT_BACKUP_URL: 'postgres://u:PLANTED-DB-PASSWORD@127.0.0.1/db',
      TEMPORAL_API_KEY: 'PLANTED-TEMPORAL-KEY',
      CODEC_SERVER_TOKEN: 'PLANTED-CODEC-TOKEN',
      OPERATOR_CHOSEN: 'passed-through',
    };
    await startClaudeLogin(activities(60_000, secrets, ['*']), 'slot-env');
    const pids = await processesOfSlot(slotsDir, 'slot-env');
    expect(pids).not.toEqual([]);
    const environs = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/environ`, 'utf8')));
    // The search can find what it looks for: the operator's own variable is there.
    expect(environs.join('\n')).toContain('OPERATOR_CHOSEN=passed-through');
    expect(environs.join('\n')).not.toMatch(/PLANTED/);
  });

  it("every setting of the worker's configuration counts as the project's own (never passed to a CLI)", () => {
    const own = Object.keys(ConfigSchema.shape).filter((name) => !isProjectSetting(name));
    expect(own).toEqual([]);
    expect(isProjectSetting('HTTPS_PROXY')).toBe(false);
  });

  it('a session activity for a login this process does not hold fails LoginSessionLost', async () => {
    const acts = activities(60_000);
    const failure = await new MockActivityEnvironment({}, { logger: quiet }).run(acts.session.submitLoginCode, { loginId: 'elsewhere:1', code: 'c#s' }).catch((err: unknown) => err);
    expect(failure).toMatchObject({ type: 'LoginSessionLost', nonRetryable: true });
    expect((failure as Error).message).not.toContain('c#s');
  });
});

describe('startLogin when the CLI draws its URL in a narrow box', () => {
  it('publishes the whole URL, rows joined across the box, colours and borders gone', async () => {
    const started = await startClaudeLogin(activities(60_000, { FIXTURE_CLAUDE_MODE: 'boxed' }), 'slot-boxed');
    const url = new URL(started.prompt.url);
    expect(url.origin + url.pathname).toBe('https://claude.com/cai/oauth/authorize');
    expect(url.searchParams.get('client_id')).toBe('9d1c250a-e61b-44d9-88ed-5944d1962f5e');
    expect(url.searchParams.get('redirect_uri')).toBe('https://platform.claude.com/oauth/code/callback');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(started.prompt.url).not.toMatch(/[│\s]/);
    // The code check uses this URL's state, not the generic fallback.
    expect(started.prompt.codeFormat?.pattern).toContain(url.searchParams.get('state')?.slice(0, 10));
  });

  it('publishes nothing when the box shows the URL cut short: at the prompt deadline the login fails saying so, with the screen', async () => {
    const failure = await startClaudeLogin(activities(60_000, { FIXTURE_CLAUDE_MODE: 'boxed-cut' }), 'slot-cut').catch((err: unknown) => err);
    expect(failure).toMatchObject({ type: 'LoginUrlUnreadable', nonRetryable: true });
    const message = (failure as Error).message;
    expect(message).toMatch(/showed a login URL that could not be read whole within 30 s \(missing: redirect_uri, code_challenge, state\), so none was published/);
    // The screen as drawn is attached for the operator: the box and the cut URL's first row.
    expect(message).toContain('│ https://claude.com/cai/oauth/authorize?code=true&client_ │');
    expect(message).toContain('Paste code here if prompted >');
    expect((failure as { details?: unknown[] }).details?.[0]).toMatchObject({ missing: ['redirect_uri', 'code_challenge', 'state'] });
    await expectNoProcesses(slotsDir, 'slot-cut');
  }, 60_000);
});

describe('the memory budget of live login CLIs', () => {
  it('is LOGIN_CLI_MEMORY_BUDGET_MB when set, else half the memory, and a bad value is named', () => {
    expect(loginMemoryBudgetBytes({ LOGIN_CLI_MEMORY_BUDGET_MB: '512' })).toBe(512 * 1024 * 1024);
    expect(loginMemoryBudgetBytes({})).toBeGreaterThan(0);
    expect(() => loginMemoryBudgetBytes({ LOGIN_CLI_MEMORY_BUDGET_MB: 'lots' })).toThrow(/^LOGIN_CLI_MEMORY_BUDGET_MB must be a positive whole number of MiB, got "lots"$/);
  });
});
