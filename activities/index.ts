// All activities a worker registers, built from the worker's dependencies.
import { createCredentialActivities } from './credential';
import { createLoginActivities, type LoginActivityDeps } from './login';

export type ActivityDeps = LoginActivityDeps;

/** Activities that touch a slot's PTY or files: registered on the slot host's queue only. */
export function createHostActivities(deps: ActivityDeps) {
  return { ...createLoginActivities(deps), ...createCredentialActivities(deps) };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
