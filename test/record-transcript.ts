// Records a real CLI's login under a PTY (cols 200, rows 50) through the provider stand-in,
// signed in at the stand-in, as test/fixtures/transcripts/<name>/events.jsonl:
//   tsx test/record-transcript.ts claude-setup-token-success "$REAL_CLAUDE_BIN" setup-token
// The tokens in it are the stand-in's, made up for the run.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node-pty';
import { TerminalScreen } from '../activities/screen';
import { claudeSetupToken } from '../providers/claude-setup-token';
import type { PtyLoginSpec } from '../providers/provider';
import { startProviderStandIn } from './peers/provider-standin';

const [name, bin, ...args] = process.argv.slice(2);
if (!name || !bin || args.length === 0) {
  process.stderr.write('usage: tsx test/record-transcript.ts <name> <claude binary> setup-token\n');
  process.exit(2);
}

const standIn = await startProviderStandIn();
const home = await mkdtemp(join(tmpdir(), 'transcript-'));
await mkdir(join(home, '.claude'), { mode: 0o700 });
const events: string[] = [];
const started = Date.now();
const at = (): number => Math.round(Date.now() - started) / 1000;
const log = (type: string, data: unknown): void => void events.push(JSON.stringify({ t: at(), type, data }));
const login = claudeSetupToken.login as PtyLoginSpec;

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TERM: 'xterm-256color', CLAUDE_CONFIG_DIR: join(home, '.claude'), DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1', BROWSER: 'true', ...standIn.cliEnv };
const pty = spawn(bin, args, { name: 'xterm-256color', cols: 200, rows: 50, cwd: home, env });
log('spawn', { pid: pty.pid, cmd: 'claude', args, root: '$SANDBOX' });
const screen = new TerminalScreen({ cols: 200, rows: 50, respond: (answer) => (log('auto-reply', answer), pty.write(answer)) });
let exited = false;
pty.onData((data) => {
  log('out', data);
  void screen.write(data);
});
pty.onExit(({ exitCode }) => {
  exited = true;
  log('exit', { exitCode });
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
async function until<T>(read: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = read();
    if (value !== undefined) return value;
    await sleep(50);
  }
  throw new Error(`no ${what} within ${ms} ms:\n${screen.snapshot().text}`);
}

try {
  const prompt = await until(() => login.readPrompt(screen.snapshot()), 'login URL');
  const code = standIn.signIn(prompt.url);
  log('in', code);
  pty.write(code);
  await sleep(300);
  log('in', '\r');
  pty.write('\r');
  await until(() => login.readVerdict(screen.snapshot(), 0), 'verdict');
  await until(() => (exited ? true : undefined), 'exit', 10_000).catch(() => undefined);
  const dir = fileURLToPath(new URL(`./fixtures/transcripts/${name}/`, import.meta.url));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'events.jsonl'), `${events.join('\n')}\n`);
  process.stdout.write(`${screen.snapshot().text}\n\nwritten ${dir}events.jsonl\n`);
} finally {
  if (!exited) pty.kill('SIGKILL');
  screen.dispose();
  await standIn.close();
  await rm(home, { recursive: true, force: true });
}
