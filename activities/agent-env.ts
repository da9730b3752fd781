// What an agent of the slot reads, rewritten after every refresh: the env file and the
// provider's agent files. A failing write is transient; a provider that gives nothing usable is a configuration problem.
import { formatEnvFile } from '../common/env-file';
import { CredentialStoreError, EnvFileError } from '../common/failures';
import type { Secrets } from '../common/token-shapes';
import type { Provider, SlotPaths } from '../providers/provider';
import { hostAgentPlace, writeAgentFiles } from './agent-files';
import { readSecretFile, writeSecretFileAtomic } from './credential-store';
import { misconfigured, transient } from './refresh-failures';

const AGENT_ENV_HEADER = 'Written by slot-provisioner after every refresh; do not edit.';

/** Rewrites the agents' env file when its content differs, atomically and 0600. */
export async function writeAgentEnv(provider: Provider, slot: SlotPaths, credential: unknown, secrets: Secrets, tokenServiceUrl: string | undefined): Promise<void> {
  const file = provider.agent.envFile;
  const place = hostAgentPlace(slot, tokenServiceUrl);
  let text: string;
  try {
    text = formatEnvFile(AGENT_ENV_HEADER, provider.agent.env(credential, slot, place));
  } catch (err) {
    throw misconfigured(secrets.scrub(`cannot write ${file}: ${err instanceof EnvFileError ? err.message : 'the provider gave no usable variables'}`));
  }
  try {
    const current = await readSecretFile(slot.home, file);
    if (!(current.ok && current.text === text && (current.stat.mode & 0o077) === 0)) await writeSecretFileAtomic(slot.home, file, text);
  } catch (err) {
    if (err instanceof CredentialStoreError) throw transient(secrets.scrub(`the agent env file could not be written: ${err.message}`));
    throw err;
  }
  try {
    await writeAgentFiles(provider, slot, credential, place);
  } catch (err) {
    if (err instanceof CredentialStoreError) throw transient(secrets.scrub(`the agent files could not be written: ${err.message}`));
    throw misconfigured(secrets.scrub(`cannot write the agent files of ${provider.displayName}: the credential does not give them`));
  }
}
