// `npm start` (workers/main.ts, as a real process) looks after the dev server it
// started: killed with SIGKILL in the middle of a login, the server comes back on the
// same SQLite file and port, the worker reconnects and the login goes on to `active`;
// a server that cannot come back ends `npm start` with exit code 1 and the reason. The
// codec server it runs for the Web UI (a child process of its own) is looked after the same way.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, parseEncryptionKeys } from '../../client/encryption';
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

/** `npm start` as the operator runs it (its script: the compiled entry), in a process group of its own (killed whole at the end). */
function npmStart(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['bin/run-compiled.mjs', 'workers/main.ts'], {
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
  /** Keys and a token for `npm start`, and what the Web UI does with them: POST sealed payloads to `<codec>/<token>/decode`. */
  function codecSetup(codecPort: number): { env: Record<string, string>; decode(payloads: Payload[]): Promise<{ status: number; texts: unknown[] }>; seal(text: string): Promise<Payload[]> } {
    const key = `k1:${randomBytes(32).toString('base64')}`;
    const token = randomBytes(20).toString('hex');
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(key));
    const b64 = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('base64');
    return {
      env: { SLOTS_ENCRYPTION_KEYS: key, CODEC_SERVER_TOKEN: token, CODEC_PORT: String(codecPort) },
      seal: (text) => codec.encode([defaultPayloadConverter.toPayload(text)]),
      async decode(payloads) {
        const body = JSON.stringify({ payloads: payloads.map((p) => ({ metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v)])), data: b64(p.data) })) });
        const res = await fetch(`http://127.0.0.1:${codecPort}/${token}/decode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        if (res.status !== 200) return { status: res.status, texts: [] };
        const answer = (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
        const texts = answer.payloads.map((p) =>
          defaultPayloadConverter.fromPayload({ metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])), data: Buffer.from(p.data, 'base64') }),
        );
        return { status: res.status, texts };
      },
    };
  }

  const codecPid = (proc: WorkerProcess): number | undefined => {
    const pid = /decodes them through http:\/\/127\.0\.0\.1:\d+ \(codec server pid (\d+)\)/.exec(proc.output())?.[1];
    return pid ? Number(pid) : undefined;
  };

  it('restarts a codec server that was killed; the Web UI decodes through the same address again', async (ctx) => {
    if (!temporal) return ctx.skip();
    const codecPort = await freePort();
    const codec = codecSetup(codecPort);
    const { proc } = await start(codec.env);
    const first = await until('codec server pid', () => codecPid(proc), proc);
    const sealed = await codec.seal('open https://claude.ai/oauth/authorize?code=true');
    expect(await codec.decode(sealed)).toEqual({ status: 200, texts: ['open https://claude.ai/oauth/authorize?code=true'] });

    process.kill(first, 'SIGKILL');
    await until('restart line', () => (/\[npm start\] codec server ended \(killed by SIGKILL\); restarting in \d/.test(proc.output()) ? true : undefined), proc);
    const again = new RegExp(`\\[npm start\\] codec server \\(pid (\\d+)\\) serves http://127\\.0\\.0\\.1:${codecPort} again`);
    const second = Number(await until('codec server back', () => again.exec(proc.output())?.[1], proc, 90_000));
    expect(second).not.toBe(first);
    expect(await codec.decode(sealed)).toEqual({ status: 200, texts: ['open https://claude.ai/oauth/authorize?code=true'] });
    expect(proc.child.exitCode).toBeNull();
    // The first process is gone for good, and nothing but npm start's own child serves the port.
    expect(() => process.kill(first, 0)).toThrow();
  }, 240_000);

  it('exits 1 with the reason when the codec server cannot come back (its port taken)', async (ctx) => {
    if (!temporal) return ctx.skip();
    const codecPort = await freePort();
    const codec = codecSetup(codecPort);
    const { proc } = await start({ ...codec.env, SUPERVISOR_MAX_RESTARTS: '1' });
    const pid = await until('codec server pid', () => codecPid(proc), proc);
    process.kill(pid, 'SIGKILL');
    // Another program takes the port the Web UI was told, before the restart (after 1 s).
    const squatter: Server = createServer();
    for (let tries = 0; ; tries++) {
      const bound = await new Promise<boolean>((resolve) => {
        squatter.once('error', () => resolve(false));
        squatter.listen(codecPort, '127.0.0.1', () => resolve(true));
      });
      if (bound) break;
      // The killed process's socket closes as it dies: a few ms.
      if (tries > 100) throw new Error(`port ${codecPort} stayed taken after the codec server was killed`);
      await sleep(10);
    }
    try {
      expect(await exitOf(proc.child)).toBe(1);
      expect(proc.output()).toMatch(/codec server ended \(killed by SIGKILL\) and did not come back after 1 restarts/);
      expect(proc.output()).toMatch(/EADDRINUSE|address already in use/);
      expect(proc.output()).toMatch(/\[npm start\] stopping: /);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  }, 180_000);
});
