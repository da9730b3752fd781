// Memory of one live login CLI, the figure behind the per-process cap on live logins
// (activities/login-capacity.ts): the pinned real `claude auth login` and `codex login`
// run under a PTY until they show their login URL, then the resident and proportional
// memory of the CLI's whole process tree is read from /proc. Prints one JSON document.
// Run: eval "$(test/real-clis.sh)"; node --import tsx bench/login-cli-memory.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node-pty';
import { descendantsOf, memoryOf } from './process-stats';

const RUNS = Number(process.env.BENCH_LOGIN_CLI_RUNS ?? 3);
const SETTLE_MS = Number(process.env.BENCH_LOGIN_CLI_SETTLE_MS ?? 3000);
const URL_TIMEOUT_MS = 60_000;

interface Cli {
  readonly provider: string;
  readonly bin: string | undefined;
  readonly args: readonly string[];
  readonly env: (home: string) => Record<string, string>;
}

const CLIS: readonly Cli[] = [
  {
    provider: 'claude',
    bin: process.env.REAL_CLAUDE_BIN,
    args: ['auth', 'login'],
    env: (home) => ({ HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude'), DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1' }),
  },
  { provider: 'codex', bin: process.env.REAL_CODEX_BIN, args: ['login'], env: (home) => ({ HOME: home, CODEX_HOME: home }) },
];

interface Sample {
  readonly processes: number;
  readonly rssKiB: number;
  readonly pssKiB: number;
  readonly secondsToUrl: number;
}

async function measureOnce(cli: Cli, bin: string): Promise<Sample> {
  const home = await mkdtemp(join(tmpdir(), `login-cli-memory-${cli.provider}-`));
  const started = Date.now();
  const pty = spawn(bin, [...cli.args], { name: 'xterm-256color', cols: 200, rows: 50, cwd: home, env: { PATH: process.env.PATH ?? '', TERM: 'xterm-256color', ...cli.env(home) } });
  let screen = '';
  let exited = false;
  pty.onData((data) => (screen += data));
  pty.onExit(() => (exited = true));
  try {
    while (!/https?:\/\/\S{20,}/.test(screen)) {
      if (exited) throw new Error(`${cli.provider} exited before showing a URL: ${screen.slice(-500)}`);
      if (Date.now() - started > URL_TIMEOUT_MS) throw new Error(`${cli.provider} showed no URL within ${URL_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const secondsToUrl = (Date.now() - started) / 1000;
    // Idle at the prompt, as a login waiting for its operator is.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const pids = [pty.pid, ...(await descendantsOf(pty.pid))];
    let rssKiB = 0;
    let pssKiB = 0;
    for (const pid of pids) {
      const m = await memoryOf(pid);
      rssKiB += m?.rssKiB ?? 0;
      pssKiB += m?.pssKiB ?? m?.rssKiB ?? 0;
    }
    return { processes: pids.length, rssKiB, pssKiB, secondsToUrl };
  } finally {
    try {
      process.kill(-pty.pid, 'SIGKILL');
    } catch {
      pty.kill('SIGKILL');
    }
    await rm(home, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const results: Record<string, unknown> = {};
for (const cli of CLIS) {
  if (cli.bin === undefined) {
    results[cli.provider] = { skipped: 'the pinned CLI is not installed: eval "$(test/real-clis.sh)"' };
    continue;
  }
  const samples: Sample[] = [];
  for (let i = 0; i < RUNS; i++) samples.push(await measureOnce(cli, cli.bin));
  results[cli.provider] = {
    runs: RUNS,
    processes: median(samples.map((s) => s.processes)),
    rssMiB: { median: Math.round(median(samples.map((s) => s.rssKiB)) / 1024), max: Math.round(Math.max(...samples.map((s) => s.rssKiB)) / 1024) },
    pssMiB: { median: Math.round(median(samples.map((s) => s.pssKiB)) / 1024), max: Math.round(Math.max(...samples.map((s) => s.pssKiB)) / 1024) },
    secondsToUrl: median(samples.map((s) => s.secondsToUrl)),
  };
}
process.stdout.write(`${JSON.stringify({ benchmark: 'login-cli-memory', settleMs: SETTLE_MS, results }, null, 2)}\n`);
process.exit(0);
