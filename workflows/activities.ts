// Every activity the slot workflow schedules, with its queue, timeouts and retry
// policy stated next to it. Host activities run on the slot host's queue (any
// worker process of that host); session activities on the queue of the one
// process that holds the login's PTY.
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { HostActivities, SessionActivities, SharedActivities } from '../activities/index';
import { FailureType, NON_RETRYABLE_REFRESH_FAILURES } from '../common/failures';
import { deviceWaitTaskQueue, hostTaskQueue, providerTaskQueue } from '../common/slot';
import type { RefreshBackoff } from '../common/slot-input';

/**
 * Where a slot's host activities go. Runs from before pacing send everything to the
 * host's queue, on replay too; newer runs send token requests and login starts to the
 * provider's paced queue on the host, and device-flow waits to a queue of their own.
 */
export interface SlotQueues {
  /** Files, status, verification, backups: the host's queue. */
  readonly host: string;
  /** Refresh, probe, revocation and login start: paced per provider on the host. */
  readonly tokens: string;
  /** Device-flow waits, which hold an activity for up to an hour. */
  readonly deviceWaits: string;
}

export function slotQueues(host: string, provider: string, paced: boolean): SlotQueues {
  const queue = hostTaskQueue(host);
  return paced ? { host: queue, tokens: providerTaskQueue(host, provider), deviceWaits: deviceWaitTaskQueue(host) } : { host: queue, tokens: queue, deviceWaits: queue };
}

/** A retry elsewhere would find no session: the workflow decides what to redo. */
const ONCE = { maximumAttempts: 1 };

export function loginActivities(queues: SlotQueues, heartbeatTimeoutMs: number) {
  const taskQueue = queues.host;
  return {
    // Paced: a login start waits its turn on the provider's queue, and the two minutes include that wait.
    start: proxyActivities<HostActivities>({ taskQueue: queues.tokens, scheduleToCloseTimeout: '2 minutes', heartbeatTimeout: heartbeatTimeoutMs, retry: ONCE }).startLogin,
    verify: proxyActivities<HostActivities>({
      taskQueue,
      scheduleToCloseTimeout: '1 minute',
      // An invalid credential is final; a lost answer is asked again.
      retry: { maximumAttempts: 3, nonRetryableErrorTypes: [FailureType.credentialInvalid] },
    }).verifyCredential,
    discardDevice: proxyActivities<HostActivities>({ taskQueue, scheduleToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } }).discardDeviceLogin,
    /** One activity polls until the device is approved, denied or expired: no history event per poll. */
    awaitDevice: (deadline: number) =>
      proxyActivities<HostActivities>({
        taskQueue: queues.deviceWaits,
        // The deadline is the operator's; a minute more lets the last poll answer.
        scheduleToCloseTimeout: Math.max(deadline - Date.now(), 0) + 60_000,
        heartbeatTimeout: Math.max(heartbeatTimeoutMs, 30_000),
        // A worker that died mid-poll is replaced by another of the host; the state is in a file.
        retry: { maximumAttempts: 5, initialInterval: '2 seconds', nonRetryableErrorTypes: [FailureType.loginSessionLost, FailureType.loginMisconfigured] },
      }).awaitDeviceApproval,
  };
}

/** Activities on the queue of the process that holds the PTY session (returned by `startLogin`). */
export function sessionActivities(sessionQueue: string, heartbeatTimeoutMs: number) {
  // The queue is one process's: a live one picks a task up at once, a dead one never
  // will (and its heartbeat cannot time out before the task starts), so waiting to start is short.
  const taskQueue = sessionQueue;
  const scheduleToStartTimeout = Math.max(2 * heartbeatTimeoutMs, 10_000);
  return {
    watch: proxyActivities<SessionActivities>({ taskQueue, scheduleToStartTimeout, scheduleToCloseTimeout: '2 hours', heartbeatTimeout: heartbeatTimeoutMs, retry: ONCE }).watchLogin,
    submit: proxyActivities<SessionActivities>({ taskQueue, scheduleToStartTimeout, scheduleToCloseTimeout: '2 minutes', heartbeatTimeout: heartbeatTimeoutMs, retry: ONCE }).submitLoginCode,
    close: proxyActivities<SessionActivities>({ taskQueue, scheduleToStartTimeout, scheduleToCloseTimeout: '30 seconds', retry: { maximumAttempts: 3 } }).closeLogin,
  };
}

