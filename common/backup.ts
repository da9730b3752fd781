// Credential backup and host moves, as the slot workflow, slotctl and the host
// activities see them: what a backup or restore did, and the `move` update.
// Node-free (bundled into workflows); nothing here is ever a token.
import { defineUpdate } from '@temporalio/workflow';
import { HOST_NAME_PATTERN } from './slot';

/** What the last write-through to the backup store did (`status.backup`). */
export interface BackupNote {
  readonly ok: boolean;
  /** Epoch ms of the attempt. */
  readonly at: number;
  /** The stored version's number, when `ok`. */
  readonly generation?: number;
  /** In words: which store and version, or why it failed ("retried next cycle"). */
  readonly message: string;
}

/** What a host did when asked to restore a slot's newest backup. */
export type RestoreResult =
  | {
      readonly kind: 'restored';
      readonly generation: number;
      /** When the backup was taken (epoch ms) and on which host. */
      readonly createdAt: number;
      readonly fromHost: string;
      readonly lastRefresh?: number;
      readonly expiresAt?: number;
    }
  /** No backup store on this host: the slot behaves as before backups existed. */
  | { readonly kind: 'off'; readonly reason: string }
  /** Nothing was written: no usable backup, or it is older than the file on the host. */
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * What a host did with a retired slot's backups: they are tombstoned (a sealed marker
 * becomes the newest version, so no workflow restores them and no write-through adds to
 * them) and pruned after the host's retention (SLOT_BACKUP_RETIRED_KEEP_DAYS).
 */
export type RetireBackupsResult =
  | {
      readonly kind: 'tombstoned';
      /** The tombstone's generation (the backups it covers are all older). */
      readonly generation: number;
      /** Epoch ms after which the store deletes them; undefined: kept until removed by hand. */
      readonly keptUntil?: number;
    }
  /** No backup store on this host: nothing to tombstone there. */
  | { readonly kind: 'off'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };

export interface MoveInput {
  /** The host to move the slot to (its workers serve `slots.<host>`). */
  readonly toHost: string;
}

/** A move's progress and end, in `status.move`; it survives continue-as-new. */
export interface MoveState {
  readonly from: string;
  readonly to: string;
  readonly state: 'moving' | 'moved' | 'refused' | 'failed';
  /** Epoch ms of the last change. */
  readonly at: number;
  readonly message: string;
}

/** The `move` update's answer: the move was accepted and runs now; its end is in `status.move`. */
export interface MoveAccepted {
  readonly accepted: true;
  readonly from: string;
  readonly to: string;
}

/**
 * An update (not a signal) so that a bad host name, a move to where the slot already is,
 * or a slot that cannot move now is refused at once, before it enters history.
 */
export const moveUpdate = defineUpdate<MoveAccepted, [MoveInput]>('move');

/** What is wrong with a `move` input, or undefined. Hand-written: workflows run it. */
export function moveInputProblem(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'input must be an object like {"toHost": "host-b"}';
  const { toHost } = input as { toHost?: unknown };
  if (typeof toHost !== 'string') return 'toHost must be a string';
  if (!HOST_NAME_PATTERN.test(toHost)) return 'toHost must be 1-63 letters, digits, dots, dashes or underscores, starting with a letter or digit (it names a task queue)';
  return undefined;
}
