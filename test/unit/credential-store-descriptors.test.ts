// Paths under a slot home are walked through directory descriptors, never through a
// symlink at any component: a symlink swapped in and out while writes run lands no
// byte outside the slot, and a CLI's config dir planted as a symlink is refused
// before the CLI starts, with a message that says which component is a symlink.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { lstat, mkdir, mkdtemp, readdir, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CredentialStoreError } from '../../common/failures';
import { ensureSlotDir, ensureSlotHome, holdSlotHome, leftoversOf, readSecretFile, removeSecretFile, writeSecretFileAtomic } from '../../activities/credential-store';
import { createLoginActivities } from '../../activities/login';
import { LoginSessions } from '../../activities/login-session';
import { FIXTURE_BIN, processesOfSlot } from '../slot-fixtures';

const modeOf = async (p: string): Promise<number> => (await lstat(p)).mode & 0o7777;

let scratch: string;
beforeEach(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'cred-store-fd-'));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Every file below `dir` (recursively, not following symlinks), with its size. */
async function filesBelow(dir: string): Promise<{ file: string; size: number }[]> {
  const found: { file: string; size: number }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesBelow(full)));
    else found.push({ file: path.relative(scratch, full), size: (await lstat(full)).size });
  }
  return found;
}

/**
 * Keeps replacing `victim` (a real directory) by a symlink to `outside` and back until
 * stopped. Each round parks the real directory under a fresh name, so a directory a
 * writer created in the gap never wedges the loop; parked directories stay in the slot.
 */
