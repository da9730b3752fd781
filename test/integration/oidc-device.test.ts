// The generic OAuth device-flow provider (`oidc-device`, RFC 8628) end to end on the
// real dev server: against panva's oidc-provider on 127.0.0.1 (approved through its
// own pages over HTTP), and against a scripted server for what it does not produce.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT, slotctl } from '../../cli/slotctl';
import type { SlotStatus } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { uniqueName } from '../harness';
import { answerDeviceLogin } from '../peers/device-approver';
import { startScriptedDeviceServer, type DiscoveryMode, type ScriptedDeviceServer } from '../peers/device-server';
import { DEVICE_CLIENT_ID, NO_DEVICE_CLIENT_ID, startOidcServer, type OidcServer } from '../peers/oidc-server';
import { startSlotRig, waitForPhase, type SlotRig } from '../slot-fixtures';

const TOKENS_FILE = '.oidc/tokens.json';
const DEVICE_LOGIN_FILE = '.device-login.json';

type Tokens = { access_token: string; refresh_token: string; id_token?: string; expires_at?: number; scope?: string; last_refresh?: string };

const readTokens = async (rig: SlotRig, slotId: string): Promise<Tokens> => JSON.parse(await readFile(join(rig.slotsDir, slotId, TOKENS_FILE), 'utf8')) as Tokens;
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** The prompt of the slot's `n`th login (device flows show the same URL every time; the user code differs). */
async function waitForDevicePrompt(rig: SlotRig, slotId: string, login: number): Promise<SlotStatus & { prompt: NonNullable<SlotStatus['prompt']> }> {
  const { status, reached } = await rig.slots.waitFor(slotId, (s) => s.phase === 'awaiting-operator' && s.logins === login && s.prompt !== undefined, {
    timeoutMs: 30_000,
    pollMs: 100,
  });
  if (!reached || !status.prompt) throw new Error(`no device prompt for ${slotId}: ${JSON.stringify(status)}`);
  return status as SlotStatus & { prompt: NonNullable<SlotStatus['prompt']> };
}

/** Every payload of a workflow's history, decoded: what anyone with access to Temporal can read. */
async function historyText(rig: SlotRig, workflowId: string): Promise<string> {
  const history = await rig.slots.client.workflow.getHandle(workflowId).fetchHistory();
  const texts: string[] = [];
  const walk = (value: unknown): void => {
    if (value instanceof Uint8Array) texts.push(Buffer.from(value).toString('utf8'));
    else if (Array.isArray(value)) value.forEach(walk);
    else if (typeof value === 'object' && value !== null) Object.values(value).forEach(walk);
    else if (typeof value === 'string') texts.push(value);
  };
  walk(history);
  return texts.join('\n');
}

