// Restores from the credential backup, as steps of the slot's own workflow: once when
// the slot's file is lost or unusable (then proven by a forced refresh), and to move
// the slot to another host with no login (backup there, restore here, prove, clean up).
import { ApplicationFailure, patched, proxyActivities, setHandler } from '@temporalio/workflow';
import type { HostActivities } from '../activities/index';
import type { RefreshResult } from '../activities/refresh';
import { moveInputProblem, moveUpdate, type MoveInput, type RestoreResult, type RetireBackupsResult } from '../common/backup';
import { HANDLER_DESCRIPTIONS } from '../common/messages';
import { FailureType, innermostFailureType } from '../common/failures';
import { hostTaskQueue } from '../common/slot';
import { refreshActivity, slotQueues } from './activities';
import type { Slot } from './slot-state';
import { clause, failureClause } from './text';
import { moved, moveProven, moving, restored } from './transitions';

const iso = (ms: number): string => new Date(ms).toISOString();

/** Backup and restore on `host`: the queue belongs to that host's workers; `waitMs` bounds a host that is down. */
function backupActivities(host: string, waitMs: number) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(host),
    scheduleToCloseTimeout: waitMs,
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 3, initialInterval: '2 seconds', nonRetryableErrorTypes: [FailureType.slotRequestRefused] },
  });
}

/**
 * After a refresh found the credential missing or unusable: restores the newest backup,
 * once. True when restored (the caller proves it with a forced refresh); false when the
 * host has no backup store, no usable backup exists, or the restore was refused (`note` says why).
 */
export async function restoreAfterLoss(slot: Slot, lost: string): Promise<{ restored: true; message: string } | { restored: false; note?: string }> {
  const { slotId, provider, providerConfig, host } = slot.input;
  let result: RestoreResult;
  try {
    result = await backupActivities(host, slot.input.hostWaitMs ?? 600_000).restoreCredential({ slotId, provider, providerConfig, now: Date.now(), reason: 'lost' });
  } catch (err) {
    return { restored: false, note: `no backup was restored: ${failureClause(err)}` };
  }
  if (result.kind === 'off') return { restored: false };
  if (result.kind === 'refused') return { restored: false, note: `no backup was restored: ${result.reason}` };
  const message = `the credential was lost (${clause(lost)}); restored backup generation ${result.generation} taken ${iso(result.createdAt)} on host ${result.fromHost}`;
  restored(slot, message);
  return { restored: true, message };
}

/** Runs recorded before retiring tombstoned the backups retire without it, and keep doing so on replay. */
const RETIRE_BACKUPS_PATCH = 'retire-tombstones-backups';

/**
 * Retiring: the slot's host tombstones its backups, so that no later `slot:<id>` restores
 * them. Runs before the slot's files go (the host's record must still be there). Never
 * fails the retire: what was done, or not, is said in the retire's record ('' before the patch).
 */
export async function retireBackupsStep(slot: Slot): Promise<string> {
  if (!patched(RETIRE_BACKUPS_PATCH)) return '';
  const { slotId, provider, providerConfig, host } = slot.input;
  let result: RetireBackupsResult;
  try {
    result = await backupActivities(host, Math.min(slot.input.hostWaitMs ?? 600_000, 120_000)).tombstoneBackups({ slotId, provider, providerConfig, now: Date.now() });
  } catch (err) {
    return `host ${host} did not tombstone the slot's backups (${failureClause(err)}): any it keeps stay restorable until its operator deletes them; `;
  }
  switch (result.kind) {
    case 'tombstoned':
      return `the backups were tombstoned (never restored by a workflow; ${result.keptUntil !== undefined ? `deleted after ${iso(result.keptUntil)}` : 'kept until removed by hand'}); `;
    case 'off':
      return '';
    case 'failed':
      return `the backups could NOT be tombstoned on host ${host} (${clause(result.reason)}): they stay restorable until that host's operator deletes them; `;
  }
}

/**
 * How a move ended: `moved` (the slot now lives on the new host: the caller continues as
 * new there), `stayed` (refused or failed: the slot stays where it was), `stayed-refresh-here`
 * (failed because the provider refused the refresh token: a refresh here tells the slot).
 */
export type MoveOutcome = 'moved' | 'stayed' | 'stayed-refresh-here';

/**
 * Moves the slot to `to` with no login. The credential is never in two places longer than the move takes.
 */
