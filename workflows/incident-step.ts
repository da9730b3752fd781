// A slot's side of a provider incident: a permanent failure is reported to the provider's
// incident workflow before the slot says anything itself, so that past the threshold one
// incident notice speaks for all; a held automatic relogin waits for the operator's release.
import { condition, setHandler } from '@temporalio/workflow';
import { FailureType } from '../common/failures';
import { INCIDENT_HANDLER_DESCRIPTIONS, incidentSignal, incidentStateOf, type IncidentState } from '../common/incidents';
import { sharedActivities } from './activities';
import type { Slot } from './slot-state';
import { clause } from './text';

/** What a provider-wide invalidation (a revoked client, a password reset, a changed endpoint) or a host's lost files look like. */
const INCIDENT_FAILURES: readonly string[] = [FailureType.refreshPermanent, FailureType.credentialInvalid, FailureType.refreshMisconfigured];

/**
 * Reports the failure (before the slot records and publishes it, so that both appear at
 * once); the slot then knows whether it is part of an incident. A report that fails leaves
 * it on its own. A host refusing the request (another workflow's) is nobody's incident.
 */
export async function reportPermanentFailure(slot: Slot, failure: string, reason: string): Promise<void> {
  if (!slot.run.paced || !INCIDENT_FAILURES.includes(failure)) return;
  const { slotId, host, provider } = slot.input;
  listenToIncident(slot);
  try {
    const answer = await sharedActivities().reportPermanentFailure({ slotId, host, provider, failure, reason: reason.slice(0, 300) });
    joinIncident(slot, answer);
  } catch {
    // The incident workflow could not be reached: the slot speaks for itself, as before incidents.
  }
}

const listening = new WeakSet<Slot>();

/**
 * The incident workflow's signal, from the slot's first report on: internal plumbing, so it
 * is not among the handlers the Web UI offers on a slot that never failed (a signal sent
 * before is kept by the SDK until the handler is set).
 */
export function listenToIncident(slot: Slot): void {
  if (listening.has(slot)) return;
  listening.add(slot);
  setHandler(incidentSignal, (state) => joinIncident(slot, state), { description: INCIDENT_HANDLER_DESCRIPTIONS.providerIncident });
}

/** Takes an incident's state (the answer to a report, or its signal). */
export function joinIncident(slot: Slot, value: unknown): void {
  const state: IncidentState | undefined = incidentStateOf(value);
  if (!state || state.provider !== slot.input.provider) return;
  slot.state.incident = state.open ? state : undefined;
}

/** Before an automatic relogin: waits while the incident holds it (or until retire, a move, or the operator's own relogin). */
export async function waitWhileHeld(slot: Slot): Promise<void> {
  const incident = slot.state.incident;
  if (!incident?.held) return;
  slot.record(
    'info',
    `part of the ${incident.provider} incident (${incident.slots} slots failing: ${clause(incident.failure)}); ` +
      `its automatic relogin is held by an operator: \`slotctl incident release ${incident.provider}\`, or \`slotctl relogin ${slot.input.slotId}\` for this slot alone`,
  );
  // A record that is not a phase change (no notice): the status and the page say why the login waits.
  slot.publish();
  await condition(() => !slot.state.incident?.held || slot.state.pending.retire !== undefined || (slot.state.pending.move !== undefined && !slot.state.pending.probe));
}
