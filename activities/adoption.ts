// A credential an operator hands over on the slot's host (`slotctl provision --adopt`,
// token on stdin): left in the host's adoption inbox, taken into the slot by the slot's
// own host activity. It never travels through Temporal, so no history holds it.
import type { Provider, SlotPaths } from '../providers/provider';
import { ensureSlotDir, readSecretFile, removeSecretFile, writeSecretFileAtomic } from './credential-store';
import { posix } from 'node:path';
import { z } from 'zod';

/** Under the slots directory (0700 like the slot homes): one file per slot, 0600. */
export const ADOPTION_INBOX_DIR = '.adopt-inbox';
/** A handed-over credential older than this is not taken: it was meant for a provision that did not happen. */
export const ADOPTION_MAX_AGE_MS = 15 * 60_000;

const Handover = z.object({ provider: z.string(), handedOverAt: z.number().finite().positive(), credential: z.unknown() });

const inboxFile = (slotId: string): string => `${ADOPTION_INBOX_DIR}/${slotId}.json`;

/** Leaves `credential` (the provider's file content) for slot `slotId` in the host's inbox, 0600, never through a symlink. */
export async function handOverCredential(slotsDir: string, slotId: string, provider: string, credential: unknown, now: number): Promise<string> {
  return writeSecretFileAtomic(slotsDir, inboxFile(slotId), `${JSON.stringify({ provider, handedOverAt: now, credential })}\n`);
}

export type Adoption = { readonly kind: 'none' } | { readonly kind: 'adopted' } | { readonly kind: 'discarded'; readonly reason: string };

/**
 * Takes a credential handed over for this slot into its credential file (atomically,
 * 0600) and removes it from the inbox. One for another provider, unreadable, not the
 * provider's shape or too old is removed unused; the reason never quotes it.
 */
export async function takeHandedOverCredential(slotsDir: string, slot: SlotPaths, provider: Provider, now: number): Promise<Adoption> {
  const read = await readSecretFile(slotsDir, inboxFile(slot.slotId), { requirePrivate: true });
  if (!read.ok) return read.reason === 'missing' ? { kind: 'none' } : discard(`the handed-over credential cannot be read: ${read.message}`);
  let handover: z.infer<typeof Handover>;
  try {
    handover = Handover.parse(JSON.parse(read.text));
  } catch {
    return discard('the handed-over credential is not a handover document');
  }
  if (handover.provider !== provider.name) return discard(`the handed-over credential is for ${handover.provider}, the slot is ${provider.name}`);
  if (now - handover.handedOverAt > ADOPTION_MAX_AGE_MS) return discard('the handed-over credential is older than 15 minutes');
  const parsed = provider.credential.schema.safeParse(handover.credential);
  if (!parsed.success) return discard(`the handed-over credential is not a ${provider.displayName} credential`);
  const dir = posix.dirname(provider.credential.file);
  if (dir !== '.') await ensureSlotDir(slot.home, dir);
  await writeSecretFileAtomic(slot.home, provider.credential.file, `${JSON.stringify(parsed.data, null, 2)}\n`);
  await removeSecretFile(slotsDir, inboxFile(slot.slotId));
  return { kind: 'adopted' };

  async function discard(reason: string): Promise<Adoption> {
    await removeSecretFile(slotsDir, inboxFile(slot.slotId)).catch(() => false);
    return { kind: 'discarded', reason };
  }
}
