// A rotation is never lost (issue 11): the token answer is spooled 0600 before the
// credential is written, and the next attempt applies the spool before it would spend
// the old refresh token. Against a real rotating token server, a process killed with
// SIGKILL between answer and write, and a real full filesystem (a small tmpfs).
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, open, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { createRefreshActivities, type RefreshResult } from '../../activities/refresh';
import { REFRESH_SPOOL_FILE, REFRESH_SPOOL_RESERVATION } from '../../activities/refresh-spool';
import { REFRESH_LOCK } from '../../activities/slot-lock';
import { FailureType } from '../../common/failures';
import { startTokenServer, type IssuedTokens, type TokenServer } from '../peers/token-server';

const SLOT = 'spool-slot';
const CLAUDE_CLIENT = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const CLAUDE_FILE = '.claude/.credentials.json';
const quiet = new DefaultLogger('ERROR');
const AS_SLOT_WORKFLOW = { workflowExecution: { workflowId: `slot:${SLOT}`, runId: 'run-1' } };
const PROJECT_ROOT = join(__dirname, '..', '..');

let slotsDir: string;
let home: string;
let server: TokenServer;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'refresh-spool-'));
  home = await ensureSlotHome(slotsDir, SLOT);
  server = await startTokenServer();
});
afterEach(async () => {
  await server.close();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(slotsDir, { recursive: true, force: true });
});

