// The agent directory: the one part of a slot an agent may see (mounted into its
// container, or read on the host by another user). Providers put the files their
// CLI re-reads there; the slot's own credential (with the refresh token) stays outside.
import type { AgentPlace, SlotPaths } from './provider';

/** Relative to the slot home. */
export const AGENT_DIR = 'agent';
/** The slot's agent secret, relative to the agent directory: what agents present to the token service. */
export const AGENT_SECRET_NAME = 'secret';
/**
 * A stand-in a CLI is started with where it insists on a value; it never works
 * against a real server, so an agent that sends it is answered 401 and re-reads its files.
 */
export const AGENT_PLACEHOLDER = 'slot-agent-placeholder';

/** The agent directory on the slot's host. */
export const hostAgentDir = (slot: SlotPaths): string => `${slot.home}/${AGENT_DIR}`;

/** The place as seen on the host, when a caller gave none. */
export const agentDirOf = (slot: SlotPaths, place: AgentPlace | undefined): string => place?.agentDir ?? hostAgentDir(slot);
