// The one way into a slot on its host. Every host activity opens the slot here, and
// the worker's agent token service opens it from the host's record: the request
// checks, the provider, the home and the credential reading are done the same way everywhere.
import type { z } from 'zod';
import { ProviderConfigError, UnknownProviderError } from '../common/failures';
import { getProvider } from '../providers';
import type { Provider, SlotPaths } from '../providers/provider';
import { readSecretFile, slotHome, type ReadSecretFileOptions, type SecretFileProblem, type SecretFileStat } from './credential-store';
import { checkSlotRequest, readSlotRecord, type SlotCheckDeps } from './slot-record';

/** A slot on this host whose request passed the checks, with its provider built. */
export interface OpenSlot extends SlotPaths {
  readonly provider: Provider;
  /** The provider's credential file in the home, read without following symlinks and parsed with its schema. */
  readCredential(options?: Pick<ReadSecretFileOptions, 'requirePrivate'>): Promise<CredentialRead>;
}

/**
 * The slot's credential as the reader found it. Every failure but `unread` carries what
 * was read, so a caller can check the file's age or mode before its content. Nothing
 * here is for a message as it stands: `text` and `json` hold tokens.
 */
export type CredentialRead =
  | { readonly kind: 'parsed'; readonly text: string; readonly stat: SecretFileStat; readonly json: unknown; readonly credential: unknown }
  | { readonly kind: 'unread'; readonly reason: SecretFileProblem; readonly message: string }
  | { readonly kind: 'not-json'; readonly text: string; readonly stat: SecretFileStat }
  | { readonly kind: 'invalid'; readonly text: string; readonly stat: SecretFileStat; readonly json: unknown; readonly issues: readonly z.core.$ZodIssue[] };

/** Either the opened slot, or why its provider cannot be built (an unknown name or a bad configuration), for the caller to word as its failure type. */
export type SlotOpening = { readonly ok: true; readonly slot: OpenSlot } | { readonly ok: false; readonly problem: string };

/** What a host activity's input names: the slot, and the provider it asks for. */
export interface OpenSlotInput {
  readonly slotId: string;
  readonly provider: string;
  readonly providerConfig?: unknown;
}

/**
 * `checkSlotRequest` (who asks, a retired slot, the host's server list, the slot's pin:
 * throws SlotRequestRefused), then the provider. Nothing is created: `home` may not exist yet.
 */
export async function openSlot(deps: SlotCheckDeps, input: OpenSlotInput): Promise<SlotOpening> {
  await checkSlotRequest(deps, input);
  const built = buildProvider(input.provider, input.providerConfig);
  if (!built.ok) return built;
  return { ok: true, slot: slotOf(deps.slotsDir, input.slotId, built.provider) };
}

/** A slot opened from the host's record: none kept (never set up here, removed, damaged), or a provider this worker cannot build. */
export type RecordedSlotOpening =
  | { readonly ok: true; readonly slot: OpenSlot }
  | { readonly ok: false; readonly kind: 'no-record' }
  | { readonly ok: false; readonly kind: 'bad-provider'; readonly problem: string };

/**
 * For what no workflow asks for (the agent token service, a pool's agent plan): the slot
 * as this host recorded it, never as the asker names it. The record is the trust anchor
 * here, as `checkSlotRequest` makes it for activities; the caller checks who asks.
 */
export async function openRecordedSlot(slotsDir: string, slotId: string): Promise<RecordedSlotOpening> {
  const record = await readSlotRecord(slotsDir, slotId);
  if (!record) return { ok: false, kind: 'no-record' };
  const built = buildProvider(record.provider, record.providerConfig ?? undefined);
  if (!built.ok) return { ok: false, kind: 'bad-provider', problem: built.problem };
  return { ok: true, slot: slotOf(slotsDir, slotId, built.provider) };
}

/**
 * The provider a name and configuration build, or the problem (UnknownProviderError's or
 * ProviderConfigError's message, which names no secret). Any other error is a bug and is thrown.
 */
export function buildProvider(name: string, config: unknown): { readonly ok: true; readonly provider: Provider } | { readonly ok: false; readonly problem: string } {
  try {
    return { ok: true, provider: getProvider(name, config) };
  } catch (err) {
    if (err instanceof UnknownProviderError || err instanceof ProviderConfigError) return { ok: false, problem: err.message };
    throw err;
  }
}

function slotOf(slotsDir: string, slotId: string, provider: Provider): OpenSlot {
  const home = slotHome(slotsDir, slotId);
  return { slotId, home, provider, readCredential: (options) => readCredentialFile(provider, home, options) };
}

/** The provider's credential file in `home`, read and parsed (for code that holds a provider and a home, not an opened slot). */
export async function readCredentialFile(provider: Provider, home: string, options: Pick<ReadSecretFileOptions, 'requirePrivate'> = {}): Promise<CredentialRead> {
  const read = await readSecretFile(home, provider.credential.file, options);
  if (!read.ok) return { kind: 'unread', reason: read.reason, message: read.message };
  let json: unknown;
  try {
    json = JSON.parse(read.text);
  } catch {
    // No cause kept: V8's SyntaxError quotes the text around the error, which may be a token.
    return { kind: 'not-json', text: read.text, stat: read.stat };
  }
  const parsed = provider.credential.schema.safeParse(json);
  if (!parsed.success) return { kind: 'invalid', text: read.text, stat: read.stat, json, issues: parsed.error.issues };
  return { kind: 'parsed', text: read.text, stat: read.stat, json, credential: parsed.data };
}

/** Field names and zod's wording, never values: a credential's values are tokens. */
export const describeIssues = (issues: readonly z.core.$ZodIssue[]): string =>
  issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
