// Notices sent by a workflow: each event once, without blocking the workflow on a
// dead webhook. The notify activity runs in a non-cancellable scope (a relogin that
// cancels a refresh does not cancel the `degraded` notice it caused), with backoff.
import { CancellationScope, condition, workflowInfo } from '@temporalio/workflow';
import { noticeEventId, type Notice, type NoticeAction, type NoticeKind } from '../common/notices';
import { noticeActivity } from './activities';
import type { NoticePolicy, PhaseNotice, Slot } from './slot-state';

export class Notices {
  private sent = 0;
  private inFlight = 0;

  /** Sends one notice (fire and forget); `settle` waits for those still being delivered. */
  emit(kind: NoticeKind, fields: Omit<Notice, 'eventId' | 'kind' | 'at'>): void {
    const info = workflowInfo();
    this.sent += 1;
    const notice: Notice = { ...fields, eventId: noticeEventId(info.workflowId, info.runId, this.sent), kind, at: Date.now() };
    this.inFlight += 1;
    void CancellationScope.nonCancellable(() => noticeActivity()(notice))
      // The log and the status already carry the event; a webhook that stays down loses only the message.
      .catch(() => undefined)
      .finally(() => void (this.inFlight -= 1));
  }

  /** Waits (at most `timeoutMs`) for notices in flight: continue-as-new would drop them. No command when none is. */
  async settle(timeoutMs: number): Promise<void> {
    if (this.inFlight > 0) await condition(() => this.inFlight === 0, timeoutMs);
  }
}

/**
 * Which of a slot's transitions' notices are news: a new prompt, `degraded`, `needs-relogin`
 * and `recovered` on the way back to `active`, each only when the published phase changes
 * (the dashboard's phases: a transient `refreshing` that falls back to `needs-relogin` is no
 * event), and none while an open provider incident speaks for the slot. What a notice says
 * is the transition's (workflows/transitions.ts).
 */
export class SlotNotices implements NoticePolicy {
  /** A run continued from a troubled slot still owes the `recovered` notice. */
  private troubled: boolean;
  private promptUrl: string | undefined;

  constructor(
    private readonly slot: Slot,
    readonly notices: Notices,
  ) {
    this.troubled = slot.state.phase === 'degraded' || slot.state.phase === 'needs-relogin';
  }

  published(before: string | undefined, notice: PhaseNotice | undefined): void {
    const { phase } = this.slot.state;
    const prompt = this.slot.run.prompt;
    if (phase === 'awaiting-operator' && prompt && prompt.url !== this.promptUrl) {
      this.promptUrl = prompt.url;
      if (notice?.kind === 'awaiting-operator') this.send(notice);
    }
    if (phase !== 'awaiting-operator') this.promptUrl = undefined;
    if (phase === before) return;
    if (phase === 'degraded' || phase === 'needs-relogin') {
      this.troubled = true;
      if (notice?.kind === phase) this.send(notice);
    } else if (phase === 'active' && this.troubled) {
      this.troubled = false;
      if (notice?.kind === 'recovered') this.send(notice);
    }
  }

  /** A notice that is news whatever the phase (a setup token about to expire): not held by an incident. */
  emit(kind: NoticeKind, reason: string, action?: NoticeAction): void {
    const { slotId, provider, host } = this.slot.input;
    this.notices.emit(kind, { slotId, provider, host, phase: this.slot.state.phase, reason, ...(action ? { action } : {}) });
  }

  private send(notice: PhaseNotice): void {
    // Part of an open provider incident: its one notice speaks for the slot until it ends.
    if (this.slot.state.incident?.open) return;
    this.emit(notice.kind, notice.reason, notice.action);
  }
}
