// The credential store's promises, checked on a real filesystem: modes whatever the
// umask, confinement to the slot home, no symlink following, no secret in errors,
// and a writer SIGKILLed mid-write never leaves a torn credential file behind.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CredentialStoreError } from '../../common/failures';
import {
  cleanupStaleTempFiles,
  ensureSlotHome,
  makeSecretFilePrivate,
  readAtMost,
  readSecretFile,
  resolveInSlot,
  slotHome,
  updateJsonFileAtomic,
  writeSecretFileAtomic,
} from '../../activities/credential-store';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const modeOf = async (p: string): Promise<number> => (await lstat(p)).mode & 0o7777;

let scratch: string;
beforeEach(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'cred-store-'));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const previous = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(previous);
  }
}

async function thrown(promise: Promise<unknown>): Promise<CredentialStoreError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(CredentialStoreError);
    return err as CredentialStoreError;
  }
  throw new Error('expected a CredentialStoreError, nothing was thrown');
}

function thrownSync(fn: () => unknown): CredentialStoreError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CredentialStoreError);
    return err as CredentialStoreError;
  }
  throw new Error('expected a CredentialStoreError, nothing was thrown');
}

describe('slotHome', () => {
  it('returns the absolute home directly under the slots directory', () => {
    expect(slotHome(path.join(scratch, 'slots'), 'team-a-01')).toBe(path.join(scratch, 'slots', 'team-a-01'));
    expect(path.isAbsolute(slotHome('relative/slots', 'x1'))).toBe(true);
  });

  it.each(['../escape', 'a/b', '.', '..', 'Upper', 'with space', '-lead', 'trail-', '', 'x'.repeat(64), 'a\0b'])(
    'refuses slot id %j and says why',
    (id) => {
      const err = thrownSync(() => slotHome(scratch, id));
      expect(err.code).toBe('invalid-slot-id');
      expect(err.message).toMatch(/slot id/);
      expect(err.message).toMatch(/empty|longer than 63|lowercase letters/);
    },
  );
});

describe('ensureSlotHome', () => {
  it.each([
    ['000', 0],
    ['022', 0o022],
    ['277', 0o277],
  ])('creates the slots directory and the home 0700 under umask %s', async (_label, mask) => {
    const slotsDir = path.join(scratch, 'deep', 'slots');
    const home = await withUmask(mask, () => ensureSlotHome(slotsDir, 'alpha'));
    expect(home).toBe(path.join(slotsDir, 'alpha'));
    expect(await modeOf(home)).toBe(0o700);
    expect(await modeOf(slotsDir)).toBe(0o700);
    expect(await modeOf(path.join(scratch, 'deep'))).toBe(0o700);
  });

  it('tightens an existing home and leaves an existing slots directory alone', async () => {
    const slotsDir = path.join(scratch, 'slots');
    await mkdir(path.join(slotsDir, 'alpha'), { recursive: true });
    await chmod(slotsDir, 0o755);
    await chmod(path.join(slotsDir, 'alpha'), 0o777);
    await ensureSlotHome(slotsDir, 'alpha');
    expect(await modeOf(path.join(slotsDir, 'alpha'))).toBe(0o700);
    expect(await modeOf(slotsDir)).toBe(0o755);
  });

  it('refuses a home that is a symlink, and leaves its target alone', async () => {
    const slotsDir = path.join(scratch, 'slots');
    const elsewhere = path.join(scratch, 'elsewhere');
    await mkdir(slotsDir);
    await mkdir(elsewhere, { mode: 0o755 });
    await chmod(elsewhere, 0o755);
    await symlink(elsewhere, path.join(slotsDir, 'alpha'));
    const err = await thrown(ensureSlotHome(slotsDir, 'alpha'));
    expect(err.code).toBe('symlink');
    expect(await modeOf(elsewhere)).toBe(0o755);
  });

  it('refuses a home that is a file', async () => {
    const slotsDir = path.join(scratch, 'slots');
    await mkdir(slotsDir);
    await writeFile(path.join(slotsDir, 'alpha'), 'not a directory');
    expect((await thrown(ensureSlotHome(slotsDir, 'alpha'))).code).toBe('not-a-directory');
  });
});

