// The fixture CLIs under a real PTY, read through TerminalScreen, judged by what a
// person at the terminal would notice: the URL, the code, the verdict, the files, the exit.
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type IPty } from 'node-pty';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TerminalScreen } from '../../activities/screen';
import { extractUrl } from '../../providers/screen-url';
import type { ScreenSnapshot } from '../../providers/provider';

const BIN = fileURLToPath(new URL('../fixtures/bin/', import.meta.url));
const CLAUDE_AUTHORIZE = 'https://claude.com/cai/oauth/authorize';
const CODEX_DEVICE = 'https://auth.openai.com/codex/device';
const SIGTERM = 15;
const SIGKILL = 9;

interface Exit {
  readonly exitCode: number;
  readonly signal: number;
}

class Run {
  readonly answers: string[] = [];
  readonly screen: TerminalScreen;
  readonly pty: IPty;
  exitInfo: Exit | undefined;
  readonly exited: Promise<Exit>;
  private parsed: Promise<void> = Promise.resolve();

  constructor(cli: 'claude' | 'codex', args: string[], env: Record<string, string>) {
    this.screen = new TerminalScreen({
      cols: 200,
      rows: 50,
      respond: (answer) => {
        this.answers.push(answer);
        this.pty.write(answer);
      },
    });
    this.pty = spawn(join(BIN, cli), args, {
      name: 'xterm-256color',
      cols: 200,
      rows: 50,
      cwd: env.HOME,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', TERM: 'xterm-256color', FIXTURE_SPEED: '0.1', ...env },
    });
    this.pty.onData((data) => {
      this.parsed = this.parsed.then(() => this.screen.write(data));
    });
    this.exited = new Promise((resolve) => {
      this.pty.onExit(({ exitCode, signal }) => {
        void this.parsed.then(() => {
          this.exitInfo = { exitCode, signal: signal ?? 0 };
          resolve(this.exitInfo);
        });
      });
    });
  }

  snapshot(): ScreenSnapshot {
    return this.screen.snapshot();
  }

  /** Polls the screen as a person glancing at it would; fails the test with the screen when it never shows. */
  async waitFor<T>(read: (screen: ScreenSnapshot) => T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.parsed;
      const value = read(this.snapshot());
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline) throw new Error(`screen never showed what was expected:\n${this.snapshot().text}`);
      await sleep(20);
    }
  }

  waitForText(text: string | RegExp): Promise<true> {
    return this.waitFor((s) => (typeof text === 'string' ? s.text.includes(text) : text.test(s.text)) || undefined);
  }

  /** One keystroke at a time, as a person (or the driver) types. */
  async type(text: string): Promise<void> {
    for (const char of text) {
      this.pty.write(char);
      await sleep(2);
    }
  }

  async exit(timeoutMs = 10_000): Promise<Exit> {
    return Promise.race([this.exited, sleep(timeoutMs).then(() => Promise.reject(new Error(`no exit within ${timeoutMs} ms:\n${this.snapshot().text}`)))]);
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let root: string;
let runs: Run[] = [];
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'fx-'));
  mkdirSync(join(root, 'home'));
});
afterEach(async () => {
  for (const run of runs) {
    if (!run.exitInfo) run.pty.kill('SIGKILL');
    await Promise.race([run.exited, sleep(2000)]);
    run.screen.dispose();
  }
  runs = [];
  await rm(root, { recursive: true, force: true });
});

function start(cli: 'claude' | 'codex', args: string[], env: Record<string, string> = {}): Run {
  const run = new Run(cli, args, { HOME: join(root, 'home'), ...env });
  runs.push(run);
  return run;
}

const mode = (file: string) => statSync(file).mode & 0o777;