const workerEnv = (): Record<string, string> => ({ CLAUDE_TOKEN_URL: server.claudeTokenUrl, SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1' });

/** A Claude credential, due for a refresh unless `expiresAt` says otherwise. */
async function seedClaude(tokens: Pick<IssuedTokens, 'accessToken' | 'refreshToken'>, at = home, expiresAt = Date.now() - 1000): Promise<void> {
  const credential = { claudeAiOauth: { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt, scopes: ['user:inference'] }, keep: 'me' };
  await writeSecretFileAtomic(at, CLAUDE_FILE, `${JSON.stringify(credential)}\n`);
}

type ClaudeFile = { claudeAiOauth: { accessToken: string; refreshToken: string; expiresAt: number }; keep?: string };
const readClaude = async (at = home): Promise<ClaudeFile> => JSON.parse(await readFile(join(at, CLAUDE_FILE), 'utf8')) as ClaudeFile;
const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false);

function refresh(force = false, dir = slotsDir): Promise<RefreshResult> {
  const { refreshCredential } = createRefreshActivities({ slotsDir: dir, env: workerEnv() });
  return new MockActivityEnvironment(AS_SLOT_WORKFLOW, { logger: quiet }).run(refreshCredential, { slotId: SLOT, provider: 'claude', now: Date.now(), force });
}

async function failureOf(promise: Promise<unknown>): Promise<{ type?: string; message: string; nonRetryable?: boolean }> {
  try {
    await promise;
  } catch (err) {
    return err as { type?: string; message: string; nonRetryable?: boolean };
  }
  throw new Error('expected the refresh to fail');
}

/** Runs one refresh attempt in a child process that SIGKILLs itself right after spooling. */
function crashAfterSpool(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/refresh-crash.ts'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, ...workerEnv(), SLOTS_DIR: slotsDir, SLOT_ID: SLOT, PROVIDER: 'claude', NOW: String(Date.now()) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr })));
}

describe('the refresh spool', () => {
  it('a worker killed (SIGKILL) between the answer and the write loses nothing: the next refresh applies the spool and never presents the spent token', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);

    const crashed = await crashAfterSpool();
    expect(crashed.stderr).toBe('');
    expect(crashed.signal).toBe('SIGKILL');
    // The server rotated; the file still holds the spent token, the spool the live one, 0600.
    const rotated = server.grant(issued.grantId)!;
    expect(rotated.rotations).toBe(1);
    expect((await readClaude()).claudeAiOauth.refreshToken).toBe(issued.refreshToken);
    expect((await stat(join(home, REFRESH_SPOOL_FILE))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(home, REFRESH_SPOOL_FILE), 'utf8')).toContain(rotated.refreshToken);

    // The dead holder stopped refreshing its lock: make it as old as after 30 s of waiting.
    const past = new Date(Date.now() - 120_000);
    await utimes(join(home, REFRESH_LOCK), past, past).catch(() => undefined);

    const result = await refresh();
    expect(result.kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect(server.presentedTwice()).toEqual([]);
    const file = await readClaude();
    expect(file.claudeAiOauth.refreshToken).toBe(rotated.refreshToken);
    expect(file.claudeAiOauth.accessToken).toBe(rotated.accessToken);
    expect(file.keep).toBe('me');
    expect(await exists(join(home, REFRESH_SPOOL_FILE))).toBe(false);

    // The recovered token is the live one: the next refresh spends it, once.
    expect((await refresh(true)).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.refreshToken).toBe(rotated.refreshToken);
    expect(server.requests[1]?.outcome).toBe('rotated');
    expect(server.presentedTwice()).toEqual([]);
  }, 60_000);

  it('a spool that cannot be applied is kept, the refresh fails transient and spends nothing', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);
    expect((await crashAfterSpool()).signal).toBe('SIGKILL');
    const live = server.grant(issued.grantId)!.refreshToken;
    const past = new Date(Date.now() - 120_000);
    await utimes(join(home, REFRESH_LOCK), past, past).catch(() => undefined);
    // Someone broke the credential file meanwhile: the answer cannot be applied to it.
    await writeSecretFileAtomic(home, CLAUDE_FILE, JSON.stringify({ claudeAiOauth: { accessToken: 'x' } }));

    const failed = await failureOf(refresh(true));
    expect(failed.type).toBe(FailureType.refreshTransient);
    expect(failed.message).toMatch(/^applying the spooled token answer failed: .*; the answer is kept in \.refresh-spool\.json \(its refresh token is the live one\)/);
    expect(failed.message).not.toContain(live);
    expect(server.requests).toHaveLength(1);
    expect(await exists(join(home, REFRESH_SPOOL_FILE))).toBe(true);

    // Once the file is restored (with the spent token), the spool is applied, without a request.
    await seedClaude(issued);
    expect((await refresh()).kind).toBe('refreshed');
    expect((await readClaude()).claudeAiOauth.refreshToken).toBe(live);
    expect(server.requests).toHaveLength(1);
    expect(await exists(join(home, REFRESH_SPOOL_FILE))).toBe(false);
  }, 60_000);

  it('a spool older than a new login is discarded, not applied over it', async () => {
    const first = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(first);
    expect((await crashAfterSpool()).signal).toBe('SIGKILL');
    const past = new Date(Date.now() - 120_000);
    await utimes(join(home, REFRESH_LOCK), past, past).catch(() => undefined);
    // The operator logged the slot in again: a new grant's tokens in the file.
    const relogin = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(relogin);

    expect((await refresh()).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.refreshToken).toBe(relogin.refreshToken);
    expect(server.presentedTwice()).toEqual([]);
    expect((await readClaude()).claudeAiOauth.refreshToken).toBe(server.grant(relogin.grantId)?.refreshToken);
    expect(await exists(join(home, REFRESH_SPOOL_FILE))).toBe(false);
  }, 60_000);

  it('a temp spool fsynced before a crash (not yet renamed) is recovered, not deleted by the 60 s cleanup: no spent token is presented (issue 23)', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);
    expect((await crashAfterSpool()).signal).toBe('SIGKILL');
    const live = server.grant(issued.grantId)!.refreshToken;
    // As a crash between the temp file's fsync and its rename leaves it, and older than the cleanup's 60 s.
    const temp = join(home, `.${REFRESH_SPOOL_FILE}.tmp-0123456789abcdef`);
    await rename(join(home, REFRESH_SPOOL_FILE), temp);
    const past = new Date(Date.now() - 120_000);
    await utimes(temp, past, past);
    await utimes(join(home, REFRESH_LOCK), past, past).catch(() => undefined);

    expect((await refresh()).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect(server.presentedTwice()).toEqual([]);
    expect((await readClaude()).claudeAiOauth.refreshToken).toBe(live);
    expect(await exists(temp)).toBe(false);
    expect(await exists(join(home, REFRESH_SPOOL_FILE))).toBe(false);
  }, 60_000);

  it('an answer with an extra field nested 10 000 deep (JSON.stringify throws) keeps the rotated token (issue 23)', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);
    server.script([{ extraJson: `${'['.repeat(10_000)}${']'.repeat(10_000)}` }]);

    const result = await refresh(true);
    expect(result.kind).toBe('refreshed');
    const rotated = server.grant(issued.grantId)!;
    expect(rotated.rotations).toBe(1);
    expect((await readClaude()).claudeAiOauth.refreshToken).toBe(rotated.refreshToken);
    // The kept token is the live one: the next refresh spends it, once.
    expect((await refresh(true)).kind).toBe('refreshed');
    expect(server.requests[1]?.refreshToken).toBe(rotated.refreshToken);
    expect(server.requests[1]?.outcome).toBe('rotated');
    expect(server.presentedTwice()).toEqual([]);
  }, 30_000);

  it('a damaged spool stops the refresh before any token is spent', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    await seedClaude(issued);
    await writeSecretFileAtomic(home, REFRESH_SPOOL_FILE, '{"provider":"claude","tok');
    const failed = await failureOf(refresh(true));
    expect(failed.type).toBe(FailureType.refreshTransient);
    expect(failed.message).toMatch(/^\.refresh-spool\.json is damaged \(\d+ bytes\); no refresh token is spent until an operator removes it$/);
    expect(server.requests).toHaveLength(0);
  });
});

/** A tmpfs of `size` mounted for the test, or the reason it cannot be. */
async function mountTinyFs(size: string): Promise<{ dir: string } | { reason: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'spool-tmpfs-'));
  const mounted = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => resolve({ code: -1, stderr: err.message }));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
  if (mounted.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    return { reason: `mount -t tmpfs failed (${mounted.stderr.trim() || `exit ${mounted.code}`})` };
  }
  cleanups.push(async () => {
    await new Promise<void>((resolve) => spawn('umount', [dir]).on('exit', () => resolve()));
    await rm(dir, { recursive: true, force: true });
  });
  return { dir };
}

