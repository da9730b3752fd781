// Asks an operator for help: a structured log line always, and a JSON POST to
// a webhook (chat, pager, ticketing) when one is configured. Host-free.
import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from 'pino';
import { FailureType } from '../common/failures';

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

export function createNotifyActivities(deps: NotifyDeps) {
  async function notifyOperator(notice: OperatorNotice): Promise<{ delivered: 'log' | 'webhook' }> {
    deps.log.warn({ ...notice, event: 'operator-needed' }, `slot ${notice.slotId} needs an operator: ${notice.reason}`);
    if (!deps.webhookUrl) return { delivered: 'log' };
    let response: Response;
    try {
      response = await fetch(deps.webhookUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event: 'operator-needed', ...notice }),
        signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
      });
    } catch (err) {
      throw ApplicationFailure.retryable(`operator webhook unreachable: ${(err as Error).message}`, FailureType.notifyFailed);
    }
    await response.body?.cancel();
    if (!response.ok) {
      throw ApplicationFailure.create({
        message: `operator webhook answered HTTP ${response.status}`,
        type: FailureType.notifyFailed,
        nonRetryable: response.status >= 400 && response.status < 500 && response.status !== 429,
      });
    }
    return { delivered: 'webhook' };
  }
  return { notifyOperator };
}
