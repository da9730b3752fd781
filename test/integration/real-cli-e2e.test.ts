// The pinned real CLIs end to end: slots log in, refresh and serve agents through the
// provider stand-in (test/peers/provider-standin.ts), a TLS server for the providers'
// own hosts behind a CONNECT proxy. The worker (a process of its own) and the CLIs it runs
// get HTTPS_PROXY and the run's CA, nothing else: no URL of theirs or ours is overridden.
// The stand-in is strict: a token request that does not look like the pinned CLI's is
// answered 429, as Claude's endpoint does. Our requests (refresh, probe, revocation) are
// compared with the real CLI's, both recorded by the stand-in in the same run.
// Runs when REAL_CLAUDE_BIN / REAL_CODEX_BIN are set (test/real-clis.sh); with CI set, a
// missing CLI fails instead of skipping.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { EXIT, slotctl } from '../../cli/slotctl';
import { refreshNowSignal } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { startAgentTokenService, type AgentTokenService } from '../../host/agent-token-service';
import { createLogger } from '../../workers/logger';
import { devServerClient, uniqueName } from '../harness';
import { recordClaudeLogin, recordClaudeLogout, recordClaudeRefresh, recordCodexLogin, recordCodexRefresh, runCli, shapeOf } from '../peers/cli-recording';
import { startProviderStandIn, type Grant, type ProviderStandIn, type RecordedRequest } from '../peers/provider-standin';
import { expectNoProcesses, stateOf, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { spawnWorkerProcess, stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const REAL_CLAUDE_BIN = process.env.REAL_CLAUDE_BIN ?? '';
const REAL_CODEX_BIN = process.env.REAL_CODEX_BIN ?? '';
const CI = Boolean(process.env.CI);
const missing = (variable: string): Error => new Error(`${variable} is not set (CI must have the pinned CLI): run \`eval "$(test/real-clis.sh)"\` first`);

async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const bearerOf = (r: RecordedRequest | undefined): string => /^Bearer (\S+)$/.exec(r?.headers.authorization ?? '')?.[1] ?? '';
const isTokenRequest = (r: RecordedRequest, grantType: string): boolean => r.method === 'POST' && /\/(v1\/)?oauth\/token$/.test(r.path) && r.body.includes(grantType);

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * How a host behind an operator's proxy reaches the providers: the stand-in's proxy and CA
 * (HTTPS_PROXY, NODE_EXTRA_CA_CERTS for Node and claude, SSL_CERT_FILE for codex). Plus
 * SLOTS_PROXY_CONNECT=name: our CONNECT names the host, as the CLIs' do, and the proxy
 * resolves it. This sandbox (like many CI runners) resolves no public name, and on a host
 * that does, the default CONNECT to the address our DNS gave would lead to the real
 * provider, which the stand-in's proxy refuses to tunnel. No endpoint may be on loopback
 * (SLOTS_ALLOWED_ENDPOINT_HOSTS empty): every provider request of ours has to take the proxy.
 */
const viaStandIn = (standIn: ProviderStandIn): Record<string, string> => ({
  ...standIn.cliEnv,
  SLOTS_PROXY_CONNECT: 'name',
  SLOTS_ALLOWED_ENDPOINT_HOSTS: '',
});

/** A slot host as the tests use it: a real worker process and a client on its queues. */
interface HostRig {
  readonly slotsDir: string;
  readonly hostName: string;
  readonly sharedTaskQueue: string;
  readonly slots: SlotClient;
  readonly worker: WorkerProcess;
  close(): Promise<void>;
}

/**
 * The worker as its own process (`workers/worker.ts`), started with the stand-in's proxy and
 * CA as an operator would start it: Node reads NODE_EXTRA_CA_CERTS only at start. The login
 * CLIs it runs inherit the same proxy and CA variables.
 */
async function startProxiedHost(standIn: ProviderStandIn, env: Record<string, string>): Promise<HostRig> {
  const slotsDir = await mkdtemp(join(tmpdir(), 'e2e-slots-'));
  const hostName = uniqueName('e2e-host');
  const sharedTaskQueue = uniqueName('e2e-shared');
  const worker = spawnWorkerProcess({
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    SLOT_HOST: hostName,
    SLOTS_TASK_QUEUE: sharedTaskQueue,
    SLOTS_DIR: slotsDir,
    LOG_LEVEL: 'warn',
    // The codex test runs its own token service in this process.
    AGENT_TOKEN_SERVICE: 'off',
    ...viaStandIn(standIn),
    ...env,
  });
  const { client, connection } = await devServerClient();
  const close = async (): Promise<void> => {
    await stopWorkerProcess(worker, 'SIGTERM');
    await connection.close();
    await rm(slotsDir, { recursive: true, force: true });
  };
  try {
    await untilPolling(worker, client, hostName, 60_000);
  } catch (err) {
    await close();
    throw err;
  }
  return { slotsDir, hostName, sharedTaskQueue, slots: new SlotClient(client, sharedTaskQueue), worker, close };
}

/**
 * Our refresh of a credential file, sent by the project's own code in a fresh process with
 * the same environment as the worker's: to the provider's own endpoint, through the proxy.
 * Answers the status only (the answer holds tokens).
 */
async function ourRefresh(standIn: ProviderStandIn, provider: string, credentialFile: string): Promise<unknown> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/proxy|^NODE_EXTRA_CA_CERTS$|^SSL_CERT_FILE$|^SLOTS_|_URL$/i.test(k)));
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/peers/outbound-call.ts', JSON.stringify({ kind: 'refresh', provider, credentialFile })], {
    cwd: PROJECT_ROOT,
    env: { ...inherited, ...viaStandIn(standIn) },
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null');
}

