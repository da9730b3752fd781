// A slot's credential file holds the only copy of a rotating refresh token: a torn,
// empty or world-readable file logs the slot out or leaks it. Everything that reads
// or writes one goes through here: confined to the slot home, no symlinks, 0600, atomic,
// and every path under the home walked through directory descriptors (see walkDirs).
// One module on purpose: reads, writes, reservations, clean-up and removal all rest on
// the private descriptor walk below; splitting them would make that walk public API.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { constants as fsc, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
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

// ── walking a slot home through directory descriptors ──
//
// A check on a path followed by an open of that path is a race: a symlink swapped in
// between is followed. So every directory under a slot home is opened with
// O_DIRECTORY|O_NOFOLLOW *relative to the descriptor of its parent*, and files are
// created, opened, renamed and removed relative to the descriptor of their directory.
// Node has no openat(2); `/proc/self/fd/<fd>/<name>` is its equivalent on Linux: the
// kernel resolves `/proc/self/fd/<fd>` to the open directory itself (not by walking
// its path again), then `<name>` inside it, and O_NOFOLLOW applies to `<name>`.
// Linux-only, like the slot hosts this service runs on.

/** `name` inside the directory open as `dir`, resolved by the kernel through the descriptor. */
const inDir = (dir: FileHandle, name: string): string => `/proc/self/fd/${dir.fd}/${name}`;

let procFdChecked: Promise<void> | undefined;
/** Without /proc every name through a descriptor would look missing; say what is wrong instead. */
const requireProcFd = (): Promise<void> =>
  (procFdChecked ??= stat('/proc/self/fd').then(
    () => undefined,
    (err: unknown) => {
      procFdChecked = undefined;
      throw new CredentialStoreError('write-failed', `slot homes are walked through /proc/self/fd, which this host does not have (${errnoOf(err) ?? 'error'}); the slot host must be Linux with /proc mounted`, undefined, { cause: err });
    },
  ));

const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
/** How often a component that changes between an open and its diagnosis is retried before it is refused. */
const SWAP_RETRIES = 3;

interface OpenDir {
  readonly handle: FileHandle;
  /** The held slot home's descriptor (holdSlotHome): walks borrow it, closeAll leaves it open. */
  readonly borrowed?: true;
  /** Permission bits, from fstat of the open descriptor. */
  readonly mode: number;
  /** How messages name it: its path relative to the home, or 'the slot home'. */
  readonly rel: string;
}

/** The directories from the home to some file, open, outermost first. Close with closeAll. */
type DirChain = OpenDir[];

const closeAll = async (chain: readonly OpenDir[]): Promise<void> => {
  await Promise.all(chain.map((dir) => (dir.borrowed ? undefined : dir.handle.close().catch(() => undefined))));
};

interface WalkOptions {
  /** Create missing directories (0700 whatever the umask) instead of refusing them as `missing`. */
  readonly create: boolean;
  /** Begins each refusal, e.g. "refusing to write .oidc/tokens.json". */
  readonly refusal: string;
  /** The `file` of the errors. */
  readonly file: string;
  /** The code of an unexpected fs error. */
  readonly failCode: 'read-failed' | 'write-failed';
}

/**
 * Opens `where` (the home's path, or a name under a directory descriptor: `inDir`) as a
 * directory without following a symlink at its last component, creating it
 * 0700 when asked. `label` names it in messages. A symlink is `symlink`, anything
 * else `not-a-directory`; something that keeps changing under us is `unsafe-path`.
 */
