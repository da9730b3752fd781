// The host operator's acts on retired slots (`slotctl host …`, run on the slot's host
// with its SLOTS_DIR): list them, bring one back, free its id, empty the trash. They
// work on the files directly; no workflow can do any of them.
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { SlotInputError } from '../common/failures';
import { freeSlotId, listTombstones, listTrash, removeTrashed, TRASH_DIR, unretireSlot, type Tombstone } from '../activities/slot-trash';

export type RetiredEntry = Tombstone | { readonly slotId: string; readonly damaged: true };

async function requireSlotsDir(slotsDir: string): Promise<void> {
  const dir = await stat(slotsDir).catch(() => undefined);
  if (!dir?.isDirectory()) throw new SlotInputError(`slotctl host must run on the slot's host: this machine has no slots directory ${slotsDir} (set SLOTS_DIR as the host's worker does)`);
}

/** The host's tombstones and its trashed homes (a home whose tombstone was lifted stays in the trash until emptied). */
export async function retiredOnThisHost(slotsDir: string): Promise<{ retired: RetiredEntry[]; trash: string[] }> {
  await requireSlotsDir(slotsDir);
  return { retired: await listTombstones(slotsDir), trash: await listTrash(slotsDir) };
}

/** Brings retired slot `slotId` back as it was on this host (home and record); its workflow is provisioned again with its old configuration. */
export async function unretireOnThisHost(slotsDir: string, slotId: string): Promise<{ restoredHome: boolean }> {
  await requireSlotsDir(slotsDir);
  try {
    return await unretireSlot(slotsDir, slotId);
  } catch (err) {
    throw new SlotInputError((err as Error).message);
  }
}

/** Frees retired slot `slotId`'s id on this host: the next slot of that id starts afresh (any provider). */
export async function reuseOnThisHost(slotsDir: string, slotId: string): Promise<{ trashed: string | null }> {
  await requireSlotsDir(slotsDir);
  try {
    return await freeSlotId(slotsDir, slotId);
  } catch (err) {
    throw new SlotInputError((err as Error).message);
  }
}

/**
 * Removes trashed homes for good (credentials included), following no symlink an agent
 * may have left: all of them, one slot's (`slotId`), or those trashed more than
 * `olderThanMs` ago. Returns the names removed and those that could not be.
 */
export async function emptyTrashOnThisHost(slotsDir: string, options: { slotId?: string; olderThanMs?: number; now?: number } = {}): Promise<{ removed: string[]; failed: Array<{ name: string; reason: string }> }> {
  await requireSlotsDir(slotsDir);
  const now = options.now ?? Date.now();
  const removed: string[] = [];
  const failed: Array<{ name: string; reason: string }> = [];
  for (const name of await listTrash(slotsDir)) {
    // `<slotId>.<stamp>.<hex>`: slot ids have no dots.
    if (options.slotId !== undefined && name.split('.')[0] !== options.slotId) continue;
    if (options.olderThanMs !== undefined) {
      const trashedAt = trashedAtOf(name) ?? (await lstat(path.join(slotsDir, TRASH_DIR, name)).then((st) => st.ctimeMs, () => undefined));
      if (trashedAt === undefined || now - trashedAt < options.olderThanMs) continue;
    }
    try {
      await removeTrashed(slotsDir, name);
      removed.push(name);
    } catch (err) {
      failed.push({ name, reason: (err as Error).message });
    }
  }
  return { removed, failed };
}

/** When a home was trashed, from its name (`<slot>.<YYYYMMDDTHHMMSSmmmZ>.<hex>`, see trashSlotHome); undefined for another name. */
function trashedAtOf(name: string): number | undefined {
  const m = /^[^.]+\.(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z\.[0-9a-f]+$/.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, sec, ms] = m.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, sec!, ms!);
}
