// A slot's credential file holds the only copy of a rotating refresh token: a torn,
// empty or world-readable file logs the slot out or leaks it. Everything that reads
// or writes one goes through here: confined to the slot home, no symlinks, 0600, atomic.
import { randomBytes } from 'node:crypto';
import { constants as fsc, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CredentialStoreError } from '../common/failures';
import { SlotId } from '../common/schemas';

const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;
const GROUP_OTHER = 0o077;
const DEFAULT_MAX_BYTES = 1024 * 1024;
/** Temp files are `.<name>.tmp-<hex>` beside the target, so leftovers are recognisable. */
const TEMP_MARK = '.tmp-';

const errnoOf = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;

const lstatOrUndefined = async (p: string): Promise<Stats | undefined> => {
  try {
    return await lstat(p);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
};

/** The slot's home directory under `slotsDir`. Throws `invalid-slot-id` for anything that is not a plain slot id. */
export function slotHome(slotsDir: string, slotId: string): string {
  const parsed = SlotId.safeParse(slotId);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => issue.message).join('; ');
    throw new CredentialStoreError('invalid-slot-id', `invalid slot id ${JSON.stringify(slotId)}: ${problems}`);
  }
  const root = path.resolve(slotsDir);
  const home = path.resolve(root, parsed.data);
  // The schema already forbids separators and dots; this keeps the guarantee if it is ever loosened.
  if (path.dirname(home) !== root || path.basename(home) !== parsed.data) {
    throw new CredentialStoreError('invalid-slot-id', `slot id ${JSON.stringify(slotId)} does not name a directory directly under ${root}`);
  }
  return home;
}

/**
 * Creates (or repairs) the slot home with mode 0700 and returns its path. A home
 * that is a symlink or not a directory is refused rather than followed or replaced.
 */
export async function ensureSlotHome(slotsDir: string, slotId: string): Promise<string> {
  const home = slotHome(slotsDir, slotId);
  const root = path.dirname(home);
  let firstCreated: string | undefined;
  try {
    firstCreated = await mkdir(root, { recursive: true, mode: PRIVATE_DIR });
  } catch (err) {
    throw new CredentialStoreError('write-failed', `cannot create the slots directory ${root}: ${errnoOf(err) ?? 'error'}`, root, { cause: err });
  }
  if (firstCreated !== undefined) {
    // mkdir's mode is filtered by the umask; directories we created are made 0700 whatever it is.
    for (let dir = root; ; dir = path.dirname(dir)) {
      await chmodDirectory(dir, PRIVATE_DIR);
      if (dir === firstCreated || path.dirname(dir) === dir) break;
    }
  }
  try {
    await mkdir(home, { mode: PRIVATE_DIR });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw new CredentialStoreError('write-failed', `cannot create slot home ${home}`, home, { cause: err });
  }
  await chmodDirectory(home, PRIVATE_DIR);
  return home;
}

/**
 * chmod through a descriptor opened with O_NOFOLLOW|O_DIRECTORY, so a symlink or a
 * file swapped in after a check is refused instead of having its target chmodded.
 */
async function chmodDirectory(dir: string, mode: number): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    const errno = errnoOf(err);
    // Linux answers ENOTDIR, not ELOOP, for a symlink opened with O_DIRECTORY|O_NOFOLLOW.
    if (errno === 'ELOOP' || errno === 'ENOTDIR') {
      const st = await lstatOrUndefined(dir).catch(() => undefined);
      if (errno === 'ELOOP' || st?.isSymbolicLink() === true) {
        throw new CredentialStoreError('symlink', `${dir} is a symlink; refusing to use it as a private directory`, dir, { cause: err });
      }
      throw new CredentialStoreError('not-a-directory', `${dir} exists and is not a directory`, dir, { cause: err });
    }
    throw new CredentialStoreError('write-failed', `cannot open directory ${dir}`, dir, { cause: err });
  }
  try {
    const st = await handle.stat();
    if ((st.mode & 0o7777) !== mode) await handle.chmod(mode);
  } finally {
    await handle.close();
  }
}

/**
 * Resolves `relPath` inside `home`. Refuses absolute paths, `..` segments, NUL bytes,
 * the home itself and anything that would land outside it. Purely lexical: symlinks
 * are checked by the readers and writers below.
 */
