// The slot's refresh lock (issue 23, finding 6): removing `.refresh.lock` during a refresh
// never kills the process that holds it (with its live login CLIs), the refresh stops
// without writing the credential, and a lock taken over as stale never means two token
// requests at once. A real worker-like process, a real PTY, a real token server on 127.0.0.1.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { createRefreshActivities, type RefreshResult } from '../../activities/refresh';
import { REFRESH_SPOOL_FILE } from '../../activities/refresh-spool';
import { REFRESH_LOCK } from '../../activities/slot-lock';
import { FailureType } from '../../common/failures';
import { startTokenServer, type TokenServer } from '../peers/token-server';

const SLOT = 'lock-slot';
const CLAUDE_CLIENT = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CLAUDE_FILE = '.claude/.credentials.json';
const PROJECT_ROOT = join(__dirname, '..', '..');
const FIXTURE_CLAUDE = join(PROJECT_ROOT, 'test', 'fixtures', 'bin', 'claude');
// The proper-lockfile holder refreshes its lock every 10 s (stale at 30 s): the answer comes after that.
const ANSWER_DELAY_MS = 12_500;

let slotsDir: string;
let home: string;
let server: TokenServer;
const children: ChildProcessWithoutNullStreams[] = [];

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'refresh-lock-'));
  home = await ensureSlotHome(slotsDir, SLOT);
  server = await startTokenServer();
});
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await server.close();
  await rm(slotsDir, { recursive: true, force: true });
});

const workerEnv = (): Record<string, string> => ({ CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1' });

type Event = { event: 'cli'; pid: number } | { event: 'refresh'; ok: boolean; type?: string; message?: string };

/** The worker-like process: a live login CLI under a PTY (the pinned real claude when installed) and one refresh. */
function startHolder(): { child: ChildProcessWithoutNullStreams; next: () => Promise<Event>; exited: Promise<{ code: number | null; signal: string | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/refresh-lock-holder.ts'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...workerEnv(), SLOTS_DIR: slotsDir, SLOT_ID: SLOT, NOW: String(Date.now()), CLI_BIN: process.env.REAL_CLAUDE_BIN ?? FIXTURE_CLAUDE },
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const events: Event[] = [];
  const waiters: Array<(e: Event) => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const event = JSON.parse(line) as Event;
    const waiter = waiters.shift();
    if (waiter) waiter(event);
    else events.push(event);
  });
  const exited = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  const next = (): Promise<Event> => {
    const ready = events.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise<Event>((resolve, reject) => {
      waiters.push(resolve);
      void exited.then((how) => reject(new Error(`the holder process exited (${how.code ?? how.signal}): ${how.stderr.slice(-2000)}`)));
    });
  };
  return { child, next, exited };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function seedClaude(tokens: { accessToken: string; refreshToken: string }): Promise<void> {
  const credential = { claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: Date.now() - 1000, scopes: ['user:inference'] } };
  await writeSecretFileAtomic(home, CLAUDE_FILE, `${JSON.stringify(credential)}\n`);
}
const readRefreshToken = async (): Promise<string> =>
  (JSON.parse(await readFile(join(home, CLAUDE_FILE), 'utf8')) as { claudeAiOauth: { refreshToken: string } }).claudeAiOauth.refreshToken;

function refreshHere(force: boolean): Promise<RefreshResult> {
  const { refreshCredential } = createRefreshActivities({ slotsDir, env: workerEnv() });
  return new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${SLOT}`, runId: 'here' } }, { logger: new DefaultLogger('ERROR') }).run(refreshCredential, {
    slotId: SLOT,
    provider: 'claude',
    now: Date.now(),
    force,
  });
}

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !check(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the slot refresh lock', () => {
  it('removing .refresh.lock mid-refresh: the process and its login CLI survive, the credential is not written, the answer is kept and applied once', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);
    server.script([{ delayMs: ANSWER_DELAY_MS }]);
    const holder = startHolder();
    const cli = await holder.next();
    expect(cli.event).toBe('cli');
    const cliPid = (cli as { pid: number }).pid;

    await until(() => server.requests.length === 1, 'the token request');
    await rm(join(home, REFRESH_LOCK), { recursive: true, force: true });

    const refresh = await holder.next();
    expect(refresh).toMatchObject({ event: 'refresh', ok: false, type: FailureType.refreshTransient });
    expect((refresh as { message: string }).message).toMatch(/refresh lock was lost during the refresh; the credential was not written, the answer is kept in \.refresh-spool\.json/);
    // Still up, a second later, with its login CLI.
    await new Promise((r) => setTimeout(r, 1000));
    expect(holder.child.exitCode).toBeNull();
    expect(holder.child.signalCode).toBeNull();
    expect(alive(cliPid)).toBe(true);

    const rotated = server.grant(issued.grantId)!;
    expect(rotated.rotations).toBe(1);
    expect(await readRefreshToken()).toBe(issued.refreshToken);
    expect(await readFile(join(home, REFRESH_SPOOL_FILE), 'utf8')).toContain(rotated.refreshToken);

    // The next attempt applies the kept answer without a request.
    expect((await refreshHere(false)).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect(await readRefreshToken()).toBe(rotated.refreshToken);
    holder.child.stdin.end();
    expect((await holder.exited).code).toBe(0);
  }, 60_000);

  it('a lock taken over as stale while its holder waits for the answer: one token request only, and the rotation is kept', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);
    server.script([{ delayMs: ANSWER_DELAY_MS }]);
    const holder = startHolder();
    expect((await holder.next()).event).toBe('cli');
    await until(() => server.requests.length === 1, 'the token request');

    // The holder looks dead (as after a 30 s stall): a second refresh takes the lock over as stale.
    const past = new Date(Date.now() - 120_000);
    await utimes(join(home, REFRESH_LOCK), past, past);
    const second = await refreshHere(true).then(
      () => undefined,
      (err: unknown) => err as { type?: string; message: string },
    );
    expect(second?.type).toBe(FailureType.refreshTransient);
    expect(second?.message).toMatch(/may have its token request in flight; nothing was sent/);
    expect(server.requests).toHaveLength(1);

    const first = await holder.next();
    expect(first).toMatchObject({ event: 'refresh', ok: false, type: FailureType.refreshTransient });
    expect(holder.child.exitCode).toBeNull();
    const rotated = server.grant(issued.grantId)!;
    expect((await refreshHere(false)).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect(server.presentedTwice()).toEqual([]);
    expect(await readRefreshToken()).toBe(rotated.refreshToken);
    holder.child.stdin.end();
  }, 60_000);
});