/** Fills the filesystem of `dir` with one file, then frees `leaveBytes` of it. */
async function fill(dir: string, leaveBytes: number): Promise<string> {
  const filler = join(dir, 'filler');
  const handle = await open(filler, 'w');
  const chunk = Buffer.alloc(4096, 1);
  let size = 0;
  try {
    for (;;) {
      const { bytesWritten } = await handle.write(chunk, 0, chunk.length, size);
      size += bytesWritten;
      if (bytesWritten < chunk.length) break;
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err;
  }
  await handle.truncate(Math.max(0, size - leaveBytes));
  await handle.close();
  return filler;
}

const tinyFs = await mountTinyFs('256k');
const tmpfsSkipReason = 'dir' in tinyFs ? undefined : tinyFs.reason;
if ('dir' in tinyFs) {
  // Probed once; each test mounts its own.
  await new Promise<void>((resolve) => spawn('umount', [tinyFs.dir]).on('exit', () => resolve()));
  await rm(tinyFs.dir, { recursive: true, force: true });
  cleanups.splice(0);
}

// Skipped only on a machine that cannot mount one; with CI set the tests run, and fail saying why.
describe.skipIf(tmpfsSkipReason !== undefined && !process.env.CI)(`a full disk (tmpfs${tmpfsSkipReason ? `: skipped, ${tmpfsSkipReason}` : ''})`, () => {
  /** A slot on a fresh tmpfs whose first (not due) refresh has written its record and env file: only the rotation needs space later. */
  async function slotOnTinyFs(issued: IssuedTokens): Promise<{ dir: string; slotHome: string }> {
    const mounted = await mountTinyFs('256k');
    if (!('dir' in mounted)) throw new Error(mounted.reason);
    const slotHome = await ensureSlotHome(mounted.dir, SLOT);
    await mkdir(join(slotHome, '.claude'), { mode: 0o700 }).catch(() => undefined);
    await seedClaude(issued, slotHome, Date.now() + 24 * 3600_000);
    expect((await refresh(false, mounted.dir)).kind).toBe('fresh');
    return { dir: mounted.dir, slotHome };
  }

  it('room for the reserved spool only: the credential write fails, the spool keeps the rotation, and the next attempt applies it without a request', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const { dir, slotHome } = await slotOnTinyFs(issued);
    // Exactly the spool's reservation (64 KiB): nothing left for the credential's temp file.
    const filler = await fill(dir, 64 * 1024);

    const failed = await failureOf(refresh(true, dir));
    expect(failed.type).toBe(FailureType.refreshTransient);
    expect(failed.message).toMatch(/^the refreshed Claude Code credential could not be written: .*; the answer is kept in \.refresh-spool\.json \(its refresh token is the live one\)/);
    const rotated = server.grant(issued.grantId)!;
    expect(rotated.rotations).toBe(1);
    expect(failed.message).not.toContain(rotated.refreshToken);
    expect((await readClaude(slotHome)).claudeAiOauth.refreshToken).toBe(issued.refreshToken);
    expect(await readFile(join(slotHome, REFRESH_SPOOL_FILE), 'utf8')).toContain(rotated.refreshToken);

    await unlink(filler);
    expect((await refresh(false, dir)).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect(server.presentedTwice()).toEqual([]);
    expect((await readClaude(slotHome)).claudeAiOauth.refreshToken).toBe(rotated.refreshToken);
    expect(await exists(join(slotHome, REFRESH_SPOOL_FILE))).toBe(false);
    expect(await exists(join(slotHome, REFRESH_SPOOL_RESERVATION))).toBe(false);
  }, 30_000);

  it('no room for the spool: the attempt fails before the request, the old refresh token is unspent, and the refresh succeeds once space is freed (issue 23)', async () => {
    const issued = server.issue({ clientId: CLAUDE_CLIENT });
    const { dir, slotHome } = await slotOnTinyFs(issued);
    const filler = await fill(dir, 0);

    const failed = await failureOf(refresh(true, dir));
    expect(failed.type).toBe(FailureType.refreshTransient);
    expect(failed.message).toMatch(/^no room to keep a token answer \(.*no space left on the device\); nothing was sent, the refresh token is unspent/);
    // Nothing was spent: the server saw no request, the grant is intact, the file unchanged.
    expect(server.requests).toHaveLength(0);
    expect(server.grant(issued.grantId)?.rotations).toBe(0);
    expect((await readClaude(slotHome)).claudeAiOauth.refreshToken).toBe(issued.refreshToken);
    expect(await exists(join(slotHome, REFRESH_SPOOL_RESERVATION))).toBe(false);

    await unlink(filler);
    expect((await refresh(true, dir)).kind).toBe('refreshed');
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.outcome).toBe('rotated');
    expect((await readClaude(slotHome)).claudeAiOauth.refreshToken).toBe(server.grant(issued.grantId)?.refreshToken);
  }, 30_000);
});