function swapInALoop(victim: string, outside: string): { stop: () => Promise<number> } {
  let stopped = false;
  let rounds = 0;
  const loop = (async () => {
    while (!stopped) {
      const parked = `${victim}-parked-${rounds}`;
      await rename(victim, parked).catch(() => undefined);
      await symlink(outside, victim).catch(() => undefined);
      await nextTurn();
      const st = await lstat(victim).catch(() => undefined);
      if (st?.isSymbolicLink() === true) await unlink(victim).catch(() => undefined);
      await rename(parked, victim).catch(() => undefined);
      await nextTurn();
      rounds++;
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return rounds;
    },
  };
}

/** Runs `total` writes, `parallel` at a time, and sorts their outcomes. */
async function writeMany(home: string, relPath: string, total: number, parallel: number) {
  const outcomes = { written: 0, refused: new Map<string, number>(), messages: [] as { code: string; message: string }[], other: [] as unknown[] };
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const n = next++;
      try {
        await writeSecretFileAtomic(home, relPath, JSON.stringify({ refresh_token: `rt-${n}`, padding: 'x'.repeat(64) }));
        outcomes.written++;
      } catch (err) {
        if (err instanceof CredentialStoreError) {
          outcomes.refused.set(err.code, (outcomes.refused.get(err.code) ?? 0) + 1);
          outcomes.messages.push({ code: err.code, message: err.message });
        } else outcomes.other.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return outcomes;
}

describe('writes while a symlink is swapped in and out', () => {
  it('1000 writes of .oidc/tokens.json never land a byte outside the slot while .oidc flips to a symlink', { timeout: 120_000 }, async () => {
    const home = await ensureSlotHome(path.join(scratch, 'slots'), 'alpha');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    await mkdir(path.join(home, '.oidc'), { mode: 0o700 });

    const swapper = swapInALoop(path.join(home, '.oidc'), outside);
    const outcomes = await writeMany(home, '.oidc/tokens.json', 1000, 4);
    const rounds = await swapper.stop();

    expect(await filesBelow(outside)).toEqual([]);
    expect(outcomes.other).toEqual([]);
    // Every write either went into a real directory of the slot or was refused as a symlink.
    expect(outcomes.messages.filter(({ code }) => code !== 'symlink' && code !== 'unsafe-path')).toEqual([]);
    expect(outcomes.written + [...outcomes.refused.values()].reduce((a, b) => a + b, 0)).toBe(1000);
    // The race was really run: the swapper went round while writes ran, and both outcomes happened.
    expect(rounds).toBeGreaterThan(10);
    expect(outcomes.written).toBeGreaterThan(0);
    expect(outcomes.refused.get('symlink') ?? 0).toBeGreaterThan(0);
    // What landed is in the slot, private, and no temp file was left anywhere.
    const inside = await filesBelow(home);
    expect(inside.length).toBeGreaterThan(0);
    for (const { file } of inside) {
      expect(file).toMatch(/^slots\/alpha\/\.oidc(-parked-\d+)?\/tokens\.json$/);
      expect(await modeOf(path.join(scratch, file))).toBe(0o600);
    }
  });

  it('1000 writes never land a byte outside the slot while the slot home itself flips to a symlink', { timeout: 120_000 }, async () => {
    const slotsDir = path.join(scratch, 'slots');
    const home = await ensureSlotHome(slotsDir, 'alpha');
    const outside = path.join(scratch, 'outside');
    await mkdir(path.join(outside, '.oidc'), { recursive: true });

    const swapper = swapInALoop(home, outside);
    const outcomes = await writeMany(home, '.oidc/tokens.json', 1000, 4);
    const rounds = await swapper.stop();

    expect(await filesBelow(outside)).toEqual([]);
    expect(outcomes.other).toEqual([]);
    // While the home is parked away, a write finds no home: `missing`, which is true.
    expect(outcomes.messages.filter(({ code }) => !['symlink', 'unsafe-path', 'missing'].includes(code))).toEqual([]);
    expect(rounds).toBeGreaterThan(10);
    expect(outcomes.written).toBeGreaterThan(0);
    expect(outcomes.refused.get('symlink') ?? 0).toBeGreaterThan(0);
    for (const { file } of await filesBelow(slotsDir)) expect(file).toMatch(/^slots\/alpha(-parked-\d+)?\/\.oidc\/tokens\.json$/);
  });
});

describe('ensureSlotDir', () => {
  it.each([
    ['000', 0],
    ['022', 0o022],
    ['277', 0o277],
  ])('creates every missing directory 0700 under umask %s and returns its path', async (_label, mask) => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const previous = process.umask(mask);
    let dir: string;
    try {
      dir = await ensureSlotDir(home, '.codex/sessions/today');
    } finally {
      process.umask(previous);
    }
    expect(dir).toBe(path.join(home, '.codex', 'sessions', 'today'));
    for (const rel of ['.codex', '.codex/sessions', '.codex/sessions/today']) expect(await modeOf(path.join(home, rel))).toBe(0o700);
  });

  it('leaves an existing directory and its mode alone', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await mkdir(path.join(home, '.claude'), { mode: 0o750 });
    await ensureSlotDir(home, '.claude');
    expect((await stat(path.join(home, '.claude'))).isDirectory()).toBe(true);
    expect(await modeOf(path.join(home, '.claude'))).toBe(0o750 & ~process.umask());
  });

  it.each([
    ['.claude', '.claude', '.claude'],
    ['.codex/sessions', '.codex', '.codex'],
    ['.codex/sessions', '.codex/sessions', '.codex/sessions'],
  ])('refuses %s when %s is a planted symlink, and creates nothing through it', async (wanted, planted, named) => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    await mkdir(path.dirname(path.join(home, planted)), { recursive: true });
    await symlink(outside, path.join(home, planted));
    let err: unknown;
    await ensureSlotDir(home, wanted).catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(CredentialStoreError);
    expect(err).toMatchObject({ code: 'symlink', file: wanted });
    expect((err as Error).message).toBe(`refusing to create ${wanted} in the slot home: ${named} is a symlink; symlinks in a slot home are never followed`);
    expect(await readdir(outside)).toEqual([]);
  });

  it('refuses a slot home that is a symlink', async () => {
    const real = await ensureSlotHome(scratch, 'alpha');
    const linked = path.join(scratch, 'linked');
    await symlink(real, linked);
    await expect(ensureSlotDir(linked, '.claude')).rejects.toMatchObject({ code: 'symlink', message: expect.stringContaining('the slot home is a symlink') });
    expect(await readdir(real)).toEqual([]);
  });

  it('refuses a file on the way, and paths outside the home', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, '.codex', 'a file');
    await expect(ensureSlotDir(home, '.codex/sessions')).rejects.toMatchObject({ code: 'not-a-directory', message: expect.stringContaining('.codex is not a directory') });
    await expect(ensureSlotDir(home, '../beta')).rejects.toMatchObject({ code: 'unsafe-path' });
    await expect(ensureSlotDir(home, '/tmp')).rejects.toMatchObject({ code: 'unsafe-path' });
  });
});

