// The real CLIs driven through the provider stand-in, outside any slot: a login under a
// PTY (as an operator would answer it), then the CLI's own refresh. What they print and
// send is recorded, for the request-conformance test and `npm run check:providers`.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoginSession } from '../../activities/login-session';
import { claude } from '../../providers/claude';
import { claudeSetupToken } from '../../providers/claude-setup-token';
import { codex } from '../../providers/codex';
import type { PtyLoginSpec, ScreenSnapshot } from '../../providers/provider';
import type { ProviderStandIn, RecordedRequest } from './provider-standin';

export interface LoginRecording {
  /** The CLI's config home (CLAUDE_CONFIG_DIR / CODEX_HOME); `cleanup` removes it. */
  readonly home: string;
  /** The URL (and user code) the provider's screen reader found. */
  readonly prompt?: { readonly url: string; readonly userCode?: string };
  /** The screen when the prompt was read, and when the CLI had answered. */
  readonly promptScreen: string;
  readonly verdictScreen: string;
  readonly exitCode?: number;
  /** What the CLI sent during the login, in order. */
  readonly requests: readonly RecordedRequest[];
  cleanup(): Promise<void>;
}

const pty = (login: PtyLoginSpec): PtyLoginSpec => login;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The environment a CLI gets: its config home, the stand-in's proxy and CA, nothing of ours. */
function cliEnv(standIn: ProviderStandIn, home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TERM: 'xterm-256color',
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    CODEX_HOME: join(home, '.codex'),
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    BROWSER: 'true',
    ...standIn.cliEnv,
  };
}

async function newHome(): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'cli-recording-'));
  await mkdir(join(home, '.claude'), { mode: 0o700 });
  await mkdir(join(home, '.codex'), { mode: 0o700 });
  return home;
}

/**
 * `claude auth login` (or `setup-token`) signed in at the stand-in with the URL it printed.
 * `refuse`: the stand-in refuses the code, as for a wrong paste.
 */
export async function recordClaudeLogin(bin: string, standIn: ProviderStandIn, opts: { setupToken?: boolean; refuse?: boolean; timeoutMs?: number } = {}): Promise<LoginRecording> {
  const home = await newHome();
  const from = standIn.requests.length;
  const login = pty((opts.setupToken ? claudeSetupToken : claude).login as PtyLoginSpec);
  const session = LoginSession.start('recording', 'recording', 'claude', { command: bin, args: opts.setupToken ? ['setup-token'] : ['auth', 'login'], env: cliEnv(standIn, home), dirs: [] }, home);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  try {
    const prompt = await session.waitFor((screen) => login.readPrompt(screen), timeoutMs);
    const promptScreen = session.snapshot().text;
    if (!prompt) throw new Error(`claude ${opts.setupToken ? 'setup-token' : 'auth login'} showed no login URL within ${timeoutMs} ms:\n${promptScreen}`);
    if (opts.refuse) standIn.refuseNextCode();
    session.type(standIn.signIn(prompt.url));
    await sleep(100);
    session.type('\r');
    const typedAt = session.snapshot().lines.length - 1;
    const verdict = await session.waitFor((screen: ScreenSnapshot) => login.readVerdict(screen, opts.setupToken ? 0 : typedAt), timeoutMs);
    // The CLI's last words after the verdict line (setup-token draws the token and its notes).
    await Promise.race([session.exited, sleep(1500)]);
    const verdictScreen = session.snapshot().text;
    if (!verdict) throw new Error(`claude gave no verdict within ${timeoutMs} ms:\n${verdictScreen}`);
    return { home, prompt, promptScreen, verdictScreen, exitCode: session.exit?.exitCode, requests: standIn.requests.slice(from), cleanup: () => rm(home, { recursive: true, force: true }) };
  } catch (err) {
    await rm(home, { recursive: true, force: true });
    throw err;
  } finally {
    await session.kill();
  }
}