async function openChildDir(where: string, label: string, options: WalkOptions): Promise<OpenDir & { created: boolean }> {
  let created = false;
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(where, DIR_FLAGS);
      try {
        const st = await handle.stat();
        // mkdir's mode is filtered by the umask; a directory we created is made 0700 whatever it is.
        if (created && (st.mode & 0o7777) !== PRIVATE_DIR) await handle.chmod(PRIVATE_DIR);
        return { handle, mode: created ? PRIVATE_DIR : st.mode & 0o7777, rel: label, created };
      } catch (err) {
        await handle.close().catch(() => undefined);
        throw err;
      }
    } catch (err) {
      if (err instanceof CredentialStoreError) throw err;
      const errno = errnoOf(err);
      if (attempt >= SWAP_RETRIES && (errno === 'ENOENT' || errno === 'ENOTDIR' || errno === 'ELOOP')) {
        throw new CredentialStoreError('unsafe-path', `${options.refusal}: ${label} kept changing while it was being opened`, options.file, { cause: err });
      }
      if (errno === 'ENOENT') {
        if (!options.create) throw new CredentialStoreError('missing', `${options.refusal}: ${label} does not exist`, options.file, { cause: err });
        try {
          await mkdir(where, { mode: PRIVATE_DIR });
          created = true;
        } catch (mkdirErr) {
          if (errnoOf(mkdirErr) !== 'EEXIST') {
            throw new CredentialStoreError(options.failCode, `${options.refusal}: cannot create ${label}: ${errnoOf(mkdirErr) ?? 'error'}`, options.file, { cause: mkdirErr });
          }
        }
        continue;
      }
      // Linux answers ENOTDIR, not ELOOP, for a symlink opened with O_DIRECTORY|O_NOFOLLOW.
      if (errno === 'ENOTDIR' || errno === 'ELOOP') {
        const st = await lstatOrUndefined(where).catch(() => undefined);
        if (st?.isSymbolicLink() === true) {
          throw new CredentialStoreError('symlink', `${options.refusal}: ${label} is a symlink; symlinks in a slot home are never followed`, options.file, { cause: err });
        }
        if (st !== undefined && !st.isDirectory()) throw new CredentialStoreError('not-a-directory', `${options.refusal}: ${label} is not a directory`, options.file, { cause: err });
        // Gone, or a directory again: it changed since the open; look once more.
        continue;
      }
      throw new CredentialStoreError(options.failCode, `${options.refusal}: cannot open ${label}: ${errno ?? 'error'}`, options.file, { cause: err });
    }
  }
}

/**
 * Opens the slot home itself without following a symlink at its last component. The
 * slots directory above it is the operator's (it may itself be a symlink) and is
 * opened as configured; everything below it is walked by descriptor.
 */
async function openHome(home: string, options: WalkOptions): Promise<OpenDir & { created: boolean }> {
  await requireProcFd();
  // By its path: O_NOFOLLOW applies to the home's own name, the slots directory above is resolved as configured.
  return openChildDir(path.resolve(home), 'the slot home', options);
}

/**
 * Opens the home and each directory of `segments` below it, each relative to the one
 * before, none through a symlink. Existing directories keep their mode (the 0700 home
 * shields them); created ones are 0700. The caller closes the chain.
 */
async function walkDirs(home: string, segments: readonly string[], options: WalkOptions): Promise<DirChain> {
  const chain: DirChain = [];
  try {
    chain.push(heldHomeAt(home) ?? (await openHome(home, { ...options, create: false })));
    for (const segment of segments) {
      const rel = chain.length === 1 ? segment : `${chain[chain.length - 1]!.rel}/${segment}`;
      chain.push(await openChildDir(inDir(chain[chain.length - 1]!.handle, segment), rel, options));
    }
    return chain;
  } catch (err) {
    await closeAll(chain);
    throw err;
  }
}

/** The directory segments between the home and `target`, and its file name. */
function splitTarget(home: string, target: string): { segments: string[]; name: string } {
  const rel = path.relative(path.resolve(home), target);
  const parts = rel.split(path.sep).filter((s) => s !== '' && s !== '.');
  return { segments: parts.slice(0, -1), name: parts[parts.length - 1]! };
}

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
  // Held open by this activity: it exists, 0700, and is the directory the activity began with.
  if (heldHomeAt(home) !== undefined) return home;
  const opened = await openEnsuredHome(home);
  await opened.handle.close().catch(() => undefined);
  return home;
}

/** ensureSlotHome's work, the home left open. */
async function openEnsuredHome(home: string): Promise<OpenDir> {
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
  const opened = await openHome(home, { create: true, refusal: `refusing slot home ${home}`, file: home, failCode: 'write-failed' });
  try {
    // An existing home is tightened too: everything secret of the slot lives below it.
    if (opened.mode !== PRIVATE_DIR) await opened.handle.chmod(PRIVATE_DIR);
  } catch (err) {
    await opened.handle.close().catch(() => undefined);
    throw new CredentialStoreError('write-failed', `cannot make slot home ${home} private: ${errnoOf(err) ?? 'error'}`, home, { cause: err });
  }
  return { handle: opened.handle, mode: PRIVATE_DIR, rel: opened.rel };
}