describe('startLogin', () => {
  it("refuses a slot whose CLI config dir is a planted symlink, before the CLI starts", async () => {
    const slotsDir = path.join(scratch, 'slots');
    const home = await ensureSlotHome(slotsDir, 'planted');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(home, '.claude'));
    const sessions = new LoginSessions();
    try {
      const { startLogin } = createLoginActivities({
        slotsDir,
        sessions,
        sessionQueue: 'slots.test-host.1-00000000',
        env: { ...process.env, CLAUDE_BIN: path.join(FIXTURE_BIN, 'claude'), FIXTURE_SPEED: '0.2' },
        envPassthrough: ['FIXTURE_*'],
        heartbeatMs: 200,
      });
      const env = new MockActivityEnvironment({ workflowExecution: { workflowId: 'slot:planted', runId: 'run-1' } }, { logger: new DefaultLogger('ERROR') });
      const started = env.run(startLogin, { slotId: 'planted', provider: 'claude', loginId: 'planted:1' });
      await expect(started).rejects.toMatchObject({
        name: 'CredentialStoreError',
        code: 'symlink',
        message: 'refusing to create .claude in the slot home: .claude is a symlink; symlinks in a slot home are never followed',
      });
      expect(await processesOfSlot(slotsDir, 'planted')).toEqual([]);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await sessions.closeAll();
    }
  });
});

describe('removeSecretFile', () => {
  it('removes the file, and answers false when there is none', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, '.oidc/spool.json', '{}');
    expect(await removeSecretFile(home, '.oidc/spool.json')).toBe(true);
    expect(await readdir(path.join(home, '.oidc'))).toEqual([]);
    expect(await removeSecretFile(home, '.oidc/spool.json')).toBe(false);
    expect(await removeSecretFile(home, 'nowhere/spool.json')).toBe(false);
  });

  it('removes a symlink itself, never its target, and refuses a symlinked directory on the way', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'spool.json'), 'outside');
    await symlink(path.join(outside, 'spool.json'), path.join(home, 'spool.json'));
    expect(await removeSecretFile(home, 'spool.json')).toBe(true);
    expect(await readdir(home)).toEqual([]);
    await symlink(outside, path.join(home, '.oidc'));
    await expect(removeSecretFile(home, '.oidc/spool.json')).rejects.toMatchObject({ code: 'symlink', message: expect.stringContaining('.oidc is a symlink') });
    expect(await readdir(outside)).toEqual(['spool.json']);
  });
});

/** The descriptors this process has open on `dir` (through /proc/self/fd). */
async function descriptorsOn(dir: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === dir || target.startsWith(`${dir}/`) || target.startsWith(`${dir}-parked`)) n++;
  }
  return n;
}