/** `codex login --device-auth`, approved (or denied) at the stand-in with the user code it printed. */
export async function recordCodexLogin(bin: string, standIn: ProviderStandIn, opts: { deny?: boolean; timeoutMs?: number } = {}): Promise<LoginRecording> {
  const home = await newHome();
  const from = standIn.requests.length;
  const login = pty(codex.login as PtyLoginSpec);
  const session = LoginSession.start('recording', 'recording', 'codex', { command: bin, args: ['login', '--device-auth'], env: cliEnv(standIn, home), dirs: [] }, home);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  try {
    const prompt = await session.waitFor((screen) => login.readPrompt(screen), timeoutMs);
    const promptScreen = session.snapshot().text;
    if (!prompt?.userCode) throw new Error(`codex showed no device URL and user code within ${timeoutMs} ms:\n${promptScreen}`);
    if (opts.deny) standIn.denyDevice(prompt.userCode);
    else standIn.approveDevice(prompt.userCode);
    const verdict = await session.waitFor((screen) => login.readVerdict(screen, 0), timeoutMs);
    await Promise.race([session.exited, sleep(1000)]);
    const verdictScreen = session.snapshot().text;
    if (!verdict) throw new Error(`codex gave no verdict within ${timeoutMs} ms:\n${verdictScreen}`);
    return { home, prompt, promptScreen, verdictScreen, exitCode: session.exit?.exitCode, requests: standIn.requests.slice(from), cleanup: () => rm(home, { recursive: true, force: true }) };
  } catch (err) {
    await rm(home, { recursive: true, force: true });
    throw err;
  } finally {
    await session.kill();
  }
}

export interface AgentRun {
  readonly exitCode: number | null;
  readonly output: string;
  /** What the CLI sent meanwhile. */
  readonly requests: readonly RecordedRequest[];
}

/**
 * Runs a CLI to completion (stdin closed), in its own process group, killed whole when
 * `until` holds for what it sent or the time is up.
 */
export async function runCli(
  bin: string,
  args: readonly string[],
  env: Record<string, string>,
  standIn: ProviderStandIn,
  opts: { cwd: string; timeoutMs?: number; until?: (sent: readonly RecordedRequest[]) => boolean },
): Promise<AgentRun> {
  const from = standIn.requests.length;
  const child = spawn(bin, [...args], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-50_000)));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-50_000)));
  const killGroup = (): void => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  };
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const deadline = Date.now() + timeoutMs;
  let done: number | null | 'timeout' | 'until' = 'timeout';
  while (Date.now() < deadline) {
    const settled = await Promise.race([exited, sleep(100).then(() => undefined)]);
    if (settled !== undefined) {
      done = settled;
      break;
    }
    if (opts.until?.(standIn.requests.slice(from))) {
      done = 'until';
      break;
    }
  }
  killGroup();
  if (done === 'timeout') throw new Error(`${bin} ${args.join(' ')} did not finish within ${timeoutMs} ms; it said:\n${output.slice(-3000)}`);
  return { exitCode: done === 'until' ? null : done, output, requests: standIn.requests.slice(from) };
}

/** The CLI's own refresh: `claude -p` with the login's credential made to look expired. */
export async function recordClaudeRefresh(bin: string, standIn: ProviderStandIn, login: LoginRecording): Promise<{ refresh?: RecordedRequest; run: AgentRun }> {
  const file = join(login.home, '.claude', '.credentials.json');
  const credential = JSON.parse(await readFile(file, 'utf8')) as { claudeAiOauth: { expiresAt: number } };
  credential.claudeAiOauth.expiresAt = Date.now() - 60_000;
  await writeFile(file, JSON.stringify(credential), { mode: 0o600 });
  const run = await runCli(bin, ['-p', 'ping', '--max-turns', '1'], cliEnv(standIn, login.home), standIn, { cwd: login.home });
  return { refresh: run.requests.find((r) => r.host === 'platform.claude.com' && r.path === '/v1/oauth/token'), run };
}

