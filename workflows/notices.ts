// Notices sent by a workflow: each event once, without blocking the workflow on a
// dead webhook. The notify activity runs in a non-cancellable scope (a relogin that
// cancels a refresh does not cancel the `degraded` notice it caused), with backoff.
import { CancellationScope, condition, workflowInfo } from '@temporalio/workflow';
import { noticeEventId, type Notice, type NoticeAction, type NoticeKind } from '../common/notices';
import type { Phase } from '../common/slot';
import { noticeActivity } from './activities';
import type { Slot } from './slot-state';

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
 * Turns the slot's published phase changes into notices: a new prompt, `degraded`,
 * `needs-relogin`, and `recovered` on the way back to `active`. Published phases are the
 * dashboard's, so a transient `refreshing` that falls back to `needs-relogin` is no event.
 */
export function slotNoticeObserver(slot: Slot, notices: Notices): (before: string | undefined) => void {
  const { slotId, provider, host } = slot.input;
  // A run continued from a troubled slot still owes the `recovered` notice.
  let troubled = slot.phase === 'degraded' || slot.phase === 'needs-relogin';
  let promptUrl: string | undefined;
  const send = (kind: NoticeKind, reason: string, action?: NoticeAction): void => {
    // Part of an open provider incident: its one notice speaks for the slot until it ends.
    if (slot.incident?.open) return;
    notices.emit(kind, { slotId, provider, host, phase: slot.phase, reason, ...(action ? { action } : {}) });
  };
  return (before) => {
    const phase: Phase = slot.phase;
    const prompt = slot.prompt;
    if (phase === 'awaiting-operator' && prompt && prompt.url !== promptUrl) {
      promptUrl = prompt.url;
      send('awaiting-operator', prompt.instructions, {
        url: prompt.completeUrl ?? prompt.url,
        ...(prompt.userCode ? { userCode: prompt.userCode } : {}),
        interaction: prompt.interaction,
        ...(prompt.interaction === 'paste-code' ? { command: `slotctl submit-code ${slotId}` } : {}),
        until: prompt.expiresAt,
      });
    }
    if (phase !== 'awaiting-operator') promptUrl = undefined;
    if (phase === before) return;
    const reason = slot.lastOutcome?.message ?? slot.lastError ?? phase;
    if (phase === 'degraded') {
      troubled = true;
      // Published before the step records it: the reason is built from the failure it knows.
      const expires = slot.expiresAt !== undefined ? new Date(slot.expiresAt).toISOString() : 'at an unknown time';
      send('degraded', `refreshes are failing (${(slot.lastError ?? 'no answer').replace(/\.$/, '')}); the token expires ${expires}; the slot keeps retrying.`, {
        command: `slotctl status ${slotId}`,
      });
    } else if (phase === 'needs-relogin') {
      troubled = true;
      // The reason says what comes next (a login started by itself, or the command to run).
      send('needs-relogin', reason);
    } else if (phase === 'active' && troubled) {
      troubled = false;
      send('recovered', reason, { command: `slotctl status ${slotId}` });
    }
  };
}