describe('resolveInSlot', () => {
  it('resolves plain relative paths inside the home', () => {
    expect(resolveInSlot('/slots/a', '.claude/.credentials.json')).toBe('/slots/a/.claude/.credentials.json');
    expect(resolveInSlot('/slots/a', './auth.json')).toBe('/slots/a/auth.json');
  });

  it.each([
    ['/etc/passwd', /absolute/],
    ['../b/auth.json', /\.\./],
    ['x/../../b', /\.\./],
    ['x/../auth.json', /\.\./],
    ['..\\b', /\.\./],
    ['auth.json\0.txt', /NUL/],
    ['', /empty/],
    ['.', /slot home itself/],
    ['x/..', /\.\./],
  ])('refuses %j', (relPath, why) => {
    const err = thrownSync(() => resolveInSlot('/slots/a', relPath));
    expect(err.code).toBe('unsafe-path');
    expect(err.message).toMatch(why);
  });

  it('is enforced by the readers and writers too', async () => {
    const home = await ensureSlotHome(scratch, 'a');
    await writeFile(path.join(scratch, 'outside.json'), '{"keep":true}');
    expect((await thrown(writeSecretFileAtomic(home, '../outside.json', '{}'))).code).toBe('unsafe-path');
    expect((await thrown(writeSecretFileAtomic(home, path.join(scratch, 'outside.json'), '{}'))).code).toBe('unsafe-path');
    expect((await thrown(readSecretFile(home, '../outside.json'))).code).toBe('unsafe-path');
    expect(await readFile(path.join(scratch, 'outside.json'), 'utf8')).toBe('{"keep":true}');
  });
});

describe('writeSecretFileAtomic', () => {
  it.each([
    ['000', 0],
    ['022', 0o022],
    ['277', 0o277],
  ])('writes 0600 files in 0700 directories under umask %s', async (_label, mask) => {
    await withUmask(mask, async () => {
      const home = await ensureSlotHome(scratch, 'alpha');
      const written = await writeSecretFileAtomic(home, 'cfg/nested/creds.json', '{"refreshToken":"rt-1"}');
      expect(written).toBe(path.join(home, 'cfg', 'nested', 'creds.json'));
      expect(await modeOf(written)).toBe(0o600);
      expect(await modeOf(path.join(home, 'cfg'))).toBe(0o700);
      expect(await modeOf(path.join(home, 'cfg', 'nested'))).toBe(0o700);
      expect(await readFile(written, 'utf8')).toBe('{"refreshToken":"rt-1"}');
    });
  });

  it('replaces a looser existing file with a 0600 one and leaves no temp file', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const file = path.join(home, 'auth.json');
    await writeFile(file, 'old', { mode: 0o644 });
    await chmod(file, 0o644);
    await writeSecretFileAtomic(home, 'auth.json', Buffer.from('new'));
    expect(await readFile(file, 'utf8')).toBe('new');
    expect(await modeOf(file)).toBe(0o600);
    expect(await readdir(home)).toEqual(['auth.json']);
  });

  it('refuses a symlinked target and leaves the symlink target untouched', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const victim = path.join(scratch, 'victim.json');
    await writeFile(victim, 'victim contents', { mode: 0o644 });
    await chmod(victim, 0o644);
    await symlink(victim, path.join(home, 'auth.json'));
    const err = await thrown(writeSecretFileAtomic(home, 'auth.json', '{"stolen":true}'));
    expect(err.code).toBe('symlink');
    expect(await readFile(victim, 'utf8')).toBe('victim contents');
    expect(await modeOf(victim)).toBe(0o644);
    expect((await lstat(path.join(home, 'auth.json'))).isSymbolicLink()).toBe(true);
  });

  it('refuses a symlinked directory on the way and writes nothing through it', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const elsewhere = path.join(scratch, 'elsewhere');
    await mkdir(elsewhere);
    await symlink(elsewhere, path.join(home, '.claude'));
    const err = await thrown(writeSecretFileAtomic(home, '.claude/.credentials.json', '{}'));
    expect(err.code).toBe('symlink');
    expect(err.message).toContain('.claude');
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it('refuses a home that is a symlink', async () => {
    const real = await ensureSlotHome(scratch, 'alpha');
    const linked = path.join(scratch, 'linked');
    await symlink(real, linked);
    expect((await thrown(writeSecretFileAtomic(linked, 'auth.json', '{}'))).code).toBe('symlink');
    expect(await readdir(real)).toEqual([]);
  });

  it('leaves the original file and no temp file behind when the write fails', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, 'auth.json', 'original');
    // Not a string or Buffer: fails after the temp file exists, before the rename.
    const err = await thrown(writeSecretFileAtomic(home, 'auth.json', 42 as unknown as string));
    expect(err.code).toBe('write-failed');
    expect(err.message).toContain('untouched');
    expect(await readFile(path.join(home, 'auth.json'), 'utf8')).toBe('original');
    expect(await readdir(home)).toEqual(['auth.json']);
  });
});