export async function moveStep(slot: Slot, to: string): Promise<MoveOutcome> {
  const { slotId, provider, providerConfig, host: from } = slot.input;
  const waitMs = Math.min(slot.input.hostWaitMs ?? 600_000, 120_000);
  const request = { slotId, provider, providerConfig, now: Date.now() };
  moving(slot, to, 'moving', `moving from host ${from} to host ${to}: taking a fresh backup on ${from}`);

  // 1. A fresh backup on the old host, when it answers; otherwise the newest stored one is used.
  let oldHost: string;
  try {
    const note = await backupActivities(from, waitMs).backupCredential(request);
    oldHost = note.ok ? `a fresh backup was taken on ${from} (generation ${note.generation})` : `no fresh backup on ${from} (${clause(note.message)})`;
  } catch (err) {
    oldHost = `host ${from} did not answer (${failureClause(err)}), so the newest stored backup is used`;
  }

  // 2. Restore on the new host: this pins the slot there.
  moving(slot, to, 'moving', `moving from host ${from} to host ${to}: ${oldHost}; restoring on ${to}`);
  let restored: RestoreResult;
  try {
    restored = await backupActivities(to, waitMs).restoreCredential({ ...request, now: Date.now(), reason: 'move' });
  } catch (err) {
    moving(slot, to, 'failed', `move to host ${to} failed: host ${to} did not restore the credential (${failureClause(err)}); the slot stays on ${from}`);
    return 'stayed';
  }
  if (restored.kind !== 'restored') {
    const why = restored.kind === 'off' ? `host ${to} has no backup store configured (set SLOT_BACKUP_URL and SLOT_BACKUP_KEYS there)` : restored.reason;
    moving(slot, to, 'refused', `move to host ${to} refused: ${clause(why)}; ${oldHost}; the slot stays on ${from}`);
    return 'stayed';
  }

  // 3. Prove it where it now lives: a forced refresh on the new host (which also backs up its rotation).
  moving(slot, to, 'moving', `moving from host ${from} to host ${to}: restored backup generation ${restored.generation}; refreshing on ${to}`);
  let proven: RefreshResult;
  try {
    const { backoff, ...schedule } = slot.input.refresh ?? {};
    proven = await refreshActivity(slotQueues(to, provider, slot.run.paced).tokens, backoff, waitMs)({
      slotId,
      provider,
      ...(providerConfig !== undefined ? { providerConfig } : {}),
      now: Date.now(),
      force: true,
      schedule,
      status: { ...slot.status(), host: to, phase: 'active' },
    });
  } catch (err) {
    // The copy on the new host is not the slot's. A refusal rotated nothing: it goes. Any other failure may
    // have come after a rotation there: it is backed up (the store keeps the newest) and kept for a retry.
    const type = innermostFailureType(err);
    const rotatedNothing = type === FailureType.refreshPermanent || type === FailureType.credentialInvalid || type === FailureType.refreshMisconfigured || type === FailureType.slotRequestRefused;
    let copy: string;
    if (rotatedNothing) {
      await backupActivities(to, waitMs).removeSlotFiles({ slotId }).catch(() => undefined);
      copy = `the copy on ${to} was removed`;
    } else {
      const kept = await backupActivities(to, waitMs).backupCredential({ ...request, now: Date.now() }).catch(() => undefined);
      copy = `the copy on ${to} was kept (a refresh there may have rotated its token${kept?.ok ? `; backed up as generation ${kept.generation}` : ''}): fix host ${to} and move again`;
    }
    moving(slot, to, 'failed', `move to host ${to} failed: the restored credential did not refresh there (${failureClause(err)}); ${copy}; the slot stays on ${from}`);
    // A refresh token the server refused there is refused here too: the slot finds out on its own host.
    return innermostFailureType(err) === FailureType.refreshPermanent ? 'stayed-refresh-here' : 'stayed';
  }
  moveProven(slot, proven);

  // 4. The old host's copy goes: one host holds the slot.
  let cleanup: string;
  let problem: string | undefined;
  try {
    await backupActivities(from, waitMs).removeSlotFiles({ slotId });
    cleanup = `the files on ${from} were removed`;
  } catch (err) {
    cleanup = problem = `the files on ${from} could NOT be removed (${failureClause(err)}): remove the directory ${slotId} under that host's SLOTS_DIR by hand`;
  }
  moved(slot, to, `moved from host ${from} to host ${to} with no login: ${oldHost}; restored backup generation ${restored.generation} and refreshed on ${to}; ${cleanup}`, problem);
  return 'moved';
}

/** Why the slot cannot move to `input.toHost` now, or undefined. */
function moveProblem(slot: Slot, input: unknown): string | undefined {
  const problem = moveInputProblem(input);
  if (problem) return problem;
  const { toHost } = input as MoveInput;
  const { slotId, host } = slot.input;
  if (toHost === host) return `slot ${slotId} is already on host ${host}`;
  if (slot.state.pending.retire || slot.state.phase === 'retired') return `slot ${slotId} is being retired`;
  if (slot.state.pending.move || slot.state.move?.state === 'moving') return `a move of slot ${slotId} to host ${slot.state.pending.move?.toHost ?? slot.state.move?.to} is under way`;
  if (slot.state.pending.login || slot.step === 'login' || slot.state.phase === 'logging-in' || slot.state.phase === 'awaiting-operator') {
    return `a login of slot ${slotId} is in progress on host ${host} (its CLI runs there): finish or cancel it first`;
  }
  return undefined;
}

/** `move`: refused at once by the validator, else taken as a request the main loop acts on; the outcome is in `status.move`. */
export function installMoveHandler(slot: Slot): void {
  setHandler(
    moveUpdate,
    (input) => {
      const { host } = slot.input;
      slot.state.pending.move = { toHost: input.toHost };
      slot.state.move = { from: host, to: input.toHost, state: 'moving', at: Date.now(), message: `a move to host ${input.toHost} was accepted; it starts when the step in progress ends` };
      return { accepted: true as const, from: host, to: input.toHost };
    },
    {
      validator: (input) => {
        const problem = moveProblem(slot, input);
        if (problem) throw ApplicationFailure.nonRetryable(problem, FailureType.moveRefused);
      },
      description: HANDLER_DESCRIPTIONS.move,
    },
  );
}
