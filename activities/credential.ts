// Proves that a login produced a real credential: the provider's file exists,
// is newer than the login, parses with the provider's schema, and is private.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { CredentialStoreError, FailureType } from '../common/failures';
import { rotateAgentSecret } from './agent-files';
import type { CredentialFacts, Provider } from '../providers/provider';
import { makeSecretFilePrivate, removeSecretFile } from './credential-store';
import { describeIssues, openSlot } from './open-slot';
import { assertActsForSlot, checkSlotRequest, readSlotRecord, type SlotCheckDeps } from './slot-record';
import { readTombstone, trashSlotHome } from './slot-trash';
import { writeThrough, type CredentialBackup } from './credential-backup';
import type { BackupNote } from '../common/backup';

export interface VerifyCredentialInput {
  readonly slotId: string;
  readonly provider: string;
  /** The slot's provider configuration (providers configured per slot). */
  readonly providerConfig?: unknown;
  /** Epoch ms the login started; an older file is a leftover, not proof. */
  readonly notBefore: number;
  readonly previousMtime?: number;
  /** The account the slot pins (email or subject): a credential of another is removed and refused. */
  readonly expectedAccount?: string;
}

export interface CredentialSummary extends CredentialFacts {
  /** Path relative to the slot home, for operators. */
  readonly file: string;
  readonly modifiedAt: number;
  /** The write-through of the new login to the backup store; absent when the host has none. */
  readonly backup?: BackupNote;
}

export interface RetireSlotHomeInput {
  readonly slotId: string;
  /** The operator asked for the files to go (`--remove-files`): noted in the tombstone, for the host's operator. */
  readonly removeFiles?: boolean;
}

export interface RetireSlotHomeResult {
  /** The home's name in the host's trash (`<SLOTS_DIR>/.trash/`); null when the slot had no home on this host. */
  readonly trashed: string | null;
  readonly retiredAt: string;
  /** The slot was already retired here (a retried activity): nothing changed. */
  readonly already: boolean;
}

const invalid = (message: string): ApplicationFailure =>
  ApplicationFailure.nonRetryable(message, FailureType.credentialInvalid);

/** `a…@example.com`: enough for an operator to tell accounts apart, not a full address in a failure. */
const masked = (who: string): string => {
  const at = who.indexOf('@');
  return at > 0 ? `${who[0]}…${who.slice(at)}` : who.length > 8 ? `${who.slice(0, 4)}…` : who;
};

/**
 * The slot pins its account: a credential of another (someone else approved the code first)
 * is removed before anything uses it, and the login fails LoginWrongAccount.
 */
async function checkAccount(provider: Provider, home: string, parsed: unknown, expected: string): Promise<void> {
  const identity = provider.credential.identity?.(parsed);
  const wanted = expected.trim().toLowerCase();
  const matches = identity !== undefined && [identity.email, identity.subject].some((who) => who !== undefined && who.toLowerCase() === wanted);
  if (matches) return;
  await removeSecretFile(home, provider.credential.file).catch(() => false);
  const got = identity?.email ?? identity?.subject;
  throw ApplicationFailure.nonRetryable(
    got === undefined
      ? `the ${provider.displayName} credential does not say whose it is, and the slot must log in to ${masked(expected)}: it was removed`
      : `the login is for ${masked(got)}, not ${masked(expected)} as the slot requires: its credential was removed; log in again with the expected account`,
    FailureType.loginWrongAccount,
  );
}

