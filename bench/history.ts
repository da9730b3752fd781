// Reading workflow histories for timings: every event carries the server's
// time, on the same machine as the benchmark, so a path through several
// workflows can be cut into steps.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { distribution, type Distribution } from './report';

export const EventType = proto.temporal.api.enums.v1.EventType;
export type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

/** Epoch ms of an event (server clock). */
export function eventMs(event: HistoryEvent): number {
  const t = event.eventTime;
  if (!t) return NaN;
  const seconds = typeof t.seconds === 'number' ? t.seconds : Number(t.seconds?.toString() ?? NaN);
  return seconds * 1000 + (t.nanos ?? 0) / 1e6;
}

export async function historyOf(client: Client, workflowId: string, runId?: string): Promise<HistoryEvent[]> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  return history.events ?? [];
}

/** Event counts by type name (`ActivityTaskScheduled` …), for "what a cycle costs". */
export function countByType(events: readonly HistoryEvent[]): Record<string, number> {
  const names = EventType as unknown as Record<number, string>;
  const counts: Record<string, number> = {};
  for (const e of events) {
    const name = (names[e.eventType ?? 0] ?? String(e.eventType))
      .replace(/^EVENT_TYPE_/, '')
      .toLowerCase()
      .replace(/(^|_)([a-z])/g, (_, __: string, c: string) => c.toUpperCase());
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

export const signalName = (e: HistoryEvent): string | undefined => e.workflowExecutionSignaledEventAttributes?.signalName ?? undefined;
export const activityName = (e: HistoryEvent): string | undefined => e.activityTaskScheduledEventAttributes?.activityType?.name ?? undefined;

/** One line per event of several workflows, merged by time, relative to `t0` (for a note on stderr). */
export async function timeline(client: Client, workflowIds: Record<string, string>, t0: number, windowMs: number): Promise<string[]> {
  const names = EventType as unknown as Record<number, string>;
  const rows: Array<[number, string]> = [];
  for (const [label, id] of Object.entries(workflowIds)) {
    for (const e of await historyOf(client, id)) {
      const t = eventMs(e) - t0;
      if (t < -5 || t > windowMs) continue;
      const detail =
        e.workflowExecutionSignaledEventAttributes?.signalName ??
        e.activityTaskScheduledEventAttributes?.activityType?.name ??
        e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName ??
        '';
      rows.push([t, `${label.padEnd(6)} ${(names[e.eventType ?? 0] ?? '').replace(/^EVENT_TYPE_/, '')} ${detail}`]);
    }
  }
  return rows.sort((a, b) => a[0] - b[0]).map(([t, line]) => `${t.toFixed(1).padStart(8)} ms  ${line}`);
}

/** Bytes of the events as the server stores and sends them (protobuf encoding, summed). */
export function eventBytes(events: readonly HistoryEvent[]): number {
  let total = 0;
  for (const e of events) total += proto.temporal.api.history.v1.HistoryEvent.encode(e).finish().length;
  return total;
}

const idOf = (value: unknown): string => (value === null || value === undefined ? '' : String(value));

/** The activity's name, for any of its events (scheduled, started, completed, failed …). */
function activityNameOf(events: readonly HistoryEvent[], event: HistoryEvent): string | undefined {
  const scheduledId =
    event.activityTaskCompletedEventAttributes?.scheduledEventId ??
    event.activityTaskFailedEventAttributes?.scheduledEventId ??
    event.activityTaskTimedOutEventAttributes?.scheduledEventId ??
    event.activityTaskCanceledEventAttributes?.scheduledEventId ??
    event.activityTaskStartedEventAttributes?.scheduledEventId;
  if (scheduledId === null || scheduledId === undefined) return activityName(event);
  const scheduled = events.find((e) => idOf(e.eventId) === idOf(scheduledId));
  return scheduled ? activityName(scheduled) : undefined;
}

/** The ActivityTaskStarted / Completed event of the activity scheduled by `scheduled`. */
export function activityStarted(events: readonly HistoryEvent[], scheduled: HistoryEvent | undefined): HistoryEvent | undefined {
  if (!scheduled) return undefined;
  return events.find((e) => idOf(e.activityTaskStartedEventAttributes?.scheduledEventId) === idOf(scheduled.eventId));
}
export function activityCompleted(events: readonly HistoryEvent[], scheduled: HistoryEvent | undefined): HistoryEvent | undefined {
  if (!scheduled) return undefined;
  return events.find((e) => idOf(e.activityTaskCompletedEventAttributes?.scheduledEventId) === idOf(scheduled.eventId));
}

/** The workflow task completion whose commands produced `event` (the last WorkflowTaskCompleted before it). */
export function taskCompletedBefore(events: readonly HistoryEvent[], event: HistoryEvent): HistoryEvent | undefined {
  let found: HistoryEvent | undefined;
  for (const e of events) {
    if (Number(idOf(e.eventId)) >= Number(idOf(event.eventId))) break;
    if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) found = e;
  }
  return found;
}

/** The last event of `type` before `event`. */
export function lastBefore(events: readonly HistoryEvent[], event: HistoryEvent, type: number): HistoryEvent | undefined {
  let found: HistoryEvent | undefined;
  for (const e of events) {
    if (Number(idOf(e.eventId)) >= Number(idOf(event.eventId))) break;
    if (e.eventType === type) found = e;
  }
  return found;
}

export interface TimerCycle {
  /** Events after one TimerStarted up to and including the next TimerStarted. */
  readonly events: number;
  readonly bytes: number;
  readonly workflowTasks: number;
  readonly byType: Record<string, number>;
  /** How the slot woke: its own timer fired, or a message cancelled it. */
  readonly wokeBy: 'timer' | 'message';
  /** From the wake-up (TimerFired or the message) to the next TimerStarted, server clock. */
  readonly wakeToSleepMs: number;
}

/** Cuts a history into cycles between consecutive TimerStarted events. */
export function timerCycles(events: readonly HistoryEvent[]): TimerCycle[] {
  const starts = events.flatMap((e, i) => (e.eventType === EventType.EVENT_TYPE_TIMER_STARTED ? [i] : []));
  const cycles: TimerCycle[] = [];
  for (let k = 1; k < starts.length; k++) {
    const slice = events.slice((starts[k - 1] as number) + 1, (starts[k] as number) + 1);
    const fired = slice.find((e) => e.eventType === EventType.EVENT_TYPE_TIMER_FIRED);
    const woke = fired ?? slice[0];
    cycles.push({
      events: slice.length,
      bytes: eventBytes(slice),
      workflowTasks: slice.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED).length,
      byType: countByType(slice),
      wokeBy: fired && !slice.some((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) ? 'timer' : 'message',
      wakeToSleepMs: woke ? Math.round(eventMs(slice[slice.length - 1] as HistoryEvent) - eventMs(woke)) : NaN,
    });
  }
  return cycles;
}

/** The steps of an update that schedules an activity, from the server's event times (ms). */
export interface UpdateActivitySteps {
  /** The client's call (its clock, same machine) → the workflow task that runs the update started. */
  readonly callToUpdateTaskStarted: number;
  /** That task started → the update accepted (the task completed). */
  readonly updateTaskStartedToAccepted: number;
  readonly acceptedToActivityScheduled: number;
  /** The activity scheduled → a worker's poll took it (ActivityTaskStarted). */
  readonly activityScheduledToStarted: number;
  /** Epoch ms of ActivityTaskStarted (server clock). */
  readonly activityStartedAt: number;
  /** The activity was scheduled by the very workflow task that accepted the update. */
  readonly scheduledInAcceptingTask: boolean;
  /** The update's task went to the worker's sticky queue: the worker still had the workflow cached (an evicted one is sent to the normal queue and replayed). */
  readonly stickyTask: boolean;
  /**
   * The workflow's previous task completed after the call (epoch ms, server clock): the update
   * waited for a task of the same workflow that was already scheduled or running, and what
   * that task was for (the event that scheduled it: `ActivityTaskCompleted sendNotice` …).
   */
  readonly waitedForTask?: { readonly completedAt: number; readonly cause: string };
}

/**
 * Cuts the path of the first update accepted after `calledAt` into steps, from one history:
 * the task that ran the update, its acceptance, the activity `activity` it scheduled, that
 * activity's start. The same cut for ours (submitCode → submitLoginCode) and the engine floor's.
 */
export function updateActivitySteps(events: readonly HistoryEvent[], activity: string, calledAt: number): UpdateActivitySteps | undefined {
  const accepted = events.find((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED && eventMs(e) >= calledAt - 5);
  if (!accepted) return undefined;
  const taskStarted = lastBefore(events, accepted, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
  const acceptingTask = taskCompletedBefore(events, accepted);
  const scheduled = events.find((e) => activityName(e) === activity && Number(idOf(e.eventId)) > Number(idOf(accepted.eventId)));
  const started = activityStarted(events, scheduled);
  if (!taskStarted || !scheduled || !started) return undefined;
  const previous = taskCompletedBefore(events, taskStarted);
  let waitedForTask: UpdateActivitySteps['waitedForTask'];
  if (previous && eventMs(previous) > calledAt) {
    const previousScheduled = lastBefore(events, previous, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
    const cause = previousScheduled ? events[events.indexOf(previousScheduled) - 1] : undefined;
    const names = EventType as unknown as Record<number, string>;
    const what = cause ? `${(names[cause.eventType ?? 0] ?? '').replace(/^EVENT_TYPE_/, '')} ${activityNameOf(events, cause) ?? signalName(cause) ?? ''}`.trim() : 'unknown';
    waitedForTask = { completedAt: eventMs(previous), cause: what };
  }
  return {
    ...(waitedForTask ? { waitedForTask } : {}),
    callToUpdateTaskStarted: eventMs(taskStarted) - calledAt,
    updateTaskStartedToAccepted: eventMs(accepted) - eventMs(taskStarted),
    acceptedToActivityScheduled: eventMs(scheduled) - eventMs(accepted),
    activityScheduledToStarted: eventMs(started) - eventMs(scheduled),
    activityStartedAt: eventMs(started),
    scheduledInAcceptingTask: idOf(scheduled.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId) === idOf(acceptingTask?.eventId),
    stickyTask: lastBefore(events, accepted, EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)?.workflowTaskScheduledEventAttributes?.taskQueue?.kind === proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_STICKY,
  };
}

/**
 * Many updates' paths, tallied step by step the same way for ours and the floor's: `add` takes
 * one cut and the steps that end elsewhere (the floor's activity function, our PTY), in order.
 */
export class UpdateStepTally {
  private readonly steps: Record<string, number[]> = {};
  scheduledInAcceptingTask = 0;
  stickyTasks = 0;
  /** Updates that arrived while a task of the same workflow was scheduled or running. */
  waitedForAnotherTask = 0;

  add(cut: UpdateActivitySteps, endSteps: Readonly<Record<string, number>>): void {
    if (cut.scheduledInAcceptingTask) this.scheduledInAcceptingTask++;
    if (cut.stickyTask) this.stickyTasks++;
    if (cut.waitedForTask) this.waitedForAnotherTask++;
    const values: Record<string, number> = {
      callToUpdateTaskStarted: cut.callToUpdateTaskStarted,
      updateTaskStartedToAccepted: cut.updateTaskStartedToAccepted,
      acceptedToActivityScheduled: cut.acceptedToActivityScheduled,
      activityScheduledToStarted: cut.activityScheduledToStarted,
      ...endSteps,
    };
    for (const [step, ms] of Object.entries(values)) (this.steps[step] ??= []).push(ms);
  }

  distributions(): Record<string, Distribution> {
    return Object.fromEntries(Object.entries(this.steps).map(([step, values]) => [step, distribution(values)]));
  }
}