describe('readSecretFile', () => {
  it('reads the text and reports the modes', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, 'cfg/creds.json', '{"a":1}');
    const read = await readSecretFile(home, 'cfg/creds.json');
    expect(read).toMatchObject({ ok: true, text: '{"a":1}', stat: { mode: 0o600, dirMode: 0o700, homeMode: 0o700, size: 7 } });
  });

  it('reports a missing file, a missing directory and a missing home as missing', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    expect(await readSecretFile(home, 'auth.json')).toMatchObject({ ok: false, reason: 'missing' });
    expect(await readSecretFile(home, 'cfg/auth.json')).toMatchObject({ ok: false, reason: 'missing' });
    expect(await readSecretFile(path.join(scratch, 'nope'), 'auth.json')).toMatchObject({ ok: false, reason: 'missing' });
  });

  it('refuses a symlink as the file or as a directory on the way', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const elsewhere = path.join(scratch, 'elsewhere');
    await mkdir(elsewhere);
    await writeFile(path.join(elsewhere, 'auth.json'), '{"planted":true}');
    await symlink(path.join(elsewhere, 'auth.json'), path.join(home, 'auth.json'));
    await symlink(elsewhere, path.join(home, 'cfg'));
    expect(await readSecretFile(home, 'auth.json')).toMatchObject({ ok: false, reason: 'symlink' });
    expect(await readSecretFile(home, 'cfg/auth.json')).toMatchObject({ ok: false, reason: 'symlink' });
  });

  it('reads a file whole when it is longer than its fstat size said, up to the cap', async () => {
    // /proc files report size 0 and have content: the same as a file that grew after fstat.
    const { open } = await import('node:fs/promises');
    const expected = await readFile('/proc/self/mountinfo', 'utf8');
    expect(expected.length).toBeGreaterThan(64);
    const whole = await open('/proc/self/mountinfo', 'r');
    try {
      const text = await readAtMost(whole, 0, 1024 * 1024);
      // Another mount may appear between the two reads; the first lines are stable.
      expect(text?.split('\n').slice(0, 3)).toEqual(expected.split('\n').slice(0, 3));
      expect(text!.length).toBeGreaterThan(64);
    } finally {
      await whole.close();
    }
    const capped = await open('/proc/self/mountinfo', 'r');
    try {
      expect(await readAtMost(capped, 0, 64)).toBeUndefined();
    } finally {
      await capped.close();
    }
  });

  it('refuses files over the cap without reading them', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, 'big.json', Buffer.alloc(1024 * 1024 + 1, 0x20));
    const read = await readSecretFile(home, 'big.json');
    expect(read).toMatchObject({ ok: false, reason: 'too-large' });
    expect(await readSecretFile(home, 'big.json', { maxBytes: 2 * 1024 * 1024 })).toMatchObject({ ok: true });
    expect(await readSecretFile(home, 'big.json', { maxBytes: 10 })).toMatchObject({ ok: false, reason: 'too-large' });
  });

  it('refuses directories and FIFOs as not-a-file, without hanging on the FIFO', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await mkdir(path.join(home, 'auth.json'));
    expect(await readSecretFile(home, 'auth.json')).toMatchObject({ ok: false, reason: 'not-a-file' });
    execFileSync('mkfifo', [path.join(home, 'fifo.json')]);
    expect(await readSecretFile(home, 'fifo.json')).toMatchObject({ ok: false, reason: 'not-a-file' });
  });

  it('with requirePrivate, refuses a readable file or one no owner-only directory shields', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, 'cfg/creds.json', '{}');
    await chmod(path.join(home, 'cfg'), 0o755);
    expect(await readSecretFile(home, 'cfg/creds.json', { requirePrivate: true })).toMatchObject({
      ok: true,
      stat: { mode: 0o600, dirMode: 0o755, homeMode: 0o700 },
    });
    await chmod(home, 0o755);
    const exposed = await readSecretFile(home, 'cfg/creds.json', { requirePrivate: true });
    expect(exposed).toMatchObject({ ok: false, reason: 'unsafe-mode' });
    await chmod(home, 0o700);
    await chmod(path.join(home, 'cfg', 'creds.json'), 0o644);
    expect(await readSecretFile(home, 'cfg/creds.json', { requirePrivate: true })).toMatchObject({ ok: false, reason: 'unsafe-mode' });
    // Without the option the modes are only reported.
    expect(await readSecretFile(home, 'cfg/creds.json')).toMatchObject({ ok: true, stat: { mode: 0o644 } });
  });
});

