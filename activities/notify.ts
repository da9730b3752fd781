// Asks an operator for help: a structured log line always, and a JSON POST to
// a webhook (chat, pager, ticketing) when one is configured. Host-free.
import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from 'pino';
import { FailureType } from '../common/failures';
import { noticeBody, type Notice, type NoticeBody } from '../common/notices';
import { sendOutbound, type OutboundAnswer } from '../providers/outbound';
import { tokenLikeField } from './refresh';

export interface OperatorNotice {
  readonly slotId: string;
  readonly provider: string;
  readonly host: string;
  readonly phase: string;
  /** Why a person is needed, and what to run. Never a token. */
  readonly reason: string;
}

export interface NotifyDeps {
  readonly log: Logger;
  /** Where notices are POSTed as JSON. No webhook: log only. */
  readonly webhookUrl?: string;
  /** @default 10000 */
  readonly timeoutMs?: number;
}

/** Event ids this process delivered: a retry of an attempt whose answer was lost is not sent twice. */
const DELIVERED_MEMORY = 10_000;

export function createNotifyActivities(deps: NotifyDeps) {
  async function notifyOperator(notice: OperatorNotice): Promise<{ delivered: 'log' | 'webhook' }> {
    deps.log.warn({ ...notice, event: 'operator-needed' }, `slot ${notice.slotId} needs an operator: ${notice.reason}`);
    if (!deps.webhookUrl) return { delivered: 'log' };
    let response: OutboundAnswer;
    try {
      response = await sendOutbound(new URL(deps.webhookUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'operator-needed', ...notice }),
        signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw ApplicationFailure.retryable(`operator webhook unreachable: ${(err as Error).message}`, FailureType.notifyFailed);
    }
    if (!ok(response)) {
      throw ApplicationFailure.create({
        message: `operator webhook answered HTTP ${response.status}`,
        type: FailureType.notifyFailed,
        nonRetryable: response.status >= 400 && response.status < 500 && response.status !== 429,
      });
    }
    return { delivered: 'webhook' };
  }
  const delivered = new Set<string>();

  /** POSTs one notice (webhook format v1, `Idempotency-Key: <eventId>`); a failure is retried by the caller's policy. */
  async function sendNotice(notice: Notice): Promise<{ delivered: 'log' | 'webhook' | 'already' }> {
    const body = safeBody(notice);
    if (delivered.has(body.eventId)) return { delivered: 'already' };
    deps.log.info({ event: 'notice', kind: body.kind, eventId: body.eventId, slotId: body.slotId, pool: body.pool }, body.text);
    if (!deps.webhookUrl) return { delivered: 'log' };
    let response: OutboundAnswer;
    try {
      response = await sendOutbound(new URL(deps.webhookUrl), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': body.eventId },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw ApplicationFailure.retryable(`notice webhook unreachable: ${(err as Error).message}`, FailureType.notifyFailed);
    }
    if (!ok(response)) {
      const retryAfter = Number(response.header('retry-after'));
      throw ApplicationFailure.create({
        message: `notice webhook answered HTTP ${response.status}`,
        type: FailureType.notifyFailed,
        nonRetryable: response.status >= 400 && response.status < 500 && response.status !== 429 && response.status !== 408,
        ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { nextRetryDelay: Math.min(retryAfter, 600) * 1000 } : {}),
      });
    }
    delivered.add(body.eventId);
    if (delivered.size > DELIVERED_MEMORY) delivered.delete(delivered.values().next().value as string);
    return { delivered: 'webhook' };
  }
  return { notifyOperator, sendNotice };
}

const ok = (response: OutboundAnswer): boolean => response.status >= 200 && response.status < 300;

/** The body to send; a reason that looks like it holds a token is withheld (the slot's status has it). */
function safeBody(notice: Notice): NoticeBody {
  const body = noticeBody(notice);
  if (tokenLikeField(body, 'notice') === undefined) return body;
  const { action, ...rest } = notice;
  const command = action?.command !== undefined && tokenLikeField(action.command, 'command') === undefined ? { action: { command: action.command } } : {};
  return noticeBody({ ...rest, reason: 'details withheld (they looked like a token); see the slot status', ...command });
}