// ── holding a slot home open for one activity ──
//
// A refresh makes some twenty calls into this module; each used to open the home by its
// path (resolving every directory above it), fstat it and close it again. holdSlotHome
// opens it once, as ensureSlotHome would, and every call made *within its callback* (an
// AsyncLocalStorage scope: other activities, even of the same slot, are not affected)
// walks from that descriptor. What the walk below the home checks is unchanged. The home
// is renamed only by a retire, under the slot's lock; a call within the scope after such
// a rename acts in the renamed directory, never on a new home at the old path.

interface HeldHome {
  readonly path: string;
  readonly dir: OpenDir;
  /** Set when holdSlotHome's callback settled: a call still running in its scope then opens the home by path. */
  released: boolean;
}

const heldHomes = new AsyncLocalStorage<HeldHome>();

/** The descriptor of `home` when the current activity holds it open. */
function heldHomeAt(home: string): OpenDir | undefined {
  const held = heldHomes.getStore();
  return held !== undefined && !held.released && held.path === path.resolve(home) ? held.dir : undefined;
}

/**
 * Creates (or repairs) the slot home as ensureSlotHome does and runs `work` with it held
 * open: every call of this module on that home within `work` starts from the one
 * descriptor. Closed when `work` settles, so `work` must await every call it starts (a
 * call left running would name the descriptor's number after it was closed and reused).
 */
export async function holdSlotHome<T>(slotsDir: string, slotId: string, work: (home: string) => Promise<T>): Promise<T> {
  const home = slotHome(slotsDir, slotId);
  if (heldHomeAt(home) !== undefined) return work(home);
  const opened = await openEnsuredHome(home);
  const held: HeldHome = { path: path.resolve(home), dir: { ...opened, borrowed: true }, released: false };
  try {
    return await heldHomes.run(held, () => work(home));
  } finally {
    held.released = true;
    await opened.handle.close().catch(() => undefined);
  }
}

/**
 * Makes `relativeDir` (e.g. `.claude`, `.codex/sessions`) exist under the slot home,
 * creating missing directories 0700, without following a symlink at any component:
 * a CLI's config directory planted as a link to somewhere else is refused
 * (`symlink`), never created through. Existing directories keep their mode. Returns
 * the directory's path.
 */
export async function ensureSlotDir(home: string, relativeDir: string): Promise<string> {
  const target = resolveInSlot(home, relativeDir);
  const segments = path.relative(path.resolve(home), target).split(path.sep).filter((s) => s !== '');
  const chain = await walkDirs(home, segments, {
    create: true,
    refusal: `refusing to create ${relativeDir} in the slot home`,
    file: relativeDir,
    failCode: 'write-failed',
  });
  await closeAll(chain);
  return target;
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

  const { segments, name } = splitTarget(home, target);
  let chain: DirChain;
  try {
    chain = await walkDirs(home, segments, { create: false, refusal: `cannot read ${relPath}`, file: relPath, failCode: 'read-failed' });
  } catch (err) {
    if (!(err instanceof CredentialStoreError)) throw err;
    const reason: SecretFileProblem = err.code === 'missing' || err.code === 'symlink' || err.code === 'not-a-directory' ? err.code : 'read-failed';
    return fail(reason, err.message);
  }
  const dirModes = chain.map((dir) => dir.mode);

  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the open.
    handle = await open(inDir(chain[chain.length - 1]!.handle, name), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    await closeAll(chain);
    const errno = errnoOf(err);
    if (errno === 'ENOENT') return fail('missing', `${relPath} does not exist`);
    if (errno === 'ELOOP') return fail('symlink', `${relPath} is a symlink; refusing to follow it`);
    if (errno === 'ENOTDIR') return fail('not-a-directory', `${relPath} is refused: a parent is not a directory`);
    return fail('read-failed', `cannot open ${relPath}: ${errno ?? 'error'}`);
  }
  await closeAll(chain);
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
    const text = await readAtMost(handle, st.size, maxBytes);
    if (text === undefined) return fail('too-large', `${relPath} grew past the ${maxBytes} bytes allowed while being read`);
    return { ok: true, text, stat };
  } catch (err) {
    return fail('read-failed', `cannot read ${relPath}: ${errnoOf(err) ?? 'error'}`);
  } finally {
    await handle.close();
  }
}