describe('makeSecretFilePrivate', () => {
  it('tightens a file a CLI wrote 0644 in a 0755 directory', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await mkdir(path.join(home, '.codex'));
    await chmod(path.join(home, '.codex'), 0o755);
    await writeFile(path.join(home, '.codex', 'auth.json'), '{}');
    await chmod(path.join(home, '.codex', 'auth.json'), 0o644);
    await makeSecretFilePrivate(home, '.codex/auth.json');
    expect(await modeOf(path.join(home, '.codex'))).toBe(0o700);
    expect(await modeOf(path.join(home, '.codex', 'auth.json'))).toBe(0o600);
  });

  it('never changes the mode of what a symlink points at', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const victim = path.join(scratch, 'victim');
    const victimDir = path.join(scratch, 'victim-dir');
    await writeFile(victim, 'x');
    await chmod(victim, 0o644);
    await mkdir(victimDir);
    await chmod(victimDir, 0o755);
    await writeFile(path.join(victimDir, 'auth.json'), '{}');
    await chmod(path.join(victimDir, 'auth.json'), 0o644);
    await symlink(victim, path.join(home, 'auth.json'));
    await symlink(victimDir, path.join(home, '.codex'));
    expect((await thrown(makeSecretFilePrivate(home, 'auth.json'))).code).toBe('symlink');
    expect((await thrown(makeSecretFilePrivate(home, '.codex/auth.json'))).code).toBe('symlink');
    expect(await modeOf(victim)).toBe(0o644);
    expect(await modeOf(victimDir)).toBe(0o755);
    expect(await modeOf(path.join(victimDir, 'auth.json'))).toBe(0o644);
    expect((await thrown(makeSecretFilePrivate(home, 'missing.json'))).code).toBe('missing');
  });
});

