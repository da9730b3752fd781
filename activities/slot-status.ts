// The slot's status file (`slot-status.json` in its home): non-secret facts for agents
// and monitoring, rewritten after each refresh. Anything that looks like a token is refused.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { FailureType } from '../common/failures';
import { tokenLikeField } from '../common/token-shapes';
import { cleanupStaleTempFiles, ensureSlotHome, writeSecretFileAtomic } from './credential-store';
import { checkSlotRequest, type SlotCheckDeps } from './slot-record';

/** The status file beside the credential, for agents and monitoring. */
export const SLOT_STATUS_FILE = 'slot-status.json';

export interface WriteSlotStatusInput {
  readonly slotId: string;
  readonly status: Record<string, unknown>;
}

export function createSlotStatusActivities(deps: SlotCheckDeps) {
  /** Writes `slot-status.json` in the slot home, refusing anything that looks like a token. */
  async function writeSlotStatus(input: WriteSlotStatusInput): Promise<{ file: string }> {
    await checkSlotRequest(deps, input);
    refuseTokenLike(input.slotId, input.status);
    await writeStatus(deps.slotsDir, input.slotId, input.status);
    return { file: SLOT_STATUS_FILE };
  }

  return { writeSlotStatus };
}

/** The status file is a convenience for agents: failing to write it never fails the refresh. */
export async function writeStatusBestEffort(slotsDir: string, slotId: string, status: Record<string, unknown>, options: StatusWriteOptions = {}): Promise<void> {
  try {
    if (tokenLikeField(status, 'status') !== undefined) throw new Error('a field looks like a token');
    await writeStatus(slotsDir, slotId, status, options);
  } catch (err) {
    Context.current().log.warn('could not write the slot status file', { slotId, file: SLOT_STATUS_FILE, reason: err instanceof Error ? err.message : String(err) });
  }
}

interface StatusWriteOptions {
  /** The caller looked for the status file's stale temp files in this activity (a refresh's first listing of the home). */
  readonly tempsLookedFor?: boolean;
}

async function writeStatus(slotsDir: string, slotId: string, status: Record<string, unknown>, options: StatusWriteOptions = {}): Promise<void> {
  const home = await ensureSlotHome(slotsDir, slotId);
  if (options.tempsLookedFor !== true) await cleanupStaleTempFiles(home, SLOT_STATUS_FILE).catch(() => undefined);
  await writeSecretFileAtomic(home, SLOT_STATUS_FILE, `${JSON.stringify(status, null, 2)}\n`);
}

/** A status that looks like it holds a token is refused whole: status files are for anyone on the host to read. */
export function refuseTokenLike(slotId: string, status: Record<string, unknown>): void {
  const found = tokenLikeField(status, 'status');
  if (found !== undefined) {
    throw ApplicationFailure.nonRetryable(
      `refusing to write the status of slot ${slotId}: ${found} looks like a token, and status files never hold tokens`,
      FailureType.slotStatusRefused,
    );
  }
}