export function resolveInSlot(home: string, relPath: string): string {
  const refuse = (why: string): never => {
    throw new CredentialStoreError('unsafe-path', `refusing path ${JSON.stringify(relPath)} in slot home: ${why}`, relPath);
  };
  if (typeof relPath !== 'string' || relPath.length === 0) refuse('it is empty');
  if (relPath.includes('\0')) refuse('it contains a NUL byte');
  if (path.isAbsolute(relPath)) refuse('it is absolute');
  if (relPath.split(/[\\/]/).includes('..')) refuse('it contains a ".." segment');
  const root = path.resolve(home);
  const resolved = path.resolve(root, relPath);
  const rel = path.relative(root, resolved);
  if (rel === '') refuse('it names the slot home itself');
  if (rel.startsWith('..') || path.isAbsolute(rel)) refuse('it resolves outside the slot home');
  return resolved;
}

/** Directories between the home (included) and the file (excluded), outermost first. */
function directoriesOnTheWay(home: string, target: string): string[] {
  const root = path.resolve(home);
  const dirs = [root];
  const segments = path.relative(root, path.dirname(target)).split(path.sep).filter((s) => s !== '');
  for (const segment of segments) dirs.push(path.join(dirs[dirs.length - 1]!, segment));
  return dirs;
}

export interface SecretFileStat {
  /** Permission bits of the file (e.g. 0o600). */
  readonly mode: number;
  /** Permission bits of the directory that holds the file. */
  readonly dirMode: number;
  /** Permission bits of the slot home. */
  readonly homeMode: number;
  readonly size: number;
  readonly mtimeMs: number;
}

export type SecretFileProblem = 'missing' | 'too-large' | 'symlink' | 'not-a-file' | 'not-a-directory' | 'unsafe-mode' | 'read-failed';

export type ReadSecretFileResult =
  | { readonly ok: true; readonly text: string; readonly stat: SecretFileStat }
  | { readonly ok: false; readonly reason: SecretFileProblem; readonly message: string };

export interface ReadSecretFileOptions {
  /** Larger files are refused unread. @default 1 MiB */
  readonly maxBytes?: number;
  /**
   * Refuse (`unsafe-mode`) a file that grants group/other any permission, or that
   * others could reach because no directory from the home to it is owner-only.
   * @default false
   */
  readonly requirePrivate?: boolean;
}

/**
 * Reads a credential file without following symlinks anywhere under the home.
 * Expected problems come back as `{ ok: false, reason }`; an unsafe `relPath` is a
 * caller bug and throws `unsafe-path`.
 */
