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