describe('fixture claude auth login', () => {
  const configDir = () => join(root, 'claude-cfg');
  const claude = (env: Record<string, string> = {}) => start('claude', ['auth', 'login'], { CLAUDE_CONFIG_DIR: configDir(), ...env });
  const readPrompt = (s: ScreenSnapshot) => (s.text.includes('Paste code here if prompted >') ? extractUrl(s, CLAUDE_AUTHORIZE) : undefined);

  it('shows an authorize URL with a fresh state, and a typed code#state logs in with a 0600 credential file', async () => {
    const inputLog = join(root, 'input.jsonl');
    const run = claude({ FIXTURE_CLAUDE_ACCESS_TOKEN: 'sk-ant-oat01-planted', FIXTURE_CLAUDE_REFRESH_TOKEN: 'sk-ant-ort01-planted', FIXTURE_INPUT_LOG: inputLog });
    const url = new URL(await run.waitFor(readPrompt));
    expect(url.searchParams.get('client_id')).toBe('9d1c250a-e61b-44d9-88ed-5944d1962f5e');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    const state = url.searchParams.get('state') ?? '';
    expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(run.snapshot().lines).toEqual(['Opening browser to sign in…', `If the browser didn't open, visit: ${url.href}`, 'Paste code here if prompted >']);

    // Files appear before any login: their presence proves nothing.
    expect(existsSync(join(configDir(), '.claude.json'))).toBe(true);
    expect(readdirSync(join(configDir(), 'backups'))).toHaveLength(1);
    expect(readdirSync(join(configDir(), 'telemetry'))[0]).toMatch(/^1p_failed_events\..+\.json$/);
    expect(existsSync(join(configDir(), '.credentials.json'))).toBe(false);

    const before = Date.now();
    await run.type(`valid-code#${state}\r`);
    expect(await run.exit()).toEqual({ exitCode: 0, signal: 0 });
    expect(run.snapshot().text).toContain('Login successful.');
    expect(run.snapshot().text).not.toContain('valid-code'); // the prompt does not echo

    const file = join(configDir(), '.credentials.json');
    expect(mode(file)).toBe(0o600);
    const { claudeAiOauth } = JSON.parse(readFileSync(file, 'utf8')) as { claudeAiOauth: Record<string, unknown> };
    expect(claudeAiOauth).toMatchObject({
      accessToken: 'sk-ant-oat01-planted',
      refreshToken: 'sk-ant-ort01-planted',
      scopes: ['user:inference', 'user:profile', 'user:sessions:claude_code'],
      subscriptionType: 'max',
    });
    expect(claudeAiOauth.expiresAt).toBeGreaterThan(before + 7 * 3600_000);

    const received = readFileSync(inputLog, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { t: number; data: string });
    expect(received.map((r) => r.data).join('')).toBe(`valid-code#${state}\r`);
    expect(received.every((r) => r.t >= before)).toBe(true);
  });

  it('answers a bogus code with the invalid-code text and then hangs until SIGTERM, which ends it with 143', async () => {
    const run = claude();
    await run.waitFor(readPrompt);
    await run.type('bogus-code-123\r');
    await run.waitForText('Invalid code. Please make sure the full code was copied.');
    await sleep(1000);
    expect(run.exitInfo).toBeUndefined();
    expect(run.snapshot().lines.at(-1)).toBe('Paste code here if prompted > Invalid code. Please make sure the full code was copied.');
    run.pty.kill('SIGTERM');
    expect(await run.exit()).toEqual({ exitCode: 143, signal: 0 });
    expect(existsSync(join(configDir(), '.credentials.json'))).toBe(false);
  });

  it('treats a wrong state, and the right code wrapped in paste markers, as invalid codes', async () => {
    for (const typed of ['valid-code#not-the-state\r', undefined]) {
      const run = claude();
      const state = new URL(await run.waitFor(readPrompt)).searchParams.get('state') ?? '';
      await run.type(typed ?? `\x1b[200~valid-code#${state}\x1b[201~\r`);
      await run.waitForText('Invalid code.');
      expect(run.exitInfo).toBeUndefined();
    }
  });

  it('offline, fails the token exchange with the real message and exits 1', async () => {
    const run = claude({ FIXTURE_CLAUDE_OFFLINE: '1' });
    const state = new URL(await run.waitFor(readPrompt)).searchParams.get('state') ?? '';
    await run.type(`valid-code#${state}\r`);
    expect((await run.exit()).exitCode).toBe(1);
    expect(run.snapshot().lines.at(-1)).toBe('Paste code here if prompted > Login failed: Request failed with status code 503');
    expect(existsSync(join(configDir(), '.credentials.json'))).toBe(false);
  });

  it('exit-early prints the offline first-run screen, after asking the terminal who it is, and exits 1 without a URL', async () => {
    const run = claude({ FIXTURE_CLAUDE_MODE: 'exit-early' });
    expect((await run.exit()).exitCode).toBe(1);
    expect(run.answers).toEqual(['\x1b[?1;2c']);
    const screen = run.snapshot();
    expect(screen.lines).toContain(' Unable to connect to Anthropic services');
    expect(screen.text).not.toContain('[?1;2c'); // the answer went to the CLI, not onto the screen
    expect(extractUrl(screen, CLAUDE_AUTHORIZE, { final: true })).toBeUndefined();
  });

  it('crash dies by a signal after showing the prompt', async () => {
    const run = claude({ FIXTURE_CLAUDE_MODE: 'crash' });
    await run.waitFor(readPrompt);
    expect((await run.exit()).signal).toBe(SIGKILL);
  });

  it('slow-prompt never shows the URL', async () => {
    const run = claude({ FIXTURE_CLAUDE_MODE: 'slow-prompt' });
    await run.waitForText('Opening browser to sign in…');
    await sleep(500);
    expect(extractUrl(run.snapshot(), CLAUDE_AUTHORIZE, { final: true })).toBeUndefined();
    expect(run.exitInfo).toBeUndefined();
  });

  it('auth status says logged out as JSON and exits 1; --version names Claude Code', async () => {
    const status = start('claude', ['auth', 'status'], { CLAUDE_CONFIG_DIR: configDir() });
    expect((await status.exit()).exitCode).toBe(1);
    expect(JSON.parse(status.snapshot().text)).toEqual({ loggedIn: false, authMethod: 'none', apiProvider: 'firstParty' });
    const version = start('claude', ['--version']);
    expect(await version.exit()).toEqual({ exitCode: 0, signal: 0 });
    expect(version.snapshot().text).toBe('2.1.197 (Claude Code)');
  });
});