describe('updateJsonFileAtomic', () => {
  it('creates a missing file and keeps keys the update keeps', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await updateJsonFileAtomic(home, 'auth.json', (current) => {
      expect(current).toBeUndefined();
      return { auth_mode: 'chatgpt', tokens: { refresh_token: 'rt-1' }, extra: { keep: [1, 2] } };
    });
    const written = await updateJsonFileAtomic(home, 'auth.json', (current) => {
      const doc = current as { tokens: Record<string, string> };
      return { ...doc, tokens: { ...doc.tokens, refresh_token: 'rt-2' }, last_refresh: '2030-01-01T00:00:00Z' };
    });
    const onDisk: unknown = JSON.parse(await readFile(path.join(home, 'auth.json'), 'utf8'));
    expect(onDisk).toEqual(written);
    expect(onDisk).toEqual({ auth_mode: 'chatgpt', tokens: { refresh_token: 'rt-2' }, extra: { keep: [1, 2] }, last_refresh: '2030-01-01T00:00:00Z' });
    expect(await modeOf(path.join(home, 'auth.json'))).toBe(0o600);
  });

  it('refuses malformed JSON with an error that names the file and not its contents', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    const secret = 'sk-ant-ort01-PLANTED-SECRET-do-not-leak';
    const broken = `{"claudeAiOauth":{"refreshToken":"${secret}", oops ${secret}`;
    await writeSecretFileAtomic(home, '.claude/.credentials.json', broken);
    let called = false;
    const err = await thrown(
      updateJsonFileAtomic(home, '.claude/.credentials.json', () => {
        called = true;
        return {};
      }),
    );
    expect(err.code).toBe('malformed-json');
    expect(err.message).toContain('.claude/.credentials.json');
    for (const rendering of [err.message, String(err), inspect(err, { depth: 10 }), JSON.stringify(err), String(err.stack)]) {
      expect(rendering).not.toContain(secret);
      expect(rendering).not.toContain('PLANTED');
    }
    expect(called).toBe(false);
    expect(await readFile(path.join(home, '.claude', '.credentials.json'), 'utf8')).toBe(broken);
  });

  it('refuses an update that returns nothing', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, 'auth.json', '{"a":1}');
    expect((await thrown(updateJsonFileAtomic(home, 'auth.json', () => undefined))).code).toBe('invalid-update');
    expect(await readFile(path.join(home, 'auth.json'), 'utf8')).toBe('{"a":1}');
  });

  it('passes read refusals on as typed errors', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await symlink(path.join(scratch, 'x.json'), path.join(home, 'auth.json'));
    expect((await thrown(updateJsonFileAtomic(home, 'auth.json', () => ({})))).code).toBe('symlink');
  });
});

// The child rewrites the file in a tight loop with alternating multi-megabyte
// payloads; each payload is derived from its sequence number, so the parent can
// tell a complete payload from a torn or mixed one.
const CHILD_SCRIPT = `
import { writeSecretFileAtomic } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'activities', 'credential-store.ts')).href)};
const [home, rel] = process.argv.slice(2);
const payload = (seq) => ({ seq, kind: seq % 2 ? 'odd' : 'even', filler: (seq % 2 ? 'o' : 'e').repeat(seq % 2 ? 3000000 : 1200000) + seq });
for (let seq = 1; ; seq++) {
  await writeSecretFileAtomic(home, rel, JSON.stringify(payload(seq)));
  if (seq === 1) process.stdout.write('ready\\n');
}
`;
const expectedPayload = (seq: number) => ({
  seq,
  kind: seq % 2 ? 'odd' : 'even',
  filler: (seq % 2 ? 'o' : 'e').repeat(seq % 2 ? 3000000 : 1200000) + String(seq),
});

async function runWriterUntilKilled(script: string, home: string, rel: string, killAfterMs: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, home, rel], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`writer exited (${code}) before writing: ${stderr}`)));
  });
  await new Promise((resolve) => setTimeout(resolve, killAfterMs));
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
}