/** The CLI's own revocation: `claude auth logout` in the login's config home (2.1.197 revokes the refresh token). */
export async function recordClaudeLogout(bin: string, standIn: ProviderStandIn, login: LoginRecording): Promise<{ revoke?: RecordedRequest; run: AgentRun }> {
  const run = await runCli(bin, ['auth', 'logout'], cliEnv(standIn, login.home), standIn, { cwd: login.home, timeoutMs: 60_000 });
  return { revoke: run.requests.find((r) => r.host === 'platform.claude.com' && r.path === '/v1/oauth/token/revoke'), run };
}

/** The CLI's own refresh: `codex exec` with the login's access token about to expire (stopped once it refreshed). */
export async function recordCodexRefresh(bin: string, standIn: ProviderStandIn, login: LoginRecording): Promise<{ refresh?: RecordedRequest; run: AgentRun }> {
  const file = join(login.home, '.codex', 'auth.json');
  const auth = JSON.parse(await readFile(file, 'utf8')) as { tokens: { access_token: string } };
  // The CLI reads only the claims: an access token whose `exp` is now is one it refreshes before use.
  const [header, payload, signature] = auth.tokens.access_token.split('.');
  const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  auth.tokens.access_token = [header, Buffer.from(JSON.stringify({ ...claims, exp: Math.floor(Date.now() / 1000) })).toString('base64url'), signature].join('.');
  await writeFile(file, JSON.stringify(auth), { mode: 0o600 });
  const isRefresh = (r: RecordedRequest): boolean => r.host === 'auth.openai.com' && r.path === '/oauth/token' && r.body.includes('"refresh_token"');
  // Stopped once the refresh was sent AND the CLI kept its answer: killed in between, the file
  // would still hold the spent refresh token (a loaded machine showed it).
  const spent = (auth as { tokens: { refresh_token?: string } }).tokens.refresh_token;
  const kept = (): boolean => {
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { tokens?: { refresh_token?: string } }).tokens?.refresh_token !== spent;
    } catch {
      return false;
    }
  };
  const run = await runCli(bin, ['exec', '--skip-git-repo-check', 'ping'], cliEnv(standIn, login.home), standIn, { cwd: login.home, until: (sent) => sent.some(isRefresh) && kept() });
  return { refresh: run.requests.find(isRefresh), run };
}

/** What identifies a request, for comparing ours with a CLI's: no tokens, no lengths. */
export interface RequestShape {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly contentType: string;
  readonly bodyFields: readonly string[];
  /** Body fields whose values are constants of the CLI (not tokens or codes). */
  readonly constants: Readonly<Record<string, string>>;
  /** The identifying headers, as sent. */
  readonly headers: Readonly<Record<string, string>>;
}

const IDENTIFYING_HEADERS = ['user-agent', 'originator', 'accept', 'anthropic-beta', 'anthropic-version', 'x-app'];
const CONSTANT_FIELDS = ['grant_type', 'client_id', 'scope', 'refresh_reason', 'redirect_uri', 'token_type_hint'];

export function shapeOf(request: RecordedRequest): RequestShape {
  const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  let body: Record<string, unknown> = {};
  try {
    body = contentType === 'application/json' ? (JSON.parse(request.body) as Record<string, unknown>) : Object.fromEntries(new URLSearchParams(request.body));
  } catch {
    body = {};
  }
  return {
    method: request.method,
    host: request.host,
    path: request.path.split('?')[0] ?? '',
    contentType,
    bodyFields: Object.keys(body).sort(),
    constants: Object.fromEntries(CONSTANT_FIELDS.filter((k) => typeof body[k] === 'string').map((k) => [k, String(body[k])])),
    // A User-Agent's product token (`codex_exec/0.169.0`); the comment after it names the host's OS and terminal.
    headers: Object.fromEntries(
      IDENTIFYING_HEADERS.filter((h) => request.headers[h] !== undefined).map((h) => [h, h === 'user-agent' ? (request.headers[h] ?? '').split(' ')[0] ?? '' : (request.headers[h] as string)]),
    ),
  };
}
