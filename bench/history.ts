// Reading workflow histories for timings: every event carries the server's
// time, on the same machine as the benchmark, so a path through several
// workflows can be cut into steps.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

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
