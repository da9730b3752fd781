// Where slot homes go when a workflow asks for them to go: the host's trash (a rename,
// which follows no symlink), with a tombstone beside the slots that keeps what the host
// had pinned. No workflow removes a tombstone or a trashed home; the host's operator
// does (`slotctl host …`, run on the host: see host/slot-host.ts).
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, rename, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { CredentialStoreError } from '../common/failures';
import { readSecretFile, removeDirectoryTree, removeSecretFile, slotHome, writeSecretFileAtomic } from './credential-store';
import { REFRESH_LOCK, withSlotLock } from './slot-lock';

/** Under the slots directory (slot ids never start with a dot): trashed homes, 0700. */
export const TRASH_DIR = '.trash';
/** Under the slots directory: one `<slotId>.json` (0600) per retired or moved-away slot. */
export const TOMBSTONES_DIR = '.tombstones';

const PinnedRecord = z.object({ provider: z.string(), providerConfig: z.unknown() });

export const Tombstone = z.object({
  version: z.literal(1),
  slotId: z.string(),
  /**
   * `retired`: final; every request for the slot is refused until the host's operator
   * brings it back or frees the id. `moved-away`: the slot lives on another host now; the
   * pin stays, so only the same provider and configuration may come back here.
   */
  kind: z.enum(['retired', 'moved-away']),
  at: z.string(),
  by: z.object({ workflowId: z.string(), runId: z.string() }),
  /** What the host had pinned for the slot (null: the home had no record). */
  record: PinnedRecord.nullable(),
  /** The home's name under TRASH_DIR; null when there was no home. */
  trashed: z.string().nullable(),
  /** The retire asked for the files to be removed (`--remove-files`): the trash may be emptied at once. */
  removeFilesAsked: z.boolean().optional(),
});
export type Tombstone = z.infer<typeof Tombstone>;
export type PinnedRecord = z.infer<typeof PinnedRecord>;

const tombstoneFile = (slotId: string): string => `${TOMBSTONES_DIR}/${slotId}.json`;

/** The slot's tombstone on this host; `damaged` when one is there but unusable (treated as retired). */
export async function readTombstone(slotsDir: string, slotId: string): Promise<Tombstone | 'damaged' | undefined> {
  slotHome(slotsDir, slotId); // validates the id
  const read = await readSecretFile(slotsDir, tombstoneFile(slotId), { requirePrivate: true }).catch(() => ({ ok: false as const, reason: 'read-failed' as const }));
  if (!read.ok) {
    if (read.reason === 'missing') return undefined;
    // The slots directory itself missing is "no tombstone".
    return 'damaged';
  }
  try {
    const tombstone = Tombstone.parse(JSON.parse(read.text));
    return tombstone.slotId === slotId ? tombstone : 'damaged';
  } catch {
    return 'damaged';
  }
}

async function writeTombstone(slotsDir: string, tombstone: Tombstone): Promise<void> {
  await writeSecretFileAtomic(slotsDir, tombstoneFile(tombstone.slotId), `${JSON.stringify(tombstone, null, 2)}\n`);
}

/** Removes the slot's tombstone (a host act, or a moved-away slot pinned again here). */
export async function removeTombstone(slotsDir: string, slotId: string): Promise<boolean> {
  slotHome(slotsDir, slotId);
  return removeSecretFile(slotsDir, tombstoneFile(slotId));
}

const stamp = (at: Date): string => at.toISOString().replace(/[-:]/g, '').replace('.', '');

async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

export interface TrashRequest {
  readonly slotsDir: string;
  readonly slotId: string;
  readonly kind: Tombstone['kind'];
  readonly by: Tombstone['by'];
  /** The slot's record now, if any (read by the caller). */
  readonly record: PinnedRecord | undefined;
  readonly removeFilesAsked?: boolean;
}

/**
 * Writes the slot's tombstone, then renames its home into the trash, holding the slot's
 * lock (a refresh in progress finishes first; one waiting finds no home). The tombstone
 * comes first, so there is no moment without either the record or the tombstone. A slot
 * already retired is left as it is (an activity's retry). Returns the tombstone.
 */