/**
 * The file's text, read into a buffer sized by its fstat size (credentials are a few KiB:
 * a buffer of the cap, 1 MiB zero-filled per read, cost a refresh more in garbage
 * collection than all its other work). One byte past the size is asked for, so a file
 * that grew since fstat is still read whole, growing the buffer up to one byte past the
 * cap; undefined when it grew past the cap.
 */
export async function readAtMost(handle: FileHandle, size: number, maxBytes: number): Promise<string | undefined> {
  let buffer = Buffer.alloc(Math.min(size, maxBytes) + 1);
  let length = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
    if (bytesRead === 0) break;
    length += bytesRead;
    if (length < buffer.length) continue;
    if (buffer.length > maxBytes) break;
    const larger = Buffer.alloc(Math.min(buffer.length * 2, maxBytes + 1));
    buffer.copy(larger, 0, 0, length);
    buffer = larger;
  }
  return length > maxBytes ? undefined : buffer.toString('utf8', 0, length);
}

const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;

const tempPrefix = (target: string): string => `.${path.basename(target)}${TEMP_MARK}`;

/**
 * Replaces `relPath` with `data` so that a reader (or a crash) sees either the old
 * file or the complete new one, never a torn or empty one. The new file is 0600
 * whatever the umask. On failure the original is left as it was. Returns the path.
 */
