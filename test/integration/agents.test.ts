// Agents on a slot outlive its refreshes without ever holding the refresh token: the
// REAL `codex` (app-server, one process, three turns) and the REAL `claude` (one
// stream-json session, three turns) started from the slot's agent plan, against a
// model API stand-in that accepts only the slot's current access token, while the slot
// workflow (real dev server) refreshes twice against a real rotating token endpoint.
// Also an oidc-device agent that reads its token file and asks the token service.
// The real-CLI parts run when REAL_CODEX_BIN / REAL_CLAUDE_BIN are set (test/real-clis.sh);
// with CI set, a missing CLI fails them instead of skipping.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../workers/logger';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXIT, slotctl } from '../../cli/slotctl';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { SlotClient } from '../../client/slot-client';
import { refreshNowSignal } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import type { AgentPlan } from '../../providers/agent-plan';
import { startAgentTokenService, type AgentTokenService } from '../../host/agent-token-service';
import { devServerClient, startWorkers, uniqueName, type RunningWorkers } from '../harness';
import { startModelApi, type ModelApi } from '../peers/model-api';
import { startTokenServer, type IssuedTokens, type TokenServer } from '../peers/token-server';

const REAL_CODEX_BIN = process.env.REAL_CODEX_BIN ?? '';
const REAL_CLAUDE_BIN = process.env.REAL_CLAUDE_BIN ?? '';
const CI = Boolean(process.env.CI);
const CODEX_CLIENT = 'app_EMoamEEZ73f0CkXaXp7hrann';
const CLAUDE_CLIENT = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
/** What OpenAI's id tokens say about the ChatGPT account; codex refuses tokens of another account. */
const CODEX_ID_CLAIMS = { email: 'agent@example.com', 'https://api.openai.com/auth': { chatgpt_plan_type: 'plus', chatgpt_account_id: 'acct-1', chatgpt_user_id: 'user-1' } };

let codexServer: TokenServer;
let claudeServer: TokenServer;
let oidcServer: TokenServer;
let slotsDir: string;
let workers: RunningWorkers;
let slots: SlotClient;
let closeClient: () => Promise<void>;
let service: AgentTokenService;
/** Slot ids the token service asked to refresh. */
const refreshAsked: string[] = [];
/** Access tokens the stand-in accepts: each slot's current one. */
const current = new Set<string>();
let api: ModelApi;
const cleanups: Array<() => Promise<void>> = [];
let serviceLog = '';
const tag = (t: string | undefined): string => {
  try {
    return String((JSON.parse(Buffer.from((t ?? '').split('.')[1] ?? '', 'base64url').toString()) as { jti?: string }).jti).slice(0, 12);
  } catch {
    return (t ?? '').slice(0, 12);
  }
};