describe('oidc-device against oidc-provider', () => {
  let server: OidcServer;
  let rig: SlotRig;
  beforeAll(async () => {
    server = await startOidcServer();
    rig = await startSlotRig();
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
  });

  it('login → active → refreshed (rotated) → revoked by reuse detection → needs-relogin → active again → retired (revoked)', async () => {
    const slotId = uniqueName('oidc');
    const home = join(rig.slotsDir, slotId);
    await rig.slots.provision({
      slotId,
      provider: 'oidc-device',
      providerConfig: { issuer: server.issuer, clientId: DEVICE_CLIENT_ID, scopes: ['openid', 'offline_access'] },
      host: rig.workers.hostName,
      // An operator decides on a new login, so the test sees needs-relogin.
      options: { onPermanentFailure: 'wait' },
    });

    // The prompt: the server's verification URI and user code; no code to submit.
    const waiting = await waitForDevicePrompt(rig, slotId, 1);
    expect(waiting.prompt.url).toBe(`${server.issuer}/device`);
    expect(waiting.prompt.userCode).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);
    expect(waiting.prompt.completeUrl).toBe(`${server.issuer}/device?user_code=${waiting.prompt.userCode}`);
    expect(waiting.prompt.interaction).toBe('device-approval');
    expect(waiting.prompt.instructions).toContain(waiting.prompt.userCode);
    await expect(rig.slots.submitCode(slotId, 'ABCD-EFGH')).rejects.toThrow(/this login needs no code: open .*\/device and enter/);

    // The device code stays on the slot host, private, and out of workflow history.
    const pendingPath = join(home, DEVICE_LOGIN_FILE);
    expect((await stat(pendingPath)).mode & 0o777).toBe(0o600);
    const deviceCode = (JSON.parse(await readFile(pendingPath, 'utf8')) as { device_code: string }).device_code;
    expect(deviceCode.length).toBeGreaterThan(20);

    const approved = await answerDeviceLogin(waiting.prompt.url, waiting.prompt.userCode as string, { answer: 'approve', login: 'operator@example.test' });
    expect(approved.title).toBe('Sign-in Success');
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.lastOutcome?.message).toMatch(/logged in \(the device was approved\); credential \.oidc\/tokens\.json verified/);
    expect(active.account).toBe(`operator@example.test at ${new URL(server.issuer).host}`);
    expect(active.expiresAt).toBeGreaterThan(Date.now() + 50 * 60_000);

    const first = await readTokens(rig, slotId);
    expect((await stat(join(home, TOKENS_FILE))).mode & 0o777).toBe(0o600);
    expect((await stat(join(home, '.oidc'))).mode & 0o777).toBe(0o700);
    expect(first.scope).toBe('openid offline_access');
    expect(first.id_token).toBeDefined();
    expect(await exists(pendingPath)).toBe(false);
    expect(await server.introspect(first.access_token)).toMatchObject({ active: true, client_id: DEVICE_CLIENT_ID });
    expect(await readFile(join(home, '.agent.env'), 'utf8')).toContain(`OAUTH_ACCESS_TOKEN=${first.access_token}`);
    const loginHistory = await historyText(rig, slotWorkflowId(slotId));
    expect(loginHistory).toContain(waiting.prompt.userCode as string);
    expect(loginHistory).not.toContain(deviceCode);
    for (const secret of [first.access_token, first.refresh_token]) expect(loginHistory).not.toContain(secret);

    // Refreshed through the refresh workflow: the refresh token rotates.
    await rig.slots.refreshNow(slotId);
    const { status: refreshed } = await rig.slots.waitFor(slotId, (s) => s.lastOutcome?.message.startsWith('refreshed') === true, { timeoutMs: 20_000, pollMs: 100 });
    expect(refreshed.phase).toBe('active');
    const second = await readTokens(rig, slotId);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.id_token).toBeDefined();
    expect(Date.parse(second.last_refresh ?? '')).toBeGreaterThan(Date.parse(first.last_refresh ?? ''));
    expect(await server.introspect(second.refresh_token)).toMatchObject({ active: true });

    // Someone replays the spent refresh token: the server's reuse detection refuses it and revokes the grant.
    const replay = await server.refreshDirectly(first.refresh_token);
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');
    expect(await server.introspect(second.refresh_token)).toMatchObject({ active: false });

    // The slot's next refresh fails permanently: needs-relogin, with the server's words.
    await rig.slots.refreshNow(slotId);
    const revoked = await waitForPhase(rig.slots, slotId, ['needs-relogin'], 20_000);
    expect(revoked.lastOutcome?.kind).toBe('refresh-failed');
    expect(revoked.lastOutcome?.message).toMatch(/refresh failed permanently: token endpoint refused the refresh token \(HTTP 400 invalid_grant.*\)/);
    expect(revoked.lastOutcome?.message).toContain(`slotctl relogin ${slotId}`);

    // A new login, approved again: active again with a new grant.
    await rig.slots.relogin(slotId);
    const again = await waitForDevicePrompt(rig, slotId, 2);
    expect(again.prompt.userCode).not.toBe(waiting.prompt.userCode);
    expect((await answerDeviceLogin(again.prompt.url, again.prompt.userCode as string)).title).toBe('Sign-in Success');
    const activeAgain = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(activeAgain.phase).toBe('active');
    expect(activeAgain.logins).toBe(2);
    const third = await readTokens(rig, slotId);
    expect(await server.introspect(third.refresh_token)).toMatchObject({ active: true });

    // Retiring revokes the tokens at the server (RFC 7009), and moves the home to the host's trash, files kept.
    await rig.slots.retire(slotId);
    const retired = await waitForPhase(rig.slots, slotId, ['retired']);
    expect(retired.lastOutcome?.message).toMatch(
      new RegExp(`^retired; the tokens were revoked at ${server.issuer}; the slot home was moved to the trash on host ${rig.workers.hostName} \\((${slotId}\\.[^)]+)\\); slot ${slotId} stays retired there: only that host's operator can bring it back or re-use the id \\(slotctl host unretire\\|reuse ${slotId}\\)$`),
    );
    expect(await server.introspect(third.refresh_token)).toMatchObject({ active: false });
    expect(await server.introspect(third.access_token)).toMatchObject({ active: false });
    expect(await exists(home)).toBe(false);
    const trashed = join(rig.slotsDir, '.trash', /\((oidc-[^)]+)\)/.exec(retired.lastOutcome?.message ?? '')?.[1] ?? '');
    expect(await exists(join(trashed, TOKENS_FILE))).toBe(true);
    const statusFile = await readFile(join(trashed, 'slot-status.json'), 'utf8');
    for (const secret of [third.access_token, third.refresh_token, deviceCode]) expect(statusFile).not.toContain(secret);
  });

  it('provisions with slotctl flags, and ends with a clear reason when the operator aborts at the server (access_denied)', async () => {
    const slotId = uniqueName('oidc-deny');
    const out: string[] = [];
    const err: string[] = [];
    const code = await slotctl(
      ['provision', slotId, '--provider', 'oidc-device', '--issuer', server.issuer, '--client-id', DEVICE_CLIENT_ID, '--scope', 'openid', '--scope', 'offline_access', '--json'],
      { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => '', stdinIsTTY: false },
      { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName, PATH: process.env.PATH ?? '' },
    );
    expect({ code, err }).toEqual({ code: EXIT.ok, err: [] });
    expect(JSON.parse(out.join('\n'))).toMatchObject({ slotId, provider: 'oidc-device', host: rig.workers.hostName });
    const waiting = await waitForDevicePrompt(rig, slotId, 1);
    const aborted = await answerDeviceLogin(waiting.prompt.url, waiting.prompt.userCode as string, { answer: 'abort' });
    expect(aborted.text).toMatch(/interrupted/);
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active'], 20_000);
    expect(failed.phase).toBe('needs-relogin');
    expect(failed.lastOutcome?.message).toMatch(
      /^login failed: the operator denied the device login \(HTTP 400 access_denied: End-User aborted interaction\)\. Run `slotctl relogin .*` for a new login URL\.$/,
    );
    expect(await exists(join(rig.slotsDir, slotId, DEVICE_LOGIN_FILE))).toBe(false);
    await rig.slots.retire(slotId);
  });

  it('cancels a login and keeps the operator deadline, forgetting the device code each time', async () => {
    const slotId = uniqueName('oidc-cancel');
    await rig.slots.provision({
      slotId,
      provider: 'oidc-device',
      providerConfig: { issuer: server.issuer, clientId: DEVICE_CLIENT_ID },
      host: rig.workers.hostName,
      login: { operatorTimeoutMs: 3000 },
    });
    const first = await waitForDevicePrompt(rig, slotId, 1);
    expect(first.prompt.expiresAt - Date.now()).toBeLessThan(3500);
    const timedOut = await waitForPhase(rig.slots, slotId, ['needs-relogin'], 20_000);
    expect(timedOut.lastOutcome?.message).toMatch(/login failed: no operator approved the device within 0 minutes; the code has expired/);
    expect(await exists(join(rig.slotsDir, slotId, DEVICE_LOGIN_FILE))).toBe(false);

    await rig.slots.relogin(slotId);
    await waitForDevicePrompt(rig, slotId, 2);
    await rig.slots.cancelLogin(slotId);
    const cancelled = await waitForPhase(rig.slots, slotId, ['needs-relogin'], 20_000);
    expect(cancelled.lastOutcome?.message).toMatch(/login failed: the login was cancelled by an operator\. Start a new one with: slotctl relogin/);
    expect(await exists(join(rig.slotsDir, slotId, DEVICE_LOGIN_FILE))).toBe(false);
    await rig.slots.retire(slotId);
  });

  it('says so when the client is not allowed the device flow', async () => {
    const slotId = uniqueName('oidc-nogrant');
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: server.issuer, clientId: NO_DEVICE_CLIENT_ID }, host: rig.workers.hostName });
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
    expect(failed.lastOutcome?.message).toMatch(
      new RegExp(
        `login failed: the OAuth server refused the device authorization request of client ${NO_DEVICE_CLIENT_ID} \\(HTTP 400 invalid_request: ` +
          `urn:ietf:params:oauth:grant-type:device_code is not allowed for this client\\); check that the client exists and is allowed the device flow`,
      ),
    );
    await rig.slots.retire(slotId);
  });
});

