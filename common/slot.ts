// Names and shapes shared by workflows, activities, the client API and slotctl.
// Node-free and zod-free: this module is bundled into every workflow, where each
// cached workflow would pay for its own copy of a schema library (bench/RESULTS.md).
// The zod schemas for the Node side's boundaries are in ./schemas.ts.

export type SlotId = string;

/** The slot id rule (with at most SLOT_ID_MAX_LENGTH characters): the one copy `slotIdProblem` and the contract schema use. */
export const SLOT_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
export const SLOT_ID_MAX_LENGTH = 63;
/** One host name (SLOT_HOST, a move's target), unanchored, to build lists from: it names a task queue (`slots.<host>`). */
export const HOST_NAME_SOURCE = '[A-Za-z0-9][A-Za-z0-9._-]{0,62}';
/** The host name rule: 1–63 letters, digits, dots, dashes or underscores, starting with a letter or digit. */
export const HOST_NAME_PATTERN = new RegExp(`^${HOST_NAME_SOURCE}$`);

/** A slot id becomes a directory name and part of workflow ids, so it is kept boring. */
export function slotIdProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'slot id must be a string';
  if (value.length === 0) return 'slot id is empty';
  if (value.length > SLOT_ID_MAX_LENGTH) return `slot id is longer than ${SLOT_ID_MAX_LENGTH} characters`;
  if (!SLOT_ID_PATTERN.test(value)) {
    return 'slot id must be lowercase letters, digits and dashes, starting and ending with a letter or digit (no paths, dots or spaces)';
  }
  return undefined;
}

export const slotWorkflowId = (slotId: SlotId): string => `slot:${slotId}`;

/**
 * The slot workflow's design version, set by each run in its memo
 * (`slotWorkflowVersion`): a running `slotWorkflow` without it is a v1 run
 * (child workflows), which `slotctl migrate` moves over.
 */
export const SLOT_WORKFLOW_VERSION = 2;
/**
 * A login attempt's id: the session id on the slot's host and the key of its
 * device-login state. Unique across re-provisions of the same slot id (the run
 * chain's first run id) and across CLI restarts within one login.
 */
export const loginAttemptId = (slotId: SlotId, chainRunId: string, login: number, attempt: number): string =>
  `${slotId}:${chainRunId.slice(0, 8)}:${login}.${attempt}`;

/** The shared task queue for workflows and host-free activities. */
export const SHARED_TASK_QUEUE = 'slot-provisioner';
/** Activities that touch a slot's PTY or files run on the queue of the slot's host. */
export const hostTaskQueue = (host: string): string => `slots.${host}`;
/**
 * The queue of one worker process on a host: a live PTY session is held by one
 * process, so the activities that touch it go there (worker-specific task queues).
 */
export const sessionTaskQueue = (host: string, workerId: string): string => `slots.${host}.${workerId}`;
/**
 * The queue of one provider's token requests (refresh, probe, revocation) and login
 * starts on a host: its workers set the provider's pace there (a task-queue rate limit
 * the server enforces for every process of the host, and a concurrency per process).
 * `:` cannot be in a host name or a worker id, so no other queue has this name.
 */
export const providerTaskQueue = (host: string, provider: string): string => `slots.${host}:provider:${provider}`;
/** Device-flow waits (an activity each, up to an hour): their own queue, so they never hold a slot a refresh or restore needs. */
export const deviceWaitTaskQueue = (host: string): string => `slots.${host}:device-waits`;

export const PHASES = [
  'logging-in',
  'awaiting-operator',
  'verifying',
  'active',
  'refreshing',
  'needs-relogin',
  'degraded',
  'retired',
] as const;
export type Phase = (typeof PHASES)[number];

export const isPhase = (value: unknown): value is Phase => (PHASES as readonly unknown[]).includes(value);

export type Interaction = 'paste-code' | 'device-approval';

/** What an operator needs to act on a login. Never secret: it is shown everywhere. */
export interface LoginPrompt {
  readonly url: string;
  readonly userCode?: string;
  /** Device flows: the URL with the user code already in it (RFC 8628 `verification_uri_complete`). */
  readonly completeUrl?: string;
  readonly interaction: Interaction;
  /** Epoch ms after which the operator's answer is no longer awaited. */
  readonly expiresAt: number;
  /** What the operator should do, in one sentence. */
  readonly instructions: string;
  /** For paste-code logins: the shape a code must have, checked before it reaches the CLI. */
  readonly codeFormat?: { readonly pattern: string; readonly description: string };
}

/** When to refresh. All durations in ms; a provider sets them, a slot may override each. */
export interface RefreshSchedule {
  /** Refresh this long before the access token expires. */
  readonly beforeExpiryMs: number;
  /** Refresh when the last refresh is older than this, whatever the expiry says (Codex's 8 days). */
  readonly maxAgeMs?: number;
  /** Up to this much earlier, at random, so a fleet does not refresh in one burst. */
  readonly jitterMs: number;
}