/**
 * The refresh: one activity re-reads, calls the endpoint, writes the files.
 * Transient failures are retried here by the retry policy, which honours the
 * endpoint's Retry-After (`nextRetryDelay`), without a history event per attempt.
 * `untilMs` bounds the first run: past it the slot shows `degraded` and tries on.
 * A cancel waits for the activity to say it stopped: a token write in progress
 * finishes first, so there is never a second writer.
 */
export function refreshActivity(taskQueue: string, backoff: RefreshBackoff | undefined, untilMs?: number) {
  return proxyActivities<HostActivities>({
    taskQueue,
    startToCloseTimeout: '90 seconds',
    heartbeatTimeout: '30 seconds',
    ...(untilMs !== undefined ? { scheduleToCloseTimeout: Math.max(untilMs, 60_000) } : {}),
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: backoff?.initialMs ?? 5_000,
      maximumInterval: backoff?.maxMs ?? 300_000,
      backoffCoefficient: 2,
      nonRetryableErrorTypes: [...NON_RETRYABLE_REFRESH_FAILURES],
    },
  }).refreshCredential;
}

/**
 * A live probe on the slot's host (the queue belongs to the host's workers). Not retried:
 * a probe is a sample, its outcome says a network error itself, and the next probe is the retry.
 * A host that does not take it within two minutes is recorded as a transient outcome.
 */
export function probeActivity(taskQueue: string) {
  return proxyActivities<HostActivities>({ taskQueue, scheduleToCloseTimeout: '2 minutes', retry: { maximumAttempts: 1 } }).probeCredential;
}

/** Revocation at retire: a token request, so paced with the provider's others; a host that is down fails it as `fileActivities` do. */
export function revokeActivity(taskQueue: string, waitMs = 600_000) {
  return proxyActivities<HostActivities>({ taskQueue, scheduleToCloseTimeout: waitMs, retry: { maximumAttempts: 5 } }).revokeCredential;
}

/** Files, status and revocation on the slot's host: a host that is down for ten minutes fails these, and the slot says so. */
export function fileActivities(host: string, waitMs = 600_000) {
  return proxyActivities<HostActivities>({ taskQueue: hostTaskQueue(host), scheduleToCloseTimeout: waitMs, retry: { maximumAttempts: 5 } });
}

export function sharedActivities() {
  return proxyActivities<SharedActivities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 5, initialInterval: '2 seconds' } });
}

/**
 * Delivers a notice (webhook): retried with exponential backoff for up to an hour; the
 * notice's event id is the same on every attempt, so receivers deduplicate.
 */
export function noticeActivity() {
  return proxyActivities<SharedActivities>({
    startToCloseTimeout: '30 seconds',
    scheduleToCloseTimeout: '1 hour',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes' },
  }).sendNotice;
}

/** A leased slot's agent plan, from its host: short, since the lease waits for it; a host that is down gives none. */
export function agentPlanActivity(host: string) {
  return proxyActivities<HostActivities>({ taskQueue: hostTaskQueue(host), scheduleToCloseTimeout: '10 seconds', retry: { maximumAttempts: 2, initialInterval: '1 second' } }).slotAgentPlan;
}

/** A pool's census of its slots (their status queries); a lease waits for it, so it is short and retried briefly. */
export function poolActivities() {
  return proxyActivities<SharedActivities>({ startToCloseTimeout: '20 seconds', retry: { maximumAttempts: 3, initialInterval: '1 second' } });
}