/** The slot's workflow history, payloads decoded, for secret searches. */
async function historyText(rig: HostRig, slotId: string): Promise<string> {
  const history = await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory();
  return JSON.stringify(history, (key, v: unknown) =>
    v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : key === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v,
  );
}

/** Refreshes the slot now and waits until the stand-in rotated the grant and the slot holds the new token. */
async function refreshSlot(rig: HostRig, slotId: string, grant: Grant, credentialFile: string, refreshTokenOf: (file: unknown) => string): Promise<void> {
  const rotations = grant.rotations;
  await rig.slots.refreshNow(slotId);
  await eventually(async () => {
    if (grant.rotations !== rotations + 1) return false;
    const onDisk = refreshTokenOf(JSON.parse(await readFile(credentialFile, 'utf8')));
    return onDisk === grant.refreshToken && (await rig.slots.status(slotId)).phase === 'active';
  }, `refresh #${rotations + 1} of ${slotId} (grant alive: ${grant.alive}); the worker said:\n${rig.worker.output().slice(-3000)}`);
}

describe.skipIf(!REAL_CLAUDE_BIN && !CI)('the real claude end to end through the provider stand-in (REAL_CLAUDE_BIN)', () => {
  let standIn: ProviderStandIn;
  let rig: HostRig;

  beforeAll(async () => {
    if (!REAL_CLAUDE_BIN) throw missing('REAL_CLAUDE_BIN');
    standIn = await startProviderStandIn({ strict: true });
    rig = await startProxiedHost(standIn, { CLAUDE_BIN: REAL_CLAUDE_BIN });
  }, 90_000);
  afterAll(async () => {
    await rig?.close();
    await standIn?.close();
  });

  it('logs in with `claude auth login` under our PTY, refreshes, serves a `claude -p` agent across two refreshes, and retires revoking as `claude auth logout` does', async () => {
    const slotId = uniqueName('e2e-claude');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const url = new URL(waiting.prompt.url);
    expect(`${url.origin}${url.pathname}`).toBe('https://claude.com/cai/oauth/authorize');

    // Signed in at the stand-in for that URL's challenge and state, as a browser would; the operator
    // submits the code with `slotctl submit-code` (on stdin, as a terminal would give it).
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t), readStdin: async () => `${standIn.signIn(waiting.prompt.url)}\n`, stdinIsTTY: false };
    const env = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.sharedTaskQueue };
    expect(await slotctl(['submit-code', slotId], io, env), out.join('\n')).toBe(EXIT.ok);
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin', 'degraded'], 60_000);
    expect(active.phase, JSON.stringify(active.lastOutcome)).toBe('active');
    expect(active.account).toBe('max subscription');
    // The real CLI redeemed the code through the proxy, with the URL's verifier and state.
    const exchange = standIn.requestsTo('platform.claude.com', '/v1/oauth/token').find((r) => isTokenRequest(r, 'authorization_code'));
    expect(exchange?.status).toBe(200);
    expect(standIn.connects).toContain('platform.claude.com:443');
    const grant = standIn.grants.at(-1) as Grant;
    const file = join(rig.slotsDir, slotId, '.claude', '.credentials.json');
    const refreshTokenOf = (f: unknown): string => (f as { claudeAiOauth: { refreshToken: string } }).claudeAiOauth.refreshToken;
    expect(refreshTokenOf(JSON.parse(await readFile(file, 'utf8')))).toBe(grant.refreshToken);
    await expectNoProcesses(rig.slotsDir, slotId);

    // Our refresh, accepted by the strict stand-in (a request unlike the CLI's would get a 429),
    // through the proxy: the CLI is gone, the worker alone opened the tunnel, by name.
    const before = standIn.requests.length;
    const tunnels = standIn.connects.length;
    await refreshSlot(rig, slotId, grant, file, refreshTokenOf);
    const ours = standIn.requests.slice(before).filter((r) => isTokenRequest(r, 'refresh_token'));
    expect(ours.map((r) => r.status)).toEqual([200]);
    expect(standIn.connects.slice(tunnels)).toEqual(['platform.claude.com:443']);

    // A real agent with the slot's plan: its placeholder token is refused, it re-reads the agent directory's copy.
    const plan = await rig.slots.agentPlan(slotId, { slotsDir: rig.slotsDir });
    const agentHome = await mkdtemp(join(tmpdir(), 'e2e-claude-agent-'));
    try {
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: agentHome, ...plan.env, ...standIn.cliEnv, DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1' };
      const ask = async (): Promise<RecordedRequest | undefined> => {
        const run = await runCli(REAL_CLAUDE_BIN, ['-p', 'ping', '--max-turns', '1'], env, standIn, { cwd: agentHome });
        expect(run.exitCode, run.output).toBe(0);
        expect(run.output).toContain(standIn.modelReply);
        const messages = run.requests.filter((r) => r.host === 'api.anthropic.com' && r.path.startsWith('/v1/messages'));
        expect(messages.at(-1)?.status).toBe(200);
        expect(bearerOf(messages.at(-1))).toBe(grant.accessToken);
        // The agent never refreshes: it holds no refresh token.
        expect(run.requests.filter((r) => r.path === '/v1/oauth/token')).toEqual([]);
        return messages.at(-1);
      };
      const cliMessage = await ask();

      // Our probe (slotctl probe) sends the request the CLI sends to the Messages API for an OAuth token.
      const probed = standIn.requests.length;
      const probeTunnels = standIn.connects.length;
      expect((await rig.slots.probe(slotId)).outcome).toBe('ok');
      expect(standIn.connects.slice(probeTunnels)).toEqual(['api.anthropic.com:443']);
      const probe = standIn.requests.slice(probed).find((r) => r.host === 'api.anthropic.com' && r.path.startsWith('/v1/messages'));
      const [ours, cli] = [shapeOf(probe as RecordedRequest), shapeOf(cliMessage as RecordedRequest)];
      expect({ ...ours, bodyFields: [], headers: { ...ours.headers, 'anthropic-beta': '' } }).toEqual({ ...cli, bodyFields: [], headers: { ...cli.headers, 'anthropic-beta': '' } });
      // The CLI adds feature betas; the probe's are among them. Our body is a subset of the CLI's fields.
      for (const beta of (ours.headers['anthropic-beta'] ?? '').split(',')) expect(cli.headers['anthropic-beta']?.split(',')).toContain(beta);
      for (const field of ours.bodyFields) expect(cli.bodyFields).toContain(field);
      await refreshSlot(rig, slotId, grant, file, refreshTokenOf);
      await ask();
      await refreshSlot(rig, slotId, grant, file, refreshTokenOf);
      await ask();
      expect(grant.rotations).toBe(3);
      expect(grant.alive).toBe(true);
      // Nothing the agents started outlives them.
      await expectNoProcesses(dirname(agentHome), basename(agentHome));
    } finally {
      await rm(agentHome, { recursive: true, force: true });
    }

    // Retiring revokes the grant as the real `claude auth logout` does, recorded in this run after a real login.
    const cliLogin = await recordClaudeLogin(REAL_CLAUDE_BIN, standIn);
    try {
      const cliGrant = standIn.grants.at(-1) as Grant;
      const logout = await recordClaudeLogout(REAL_CLAUDE_BIN, standIn, cliLogin);
      expect(logout.run.output).toContain('Successfully logged out');
      expect(logout.revoke?.status, logout.run.output).toBe(200);
      expect(cliGrant.alive).toBe(false);

      const retiring = standIn.requests.length;
      const retireTunnels = standIn.connects.length;
      await rig.slots.retire(slotId);
      const retired = await waitForPhase(rig.slots, slotId, ['retired'], 60_000);
      expect(retired.lastOutcome?.message).toMatch(/^retired; the refresh token was revoked at https:\/\/platform\.claude\.com \(the access token lapses when it expires\)/);
      const revocations = standIn.requests.slice(retiring).filter((r) => r.path === '/v1/oauth/token/revoke');
      expect(revocations.map((r) => r.status)).toEqual([200]);
      expect(standIn.connects.slice(retireTunnels)).toEqual(['platform.claude.com:443']);
      expect(shapeOf(revocations[0] as RecordedRequest)).toEqual(shapeOf(logout.revoke as RecordedRequest));
      // The stand-in ended the slot's grant: its tokens, the agents' access token included, are dead.
      expect(grant.alive).toBe(false);
      expect(standIn.isCurrentAccessToken(grant.accessToken)).toBe(false);
    } finally {
      await cliLogin.cleanup();
    }
  }, 300_000);

  it('a code the stand-in refuses: the real CLI says so and exits, the slot starts a fresh login with a fresh URL', async () => {
    const slotId = uniqueName('e2e-claude-refused');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    standIn.refuseNextCode();
    await rig.slots.submitCode(slotId, standIn.signIn(first.prompt.url));
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    expect(second.lastError).toMatch(/^Login failed: Request failed with status code 400/);
    expect(stateOf(second.prompt.url)).not.toBe(stateOf(first.prompt.url));
    // The fresh URL signs in.
    await rig.slots.submitCode(slotId, standIn.signIn(second.prompt.url));
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin', 'degraded'], 60_000);
    expect(active.phase, JSON.stringify(active.lastOutcome)).toBe('active');
    await expectNoProcesses(rig.slotsDir, slotId);
  }, 120_000);

  it('`claude setup-token` to its real success screen: the token is stored, the slot active, the token in no history or status', async () => {
    const slotId = uniqueName('e2e-setup-token');
    await rig.slots.provision({ slotId, provider: 'claude-setup-token', host: rig.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const submitted = await rig.slots.submitCode(slotId, standIn.signIn(waiting.prompt.url));
    expect(submitted.answer).toBe('succeeded');
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'], 60_000);
    expect(active.phase, JSON.stringify(active.lastOutcome)).toBe('active');
    expect(active.account).toBe('long-lived token');
    const grant = standIn.grants.at(-1) as Grant;
    expect(grant.longLived).toBe(true);
    const home = join(rig.slotsDir, slotId);
    const stored = await readFile(join(home, '.claude', 'setup-token.json'), 'utf8');
    expect(JSON.parse(stored)).toMatchObject({ oauthToken: grant.accessToken, source: 'setup-token' });
    await expectNoProcesses(rig.slotsDir, slotId);

    const places = {
      history: await historyText(rig, slotId),
      status: JSON.stringify(await rig.slots.status(slotId)),
      statusFile: await readFile(join(home, 'slot-status.json'), 'utf8'),
    };
    // The search finds what it looks for: the history holds the operator's code.
    expect(places.history).toContain(stateOf(waiting.prompt.url));
    for (const [place, text] of Object.entries(places)) expect(text.includes(grant.accessToken), `${place} holds the token`).toBe(false);
  }, 120_000);

  it("our refresh request is the pinned CLI's own, both recorded by the stand-in in this run", async () => {
    const login = await recordClaudeLogin(REAL_CLAUDE_BIN, standIn);
    try {
      expect(login.verdictScreen).toMatch(/Login successful\./);
      const { refresh: cli, run } = await recordClaudeRefresh(REAL_CLAUDE_BIN, standIn, login);
      expect(cli?.status, run.output).toBe(200);

      const before = standIn.requests.length;
      expect(await ourRefresh(standIn, 'claude', join(login.home, '.claude', '.credentials.json'))).toEqual({ ok: true, status: 200 });
      const ours = standIn.requests.slice(before).find((r) => isTokenRequest(r, 'refresh_token'));
      expect(shapeOf(ours as RecordedRequest)).toEqual(shapeOf(cli as RecordedRequest));
    } finally {
      await login.cleanup();
    }
  }, 120_000);
});

