// Proves that a login produced a real credential: the provider's file exists,
// is newer than the login, parses with the provider's schema, and is private.
import { ApplicationFailure } from '@temporalio/activity';
import { rm } from 'node:fs/promises';
import { CredentialStoreError, FailureType, ProviderConfigError, UnknownProviderError } from '../common/failures';
import { rotateAgentSecret } from './agent-files';
import { getProvider } from '../providers';
import type { CredentialFacts, Provider } from '../providers/provider';
import { makeSecretFilePrivate, readSecretFile, slotHome } from './credential-store';
import { checkSlotRequest } from './slot-record';
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
}

export interface CredentialSummary extends CredentialFacts {
  /** Path relative to the slot home, for operators. */
  readonly file: string;
  readonly modifiedAt: number;
  /** The write-through of the new login to the backup store; absent when the host has none. */
  readonly backup?: BackupNote;
}

const invalid = (message: string): ApplicationFailure =>
  ApplicationFailure.nonRetryable(message, FailureType.credentialInvalid);

export function createCredentialActivities(deps: { readonly slotsDir: string; readonly backup?: CredentialBackup }) {
  async function verifyCredential(input: VerifyCredentialInput): Promise<CredentialSummary> {
    await checkSlotRequest(deps, input);
    let provider: Provider;
    try {
      provider = getProvider(input.provider, input.providerConfig);
    } catch (err) {
      if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) throw invalid(err.message);
      throw err;
    }
    const home = slotHome(deps.slotsDir, input.slotId);
    const file = provider.credential.file;
    // CLIs create their config directories 0755; the slot, not the CLI, decides who may read tokens.
    // (Never chmod through a symlink: that would change the link's target.)
    await makeSecretFilePrivate(home, file).catch(() => undefined);

    const read = await readSecretFile(home, file);
    if (!read.ok) {
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
    let json: unknown;
    try {
      json = JSON.parse(read.text);
    } catch {
      throw invalid(`${file} is not valid JSON`);
    }
    const parsed = provider.credential.schema.safeParse(json);
    if (!parsed.success) {
      // Name the fields, never their values.
      const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).slice(0, 5);
      throw invalid(`${file} does not look like a ${provider.displayName} credential: ${fields.join('; ')}`);
    }
    // A new login: agents of the old one lose access to the token service.
    await rotateAgentSecret(home).catch((err: unknown) => {
      if (err instanceof CredentialStoreError) throw invalid(`the login succeeded but the agent secret could not be renewed: ${err.message}`);
      throw err;
    });
    const facts = provider.credential.facts(parsed.data);
    // The login's credential is backed up at once; a store that is down does not fail the login.
    const backup = deps.backup ? await writeThrough(deps.backup, input.slotId, provider, read.text, facts, Date.now()) : undefined;
    // Whole milliseconds: the mtime is fractional, status times are not.
    return { file, modifiedAt: Math.floor(modifiedAt), ...facts, ...(backup ? { backup } : {}) };
  }

  /** Retiring a slot with `removeFiles`: its home, credentials included, goes. */
  async function removeSlotFiles(input: { slotId: string }): Promise<{ removed: boolean }> {
    await checkSlotRequest(deps, input);
    const home = slotHome(deps.slotsDir, input.slotId);
    await rm(home, { recursive: true, force: true });
    return { removed: true };
  }

  return { verifyCredential, removeSlotFiles };
}