export function createCredentialActivities(deps: SlotCheckDeps & { readonly backup?: CredentialBackup }) {
  async function verifyCredential(input: VerifyCredentialInput): Promise<CredentialSummary> {
    const opening = await openSlot(deps, input);
    if (!opening.ok) throw invalid(opening.problem);
    const { provider, home } = opening.slot;
    const file = provider.credential.file;
    // CLIs create their config directories 0755; the slot, not the CLI, decides who may read tokens.
    // (Never chmod through a symlink: that would change the link's target.)
    await makeSecretFilePrivate(home, file).catch(() => undefined);

    const read = await opening.slot.readCredential();
    if (read.kind === 'unread') {
      throw invalid(
        read.reason === 'missing'
          ? `${provider.displayName} finished but wrote no credential (${file} is missing): the login did not succeed`
          : `${file} cannot be used: ${read.message}`,
      );
    }
    const modifiedAt = read.stat.mtimeMs;
    // Filesystems with coarse timestamps may round down by up to a second.
    if (modifiedAt + 1000 < input.notBefore || (input.previousMtime !== undefined && modifiedAt <= input.previousMtime)) {
      throw invalid(`${file} was not rewritten by this login (last modified ${new Date(modifiedAt).toISOString()}): the login did not succeed`);
    }
    if ((read.stat.mode & 0o077) !== 0) {
      throw invalid(`${file} is readable by other users (mode ${(read.stat.mode & 0o777).toString(8)}) and could not be made private`);
    }
    if (read.kind === 'not-json') throw invalid(`${file} is not valid JSON`);
    if (read.kind === 'invalid') {
      throw invalid(`${file} does not look like a ${provider.displayName} credential: ${describeIssues(read.issues)}`);
    }
    const credential = read.credential;
    if (input.expectedAccount !== undefined) {
      if (typeof input.expectedAccount !== 'string' || !/^[\x21-\x7E]{1,320}$/.test(input.expectedAccount)) throw invalid('expectedAccount must be an email or a subject');
      await checkAccount(provider, home, credential, input.expectedAccount);
    }
    // A new login: agents of the old one lose access to the token service.
    await rotateAgentSecret(home).catch((err: unknown) => {
      if (err instanceof CredentialStoreError) throw invalid(`the login succeeded but the agent secret could not be renewed: ${err.message}`);
      throw err;
    });
    const facts = provider.credential.facts(credential);
    // The login's credential is backed up at once; a store that is down does not fail the login.
    const backup = deps.backup ? await writeThrough(deps.backup, { slotId: input.slotId, provider, providerConfig: input.providerConfig }, read.text, facts, Date.now()) : undefined;
    // Whole milliseconds: the mtime is fractional, status times are not.
    return { file, modifiedAt: Math.floor(modifiedAt), ...facts, ...(backup ? { backup } : {}) };
  }

  /**
   * A move's clean-up (the slot now lives on another host, or a failed copy here): the home
   * goes to the host's trash, and a `moved-away` tombstone keeps the pin, so only the same
   * provider and configuration can come back here. Nothing is deleted, no record is freed.
   * (A run recorded before retire-to-trash also calls this on retire.)
   */
  async function removeSlotFiles(input: { slotId: string }): Promise<{ removed: boolean; trashed?: string }> {
    const by = await checkedBy(input.slotId);
    const record = await readSlotRecord(deps.slotsDir, input.slotId);
    const { tombstone } = await trashSlotHome({ slotsDir: deps.slotsDir, slotId: input.slotId, kind: 'moved-away', by, record });
    return { removed: true, ...(tombstone.trashed ? { trashed: tombstone.trashed } : {}) };
  }

  /**
   * Retiring a slot: a `retired` tombstone, then its home (credentials included) renamed
   * into the host's trash, under the slot's lock. From then on every request for the slot
   * is refused on this host; bringing it back or re-using its id is the host operator's act.
   */
  async function retireSlotHome(input: RetireSlotHomeInput): Promise<RetireSlotHomeResult> {
    // A retry of this very retire (same run) whose first attempt went through, its result lost,
    // finds it done; any other request for a retired slot is refused by the full check.
    const caller = await assertActsForSlot(input.slotId);
    const existing = await readTombstone(deps.slotsDir, input.slotId);
    const retry = existing !== 'damaged' && existing?.kind === 'retired' && existing.by.workflowId === caller.workflowId && existing.by.runId === caller.runId;
    const by = retry ? caller : await checkedBy(input.slotId);
    const record = await readSlotRecord(deps.slotsDir, input.slotId);
    const { tombstone, already } = await trashSlotHome({ slotsDir: deps.slotsDir, slotId: input.slotId, kind: 'retired', by, record, removeFilesAsked: input.removeFiles === true });
    return { trashed: tombstone.trashed, retiredAt: tombstone.at, already };
  }

  /** The request check, then who asked (recorded in the tombstone). */
  async function checkedBy(slotId: string): Promise<{ workflowId: string; runId: string }> {
    await checkSlotRequest(deps, { slotId });
    const execution = Context.current().info.workflowExecution;
    return { workflowId: execution?.workflowId ?? '', runId: execution?.runId ?? '' };
  }

  return { verifyCredential, removeSlotFiles, retireSlotHome };
}