describe('holdSlotHome: the home opened once for an activity', () => {
  it('1000 writes held in one scope never land a byte outside the slot while .oidc flips to a symlink', { timeout: 120_000 }, async () => {
    const slotsDir = path.join(scratch, 'slots');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    const outcomes = await holdSlotHome(slotsDir, 'alpha', async (home) => {
      await mkdir(path.join(home, '.oidc'), { mode: 0o700 });
      const swapper = swapInALoop(path.join(home, '.oidc'), outside);
      const result = await writeMany(home, '.oidc/tokens.json', 1000, 4);
      expect(await swapper.stop()).toBeGreaterThan(10);
      return result;
    });
    expect(await filesBelow(outside)).toEqual([]);
    expect(outcomes.other).toEqual([]);
    expect(outcomes.messages.filter(({ code }) => code !== 'symlink' && code !== 'unsafe-path')).toEqual([]);
    expect(outcomes.written).toBeGreaterThan(0);
    expect(outcomes.refused.get('symlink') ?? 0).toBeGreaterThan(0);
  });

  it('a home replaced by a symlink after it was held: the scope keeps writing into the real home, never through the link', async () => {
    const slotsDir = path.join(scratch, 'slots');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    const home = path.join(slotsDir, 'alpha');
    await holdSlotHome(slotsDir, 'alpha', async (held) => {
      expect(held).toBe(home);
      await rename(home, `${home}-parked`);
      await symlink(outside, home);
      await writeSecretFileAtomic(held, 'slot-status.json', '{"phase":"active"}\n');
    });
    expect(await readdir(outside)).toEqual([]);
    expect(await readdir(`${home}-parked`)).toEqual(['slot-status.json']);
  });

  it('only calls made within the scope use the held home; the descriptor is closed when the work settles, even when it fails', async () => {
    const slotsDir = path.join(scratch, 'slots');
    const home = await ensureSlotHome(slotsDir, 'alpha');
    await writeSecretFileAtomic(home, 'a.json', '{}');
    // Registered here, outside the scope: it runs as a call of another activity would, when released from within.
    let release!: () => void;
    const outsideRead = new Promise<void>((resolve) => (release = resolve)).then(() => readSecretFile(home, 'a.json'));
    await expect(
      holdSlotHome(slotsDir, 'alpha', async () => {
        expect(await descriptorsOn(home)).toBe(1);
        // A retire moves the home away under the lock; the held scope follows the directory it began with.
        await rename(home, `${home}-parked`);
        expect((await readSecretFile(home, 'a.json')).ok).toBe(true);
        // A call of another activity (not in this scope) sees that the home is gone.
        release();
        expect(await outsideRead).toMatchObject({ ok: false, reason: 'missing' });
        throw new Error('the work failed');
      }),
    ).rejects.toThrow('the work failed');
    expect(await descriptorsOn(home)).toBe(0);
  });
});

describe('leftoversOf: one listing for the recovery steps', () => {
  it('says what is beside each file: the name itself, temp files of it; a missing directory holds nothing', async () => {
    const home = await ensureSlotHome(path.join(scratch, 'slots'), 'alpha');
    await writeFile(path.join(home, '.agent.env'), 'X=1\n', { mode: 0o600 });
    await writeFile(path.join(home, '.slot-status.json.tmp-0123abcd'), '{', { mode: 0o600 });
    const left = await leftoversOf(home, ['.agent.env', 'slot-status.json', '.claude/.credentials.json', '.refresh-spool.json']);
    expect(left('.agent.env')).toEqual({ exists: true, temps: false });
    expect(left('slot-status.json')).toEqual({ exists: false, temps: true });
    expect(left('.claude/.credentials.json')).toEqual({ exists: false, temps: false });
    expect(left('.refresh-spool.json')).toEqual({ exists: false, temps: false });
  });

  it('a directory that cannot be listed (a planted symlink) says everything is there, so the recovery steps run and refuse it', async () => {
    const home = await ensureSlotHome(path.join(scratch, 'slots'), 'alpha');
    const outside = path.join(scratch, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, '..credentials.json.tmp-00ff'), 'x');
    await symlink(outside, path.join(home, '.claude'));
    const left = await leftoversOf(home, ['.claude/.credentials.json', '.agent.env']);
    expect(left('.claude/.credentials.json')).toEqual({ exists: true, temps: true });
    expect(left('.agent.env')).toEqual({ exists: false, temps: false });
    expect(await readdir(outside)).toEqual(['..credentials.json.tmp-00ff']);
  });
});
