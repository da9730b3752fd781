// Retiring a slot, as the last step of its workflow: revoke what the provider can revoke,
// then the host retires the slot (its home to the host's trash, a tombstone no workflow
// can lift). The status says what was done and what was not; a host that is down is told.
import { patched } from '@temporalio/workflow';
import { revokeActivity, type fileActivities } from './activities';
import { retireBackupsStep } from './restore-step';
import type { Slot } from './slot-state';
import { clause, failureClause } from './text';
import { retired, retiring } from './transitions';

/** Runs recorded before retire-to-trash removed the files only when asked (and kept the record with them); on replay too. */
const RETIRE_TO_TRASH_PATCH = 'retire-to-trash';


/** Revokes, retires the slot on its host, and says what happened. */
export async function retire(slot: Slot, files: ReturnType<typeof fileActivities>, saveStatus: () => Promise<void>): Promise<void> {
  const { slotId, provider, providerConfig, host } = slot.input;
  const removeFiles = slot.state.pending.retire?.removeFiles === true;
  const toTrash = patched(RETIRE_TO_TRASH_PATCH);
  // `retired` is shown once it is done: until then the status says what is under way.
  retiring(slot, `retiring: ${toTrash ? "revoking the tokens and moving the slot home to the host's trash" : removeFiles ? 'revoking the tokens and removing the slot files' : 'revoking the tokens'} on host ${host}`);
  let revocation = '';
  try {
    const revoked = await (slot.run.paced ? revokeActivity(slot.run.queues.tokens, slot.input.hostWaitMs) : files.revokeCredential)({ slotId, provider, providerConfig });
    if (revoked.kind === 'revoked') revocation = `${revoked.message}; `;
    else if (revoked.kind === 'failed') revocation = `revoking the tokens failed, they stay valid until they expire (${clause(revoked.reason)}); `;
    else if (toTrash) revocation = revoked.kind === 'unsupported' ? `the tokens were not revoked (${revoked.message}): they stay valid until they expire; ` : `nothing was revoked (${revoked.message}); `;
  } catch (err) {
    revocation = `revoking the tokens failed (${failureClause(err)}); `;
  }
  // Backups are tombstoned before the home goes: nothing a later run asks restores them.
  const backupsNote = await retireBackupsStep(slot);
  if (!toTrash) return retireV1Files(slot, files, saveStatus, `${revocation}${backupsNote}`, removeFiles);

  let filesNote: string;
  let problem: string | undefined;
  try {
    const retired = await files.retireSlotHome({ slotId, removeFiles });
    filesNote =
      (retired.trashed !== null ? `the slot home was moved to the trash on host ${host} (${retired.trashed})` : `the slot had no home on host ${host}`) +
      `; slot ${slotId} stays retired there: only that host's operator can bring it back or re-use the id (slotctl host unretire|reuse ${slotId})`;
  } catch (err) {
    filesNote = problem = `the slot could NOT be retired on host ${host} (${failureClause(err)}): its home is still in place; retire it again when the host answers`;
  }
  retired(slot, `retired; ${revocation}${backupsNote}${filesNote}`, problem);
}

/** The retire of runs recorded before retire-to-trash. */
async function retireV1Files(slot: Slot, files: ReturnType<typeof fileActivities>, saveStatus: () => Promise<void>, revocation: string, removeFiles: boolean): Promise<void> {
  const { slotId, host } = slot.input;
  let filesNote = 'the slot files were kept';
  let problem: string | undefined;
  if (removeFiles) {
    try {
      await files.removeSlotFiles({ slotId });
      filesNote = 'the slot files were removed';
    } catch (err) {
      filesNote = problem = `the slot files could NOT be removed: host ${host} did not do it (${failureClause(err)}); remove the directory ${slotId} under that host's SLOTS_DIR by hand`;
    }
  }
  retired(slot, `retired; ${revocation}${filesNote}`, problem);
  if (!removeFiles) await saveStatus();
}