export async function writeSecretFileAtomic(home: string, relPath: string, data: string | Buffer): Promise<string> {
  const target = resolveInSlot(home, relPath);
  const { segments, name } = splitTarget(home, target);
  const chain = await walkDirs(home, segments, { create: true, refusal: `refusing to write ${relPath}`, file: relPath, failCode: 'write-failed' });
  const dir = chain[chain.length - 1]!.handle;
  try {
    try {
      const existing = await lstatOrUndefined(inDir(dir, name));
      if (existing?.isSymbolicLink()) throw new CredentialStoreError('symlink', `refusing to write ${relPath}: it is a symlink`, relPath);
      if (existing !== undefined && !existing.isFile()) throw new CredentialStoreError('not-a-file', `refusing to write ${relPath}: it is not a regular file`, relPath);
    } catch (err) {
      if (err instanceof CredentialStoreError) throw err;
      throw new CredentialStoreError('write-failed', `cannot prepare to write ${relPath}: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
    }

    const temp = inDir(dir, `${tempPrefix(target)}${randomBytes(8).toString('hex')}`);
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
      // Both names resolve through the same directory descriptor: the rename stays in
      // the directory that was walked, and replaces a symlink swapped in at the name
      // since the check instead of writing through it.
      await rename(temp, inDir(dir, name));
    } catch (err) {
      await handle?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      if (err instanceof CredentialStoreError) throw err;
      if (errnoOf(err) === 'ENOENT') {
        // Names resolve through the open directory, so ENOENT here means it was removed under us.
        const where = chain.length === 1 ? 'the slot home' : chain[chain.length - 1]!.rel;
        throw new CredentialStoreError('unsafe-path', `refusing to write ${relPath}: ${where} was removed or replaced while it was being written; nothing was written`, relPath, { cause: err });
      }
      throw new CredentialStoreError('write-failed', `cannot write ${relPath}: ${errnoOf(err) ?? 'error'}; the previous file is untouched`, relPath, { cause: err });
    }
    await syncDirectory(dir, relPath);
  } finally {
    await closeAll(chain);
  }
  return target;
}

/** Without it the rename may not survive a power loss even though the data did. */
async function syncDirectory(dir: FileHandle, relPath: string): Promise<void> {
  try {
    await dir.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the rename is then as durable as they allow.
    if (['EINVAL', 'ENOTSUP', 'EOPNOTSUPP'].includes(errnoOf(err) ?? '')) return;
    throw new CredentialStoreError('dir-sync-failed', `${relPath} was replaced but its directory could not be synced: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
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
  const { segments, name } = splitTarget(home, target);
  const chain = await walkDirs(home, segments, { create: false, refusal: `cannot make ${relPath} private`, file: relPath, failCode: 'write-failed' });
  try {
    const dir = chain[chain.length - 1]!;
    if (dir.mode !== PRIVATE_DIR) await dir.handle.chmod(PRIVATE_DIR);
    let handle: FileHandle;
    try {
      handle = await open(inDir(dir.handle, name), fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
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
  } catch (err) {
    if (err instanceof CredentialStoreError) throw err;
    throw new CredentialStoreError('write-failed', `cannot make ${relPath} private: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
  } finally {
    await closeAll(chain);
  }
}

/**
 * Removes `relPath` (a symlink there is removed, never followed) through the
 * descriptors of its directories, then fsyncs its directory so the removal is
 * durable. Returns false when there was nothing to remove. A symlinked directory on
 * the way is refused (`symlink`); other failures are `write-failed`.
 */
export async function removeSecretFile(home: string, relPath: string): Promise<boolean> {
  const target = resolveInSlot(home, relPath);
  const { segments, name } = splitTarget(home, target);
  let chain: DirChain;
  try {
    chain = await walkDirs(home, segments, { create: false, refusal: `refusing to remove ${relPath}`, file: relPath, failCode: 'write-failed' });
  } catch (err) {
    if (err instanceof CredentialStoreError && err.code === 'missing') return false;
    throw err;
  }
  try {
    const dir = chain[chain.length - 1]!.handle;
    try {
      await unlink(inDir(dir, name));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return false;
      throw new CredentialStoreError('write-failed', `cannot remove ${relPath}: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
    }
    await syncDirectory(dir, relPath);
    return true;
  } finally {
    await closeAll(chain);
  }
}

export interface CleanupOptions {
  /** Only temp files last modified at least this long ago are removed, so a write in progress survives. @default 60000 */
  readonly olderThanMs?: number;
  /** Temp files whose text this accepts are kept (a complete answer is recovered, never deleted). @default none */
  readonly keep?: (text: string) => boolean;
}

/**
 * Removes temp files that interrupted writes of `relPath` left beside it (a kill
 * between create and rename). Returns the names removed. Never touches the target.
 */
export async function cleanupStaleTempFiles(home: string, relPath: string, options: CleanupOptions = {}): Promise<string[]> {
  const olderThanMs = options.olderThanMs ?? 60_000;
  const target = resolveInSlot(home, relPath);
  const { segments } = splitTarget(home, target);
  const prefix = tempPrefix(target);
  let chain: DirChain;
  try {
    chain = await walkDirs(home, segments, { create: false, refusal: `cannot clean up beside ${relPath}`, file: relPath, failCode: 'read-failed' });
  } catch (err) {
    if (err instanceof CredentialStoreError && err.code === 'missing') return [];
    throw err;
  }
  const dir = chain[chain.length - 1]!.handle;
  const removed: string[] = [];
  try {
    let names: string[];
    try {
      names = await readdir(`/proc/self/fd/${dir.fd}`);
    } catch (err) {
      throw new CredentialStoreError('read-failed', `cannot list the directory of ${relPath}`, relPath, { cause: err });
    }
    const now = Date.now();
    for (const name of names) {
      if (!name.startsWith(prefix) || !/^[0-9a-f]+$/.test(name.slice(prefix.length))) continue;
      const candidate = inDir(dir, name);
      const st = await lstatOrUndefined(candidate);
      // Only plain files we could have made; anything else with that name is not ours to delete.
      if (st === undefined || !st.isFile() || now - st.mtimeMs < olderThanMs) continue;
      if (options.keep) {
        const read = await readTempIfPrivate(candidate);
        if (read !== undefined && options.keep(read.text)) continue;
      }
      try {
        await unlink(candidate);
        removed.push(name);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw new CredentialStoreError('write-failed', `cannot remove ${name} beside ${relPath}`, relPath, { cause: err });
      }
    }
  } finally {
    await closeAll(chain);
  }
  return removed;
}

/** What one listing of its directory says about a file: whether a name is there, and temp files of it. */
export interface FileLeftovers {
  /** Something (of any type) has the file's name. */
  readonly exists: boolean;
  /** Names of its temp files (an interrupted write's) are beside it. */
  readonly temps: boolean;
}

/**
 * One listing of each directory that holds one of `relPaths`, for the recovery steps at
 * the start of a refresh (clean-up of temp files, a spool to recover), which nearly always
 * find nothing: they run only where this says something is there. A directory that is
 * missing holds nothing; one that cannot be listed (a symlink, an error) says everything
 * is there, so the steps run and report what is wrong as they always did.
 */
export async function leftoversOf(home: string, relPaths: readonly string[]): Promise<(relPath: string) => FileLeftovers> {
  const everything: FileLeftovers = { exists: true, temps: true };
  const byDir = new Map<string, { segments: string[]; names?: ReadonlySet<string> }>();
  const targets = new Map<string, { dir: string; name: string; prefix: string }>();
  for (const relPath of relPaths) {
    const target = resolveInSlot(home, relPath);
    const { segments, name } = splitTarget(home, target);
    const dir = segments.join('/');
    if (!byDir.has(dir)) byDir.set(dir, { segments });
    targets.set(relPath, { dir, name, prefix: tempPrefix(target) });
  }
  for (const listing of byDir.values()) {
    let chain: DirChain;
    try {
      chain = await walkDirs(home, listing.segments, { create: false, refusal: 'cannot list the slot home', file: listing.segments.join('/') || '.', failCode: 'read-failed' });
    } catch (err) {
      if (err instanceof CredentialStoreError && err.code === 'missing') listing.names = new Set();
      continue;
    }
    try {
      listing.names = new Set(await readdir(`/proc/self/fd/${chain[chain.length - 1]!.handle.fd}`));
    } catch {
      // Left undefined: everything is assumed there.
    } finally {
      await closeAll(chain);
    }
  }
  return (relPath) => {
    const where = targets.get(relPath);
    const names = where === undefined ? undefined : byDir.get(where.dir)?.names;
    if (where === undefined || names === undefined) return everything;
    return { exists: names.has(where.name), temps: [...names].some((name) => name.startsWith(where.prefix)) };
  };
}

/** Deeper than this, a tree is refused rather than walked (each level holds a descriptor). */
const MAX_REMOVE_DEPTH = 256;

/**
 * Removes `name` under the directory `parent` and, if it is a directory, everything in
 * it, without ever following a symlink: each directory is opened O_DIRECTORY|O_NOFOLLOW
 * through the descriptor of its parent and emptied through its own descriptor, symlinks
 * are unlinked as links. A directory swapped for a symlink while it is being emptied
 * (an agent's doing) costs a retry, never a file outside the tree. `parent` itself is
 * the host's (the trash) and is opened by path. Returns false when nothing was there.
 */
export async function removeDirectoryTree(parent: string, name: string): Promise<boolean> {
  await requireProcFd();
  if (name === '' || name === '.' || name === '..' || name.includes('/')) throw new CredentialStoreError('unsafe-path', `refusing to remove ${JSON.stringify(name)}: not a name`, name);
  let dir: FileHandle;
  try {
    dir = await open(path.resolve(parent), DIR_FLAGS);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw new CredentialStoreError('write-failed', `cannot open ${parent}: ${errnoOf(err) ?? 'error'}`, parent, { cause: err });
  }
  try {
    return await removeEntry(dir, name, name, 0);
  } finally {
    await dir.close().catch(() => undefined);
  }
}

async function removeEntry(parent: FileHandle, name: string, rel: string, depth: number): Promise<boolean> {
  for (let attempt = 0; attempt <= SWAP_RETRIES * 3; attempt++) {
    try {
      // unlink never follows: a symlink (or file) goes as itself.
      await unlink(inDir(parent, name));
      return true;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT') return attempt > 0;
      if (errno !== 'EISDIR' && errno !== 'EPERM') throw new CredentialStoreError('write-failed', `cannot remove ${rel}: ${errno ?? 'error'}`, rel, { cause: err });
    }
    if (depth >= MAX_REMOVE_DEPTH) throw new CredentialStoreError('unsafe-path', `refusing to remove ${rel}: nested deeper than ${MAX_REMOVE_DEPTH} directories`, rel);
    let child: FileHandle;
    try {
      child = await open(inDir(parent, name), DIR_FLAGS);
    } catch (err) {
      const errno = errnoOf(err);
      // Swapped for a symlink or a file, or gone, since unlink looked: look again.
      if (errno === 'ENOTDIR' || errno === 'ELOOP' || errno === 'ENOENT') continue;
      throw new CredentialStoreError('write-failed', `cannot open ${rel}: ${errno ?? 'error'}`, rel, { cause: err });
    }
    try {
      const names = await readdir(`/proc/self/fd/${child.fd}`);
      for (const entry of names) await removeEntry(child, entry, `${rel}/${entry}`, depth + 1);
    } finally {
      await child.close().catch(() => undefined);
    }
    try {
      // rmdir never follows either: a symlink swapped in at the name is ENOTDIR, and removed as a link next time round.
      await rmdir(inDir(parent, name));
      return true;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT') return true;
      if (errno !== 'ENOTEMPTY' && errno !== 'EEXIST' && errno !== 'ENOTDIR') throw new CredentialStoreError('write-failed', `cannot remove ${rel}: ${errno ?? 'error'}`, rel, { cause: err });
    }
  }
  throw new CredentialStoreError('unsafe-path', `refusing to remove ${rel}: it kept changing while it was being removed`, rel);
}

// ── reserving space before something irreplaceable arrives ──

/**
 * A file created exclusively (O_EXCL|O_NOFOLLOW, 0600) in the slot home and filled with
 * `bytes` spaces, fsynced: its blocks are allocated before anything is spent, so
 * writing into it later needs no free space (a full disk fails the reservation, not
 * the write). It is made complete by `fill` and put in place by `commitAs`.
 */
export interface SecretFileReservation {
  /** Whether the reservation's name still holds the file this process created (not removed or replaced). */
  held(): Promise<boolean>;
  /** Writes `text` over the reserved bytes, pads the rest with spaces (JSON allows trailing whitespace) and fsyncs. */
  fill(text: string): Promise<void>;
  /** Renames the reservation to `name` in the same directory and fsyncs the directory; the reservation is then used up. */
  commitAs(name: string): Promise<void>;
  /** Removes the reservation (when it is still ours, neither filled nor committed: a filled one is kept for recovery) and closes it. Never throws. */
  release(): Promise<void>;
}

/**
 * Reserves `relPath` (a name directly in the home). Throws CredentialStoreError: `reserved`
 * when the name exists (another attempt holds it), `write-failed` when there is no room.
 */
export async function reserveSecretFile(home: string, relPath: string, bytes: number): Promise<SecretFileReservation> {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`bytes must be a positive integer, got ${bytes}`);
  const target = resolveInSlot(home, relPath);
  const { segments, name } = splitTarget(home, target);
  if (segments.length > 0) throw new CredentialStoreError('unsafe-path', `a reservation must be directly in the slot home, not ${relPath}`, relPath);
  const chain = await walkDirs(home, [], { create: false, refusal: `refusing to reserve ${relPath}`, file: relPath, failCode: 'write-failed' });
  const dir = chain[0]!.handle;
  let handle: FileHandle;
  try {
    handle = await open(inDir(dir, name), fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, PRIVATE_FILE);
  } catch (err) {
    await closeAll(chain);
    if (errnoOf(err) === 'EEXIST') throw new CredentialStoreError('reserved', `${relPath} exists: another attempt holds the reservation`, relPath, { cause: err });
    throw new CredentialStoreError('write-failed', `cannot reserve ${relPath}: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
  }
  let size = bytes;
  let committed = false;
  let filled = false;
  const ours = await handle.stat();
  const unlinkIfOurs = async (): Promise<void> => {
    const there = await lstatOrUndefined(inDir(dir, name)).catch(() => undefined);
    if (there !== undefined && there.ino === ours.ino && there.dev === ours.dev) await unlink(inDir(dir, name)).catch(() => undefined);
  };
  try {
    await handle.chmod(PRIVATE_FILE);
    // Real bytes, not a sparse truncate: only written blocks are allocated.
    await handle.writeFile(Buffer.alloc(bytes, 0x20));
    await handle.sync();
    await syncDirectory(dir, relPath);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlinkIfOurs();
    await closeAll(chain);
    if (err instanceof CredentialStoreError) throw err;
    const errno = errnoOf(err);
    throw new CredentialStoreError('write-failed', `cannot reserve ${bytes} bytes for ${relPath}: ${errno === 'ENOSPC' || errno === 'EDQUOT' ? 'no space left on the device' : errno ?? 'error'}`, relPath, { cause: err });
  }
  const close = async (): Promise<void> => {
    await handle.close().catch(() => undefined);
    await closeAll(chain);
  };
  return {
    held: async () => {
      try {
        const [now, there] = await Promise.all([handle.stat(), lstatOrUndefined(inDir(dir, name))]);
        return now.nlink > 0 && there !== undefined && there.ino === ours.ino && there.dev === ours.dev;
      } catch {
        return false;
      }
    },
    fill: async (text: string) => {
      const data = Buffer.from(text, 'utf8');
      try {
        // Past the reservation the file grows, which needs space like any write.
        const padded = data.length >= size ? data : Buffer.concat([data, Buffer.alloc(size - data.length, 0x20)]);
        await handle.write(padded, 0, padded.length, 0);
        size = Math.max(size, padded.length);
        await handle.sync();
        filled = true;
      } catch (err) {
        throw new CredentialStoreError('write-failed', `cannot write into the reserved ${relPath}: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
      }
    },
    commitAs: async (finalName: string) => {
      if (finalName.includes('/') || finalName === '' || finalName === '.' || finalName === '..') throw new RangeError(`not a name in the slot home: ${finalName}`);
      try {
        await rename(inDir(dir, name), inDir(dir, finalName));
      } catch (err) {
        throw new CredentialStoreError('write-failed', `cannot rename ${relPath} to ${finalName}: ${errnoOf(err) ?? 'error'}`, finalName, { cause: err });
      }
      committed = true;
      await syncDirectory(dir, finalName);
      await close();
    },
    release: async () => {
      if (!committed && !filled) {
        await unlinkIfOurs();
        await dir.sync().catch(() => undefined);
      }
      await close();
    },
  };
}

/**
 * After a crash between a temp file's fsync and its rename, the temp file may be the
 * only copy of something irreplaceable (a token answer). When `relPath` does not exist,
 * the newest temp file of it that is a private regular file and that `complete` accepts
 * is renamed into place. Returns whether one was. Never follows a symlink.
 */
export async function recoverTempFile(home: string, relPath: string, complete: (text: string) => boolean): Promise<boolean> {
  const target = resolveInSlot(home, relPath);
  const { segments, name } = splitTarget(home, target);
  let chain: DirChain;
  try {
    chain = await walkDirs(home, segments, { create: false, refusal: `cannot recover ${relPath}`, file: relPath, failCode: 'read-failed' });
  } catch (err) {
    if (err instanceof CredentialStoreError && err.code === 'missing') return false;
    throw err;
  }
  const dir = chain[chain.length - 1]!.handle;
  try {
    if ((await lstatOrUndefined(inDir(dir, name))) !== undefined) return false;
    const prefix = tempPrefix(target);
    const names = (await readdir(`/proc/self/fd/${dir.fd}`)).filter((n) => n.startsWith(prefix) && /^[0-9a-f]+$/.test(n.slice(prefix.length)));
    let best: { name: string; mtimeMs: number } | undefined;
    for (const candidate of names) {
      const text = await readTempIfPrivate(inDir(dir, candidate));
      if (text === undefined || !complete(text.text)) continue;
      if (best === undefined || text.mtimeMs > best.mtimeMs) best = { name: candidate, mtimeMs: text.mtimeMs };
    }
    if (best === undefined) return false;
    await rename(inDir(dir, best.name), inDir(dir, name));
    await syncDirectory(dir, relPath);
    return true;
  } catch (err) {
    if (err instanceof CredentialStoreError) throw err;
    throw new CredentialStoreError('write-failed', `cannot recover ${relPath} from its temp files: ${errnoOf(err) ?? 'error'}`, relPath, { cause: err });
  } finally {
    await closeAll(chain);
  }
}

async function readTempIfPrivate(where: string): Promise<{ text: string; mtimeMs: number } | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(where, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || (st.mode & GROUP_OTHER) !== 0) return undefined;
    const text = await readAtMost(handle, st.size, DEFAULT_MAX_BYTES * 2);
    return text === undefined ? undefined : { text, mtimeMs: st.mtimeMs };
  } finally {
    await handle.close();
  }
}
