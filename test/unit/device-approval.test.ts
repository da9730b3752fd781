// awaitDeviceApproval: one activity polls a real (scripted) OAuth server on 127.0.0.1
// at the pace RFC 8628 asks until the operator answers, and stores the tokens in the
// slot. What a user notices: how often the server is asked, the file, the result.
import type { Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { access, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createDeviceLoginActivities,
  DEVICE_LOGIN_FILE,
  startDeviceLogin,
  type AwaitDeviceApprovalInput,
  type DeviceApprovalProgress,
  type DeviceApprovalResult,
  type DeviceLoginStarted,
} from '../../activities/device-login';
import { getProvider } from '../../providers';
import { startScriptedDeviceServer, type ScriptedDeviceServer, type ScriptedDeviceServerOptions } from '../peers/device-server';

const SLOT = 'device-slot';
/** The scripted server listens on 127.0.0.1, which a worker contacts only when allow-listed. */
// The test servers listen on loopback at random ports: the host lists them as its OAuth servers.
const ALLOW_LOOPBACK = { SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', SLOTS_OIDC_SERVERS: 'http://127.0.0.1:*' };
/** Host activities act on slot <id> only for the workflow `slot:<id>`. */
const AS_SLOT_WORKFLOW: Partial<Info> = { workflowExecution: { workflowId: `slot:${SLOT}`, runId: 'run-1' } };
const TOKENS_FILE = '.oidc/tokens.json';
const quiet = new DefaultLogger('ERROR');

let slotsDir: string;
let server: ScriptedDeviceServer | undefined;

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'device-approval-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(slotsDir, { recursive: true, force: true });
});

interface Awaiting {
  readonly server: ScriptedDeviceServer;
  readonly started: DeviceLoginStarted;
  readonly input: AwaitDeviceApprovalInput;
  /** When the device code was handed out: the first poll is timed from here. */
  readonly at: number;
}

/** A device login started against a scripted server, as `startLogin` leaves it. */
async function startedLogin(options: ScriptedDeviceServerOptions = {}, over: Partial<AwaitDeviceApprovalInput> = {}): Promise<Awaiting> {
  server = await startScriptedDeviceServer(options);
  const providerConfig = { issuer: server.issuer, clientId: 'device-client' };
  // 1 s polls keep these tests short; the 5 s floor of production is tested in clamps.test.ts.
  const started = await startDeviceLogin({ slotsDir, env: ALLOW_LOOPBACK, minPollIntervalMs: 1000 }, getProvider('oidc-device', providerConfig), { slotId: SLOT, loginId: 'login-1' });
  const at = Date.now();
  const input: AwaitDeviceApprovalInput = {
    slotId: SLOT,
    provider: 'oidc-device',
    providerConfig,
    loginId: 'login-1',
    startedAt: started.startedAt,
    intervalMs: started.intervalMs,
    deadline: at + 60_000,
    ...over,
  };
  return { server, started, input, at };
}

/** Runs one attempt of the activity, collecting what it heartbeats. */
function attempt(input: AwaitDeviceApprovalInput, info: Partial<Info> = {}) {
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 3000, ...AS_SLOT_WORKFLOW, ...info }, { logger: quiet });
  const beats: DeviceApprovalProgress[] = [];
  env.on('heartbeat', (details: DeviceApprovalProgress) => beats.push(details));
  const { awaitDeviceApproval } = createDeviceLoginActivities({ slotsDir, env: ALLOW_LOOPBACK, heartbeatMs: 200, minPollIntervalMs: 1000 });
  const result: Promise<DeviceApprovalResult> = env.run(awaitDeviceApproval, input);
  return { env, beats, result };
}

const gaps = (times: readonly number[], from: number): number[] => times.map((t, i) => t - (i === 0 ? from : times[i - 1]!));
const exists = (file: string): Promise<boolean> => access(join(slotsDir, SLOT, file)).then(() => true, () => false);

/** Nothing the activity said (result, heartbeats) holds the device code or a token. */
function expectNoSecrets(s: ScriptedDeviceServer, ...said: unknown[]): void {
  const text = JSON.stringify(said);
  for (const secret of [...s.deviceCodes, ...s.issued.flatMap((t) => [t.access_token, t.refresh_token])]) expect(text).not.toContain(secret);
}