export async function readSecretFile(home: string, relPath: string, options: ReadSecretFileOptions = {}): Promise<ReadSecretFileResult> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError(`maxBytes must be a non-negative integer, got ${maxBytes}`);
  const target = resolveInSlot(home, relPath);
  const fail = (reason: SecretFileProblem, message: string): ReadSecretFileResult => ({ ok: false, reason, message });

  const dirModes: number[] = [];
  for (const dir of directoriesOnTheWay(home, target)) {
    let st: Stats | undefined;
    try {
      st = await lstatOrUndefined(dir);
    } catch (err) {
      return fail('read-failed', `cannot inspect ${describe(home, dir)}: ${errnoOf(err) ?? 'error'}`);
    }
    if (st === undefined) return fail('missing', `${relPath} is missing: ${describe(home, dir)} does not exist`);
    if (st.isSymbolicLink()) return fail('symlink', `${relPath} is refused: ${describe(home, dir)} is a symlink`);
    if (!st.isDirectory()) return fail('not-a-directory', `${relPath} is refused: ${describe(home, dir)} is not a directory`);
    dirModes.push(st.mode & 0o7777);
  }

  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the open.
    handle = await open(target, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT') return fail('missing', `${relPath} does not exist`);
    if (errno === 'ELOOP') return fail('symlink', `${relPath} is a symlink; refusing to follow it`);
    if (errno === 'ENOTDIR') return fail('not-a-directory', `${relPath} is refused: a parent is not a directory`);
    return fail('read-failed', `cannot open ${relPath}: ${errno ?? 'error'}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return fail('not-a-file', `${relPath} is not a regular file`);
    if (st.size > maxBytes) return fail('too-large', `${relPath} is ${st.size} bytes, more than the ${maxBytes} allowed`);
    const stat: SecretFileStat = {
      mode: st.mode & 0o7777,
      dirMode: dirModes[dirModes.length - 1]!,
      homeMode: dirModes[0]!,
      size: st.size,
      mtimeMs: st.mtimeMs,
    };
    if (options.requirePrivate === true) {
      const shielded = dirModes.some((mode) => (mode & GROUP_OTHER) === 0);
      if ((stat.mode & GROUP_OTHER) !== 0 || !shielded) {
        return fail('unsafe-mode', `${relPath} has mode ${octal(stat.mode)} in a directory of mode ${octal(stat.dirMode)} (home ${octal(stat.homeMode)}); it must be 0600 behind an owner-only directory`);
      }
    }
    // Read one byte past the cap: the file may have grown since fstat.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) return fail('too-large', `${relPath} grew past the ${maxBytes} bytes allowed while being read`);
    return { ok: true, text: buffer.toString('utf8', 0, length), stat };
  } catch (err) {
    return fail('read-failed', `cannot read ${relPath}: ${errnoOf(err) ?? 'error'}`);
  } finally {
    await handle.close();
  }
}

const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;
const describe = (home: string, p: string): string => {
  const rel = path.relative(path.resolve(home), p);
  return rel === '' ? 'the slot home' : rel;
};

/**
 * Makes every directory from the home to `target`'s parent exist, creating missing
 * ones 0700. Existing directories keep their mode: the 0700 home already shields them.
 */
async function ensureParents(home: string, target: string, relPath: string): Promise<void> {
  for (const dir of directoriesOnTheWay(home, target)) {
    const st = await lstatOrUndefined(dir);
    if (st === undefined) {
      if (dir === path.resolve(home)) throw new CredentialStoreError('missing', `slot home ${dir} does not exist`, relPath);
      try {
        await mkdir(dir, { mode: PRIVATE_DIR });
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw new CredentialStoreError('write-failed', `cannot create ${describe(home, dir)} for ${relPath}`, relPath, { cause: err });
      }
      await chmodDirectory(dir, PRIVATE_DIR);
      continue;
    }
    if (st.isSymbolicLink()) throw new CredentialStoreError('symlink', `refusing to write ${relPath}: ${describe(home, dir)} is a symlink`, relPath);
    if (!st.isDirectory()) throw new CredentialStoreError('not-a-directory', `refusing to write ${relPath}: ${describe(home, dir)} is not a directory`, relPath);
  }
}

const tempPrefix = (target: string): string => `.${path.basename(target)}${TEMP_MARK}`;

/**
 * Replaces `relPath` with `data` so that a reader (or a crash) sees either the old
 * file or the complete new one, never a torn or empty one. The new file is 0600
 * whatever the umask. On failure the original is left as it was. Returns the path.
 */
export async function writeSecretFileAtomic(home: string, relPath: string, data: string | Buffer): Promise<string> {
  const target = resolveInSlot(home, relPath);
  try {
    await ensureParents(home, target, relPath);
    const existing = await lstatOrUndefined(target);
    if (existing?.isSymbolicLink()) throw new CredentialStoreError('symlink', `refusing to write ${relPath}: it is a symlink`, relPath);
    if (existing !== undefined && !existing.isFile()) throw new CredentialStoreError('not-a-file', `refusing to write ${relPath}: it is not a regular file`, relPath);
  } catch (err) {
    if (err instanceof CredentialStoreError) throw err;
    throw new CredentialStoreError('write-failed', `cannot prepare to write ${relPath}: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
  }

  const dir = path.dirname(target);
  const temp = path.join(dir, `${tempPrefix(target)}${randomBytes(8).toString('hex')}`);
  let handle: FileHandle | undefined;
  try {
    // O_EXCL|O_NOFOLLOW: never reuse or write through something already at the temp name.
    handle = await open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, PRIVATE_FILE);
    // Before any byte is written, so the secret is never readable under a looser mode.
    await handle.chmod(PRIVATE_FILE);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    // rename replaces a symlink swapped in since the check instead of writing through it.
    await rename(temp, target);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    if (err instanceof CredentialStoreError) throw err;
    throw new CredentialStoreError('write-failed', `cannot write ${relPath}: ${errnoOf(err) ?? 'error'}; the previous file is untouched`, relPath, { cause: err });
  }
  await syncDirectory(dir, relPath);
  return target;
}

