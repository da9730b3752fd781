// All activities a worker registers, built from the worker's dependencies, by the
// queue they are registered on: the host's, this process's own, or the shared one.
import { createCredentialActivities } from './credential';
import { createDeviceLoginActivities } from './device-login';
import { createLoginActivities, createLoginSessionActivities, type LoginActivityDeps } from './login';
import { createRefreshActivities } from './refresh';
import { createRevokeActivities } from './revoke';
import { createNotifyActivities, type NotifyDeps } from './notify';
import { createPoolActivities } from './pool';
import { createBackupActivities, type CredentialBackup } from './credential-backup';
import { createAgentPlanActivities } from './slot-agent-plan';
import { createProbeActivities } from './probe';
import { createIncidentReportActivities, type IncidentReportDeps } from './incident-report';

export type ActivityDeps = LoginActivityDeps & {
  /** The worker's agent token service, named in the agents' env and files (see host/agent-token-service.ts). */
  readonly agentTokenServiceUrl?: string;
  /** The credential backup store and keys of this host (SLOT_BACKUP_URL); none: no backups, no restores. */
  readonly backup?: CredentialBackup;
  /** This host's name (SLOT_HOST), said in the status of a slot that waits for its provider. */
  readonly host?: string;
};

/**
 * Activities that touch a slot's files or start its login: registered on the slot
 * host's queue (`slots.<host>`), which every worker process of that host polls.
 */
export function createHostActivities(deps: ActivityDeps) {
  const { startLogin } = createLoginActivities(deps);
  const { awaitDeviceApproval, discardDeviceLogin } = createDeviceLoginActivities(deps);
  const { verifyCredential, removeSlotFiles, retireSlotHome } = createCredentialActivities(deps);
  const { refreshCredential, writeSlotStatus } = createRefreshActivities(deps);
  const { revokeCredential } = createRevokeActivities(deps);
  const { backupCredential, restoreCredential, tombstoneBackups } = createBackupActivities(deps);
  const { slotAgentPlan } = createAgentPlanActivities(deps);
  const { probeCredential } = createProbeActivities(deps);
  return { startLogin, awaitDeviceApproval, discardDeviceLogin, verifyCredential, refreshCredential, writeSlotStatus, removeSlotFiles, retireSlotHome, revokeCredential, backupCredential, restoreCredential, tombstoneBackups, slotAgentPlan, probeCredential };
}

export type HostActivities = ReturnType<typeof createHostActivities>;

/**
 * Token requests and login starts of one provider: registered on that provider's paced
 * queue of the host (`slots.<host>:provider:<name>`), whose workers set the provider's pace.
 */
export function createPacedActivities(deps: ActivityDeps) {
  const { startLogin, refreshCredential, probeCredential, revokeCredential } = createHostActivities(deps);
  return { startLogin, refreshCredential, probeCredential, revokeCredential };
}

/** Device-flow waits: their own queue of the host (`slots.<host>:device-waits`), so they never hold a slot a refresh or a restore needs. */
export function createDeviceWaitActivities(deps: ActivityDeps) {
  const { awaitDeviceApproval } = createDeviceLoginActivities(deps);
  return { awaitDeviceApproval };
}

/**
 * Activities that reach a live PTY session: registered on this process's own queue
 * (`PtyLoginStarted.sessionQueue`), since only the process that started the CLI holds it.
 */
export function createSessionActivities(deps: Pick<ActivityDeps, 'sessions' | 'heartbeatMs'>) {
  const { watchLogin, submitLoginCode, closeLogin } = createLoginSessionActivities(deps);
  return { watchLogin, submitLoginCode, closeLogin };
}

export type SessionActivities = ReturnType<typeof createSessionActivities>;

/** Activities with no host: registered on the shared queue, next to the workflows. */
export function createSharedActivities(deps: NotifyDeps & IncidentReportDeps) {
  return { ...createNotifyActivities(deps), ...createPoolActivities(), ...createIncidentReportActivities(deps) };
}

export type SharedActivities = ReturnType<typeof createSharedActivities>;
