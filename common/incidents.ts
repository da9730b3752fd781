// Provider incidents: many slots of one provider failing permanently within a window are
// one incident (one notice, relogins an operator can hold), not a storm. Messages and
// shapes shared by the incident workflow, the slots, the activity that reports, and slotctl.
// Node-free and zod-free: bundled into workflows.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

export interface IncidentSettings {
  /** Slots failing permanently within the window that make an incident. @default 5 */
  readonly threshold: number;
  /** The window, and the quiet time after the last failure that ends an incident. @default 600000 (ten minutes) */
  readonly windowMs: number;
  /** Hold the incident's automatic relogins from the moment it opens, until an operator releases them. @default false */
  readonly holdRelogins: boolean;
}

export const DEFAULT_INCIDENT_SETTINGS: IncidentSettings = { threshold: 5, windowMs: 10 * 60_000, holdRelogins: false };

/**
 * One incident workflow per provider and deployment (its shared task queue, where the
 * workflow runs): the failures of every host of the deployment count together.
 */
export const incidentWorkflowId = (provider: string, taskQueue: string): string => `provider-incident:${provider}:${taskQueue}`;

/** What a slot reports when a refresh or probe finds its credential dead. Never a token. */
export interface PermanentFailureReport {
  readonly slotId: string;
  readonly host: string;
  readonly provider: string;
  /** The failure type (`RefreshPermanent`, `CredentialInvalid`, …): what incidents group by. */
  readonly failure: string;
  /** The failure in words (already free of tokens), for the incident notice. */
  readonly reason: string;
}

/** The incident workflow's answer to a slot, and what it signals to its slots later. */
export interface IncidentState {
  /** The slot is part of an open incident: its own notices wait until the incident ends. */
  readonly open: boolean;
  /** Automatic relogins of the incident's slots wait for an operator's release. */
  readonly held: boolean;
  readonly provider: string;
  /** Slots in the incident so far. */
  readonly slots: number;
  /** The failure most of them share, in words. */
  readonly failure: string;
}

export interface IncidentStatus {
  readonly provider: string;
  readonly open: boolean;
  readonly held: boolean;
  readonly openedAt?: number;
  /** Slots that failed within the window (or since the incident opened), by id, with their host. */
  readonly slots: ReadonlyArray<{ readonly slotId: string; readonly host: string; readonly at: number; readonly failure: string }>;
  readonly settings: IncidentSettings;
}

/**
 * Reported by the slots' activity (update-with-start, so the first failure starts the
 * workflow): an update because the slot needs the answer before it decides on its own notice.
 */
export const reportFailureUpdate = defineUpdate<IncidentState, [PermanentFailureReport]>('reportPermanentFailure');
/** Operators (slotctl, the Web UI): hold the incident's automatic relogins that have not started. */
export const holdReloginsSignal = defineSignal('holdRelogins');
/** Operators: let the held relogins start (paced per host and provider). */
export const releaseReloginsSignal = defineSignal('releaseRelogins');
/** Operators: the incident is over now (per-slot notices resume), without waiting for the quiet window. */
export const endIncidentSignal = defineSignal('endIncident');
export const incidentStatusQuery = defineQuery<IncidentStatus>('incidentStatus');
/** From the incident workflow to a slot of it: the incident opened, was held or released, or ended. */
export const incidentSignal = defineSignal<[IncidentState]>('providerIncident');

export const INCIDENT_HANDLER_DESCRIPTIONS = {
  reportPermanentFailure: 'Sent by the slots (not by people): a slot of this provider failed permanently.',
  holdRelogins: 'Hold the automatic relogins of this incident\'s slots that have not started yet (an operator fixes the cause first).',
  releaseRelogins: 'Let the held relogins start again (at the provider\'s pace on each host).',
  endIncident: 'End the incident now: each slot sends its own notices again.',
  incidentStatus: 'Whether an incident is open, held, and which slots failed.',
  providerIncident: 'Sent by the provider\'s incident workflow (not by people): whether this slot is part of an open incident and whether its relogin is held.',
} as const;

/** The command that relogins every slot of the provider that needs it, for the incident notice. */
export const reloginAllCommand = (provider: string): string => `slotctl relogin --where "SlotProvider = '${provider}' AND SlotPhase = 'needs-relogin'"`;

/** Checks a signal's payload from whoever sent it; undefined when it is not an incident state. */
export function incidentStateOf(value: unknown): IncidentState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.open !== 'boolean' || typeof v.held !== 'boolean' || typeof v.provider !== 'string' || typeof v.slots !== 'number' || typeof v.failure !== 'string') return undefined;
  return { open: v.open, held: v.held, provider: v.provider.slice(0, 64), slots: Math.max(0, Math.floor(v.slots)), failure: v.failure.slice(0, 300) };
}