/** Without it the rename may not survive a power loss even though the data did. */
async function syncDirectory(dir: string, relPath: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
    await handle.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the rename is then as durable as they allow.
    if (['EINVAL', 'ENOTSUP', 'EOPNOTSUPP'].includes(errnoOf(err) ?? '')) return;
    throw new CredentialStoreError('dir-sync-failed', `${relPath} was replaced but its directory could not be synced: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Read-modify-write of a JSON credential file. `update` receives the parsed
 * contents (undefined when the file does not exist) and returns the whole new
 * document, so it decides which unrelated keys survive. Returns what was written.
 */
export async function updateJsonFileAtomic(
  home: string,
  relPath: string,
  update: (current: unknown) => unknown,
  options: Pick<ReadSecretFileOptions, 'maxBytes'> = {},
): Promise<unknown> {
  const read = await readSecretFile(home, relPath, options);
  let current: unknown;
  if (read.ok) {
    try {
      current = JSON.parse(read.text);
    } catch {
      // No cause: V8's SyntaxError message quotes the text around the error, which may be a token.
      throw new CredentialStoreError('malformed-json', `${relPath} in the slot home is not valid JSON (${read.stat.size} bytes); refusing to overwrite it`, relPath);
    }
  } else if (read.reason !== 'missing') {
    throw new CredentialStoreError(read.reason, read.message, relPath);
  }
  const next = await update(current);
  const text = next === undefined ? undefined : JSON.stringify(next, null, 2);
  if (text === undefined) throw new CredentialStoreError('invalid-update', `the update of ${relPath} produced nothing to write`, relPath);
  await writeSecretFileAtomic(home, relPath, `${text}\n`);
  return next;
}

/**
 * Makes an existing file 0600 and its directory 0700, for files a CLI wrote with
 * looser modes. Unlike fs.chmod it never follows a symlink, so a planted link
 * cannot get its target's mode changed. Throws `missing`, `symlink`, `not-a-file`…
 */
export async function makeSecretFilePrivate(home: string, relPath: string): Promise<void> {
  const target = resolveInSlot(home, relPath);
  for (const dir of directoriesOnTheWay(home, target)) {
    const st = await lstatOrUndefined(dir);
    if (st === undefined) throw new CredentialStoreError('missing', `${relPath} is missing: ${describe(home, dir)} does not exist`, relPath);
    if (st.isSymbolicLink()) throw new CredentialStoreError('symlink', `${relPath} is refused: ${describe(home, dir)} is a symlink`, relPath);
    if (!st.isDirectory()) throw new CredentialStoreError('not-a-directory', `${relPath} is refused: ${describe(home, dir)} is not a directory`, relPath);
  }
  await chmodDirectory(path.dirname(target), PRIVATE_DIR);
  let handle: FileHandle;
  try {
    handle = await open(target, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT') throw new CredentialStoreError('missing', `${relPath} does not exist`, relPath, { cause: err });
    if (errno === 'ELOOP') throw new CredentialStoreError('symlink', `${relPath} is a symlink; refusing to follow it`, relPath, { cause: err });
    throw new CredentialStoreError('write-failed', `cannot open ${relPath}: ${errno ?? 'error'}`, relPath, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new CredentialStoreError('not-a-file', `${relPath} is not a regular file`, relPath);
    if ((st.mode & 0o7777) !== PRIVATE_FILE) await handle.chmod(PRIVATE_FILE);
  } finally {
    await handle.close();
  }
}

export interface CleanupOptions {
  /** Only temp files last modified at least this long ago are removed, so a write in progress survives. @default 60000 */
  readonly olderThanMs?: number;
}

/**
 * Removes temp files that interrupted writes of `relPath` left beside it (a kill
 * between create and rename). Returns the names removed. Never touches the target.
 */
export async function cleanupStaleTempFiles(home: string, relPath: string, options: CleanupOptions = {}): Promise<string[]> {
  const olderThanMs = options.olderThanMs ?? 60_000;
  const target = resolveInSlot(home, relPath);
  const dir = path.dirname(target);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw new CredentialStoreError('read-failed', `cannot list the directory of ${relPath}`, relPath, { cause: err });
  }
  const removed: string[] = [];
  const now = Date.now();
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^[0-9a-f]+$/.test(name.slice(prefix.length))) continue;
    const candidate = path.join(dir, name);
    const st = await lstatOrUndefined(candidate);
    // Only plain files we could have made; anything else with that name is not ours to delete.
    if (st === undefined || !st.isFile() || now - st.mtimeMs < olderThanMs) continue;
    try {
      await unlink(candidate);
      removed.push(name);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw new CredentialStoreError('write-failed', `cannot remove ${name} beside ${relPath}`, relPath, { cause: err });
    }
  }
  return removed;
}