describe('awaitDeviceApproval', () => {
  it('polls every interval until approved, slows down for good on slow_down, and stores the tokens 0600', async () => {
    const { server: s, input, at } = await startedLogin({ intervalSec: 1 });
    s.script(['pending', 'slow_down', 'approve']);
    const { beats, result } = attempt(input);

    expect(await result).toEqual<DeviceApprovalResult>({ kind: 'approved', message: 'the device was approved' });

    const [first, second, third] = gaps(s.polls, at);
    expect(s.polls).toHaveLength(3);
    expect(first).toBeGreaterThanOrEqual(950);
    expect(second).toBeGreaterThanOrEqual(950);
    expect(second).toBeLessThan(3000);
    // slow_down: 5 s more, for this and every later poll.
    expect(third).toBeGreaterThanOrEqual(5950);
    expect(beats.at(-1)).toEqual({ intervalMs: 6000 });
    const tokens = JSON.parse(await readFile(join(slotsDir, SLOT, TOKENS_FILE), 'utf8')) as Record<string, unknown>;
    expect(tokens).toMatchObject({ access_token: s.issued[0]!.access_token, refresh_token: s.issued[0]!.refresh_token });
    expect((await stat(join(slotsDir, SLOT, TOKENS_FILE))).mode & 0o777).toBe(0o600);
    // The device code is spent: it does not stay on the host.
    expect(await exists(DEVICE_LOGIN_FILE)).toBe(false);
    expectNoSecrets(s, await result, beats);
  }, 20_000);

  it('a retried attempt resumes at the interval its predecessor heartbeated', async () => {
    const { server: s, input, at } = await startedLogin({ intervalSec: 1 });
    s.script(['approve']);
    const { result } = attempt(input, { attempt: 2, heartbeatDetails: { intervalMs: 2500 } });
    expect((await result).kind).toBe('approved');
    expect(gaps(s.polls, at)[0]).toBeGreaterThanOrEqual(2450);
  });

  it('never polls faster than once a second, whatever the interval', async () => {
    const { server: s, input, at } = await startedLogin({ intervalSec: 1 }, { intervalMs: 1 });
    s.script(['pending', 'pending', 'approve']);
    const { result } = attempt(input, { heartbeatDetails: { intervalMs: 0.5 } });
    expect((await result).kind).toBe('approved');
    for (const gap of gaps(s.polls, at)) expect(gap).toBeGreaterThanOrEqual(950);
  }, 10_000);

  it('backs off when the server is in trouble, saying so in its heartbeat, and returns to the interval after', async () => {
    const { server: s, input, at } = await startedLogin({ intervalSec: 1 });
    s.script(['server_error', 'server_error', 'pending', 'approve']);
    const { beats, result } = attempt(input);
    expect((await result).kind).toBe('approved');

    const [, afterFirstError, afterSecondError, afterRecovery] = gaps(s.polls, at);
    expect(afterFirstError).toBeGreaterThanOrEqual(1950);
    expect(afterSecondError).toBeGreaterThanOrEqual(3950);
    expect(afterRecovery).toBeLessThan(2000);
    expect(beats.some((b) => /^polling the token endpoint failed, next poll in 4 s: .*HTTP 503/.test(b.lastError ?? ''))).toBe(true);
    expect(beats.at(-1)).toEqual({ intervalMs: 1000 });
  }, 20_000);

  it('returns timed-out when the deadline passes without an answer, and stops polling', async () => {
    const { server: s, input, at } = await startedLogin({ intervalSec: 1 }, { deadline: Date.now() + 2500 });
    const { result } = attempt(input);
    const ended = await result;
    expect(ended).toEqual({ kind: 'timed-out', reason: expect.stringMatching(/^no operator approved the device within [23] s; the code has expired$/) });
    expect(Date.now() - at).toBeGreaterThanOrEqual(2400);
    expect(Date.now() - at).toBeLessThan(3500);
    const polls = s.polls.length;
    expect(polls).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(s.polls).toHaveLength(polls);
  });

  it.each([
    ['access_denied', 'denied', /the operator denied the device login/],
    ['expired_token', 'expired', /the device code expired before the operator approved it/],
  ] as const)('%s → %s, and the device code is forgotten', async (answer, kind, reason) => {
    const { server: s, input } = await startedLogin({ intervalSec: 1 });
    s.script([answer]);
    const ended = await attempt(input).result;
    expect(ended.kind).toBe(kind);
    expect('reason' in ended ? ended.reason : '').toMatch(reason);
    expect(await exists(DEVICE_LOGIN_FILE)).toBe(false);
    expect(await exists(TOKENS_FILE)).toBe(false);
  });

  it('stops at once when cancelled, throwing the cancellation', async () => {
    const { server: s, input } = await startedLogin({ intervalSec: 5 });
    const { env, result } = attempt(input);
    const outcome = result.then(
      () => undefined,
      (err: unknown) => err,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const cancelledAt = Date.now();
    env.cancel();
    expect(await outcome).toBeInstanceOf(CancelledFailure);
    expect(Date.now() - cancelledAt).toBeLessThan(500);
    expect(s.polls).toEqual([]);
    expect(await exists(TOKENS_FILE)).toBe(false);
  });

  it('fails LoginSessionLost when the pending login is gone or replaced', async () => {
    const { input } = await startedLogin({ intervalSec: 1 });
    const replaced = await attempt({ ...input, loginId: 'login-0' }).result.catch((err: unknown) => err);
    expect(replaced).toBeInstanceOf(ApplicationFailure);
    expect(replaced).toMatchObject({ type: 'LoginSessionLost', nonRetryable: true, message: 'the device login was replaced by a newer one (login-1)' });

    const { discardDeviceLogin } = createDeviceLoginActivities({ slotsDir, env: ALLOW_LOOPBACK });
    expect(await new MockActivityEnvironment(AS_SLOT_WORKFLOW, { logger: quiet }).run(discardDeviceLogin, { slotId: SLOT, loginId: 'login-1' })).toEqual({ discarded: true });
    const gone = await attempt(input).result.catch((err: unknown) => err);
    expect(gone).toMatchObject({ type: 'LoginSessionLost', nonRetryable: true });
    expect((gone as Error).message).toMatch(/no longer pending on the slot host/);
  });

  it('fails LoginMisconfigured for a provider configuration that does not parse', async () => {
    const { input } = await startedLogin({ intervalSec: 1 });
    const failed = await attempt({ ...input, providerConfig: { clientId: 'device-client' } }).result.catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(ApplicationFailure);
    expect(failed).toMatchObject({ type: 'LoginMisconfigured', nonRetryable: true });
    expect((failed as Error).message).toMatch(/issuer: is required unless endpoints are given/);
  });
});