describe('fixture codex login --device-auth', () => {
  const codexHome = () => join(root, 'codex-home');
  const codex = (env: Record<string, string> = {}, args = ['login', '--device-auth']) => {
    mkdirSync(codexHome(), { recursive: true });
    return start('codex', args, { CODEX_HOME: codexHome(), ...env });
  };
  const readPrompt = (s: ScreenSnapshot) => {
    const url = extractUrl(s, CODEX_DEVICE);
    const userCode = s.lines.map((line) => /^ {3}([A-Z0-9]{4}-[A-Z0-9]{5})$/.exec(line)?.[1]).find(Boolean);
    return url && userCode ? { url, userCode } : undefined;
  };

  it('offline, prints the real error and exits 1, leaving lock and log files but no auth.json', async () => {
    const run = codex();
    expect((await run.exit()).exitCode).toBe(1);
    expect(run.snapshot().lines.at(-1)).toBe('Error logging in: error sending request for url (https://auth.openai.com/api/accounts/deviceauth/usercode)');
    expect(existsSync(join(codexHome(), 'auth.json.lock'))).toBe(true);
    expect(existsSync(join(codexHome(), 'log', 'codex-login.log'))).toBe(true);
    expect(existsSync(join(codexHome(), 'auth.json'))).toBe(false);
  });

  it('online, shows the device URL and a one-time code; approving it writes a 0600 auth.json and exits 0', async () => {
    const approvals = join(root, 'approvals');
    mkdirSync(approvals);
    const run = codex({ FIXTURE_CODEX_APPROVALS: approvals, FIXTURE_CODEX_ACCESS_TOKEN: 'planted-access', FIXTURE_CODEX_REFRESH_TOKEN: 'rt_planted' });
    const { url, userCode } = await run.waitFor(readPrompt);
    expect(url).toBe(CODEX_DEVICE);
    expect(run.snapshot().text).toContain('2. Enter this one-time code (expires in 15 minutes)');
    await sleep(300);
    expect(run.exitInfo).toBeUndefined(); // still polling

    writeFileSync(join(approvals, userCode), 'approve\n');
    expect(await run.exit()).toEqual({ exitCode: 0, signal: 0 });
    expect(run.snapshot().lines.at(-1)).toBe('Successfully logged in');
    const file = join(codexHome(), 'auth.json');
    expect(mode(file)).toBe(0o600);
    const auth = JSON.parse(readFileSync(file, 'utf8')) as { auth_mode: string; tokens: Record<string, string>; last_refresh: string };
    expect(auth.auth_mode).toBe('chatgpt');
    expect(auth.tokens).toMatchObject({ access_token: 'planted-access', refresh_token: 'rt_planted' });
    expect(auth.tokens.id_token?.split('.')).toHaveLength(3);
    expect(Date.now() - Date.parse(auth.last_refresh)).toBeLessThan(60_000);
  });

  it('online, a denied code ends with an error and exit 1, and no auth.json', async () => {
    const approvals = join(root, 'approvals');
    mkdirSync(approvals);
    const run = codex({ FIXTURE_CODEX_APPROVALS: approvals, FIXTURE_CODEX_USER_CODE: 'ABCD-12345' });
    expect((await run.waitFor(readPrompt)).userCode).toBe('ABCD-12345');
    writeFileSync(join(approvals, 'ABCD-12345'), 'deny');
    expect((await run.exit()).exitCode).toBe(1);
    expect(run.snapshot().lines.at(-1)).toMatch(/^Error logging in: device auth failed with status 4\d\d /);
    expect(existsSync(join(codexHome(), 'auth.json'))).toBe(false);
  });

  it('online, an unapproved code expires with the real text and exit 1', async () => {
    const run = codex({ FIXTURE_CODEX_APPROVALS: join(root, 'nobody-approves'), FIXTURE_CODEX_CODE_TTL_MS: '400' });
    await run.waitFor(readPrompt);
    expect((await run.exit()).exitCode).toBe(1);
    expect(run.snapshot().lines.at(-1)).toBe('Error logging in: device auth timed out after 15 minutes');
  });

  it('dies by SIGTERM while polling, as the real CLI does', async () => {
    const run = codex({ FIXTURE_CODEX_APPROVALS: join(root, 'nobody-approves') });
    await run.waitFor(readPrompt);
    run.pty.kill('SIGTERM');
    expect((await run.exit()).signal).toBe(SIGTERM);
  });

  it('refuses a CODEX_HOME that does not exist, as the real CLI does', async () => {
    const run = start('codex', ['login', '--device-auth'], { CODEX_HOME: join(root, 'missing') });
    expect((await run.exit()).exitCode).toBe(1);
    expect(run.snapshot().text).toContain('CODEX_HOME points to');
    expect(existsSync(join(root, 'missing'))).toBe(false);
  });

  it('login status says Not logged in and exits 1; --version prints codex-cli 0.169.0', async () => {
    const status = codex({}, ['login', 'status']);
    expect((await status.exit()).exitCode).toBe(1);
    expect(status.snapshot().lines.at(-1)).toBe('Not logged in');
    const version = codex({}, ['--version']);
    expect((await version.exit()).exitCode).toBe(0);
    expect(version.snapshot().lines.at(-1)).toBe('codex-cli 0.169.0');
  });
});