describe('oidc-device against a scripted server', () => {
  let rig: SlotRig;
  const servers: ScriptedDeviceServer[] = [];
  const scripted = async (options: Parameters<typeof startScriptedDeviceServer>[0] = {}): Promise<ScriptedDeviceServer> => {
    const started = await startScriptedDeviceServer(options);
    servers.push(started);
    return started;
  };
  beforeAll(async () => {
    rig = await startSlotRig();
  });
  afterAll(async () => {
    await rig?.close();
    for (const s of servers) await s.close();
  });

  it('adds 5 s to the interval on slow_down, for that and every later poll', async () => {
    const server = await scripted({ intervalSec: 1 });
    server.script(['pending', 'slow_down', 'pending', 'approve']);
    const slotId = uniqueName('oidc-slow');
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: server.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'], 40_000);
    expect(active.phase).toBe('active');
    expect(server.polls).toHaveLength(4);
    const gaps = server.polls.slice(1).map((at, i) => at - (server.polls[i] as number));
    // 1 s between the first polls; 1 + 5 s after slow_down, and still after the next answer.
    expect(gaps[0]).toBeGreaterThanOrEqual(900);
    expect(gaps[0]).toBeLessThan(4000);
    expect(gaps[1]).toBeGreaterThanOrEqual(5900);
    expect(gaps[2]).toBeGreaterThanOrEqual(5900);
    const tokens = await readTokens(rig, slotId);
    expect(tokens.refresh_token).toBe(server.issued[0]?.refresh_token);

    // A revocation endpoint that fails does not stop the retirement; the outcome says so.
    server.revocationStatus = 503;
    await rig.slots.retire(slotId, { removeFiles: true });
    const retired = await waitForPhase(rig.slots, slotId, ['retired']);
    expect(retired.lastOutcome?.message).toMatch(
      /^retired; revoking the tokens failed, they stay valid until they expire \(revocation at http:\/\/127\.0\.0\.1:\d+\/revoke failed \(refresh_token: HTTP 503 temporarily_unavailable; access_token: HTTP 503 temporarily_unavailable\)\); the slot home was moved to the trash on host /,
    );
    expect(server.revocations).toEqual(['refresh_token', 'access_token']);
    expect(await exists(join(rig.slotsDir, slotId))).toBe(false);
  });

  it('ends the login when the device code expires (expired_token)', async () => {
    const server = await scripted({ intervalSec: 1 });
    server.script(['pending', 'expired_token']);
    const slotId = uniqueName('oidc-expired');
    await rig.slots.provision({ slotId, provider: 'oidc-device', providerConfig: { issuer: server.issuer, clientId: 'device-client' }, host: rig.workers.hostName });
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active'], 20_000);
    expect(failed.lastOutcome?.message).toMatch(
      /^login failed: the device code expired before the operator approved it \(HTTP 400 expired_token\)\. Run `slotctl relogin .*` for a new login URL\.$/,
    );
    expect(server.polls).toHaveLength(2);
    expect(await exists(join(rig.slotsDir, slotId, DEVICE_LOGIN_FILE))).toBe(false);
    const history = await historyText(rig, slotWorkflowId(slotId));
    expect(history).toContain('WDJB-MJHT');
    for (const code of server.deviceCodes) expect(history).not.toContain(code);
    await rig.slots.retire(slotId);
  });

  const configurationErrors: Array<[string, DiscoveryMode | 'unreachable' | 'no-device-client', RegExp]> = [
    ['an unreachable issuer', 'unreachable', /login failed: the issuer http:\/\/127\.0\.0\.1:\d+ is unreachable \(discovery document http:\/\/127\.0\.0\.1:\d+\/\.well-known\/openid-configuration: connection refused\)/],
    ['a discovery document that is an HTML page', 'html', /login failed: the discovery document http:\/\/.*\/\.well-known\/openid-configuration is not a JSON object; check the issuer URL/],
    ['a missing discovery document', 'not-found', /login failed: the issuer has no discovery document: http:\/\/.*\/\.well-known\/openid-configuration answered HTTP 404; check the issuer URL/],
    ['a discovery document for another issuer', 'wrong-issuer', /login failed: the discovery document .* names another issuer \("https:\/\/login\.example\.com"\)/],
    ['a server without the device flow', 'no-device-endpoint', /login failed: the issuer http:\/\/.* does not offer the device flow \(RFC 8628\): its discovery document has no device_authorization_endpoint/],
    ['a client refused with unauthorized_client', 'no-device-client', /login failed: the OAuth server refused the device authorization request of client no-device-client \(HTTP 400 unauthorized_client: device flow not allowed\)/],
  ];
  it.each(configurationErrors)('explains %s in the slot\'s last outcome', async (_what, mode, message) => {
    let issuer: string;
    if (mode === 'unreachable') {
      const gone = await startScriptedDeviceServer();
      issuer = gone.issuer;
      await gone.close();
    } else {
      issuer = (await scripted({ discovery: mode === 'no-device-client' ? 'ok' : mode })).issuer;
    }
    const slotId = uniqueName('oidc-config');
    await rig.slots.provision({
      slotId,
      provider: 'oidc-device',
      providerConfig: { issuer, clientId: mode === 'no-device-client' ? 'no-device-client' : 'device-client' },
      host: rig.workers.hostName,
    });
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
    expect(failed.phase).toBe('needs-relogin');
    expect(failed.lastOutcome?.message).toMatch(message);
    // A server that is down may come back: log in again. A wrong configuration will not fix itself.
    if (mode === 'unreachable') expect(failed.lastOutcome?.message).toContain(`slotctl relogin ${slotId}`);
    else expect(failed.lastOutcome?.message).toMatch(/Fix the provider configuration \(retire the slot and provision it again/);
    await rig.slots.retire(slotId);
  });
});