describe('crash safety', () => {
  it('a writer SIGKILLed at random moments never leaves a torn file', { timeout: 180_000 }, async () => {
    const home = await ensureSlotHome(scratch, 'crash');
    const rel = 'cfg/auth.json';
    const script = path.join(scratch, 'writer.mjs');
    await writeFile(script, CHILD_SCRIPT);
    await writeSecretFileAtomic(home, rel, JSON.stringify(expectedPayload(0)));

    const iterations = 30;
    const seenSeqs = new Set<number>();
    const leftovers = new Set<string>();
    let killsMidWrite = 0;
    for (let i = 0; i < iterations; i++) {
      await runWriterUntilKilled(script, home, rel, Math.floor(Math.random() * 60));
      const text = await readFile(path.join(home, rel), 'utf8');
      const parsed = JSON.parse(text) as { seq: number };
      expect(parsed).toEqual(expectedPayload(parsed.seq));
      seenSeqs.add(parsed.seq);
      for (const name of await readdir(path.join(home, 'cfg'))) {
        if (name === 'auth.json' || leftovers.has(name)) continue;
        expect(name).toMatch(/^\.auth\.json\.tmp-[0-9a-f]+$/);
        expect(await modeOf(path.join(home, 'cfg', name))).toBe(0o600);
        leftovers.add(name);
        killsMidWrite++;
      }
    }
    // A new leftover means a kill landed between creating the temp file and the
    // rename; without such kills this test would prove nothing about atomicity.
    expect(killsMidWrite).toBeGreaterThan(0);
    expect(seenSeqs.size).toBeGreaterThan(1);

    await cleanupStaleTempFiles(home, rel, { olderThanMs: 0 });
    expect(await readdir(path.join(home, 'cfg'))).toEqual(['auth.json']);
    const parsed = JSON.parse(await readFile(path.join(home, rel), 'utf8')) as { seq: number };
    expect(parsed).toEqual(expectedPayload(parsed.seq));
  });
});

describe('cleanupStaleTempFiles', () => {
  it('removes old leftovers of this file only, and keeps fresh ones by default', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    await writeSecretFileAtomic(home, 'auth.json', '{"current":true}');
    const old = new Date(Date.now() - 10 * 60_000);
    const plant = async (name: string, age: Date | undefined) => {
      await writeFile(path.join(home, name), 'partial', { mode: 0o600 });
      if (age) await utimes(path.join(home, name), age, age);
    };
    await plant('.auth.json.tmp-0123abcd', old);
    await plant('.auth.json.tmp-deadbeef', old);
    await plant('.auth.json.tmp-cafe0001', undefined); // a write that may still be in progress
    await plant('.other.json.tmp-0123abcd', old); // another file's leftover
    await plant('.auth.json.tmp-not-hex', old); // not a name we make
    await symlink(path.join(scratch, 'victim'), path.join(home, '.auth.json.tmp-00ff'));
    await writeFile(path.join(scratch, 'victim'), 'victim');

    const removed = await cleanupStaleTempFiles(home, 'auth.json');
    expect(removed.sort()).toEqual(['.auth.json.tmp-0123abcd', '.auth.json.tmp-deadbeef']);
    expect((await readdir(home)).sort()).toEqual(
      ['.auth.json.tmp-00ff', '.auth.json.tmp-cafe0001', '.auth.json.tmp-not-hex', '.other.json.tmp-0123abcd', 'auth.json'].sort(),
    );

    expect(await cleanupStaleTempFiles(home, 'auth.json', { olderThanMs: 0 })).toEqual(['.auth.json.tmp-cafe0001']);
    expect(await readFile(path.join(home, 'auth.json'), 'utf8')).toBe('{"current":true}');
    expect(await readFile(path.join(scratch, 'victim'), 'utf8')).toBe('victim');
    expect((await stat(path.join(home, 'auth.json'))).mode & 0o777).toBe(0o600);
  });

  it('does nothing when the directory does not exist', async () => {
    const home = await ensureSlotHome(scratch, 'alpha');
    expect(await cleanupStaleTempFiles(home, 'cfg/auth.json', { olderThanMs: 0 })).toEqual([]);
  });
});