const jwt = (claims: Record<string, unknown>): string =>
  `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

beforeAll(async () => {
  codexServer = await startTokenServer({ defaultClientId: CODEX_CLIENT, errorStyle: 'openai', idToken: true, jwtAccessTokens: true, idTokenClaims: CODEX_ID_CLAIMS, accessTtlSec: 8 * 3600 });
  claudeServer = await startTokenServer({ defaultClientId: CLAUDE_CLIENT, accessTtlSec: 8 * 3600 });
  oidcServer = await startTokenServer({ defaultClientId: 'agents', accessTtlSec: 3600 });
  api = await startModelApi((token) => current.has(token));
  slotsDir = await mkdtemp(join(tmpdir(), 'slots-agents-'));
  const { client, connection } = await devServerClient();
  closeClient = () => connection.close();
  // As the worker runs it: refreshes go through the slot workflow, never the service itself.
  service = await startAgentTokenService({
    slotsDir,
    port: 0,
    log: createLogger('debug', new Writable({ write: (c: Buffer, _e, done) => { serviceLog += c.toString(); done(); } })),
    requestRefresh: async (slotId) => {
      refreshAsked.push(slotId);
      await client.workflow.getHandle(slotWorkflowId(slotId)).signal(refreshNowSignal);
    },
  });
  workers = await startWorkers({
    slotsDir,
    env: {
      ...process.env,
      CODEX_TOKEN_URL: codexServer.codexTokenUrl,
      CLAUDE_TOKEN_URL: claudeServer.claudeTokenUrl,
      SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1',
      // These slots adopt their credentials: no login CLI may run.
      CODEX_BIN: '/nonexistent/codex',
      CLAUDE_BIN: '/nonexistent/claude',
    },
    agentTokenServiceUrl: service.url,
  });
  slots = new SlotClient(client, workers.sharedTaskQueue);
}, 60_000);

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await workers?.stop();
  await service?.close();
  await closeClient?.();
  await api?.close();
  await codexServer?.close();
  await claudeServer?.close();
  await oidcServer?.close();
  if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
});

/** Adopts a credential the provider's CLI would have written, and waits until the slot is active. */
async function adoptSlot(provider: 'codex' | 'claude' | 'oidc-device', file: string, content: unknown, providerConfig?: unknown): Promise<string> {
  const slotId = uniqueName(`agent-${provider}`);
  await writeSecretFileAtomic(await ensureSlotHome(slotsDir, slotId), file, JSON.stringify(content));
  await slots.provision({ slotId, provider, host: workers.hostName, adoptExisting: true, ...(providerConfig ? { providerConfig } : {}) });
  cleanups.push(() => slots.retire(slotId));
  await until(slotId, (s) => s.phase === 'active' && s.lastOutcome?.kind === 'refresh-succeeded');
  return slotId;
}

async function until(slotId: string, check: (s: Awaited<ReturnType<SlotClient['status']>>) => boolean, timeoutMs = 30_000) {
  const { status, reached } = await slots.waitFor(slotId, check, { timeoutMs, pollMs: 100 });
  if (!reached) throw new Error(`slot ${slotId}: condition not reached, status ${JSON.stringify(status)}`);
  return status;
}

/** An operator's (or the token service's) refreshNow, waited for: the slot rotated once more. */
async function refreshSlot(slotId: string, grantOf: () => { accessToken: string; rotations: number }): Promise<void> {
  const old = grantOf().accessToken;
  const rotations = grantOf().rotations;
  const before = (await slots.status(slotId)).refreshes;
  await slots.refreshNow(slotId);
  await until(slotId, (s) => s.phase === 'active' && s.refreshes > before);
  expect(grantOf().rotations).toBe(rotations + 1);
  // The stand-in now refuses the old access token, as a provider does once it is replaced.
  current.delete(old);
  current.add(grantOf().accessToken);
}

/** Every file an agent can read: its directory in the slot, its HOME, and its process environment. */
async function agentView(dirs: readonly string[], pid: number | undefined): Promise<Array<{ name: string; bytes: Buffer }>> {
  const seen: Array<{ name: string; bytes: Buffer }> = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) seen.push({ name: path, bytes: await readFile(path).catch(() => Buffer.alloc(0)) });
    }
  };
  for (const dir of dirs) await walk(dir);
  if (pid !== undefined) seen.push({ name: `/proc/${pid}/environ`, bytes: await readFile(`/proc/${pid}/environ`).catch(() => Buffer.alloc(0)) });
  return seen;
}

/** The refresh tokens of a grant, every one it ever had: the spent ones from the requests, and the live one. */
const refreshTokensOf = (server: TokenServer, grantId: string, first: IssuedTokens): string[] => [
  ...new Set([first.refreshToken, ...server.requests.flatMap((r) => (r.refreshToken ? [r.refreshToken] : [])), server.grant(grantId)?.refreshToken ?? '']),
].filter(Boolean);

async function expectNoRefreshTokenInView(slotId: string, view: Array<{ name: string; bytes: Buffer }>, tokens: readonly string[]): Promise<void> {
  // The search can find what it looks for: the slot's own credential (outside the view) holds the live one.
  const own = await readdir(join(slotsDir, slotId), { recursive: true });
  const slotFiles = await Promise.all(own.map((f) => readFile(join(slotsDir, slotId, String(f))).catch(() => Buffer.alloc(0))));
  expect(slotFiles.some((bytes) => tokens.some((t) => bytes.includes(t)))).toBe(true);
  expect(view.length).toBeGreaterThan(2);
  const leaks = view.filter((f) => tokens.some((t) => f.bytes.includes(t))).map((f) => f.name);
  expect(leaks).toEqual([]);
}

/** A line-delimited JSON child process. */
function jsonLines(child: ChildProcessWithoutNullStreams) {
  const messages: unknown[] = [];
  const waiters: Array<{ match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }> = [];
  let buffer = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      let m: Record<string, unknown>;
      try {
        m = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      messages.push(m);
      for (const w of [...waiters]) {
        if (w.match(m)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  });
  return {
    send: (m: unknown) => child.stdin.write(`${JSON.stringify(m)}\n`),
    next: (match: (m: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      }),
  };
}

/** Starts an agent the way a runtime would: only PATH, its own HOME, and the plan's env (plus test settings). */
async function startAgent(command: string, args: string[], plan: AgentPlan, extra: Record<string, string>) {
  const home = await mkdtemp(join(tmpdir(), 'agent-home-'));
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, ...plan.env, ...extra },
    cwd: home,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await rm(home, { recursive: true, force: true });
  });
  return { child, home, io: jsonLines(child) };
}


/** The model API stand-in through codex's own provider settings (what a proxy or a real base URL would be). */
async function startCodex(plan: AgentPlan) {
  const provider = `model_providers.standin={name="standin",base_url="${api.url}/v1",wire_api="responses",requires_openai_auth=true}`;
  return startAgent(REAL_CODEX_BIN, ['app-server', '-c', 'model_provider=standin', '-c', provider], plan, {});
}

/** One codex app-server thread; `turn()` sends "ping" and returns the answer and the tokens the stand-in accepted. */
async function codexSession(agent: Awaited<ReturnType<typeof startAgent>>) {
  const { io } = agent;
  let id = 0;
  const call = async (method: string, params: unknown): Promise<Record<string, unknown>> => {
    const n = ++id;
    io.send({ id: n, method, params });
    const answer = await io.next((m) => m.id === n, `answer to ${method}`);
    if (answer.error) throw new Error(`${method}: ${JSON.stringify(answer.error)}`);
    return answer.result as Record<string, unknown>;
  };
  await call('initialize', { clientInfo: { name: 'agents-test', title: null, version: '1' }, capabilities: null });
  io.send({ method: 'initialized' });
  const thread = (await call('thread/start', { cwd: agent.home, approvalPolicy: 'never' })) as { thread: { id: string } };

  const turn = async (): Promise<{ text: string; tokens: Set<string> }> => {
    const from = api.modelCalls().length;
    const completed = io.next((m) => m.method === 'turn/completed', 'turn/completed');
    await call('turn/start', { threadId: thread.thread.id, input: [{ type: 'text', text: 'ping', text_elements: [] }] });
    const done = (await completed) as { params: { turn: { status: string; error?: unknown; items: Array<{ type: string; text?: string }> } } };
    const calls = api.modelCalls().slice(from);
    expect(calls.at(-1)?.status, JSON.stringify({ calls: calls.map((c) => [c.status, tag(c.token)]), current: [...current].map(tag), error: done.params.turn.error })).toBe(200);
    return { text: done.params.turn.items.filter((i) => i.type === 'agentMessage').map((i) => i.text).join(''), tokens: new Set(calls.filter((c) => c.status === 200).map((c) => c.token ?? '')) };
  };

  return { turn };
}

describe.skipIf(!REAL_CODEX_BIN && !CI)('a real codex agent on a slot (REAL_CODEX_BIN)', () => {
  it('keeps getting answers across two slot refreshes, and never holds or presents a refresh token', async () => {
    if (!REAL_CODEX_BIN) throw new Error('REAL_CODEX_BIN is not set (CI): run `eval "$(test/real-clis.sh)"` first');
    const issued = codexServer.issue({ clientId: CODEX_CLIENT });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const slotId = await adoptSlot('codex', '.codex/auth.json', {
      auth_mode: 'chatgpt',
      OPENAI_API_KEY: null,
      tokens: {
        id_token: jwt({ ...CODEX_ID_CLAIMS, sub: issued.grantId, exp }),
        access_token: issued.accessToken,
        refresh_token: issued.refreshToken,
        account_id: 'acct-1',
      },
      last_refresh: new Date().toISOString(),
    });
    current.add(issued.accessToken);
    const grant = () => codexServer.grant(issued.grantId)!;

    const plan = await slots.agentPlan(slotId, { slotsDir, tokenServiceUrl: service.url });
    const agentDir = join(slotsDir, slotId, 'agent');
    expect(plan.env).toEqual({ CODEX_HOME: join(agentDir, 'codex'), CODEX_REFRESH_TOKEN_URL_OVERRIDE: `${service.url}/slots/${slotId}/oauth/token` });
    expect(plan.mounts).toEqual([expect.objectContaining({ hostPath: agentDir, agentPath: agentDir })]);

    const agent = await startCodex(plan);
    const { turn } = await codexSession(agent);
    const first = await turn();
    expect(first.text).toBe('pong');
    expect(first.tokens).toEqual(new Set([issued.accessToken]));
    // What a runtime that copies the agent files (instead of mounting them) would hold: soon stale.
    const copiedHome = await mkdtemp(join(tmpdir(), 'agent-codex-copy-'));
    cleanups.push(() => rm(copiedHome, { recursive: true, force: true }));
    await cp(join(agentDir, 'codex', 'auth.json'), join(copiedHome, 'auth.json'));

    await refreshSlot(slotId, grant);
    const second = await turn();
    expect(second.text).toBe('pong');
    expect(second.tokens).toEqual(new Set([grant().accessToken]));

    await refreshSlot(slotId, grant);
    const third = await turn();
    expect(third.text).toBe('pong');
    expect(third.tokens).toEqual(new Set([grant().accessToken]));
    // The same process all along.
    expect(agent.child.exitCode).toBeNull();

    // The copy is two refreshes old: codex's own refresh goes to the token service, which answers with the slot's current token.
    const logged = serviceLog.length;
    const copied = await startCodex({ ...plan, env: { ...plan.env, CODEX_HOME: copiedHome } });
    const fromCopy = await (await codexSession(copied)).turn();
    expect(fromCopy.text).toBe('pong');
    expect(fromCopy.tokens).toEqual(new Set([grant().accessToken]));
    expect(serviceLog.slice(logged)).toMatch(/"status":200,"reason":"current tokens"/);

    // Two refreshes, each refresh token presented once, only by the slot (the server saw no placeholder).
    const presented = codexServer.requests.filter((r) => r.examined);
    expect(presented).toHaveLength(2);
    expect(presented.every((r) => r.status === 200 && r.outcome === 'rotated')).toBe(true);
    expect(codexServer.presentedTwice()).toEqual([]);
    expect(grant().alive).toBe(true);
    const tokens = refreshTokensOf(codexServer, issued.grantId, issued);
    expect(tokens).toHaveLength(3);
    await expectNoRefreshTokenInView(slotId, await agentView([agentDir, agent.home], agent.child.pid), tokens);
    await expectNoRefreshTokenInView(slotId, await agentView([copiedHome, copied.home], copied.child.pid), tokens);
  }, 180_000);
});

describe.skipIf(!REAL_CLAUDE_BIN && !CI)('a real claude agent on a slot (REAL_CLAUDE_BIN)', () => {
  it('keeps getting answers across two slot refreshes in one session, and never holds a refresh token', async () => {
    if (!REAL_CLAUDE_BIN) throw new Error('REAL_CLAUDE_BIN is not set (CI): run `eval "$(test/real-clis.sh)"` first');
    const issued = claudeServer.issue({ clientId: CLAUDE_CLIENT });
    const slotId = await adoptSlot('claude', '.claude/.credentials.json', {
      claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + issued.expiresIn * 1000, scopes: ['user:inference', 'user:profile'], subscriptionType: 'max' },
    });
    current.add(issued.accessToken);
    const grant = () => claudeServer.grant(issued.grantId)!;

    const plan = await slots.agentPlan(slotId, { slotsDir });
    const agentDir = join(slotsDir, slotId, 'agent');
    expect(plan.env).toMatchObject({ CLAUDE_CONFIG_DIR: join(agentDir, 'claude'), CLAUDE_CODE_OAUTH_TOKEN: 'slot-agent-placeholder' });
    expect(plan.placeholders).toEqual(['CLAUDE_CODE_OAUTH_TOKEN']);

    const agent = await startAgent(
      REAL_CLAUDE_BIN,
      ['-p', '--input-format', 'stream-json', '--output-format', 'stream-json', '--verbose'],
      plan,
      { ANTHROPIC_BASE_URL: api.url, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1' },
    );
    const turn = async (): Promise<{ result: Record<string, unknown>; tokens: Set<string> }> => {
      const from = api.modelCalls().length;
      const result = agent.io.next((m) => m.type === 'result', 'result');
      agent.io.send({ type: 'user', message: { role: 'user', content: 'ping' } });
      const answer = await result;
      const calls = api.modelCalls().slice(from);
      expect(calls.at(-1)?.status).toBe(200);
      return { result: answer, tokens: new Set(calls.filter((c) => c.status === 200).map((c) => c.token ?? '')) };
    };

    // Started with the placeholder: the first 401 sends it to the agent directory's token.
    const first = await turn();
    expect(first.result).toMatchObject({ is_error: false, result: 'pong' });
    expect(first.tokens).toEqual(new Set([issued.accessToken]));

    await refreshSlot(slotId, grant);
    const second = await turn();
    expect(second.result).toMatchObject({ is_error: false, result: 'pong' });
    expect(second.tokens).toEqual(new Set([grant().accessToken]));

    await refreshSlot(slotId, grant);
    const third = await turn();
    expect(third.result).toMatchObject({ is_error: false, result: 'pong' });
    expect(third.tokens).toEqual(new Set([grant().accessToken]));
    expect(agent.child.exitCode).toBeNull();

    const presented = claudeServer.requests.filter((r) => r.examined);
    expect(presented).toHaveLength(2);
    expect(presented.every((r) => r.status === 200 && r.outcome === 'rotated')).toBe(true);
    expect(claudeServer.presentedTwice()).toEqual([]);
    await expectNoRefreshTokenInView(slotId, await agentView([agentDir, agent.home], agent.child.pid), refreshTokensOf(claudeServer, issued.grantId, issued));
  }, 180_000);
});

/**
 * An oidc-device agent: one long-lived process that, for every line on stdin, reads its
 * token file afresh and calls the resource server with it, then asks the token service
 * (its agent secret as the bearer) and calls with that token too. It prints the statuses.
 */
const OIDC_AGENT = `
const { readFileSync } = require('node:fs');
const call = (token) => fetch(process.env.RESOURCE_URL, { method: 'POST', headers: { authorization: 'Bearer ' + token } }).then((r) => r.status);
require('node:readline').createInterface({ input: process.stdin }).on('line', async () => {
  const fromFile = await call(readFileSync(process.env.OAUTH_ACCESS_TOKEN_FILE, 'utf8'));
  const secret = readFileSync(process.env.OAUTH_AGENT_SECRET_FILE, 'utf8').trim();
  const asked = await fetch(process.env.OAUTH_ACCESS_TOKEN_URL, { headers: { authorization: 'Bearer ' + secret } });
  const fromService = asked.ok ? await call(await asked.text()) : asked.status;
  console.log(JSON.stringify({ fromFile, fromService }));
});
`;

describe('an oidc-device agent on a slot', () => {
  it('reads its token file and asks the token service, and keeps working across two refreshes without a refresh token', async () => {
    const issued = oidcServer.issue({ clientId: 'agents' });
    const slotId = await adoptSlot(
      'oidc-device',
      '.oidc/tokens.json',
      { access_token: issued.accessToken, refresh_token: issued.refreshToken, token_type: 'Bearer', expires_at: Math.floor(Date.now() / 1000) + 3600, last_refresh: new Date().toISOString() },
      { endpoints: { device_authorization_endpoint: `${oidcServer.url}/device`, token_endpoint: `${oidcServer.url}/oauth/token` }, clientId: 'agents' },
    );
    current.add(issued.accessToken);
    const grant = () => oidcServer.grant(issued.grantId)!;

    // The configuration comes from the slot workflow's input: the plan needs no file of the host.
    const plan = await slots.agentPlan(slotId, { slotsDir, tokenServiceUrl: service.url });
    const agentDir = join(slotsDir, slotId, 'agent');
    expect(plan.env).toEqual({
      OAUTH_ACCESS_TOKEN_FILE: join(agentDir, 'oidc', 'access_token'),
      OAUTH_ACCESS_TOKEN_URL: `${service.url}/slots/${slotId}/access-token`,
      OAUTH_AGENT_SECRET_FILE: join(agentDir, 'secret'),
    });
    // The operator's way to the same plan: slotctl, one JSON document, and an env file for a runtime.
    const envFile = join(slotsDir, `${slotId}.env`);
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), readStdin: async () => '', stdinIsTTY: false };
    const ctlEnv = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: workers.sharedTaskQueue, SLOTS_DIR: slotsDir, AGENT_TOKEN_SERVICE_URL: service.url };
    expect(await slotctl(['agent-plan', slotId, '--json', '--write-env', envFile], io, ctlEnv), err.join('\n')).toBe(EXIT.ok);
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0] ?? '')).toEqual(JSON.parse(JSON.stringify(plan)));
    expect((await stat(envFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(envFile, 'utf8')).toContain(`OAUTH_ACCESS_TOKEN_FILE=${plan.env.OAUTH_ACCESS_TOKEN_FILE}\n`);
    out.length = 0;
    expect(await slotctl(['agent-plan', slotId, '--mount-at', '/agent'], io, ctlEnv)).toBe(EXIT.ok);
    expect(out.join('\n')).toContain(`mount     ${agentDir} -> /agent (read-write)`);
    expect(out.join('\n')).toContain('env       OAUTH_ACCESS_TOKEN_FILE=/agent/oidc/access_token');
    expect(await slotctl(['agent-plan', slotId, '--mount-at', 'relative'], io, ctlEnv)).toBe(EXIT.usage);
    expect(err.at(-1)).toMatch(/--mount-at relative: must be an absolute path/);
    expect(await slotctl(['agent-plan', 'no-such-slot-x'], io, ctlEnv)).toBe(EXIT.notFound);

    const agent = await startAgent(process.execPath, ['-e', OIDC_AGENT], plan, { RESOURCE_URL: `${api.url}/v1/responses` });
    const ask = async (): Promise<Record<string, unknown>> => {
      const answer = agent.io.next((m) => 'fromFile' in m, 'an answer from the oidc agent', 20_000);
      agent.child.stdin.write('go\n');
      return answer;
    };

    expect(await ask()).toEqual({ fromFile: 200, fromService: 200 });
    await refreshSlot(slotId, grant);
    expect(await ask()).toEqual({ fromFile: 200, fromService: 200 });
    await refreshSlot(slotId, grant);
    expect(await ask()).toEqual({ fromFile: 200, fromService: 200 });
    expect(agent.child.exitCode).toBeNull();

    expect(oidcServer.requests.filter((r) => r.examined)).toHaveLength(2);
    expect(oidcServer.presentedTwice()).toEqual([]);
    await expectNoRefreshTokenInView(slotId, await agentView([agentDir, agent.home], agent.child.pid), refreshTokensOf(oidcServer, issued.grantId, issued));
  }, 60_000);
});
