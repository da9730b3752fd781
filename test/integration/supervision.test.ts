// `npm start` (workers/main.ts, as a real process) looks after the dev server it
// started: killed with SIGKILL in the middle of a login, the server comes back on the
// same SQLite file and port, the worker reconnects and the login goes on to `active`;
// a server that cannot come back ends `npm start` with exit code 1 and the reason.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotClient } from '../../cli/slot-client';
import { obtainTemporalCli, PROJECT_ROOT } from '../../workers/temporal-binaries';
import { uniqueName } from '../harness';
import { claudeCode, FIXTURE_BIN, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { stopWorkerProcess, untilPolling, type WorkerProcess } from '../worker-process';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** `npm start` as the operator runs it, in a process group of its own (killed whole at the end). */
function npmStart(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    cwd: PROJECT_ROOT,
    // Metrics off: npm start's default port (9464) is one port per machine, and tests run side by side.
    env: { ...process.env, METRICS_PORT: 'off', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  return { child, output: () => output };
}

async function until<T>(what: string, probe: () => T | undefined, proc: WorkerProcess, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; npm start said:\n${proc.output().slice(-4000)}`);
    await sleep(100);
  }
}

const exitOf = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

describe('npm start supervises the dev server', () => {
  let temporal: string | undefined;
  const dirs: string[] = [];
  const started: WorkerProcess[] = [];

  beforeAll(async () => {
    const cli = await obtainTemporalCli();
    if (cli.type === 'existing-path') temporal = cli.path;
    else if (process.env.CI) throw new Error('CI: a local temporal CLI is needed to supervise the dev server');
  });

  afterAll(async () => {
    for (const proc of started) await stopWorkerProcess(proc, 'SIGKILL');
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  async function start(extra: Record<string, string> = {}): Promise<{ proc: WorkerProcess; address: string; host: string; dataDir: string }> {
    const dataDir = await mkdtemp(join(tmpdir(), 'npm-start-'));
    dirs.push(dataDir);
    const port = await freePort();
    const host = uniqueName('sup');
    const proc = npmStart({
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(port),
      TEMPORAL_UI_PORT: String(await freePort()),
      SLOT_HOST: host,
      TEMPORAL_CLI: temporal ?? '',
      CLAUDE_BIN: join(FIXTURE_BIN, 'claude'),
      FIXTURE_SPEED: '0.2',
      LOGIN_ENV_PASSTHROUGH: 'FIXTURE_*',
      LOG_LEVEL: 'warn',
      ...extra,
    });
    started.push(proc);
    await until('banner', () => (/Temporal server\s+127\.0\.0\.1:\d+\s+\(pid \d+/.test(proc.output()) ? true : undefined), proc, 120_000);
    return { proc, address: `127.0.0.1:${port}`, host, dataDir };
  }

  const serverPid = (proc: WorkerProcess, nth: number): number | undefined => {
    const pids = [...proc.output().matchAll(/\(pid (\d+)/g)].map((m) => Number(m[1]));
    return pids[nth];
  };

  it('restarts a dev server killed mid-login; the slot awaits the operator again and becomes active', async (ctx) => {
    if (!temporal) return ctx.skip();
    const { proc, address, host, dataDir } = await start();
    let slots = await SlotClient.connect({ address });
    try {
      await untilPolling(proc, slots.client, host);
      const slotId = uniqueName('kept');
      await slots.provision({ slotId, provider: 'claude', host });
      const before = await waitForPrompt(slots, slotId);

      const first = serverPid(proc, 0);
      expect(first).toBeGreaterThan(0);
      process.kill(first as number, 'SIGKILL');
      await until('restart line', () => (/\[npm start\] Temporal dev server ended \(killed by SIGKILL.*restarting in/.test(proc.output()) ? true : undefined), proc);
      await until('server back', () => (/serves 127\.0\.0\.1:\d+ again, state from .*temporal\.sqlite/.test(proc.output()) ? true : undefined), proc, 90_000);
      expect(proc.output()).toContain(join(dataDir, 'temporal.sqlite'));
      await slots.close();
      slots = await SlotClient.connect({ address });

      // The slot survived in the SQLite file, and the worker (the same npm start) serves it again.
      const after = await waitForPrompt(slots, slotId, undefined);
      expect(after.phase).toBe('awaiting-operator');
      await slots.submitCode(slotId, claudeCode(after));
      expect((await waitForPhase(slots, slotId, ['active', 'needs-relogin'], 60_000)).phase).toBe('active');
      expect(before.slotId).toBe(slotId);
      expect(proc.child.exitCode).toBeNull();
      expect(proc.child.signalCode).toBeNull();
    } finally {
      await slots.close();
    }
  }, 240_000);

  it('exits 1 with the reason when the dev server cannot come back', async (ctx) => {
    if (!temporal) return ctx.skip();
    // A temporal CLI that stops working once the marker exists (a disk that filled up).
    const dir = await mkdtemp(join(tmpdir(), 'broken-temporal-'));
    dirs.push(dir);
    const marker = join(dir, 'broken');
    const wrapper = join(dir, 'temporal');
    await writeFile(wrapper, `#!/bin/sh\nif [ -e '${marker}' ]; then echo 'open state file: no space left on device' >&2; exit 3; fi\nexec '${temporal}' "$@"\n`);
    await chmod(wrapper, 0o755);
    const { proc } = await start({ TEMPORAL_CLI: wrapper, SUPERVISOR_MAX_RESTARTS: '2' });
    const pid = await until('server pid', () => serverPid(proc, 0), proc);
    await writeFile(marker, '');
    process.kill(pid, 'SIGKILL');
    const code = await exitOf(proc.child);
    expect(code).toBe(1);
    expect(proc.output()).toMatch(/Temporal dev server ended \(killed by SIGKILL.*\) and did not come back after 2 restarts/);
    expect(proc.output()).toMatch(/no space left on device/);
  }, 180_000);
});
