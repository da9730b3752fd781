// All activities a worker registers, built from the worker's dependencies.
import { createCredentialActivities } from './credential';
import { createDeviceLoginActivities } from './device-login';
import { createLoginActivities, type LoginActivityDeps } from './login';
import { createRefreshActivities } from './refresh';
import { createRevokeActivities } from './revoke';
import { createNotifyActivities, type NotifyDeps } from './notify';

export type ActivityDeps = LoginActivityDeps;

/** Activities that touch a slot's PTY or files: registered on the slot host's queue only. */
export function createHostActivities(deps: ActivityDeps) {
  return {
    ...createLoginActivities(deps),
    ...createDeviceLoginActivities(deps),
    ...createCredentialActivities(deps),
    ...createRefreshActivities(deps),
    ...createRevokeActivities(deps),
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;

/** Activities with no host: registered on the shared queue, next to the workflows. */
export function createSharedActivities(deps: NotifyDeps) {
  return { ...createNotifyActivities(deps) };
}

export type SharedActivities = ReturnType<typeof createSharedActivities>;