describe.skipIf(!REAL_CODEX_BIN && !CI)('the real codex end to end through the provider stand-in (REAL_CODEX_BIN)', () => {
  let standIn: ProviderStandIn;
  let rig: HostRig;
  let service: AgentTokenService;

  beforeAll(async () => {
    if (!REAL_CODEX_BIN) throw missing('REAL_CODEX_BIN');
    standIn = await startProviderStandIn({ strict: true });
    rig = await startProxiedHost(standIn, { CODEX_BIN: REAL_CODEX_BIN });
    service = await startAgentTokenService({
      slotsDir: rig.slotsDir,
      port: 0,
      log: createLogger('error', new Writable({ write: (_c: Buffer, _e, done) => done() })),
      requestRefresh: async (slotId) => {
        await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).signal(refreshNowSignal);
      },
    });
  }, 90_000);
  afterAll(async () => {
    await service?.close();
    await rig?.close();
    await standIn?.close();
  });

  it('logs in with `codex login --device-auth`, approved at the stand-in; refreshes; serves a `codex exec` agent across two refreshes', async () => {
    const slotId = uniqueName('e2e-codex');
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(waiting.prompt.url).toBe('https://auth.openai.com/codex/device');
    expect(waiting.prompt.userCode).toMatch(/^[A-Z0-9]{4,5}-[A-Z0-9]{4,6}$/);
    standIn.approveDevice(waiting.prompt.userCode as string);
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin', 'degraded'], 60_000);
    expect(active.phase, JSON.stringify(active.lastOutcome)).toBe('active');
    // The real CLI polled while the code was pending (403), then got the approval and redeemed it.
    const device = [...standIn.deviceCodes.values()].find((d) => d.userCode === waiting.prompt.userCode);
    expect(device?.state).toBe('redeemed');
    expect(device?.polls).toBeGreaterThanOrEqual(2);
    expect(standIn.requestsTo('auth.openai.com', '/api/accounts/deviceauth/token').some((r) => r.status === 403)).toBe(true);
    const grant = standIn.grants.at(-1) as Grant;
    const file = join(rig.slotsDir, slotId, '.codex', 'auth.json');
    const refreshTokenOf = (f: unknown): string => (f as { tokens: { refresh_token: string } }).tokens.refresh_token;
    expect(refreshTokenOf(JSON.parse(await readFile(file, 'utf8')))).toBe(grant.refreshToken);
    await expectNoProcesses(rig.slotsDir, slotId);

    const before = standIn.requests.length;
    const tunnels = standIn.connects.length;
    await refreshSlot(rig, slotId, grant, file, refreshTokenOf);
    expect(standIn.requests.slice(before).filter((r) => isTokenRequest(r, 'refresh_token')).map((r) => r.status)).toEqual([200]);
    // The worker's refresh took the proxy, by name (no CLI runs meanwhile).
    expect(standIn.connects.slice(tunnels)).toEqual(['auth.openai.com:443']);

    const plan = await rig.slots.agentPlan(slotId, { slotsDir: rig.slotsDir, tokenServiceUrl: service.url });
    const agentHome = await mkdtemp(join(tmpdir(), 'e2e-codex-agent-'));
    try {
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: agentHome, ...plan.env, ...standIn.cliEnv };
      // codex 0.169 first asks chatgpt.com where the account's workspace lives (an answer the stand-in
      // cannot give); naming the same backend as the model provider skips that question. Same host, same proxy.
      const backend = ['-c', 'model_provider=chatgpt', '-c', 'model_providers.chatgpt={name="ChatGPT",base_url="https://chatgpt.com/backend-api/codex",wire_api="responses",requires_openai_auth=true}'];
      const ask = async (): Promise<void> => {
        const run = await runCli(REAL_CODEX_BIN, ['exec', '--skip-git-repo-check', ...backend, 'ping'], env, standIn, { cwd: agentHome });
        expect(run.exitCode, run.output).toBe(0);
        expect(run.output).toContain(standIn.modelReply);
        const calls = run.requests.filter((r) => r.host === 'chatgpt.com' && r.path === '/backend-api/codex/responses');
        expect(calls.at(-1)?.status).toBe(200);
        expect(bearerOf(calls.at(-1))).toBe(grant.accessToken);
        // Nothing the agent sent carried the slot's refresh token.
        expect(run.requests.filter((r) => r.body.includes(grant.refreshToken))).toEqual([]);
      };
      await ask();
      await refreshSlot(rig, slotId, grant, file, refreshTokenOf);
      await ask();
      await refreshSlot(rig, slotId, grant, file, refreshTokenOf);
      await ask();
      expect(grant.rotations).toBe(3);
      expect(grant.alive).toBe(true);
      await expectNoProcesses(dirname(agentHome), basename(agentHome));
    } finally {
      await rm(agentHome, { recursive: true, force: true });
    }
  }, 300_000);

  it('a device code denied at the stand-in: the real CLI fails and the slot needs a new login', async () => {
    const slotId = uniqueName('e2e-codex-deny');
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    standIn.denyDevice(waiting.prompt.userCode as string);
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active'], 60_000);
    expect(failed.phase).toBe('needs-relogin');
    expect(failed.lastOutcome?.message).toMatch(/Error logging in: device auth failed with status 400/);
    await expectNoProcesses(rig.slotsDir, slotId);
  }, 90_000);

  it('a device code that expires before approval: the real CLI gives up and the slot needs a new login', async () => {
    const slotId = uniqueName('e2e-codex-expired');
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    standIn.expireDevice(waiting.prompt.userCode as string);
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active'], 60_000);
    expect(failed.phase).toBe('needs-relogin');
    expect(failed.lastOutcome?.message).toMatch(/Error logging in: device auth failed with status 410/);
    await expectNoProcesses(rig.slotsDir, slotId);
  }, 90_000);

  it("our refresh request is the pinned CLI's own, both recorded by the stand-in in this run", async () => {
    const login = await recordCodexLogin(REAL_CODEX_BIN, standIn);
    try {
      expect(login.verdictScreen).toMatch(/Successfully logged in/);
      const { refresh: cli, run } = await recordCodexRefresh(REAL_CODEX_BIN, standIn, login);
      expect(cli?.status, run.output).toBe(200);

      const before = standIn.requests.length;
      expect(await ourRefresh(standIn, 'codex', join(login.home, '.codex', 'auth.json'))).toEqual({ ok: true, status: 200 });
      const ours = standIn.requests.slice(before).find((r) => isTokenRequest(r, 'refresh_token'));
      expect(shapeOf(ours as RecordedRequest)).toEqual(shapeOf(cli as RecordedRequest));
    } finally {
      await login.cleanup();
    }
  }, 120_000);
});
