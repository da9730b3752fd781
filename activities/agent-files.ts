// The agent directory in the slot home: the files a running agent re-reads to keep
// authenticating (rewritten after every refresh) and the slot's agent secret, the
// only thing an agent presents to the worker's token service. Never the refresh token.
import { randomBytes } from 'node:crypto';
import { AGENT_DIR, AGENT_SECRET_NAME, hostAgentDir } from '../providers/agent-dir';
import type { AgentPlace, Provider, SlotPaths } from '../providers/provider';
import { ensureSlotDir, readSecretFile, writeSecretFileAtomic } from './credential-store';

/** Relative to the slot home. */
export const AGENT_SECRET_FILE = `${AGENT_DIR}/${AGENT_SECRET_NAME}`;
/** `slot-agent-` and 256 random bits: recognisable in a leak, and never a provider's token. */
const SECRET = /^slot-agent-[A-Za-z0-9_-]{43}$/;

const newSecret = (): string => `slot-agent-${randomBytes(32).toString('base64url')}`;

/** The slot's agent secret; created when there is none (or it is damaged). Throws CredentialStoreError. */
export async function agentSecret(home: string): Promise<string> {
  const read = await readSecretFile(home, AGENT_SECRET_FILE, { requirePrivate: true });
  if (read.ok && SECRET.test(read.text.trim())) return read.text.trim();
  return rotateAgentSecret(home);
}

/** A new agent secret (a relogin): agents holding the old one are refused by the token service from now on. */
export async function rotateAgentSecret(home: string): Promise<string> {
  await ensureSlotDir(home, AGENT_DIR);
  const secret = newSecret();
  await writeSecretFileAtomic(home, AGENT_SECRET_FILE, `${secret}\n`);
  return secret;
}

/** The secret as the token service reads it: undefined when the slot has none yet. */
export async function readAgentSecret(home: string): Promise<string | undefined> {
  const read = await readSecretFile(home, AGENT_SECRET_FILE, { requirePrivate: true });
  return read.ok && SECRET.test(read.text.trim()) ? read.text.trim() : undefined;
}

/** Where this worker's agents find their files and its token service, for slot `slot`. */
export function hostAgentPlace(slot: SlotPaths, tokenServiceUrl: string | undefined): AgentPlace {
  return { agentDir: hostAgentDir(slot), ...(tokenServiceUrl ? { tokenServiceUrl: `${tokenServiceUrl.replace(/\/+$/, '')}/slots/${slot.slotId}` } : {}) };
}

/**
 * Writes the provider's agent files (0600, atomically, never through a symlink) where
 * their content changed. Throws CredentialStoreError; the provider's own errors propagate.
 */
export async function writeAgentFiles(provider: Provider, slot: SlotPaths, credential: unknown, place: AgentPlace): Promise<void> {
  if (!provider.agent.files) return;
  await ensureSlotDir(slot.home, AGENT_DIR);
  const secret = await agentSecret(slot.home);
  for (const file of provider.agent.files(credential, { ...place, secret })) {
    const rel = `${AGENT_DIR}/${file.path}`;
    const current = await readSecretFile(slot.home, rel);
    if (current.ok && current.text === file.text && (current.stat.mode & 0o077) === 0) continue;
    await writeSecretFileAtomic(slot.home, rel, file.text);
  }
}
