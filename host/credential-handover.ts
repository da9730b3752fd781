// slotctl's side of adopting a credential given as text: run on the slot's host, it
// leaves the credential in the host's adoption inbox, where the slot's own host
// activity takes it. The text never goes to Temporal.
import { stat } from 'node:fs/promises';
import { handOverCredential } from '../activities/adoption';
import { SlotInputError } from '../common/failures';

/** Hands `credential` over to slot `slotId` on this host; refuses when this machine holds no slots directory. */
export async function handOverOnThisHost(slotsDir: string, slotId: string, provider: string, credential: unknown): Promise<void> {
  const dir = await stat(slotsDir).catch(() => undefined);
  if (!dir?.isDirectory()) {
    throw new SlotInputError(
      `--adopt with a token on stdin must run on the slot's host: this machine has no slots directory ${slotsDir} (set SLOTS_DIR as the host's worker does)`,
    );
  }
  await handOverCredential(slotsDir, slotId, provider, credential, Date.now());
}