export async function trashSlotHome(request: TrashRequest): Promise<{ tombstone: Tombstone; already: boolean }> {
  const { slotsDir, slotId } = request;
  const home = slotHome(slotsDir, slotId);
  const existing = await readTombstone(slotsDir, slotId);
  if (existing === 'damaged') throw new CredentialStoreError('unsafe-path', `the tombstone of slot ${slotId} on this host is damaged; the host's operator inspects ${path.join(slotsDir, tombstoneFile(slotId))}`, tombstoneFile(slotId));
  if (existing?.kind === 'retired') return { tombstone: existing, already: true };
  const record = request.record ?? existing?.record ?? null;
  await ensurePrivateDir(slotsDir);
  const st = await lstat(home).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const at = new Date();
  const base: Omit<Tombstone, 'trashed'> = {
    version: 1,
    slotId,
    kind: request.kind,
    at: at.toISOString(),
    by: request.by,
    record,
    ...(request.removeFilesAsked ? { removeFilesAsked: true } : {}),
  };
  if (!st) {
    const tombstone = { ...base, trashed: existing?.trashed ?? null };
    await writeTombstone(slotsDir, tombstone);
    return { tombstone, already: false };
  }
  const trashed = `${slotId}.${stamp(at)}.${randomBytes(3).toString('hex')}`;
  const tombstone: Tombstone = { ...base, trashed };
  const move = async (): Promise<void> => {
    await ensurePrivateDir(path.join(slotsDir, TRASH_DIR));
    await writeTombstone(slotsDir, tombstone);
    // rename(2) moves the name itself: a symlink anywhere inside is never followed.
    await rename(home, path.join(slotsDir, TRASH_DIR, trashed));
  };
  // A home that is not a plain directory (never one of ours) is moved without a lock inside it.
  if (st.isDirectory()) {
    await withSlotLock(home, move);
    // The lock went with the home (its release found no lock at the old path): it is nobody's now.
    await rmdir(path.join(slotsDir, TRASH_DIR, trashed, REFRESH_LOCK)).catch(() => undefined);
  } else await move();
  return { tombstone, already: false };
}

/** The tombstones on this host, oldest first; damaged ones are named, not parsed. */
export async function listTombstones(slotsDir: string): Promise<Array<Tombstone | { slotId: string; damaged: true }>> {
  let names: string[];
  try {
    names = await readdir(path.join(slotsDir, TOMBSTONES_DIR));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Array<Tombstone | { slotId: string; damaged: true }> = [];
  for (const name of names.sort()) {
    const slotId = name.replace(/\.json$/, '');
    if (!name.endsWith('.json')) continue;
    const tombstone = await readTombstone(slotsDir, slotId).catch(() => 'damaged' as const);
    if (tombstone === undefined) continue;
    out.push(tombstone === 'damaged' ? { slotId, damaged: true } : tombstone);
  }
  return out.sort((a, b) => ('at' in a ? a.at : '').localeCompare('at' in b ? b.at : ''));
}

/** The trashed homes on this host, by name. */
export async function listTrash(slotsDir: string): Promise<string[]> {
  try {
    return (await readdir(path.join(slotsDir, TRASH_DIR))).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Removes one trashed home, following no symlink (see removeDirectoryTree). */
export async function removeTrashed(slotsDir: string, name: string): Promise<boolean> {
  return removeDirectoryTree(path.join(slotsDir, TRASH_DIR), name);
}

/**
 * Un-retires a slot on this host: its trashed home comes back (with its record, so the
 * pin is what it was) and the tombstone goes. Refused when a home is in the way or the
 * trashed home was emptied (then `freeSlotId` is the way to start over).
 */
export async function unretireSlot(slotsDir: string, slotId: string): Promise<{ restoredHome: boolean }> {
  const tombstone = await readTombstone(slotsDir, slotId);
  if (!tombstone) throw new Error(`slot ${slotId} has no tombstone on this host: it is not retired here`);
  if (tombstone === 'damaged') throw new Error(`the tombstone of slot ${slotId} is damaged: inspect ${path.join(slotsDir, tombstoneFile(slotId))}, then free the id (reuse) if the slot is to start over`);
  const home = slotHome(slotsDir, slotId);
  let restoredHome = false;
  if (tombstone.trashed !== null) {
    const from = path.join(slotsDir, TRASH_DIR, tombstone.trashed);
    const there = await lstat(from).then(() => true, () => false);
    if (!there) throw new Error(`the trashed home ${tombstone.trashed} of slot ${slotId} is gone (the trash was emptied): free the id with "slotctl host reuse ${slotId}" to start the slot over`);
    if (await lstat(home).then(() => true, () => false)) throw new Error(`slot ${slotId} has a home again (${home}): move it away first`);
    await rename(from, home);
    restoredHome = true;
  }
  await removeTombstone(slotsDir, slotId);
  return { restoredHome };
}

/**
 * Frees a retired slot id on this host: the tombstone goes (its trashed home stays in the
 * trash until emptied), and the next `slot:<id>` that names a provider pins the slot afresh.
 */
export async function freeSlotId(slotsDir: string, slotId: string): Promise<{ trashed: string | null }> {
  const tombstone = await readTombstone(slotsDir, slotId);
  if (!tombstone) throw new Error(`slot ${slotId} has no tombstone on this host: its id is not held`);
  const home = slotHome(slotsDir, slotId);
  if (await lstat(home).then(() => true, () => false)) throw new Error(`slot ${slotId} still has a home (${home}): move it away first, so that the next slot starts empty`);
  await removeTombstone(slotsDir, slotId);
  return { trashed: tombstone === 'damaged' ? null : tombstone.trashed };
}
