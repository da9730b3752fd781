// Asks an operator for help: a structured log line always, and a JSON POST to
// a webhook (chat, pager, ticketing) when one is configured. Host-free.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { z } from 'zod';
import { FailureType } from '../common/failures';
import { NOTICE_KINDS, noticeBody, type Notice, type NoticeBody } from '../common/notices';
import { poolWorkflowId } from '../common/pool';
import { incidentWorkflowId } from '../common/incidents';
import { providerNames } from '../providers';
import { SlotId } from '../common/schemas';
import { slotWorkflowId } from '../common/slot';
import { tokenLikeField } from '../common/token-shapes';
import { sendOutbound, type OutboundAnswer } from '../providers/outbound';

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
  /**
   * Put a device login's user code in notices (NOTIFY_USER_CODE=1). Whoever approves a
   * device code first binds the slot to their account, so by default the code is only in
   * the slot's status, for operators with access to the namespace. @default false
   */
  readonly includeUserCode?: boolean;
}

const Text = (max: number) => z.string().max(max);
/** A notice is workflow input: anyone who may start a workflow in the namespace writes it. */
const NoticeSchema = z.object({
  eventId: Text(512),
  kind: z.enum(NOTICE_KINDS),
  at: z.number().finite(),
  provider: Text(64),
  slotId: SlotId.optional(),
  host: Text(253).optional(),
  phase: Text(64).optional(),
  pool: Text(200).optional(),
  reason: Text(4000),
  action: z
    .object({
      url: Text(4096).optional(),
      userCode: Text(64).optional(),
      interaction: z.enum(['paste-code', 'device-approval']).optional(),
      command: Text(512).optional(),
      until: z.number().finite().optional(),
    })
    .optional(),
});

/**
 * Notices are sent for a slot only by `slot:<id>` and for a pool only by its `pool:<name>`
 * workflow, with event ids of that workflow: no other workflow of the namespace can post
 * through the team's webhook in a slot's name.
 */
const INCIDENT_KINDS: readonly string[] = ['provider-incident', 'provider-incident-ended'];

function checkNotice(raw: Notice): Notice {
  const parsed = NoticeSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(notice)'}: ${i.message}`).join('; ');
    throw ApplicationFailure.nonRetryable(`refusing a notice: ${problems}`, FailureType.noticeRefused);
  }
  const notice = parsed.data as Notice;
  const caller = Context.current().info.workflowExecution?.workflowId ?? '(no workflow)';
  // A provider's incident speaks for the provider (its id names the deployment's queue after the provider).
  const incident = notice.slotId === undefined && notice.pool === undefined && INCIDENT_KINDS.includes(notice.kind) && providerNames().includes(notice.provider);
  const owner = notice.slotId !== undefined ? slotWorkflowId(notice.slotId) : notice.pool !== undefined ? poolWorkflowId(notice.pool) : incident ? incidentWorkflowId(notice.provider, '') : undefined;
  if (owner === undefined) throw ApplicationFailure.nonRetryable('refusing a notice that names neither a slot, a pool nor a provider incident', FailureType.noticeRefused);
  if (incident ? !caller.startsWith(owner) || caller.length === owner.length : caller !== owner) {
    throw ApplicationFailure.nonRetryable(`refusing a notice for ${JSON.stringify(owner)} from workflow ${JSON.stringify(caller)}: only ${owner} sends its notices`, FailureType.noticeRefused);
  }
  if (!notice.eventId.startsWith(`${caller}/`)) throw ApplicationFailure.nonRetryable(`refusing a notice whose event id is not one of ${caller}'s`, FailureType.noticeRefused);
  const url = notice.action?.url;
  if (url !== undefined && !isWebUrl(url)) {
    const { url: _dropped, ...action } = notice.action!;
    return { ...notice, action };
  }
  return notice;
}

const isWebUrl = (text: string): boolean => {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '';
  } catch {
    return false;
  }
};

/** The notice without a device login's user code (in its action and in its words), unless the host allows it. */
function withoutUserCode(notice: Notice): Notice {
  const code = notice.action?.userCode;
  if (code === undefined) return notice;
  const { userCode: _code, ...action } = notice.action!;
  const where = notice.slotId !== undefined ? `the code is in \`slotctl status ${notice.slotId}\`` : 'the code is in the status';
  return { ...notice, reason: code.length > 0 ? notice.reason.split(code).join(`(${where})`) : notice.reason, action };
}

/** Event ids this process delivered: a retry of an attempt whose answer was lost is not sent twice. */
const DELIVERED_MEMORY = 10_000;

export function createNotifyActivities(deps: NotifyDeps) {
  async function notifyOperator(notice: OperatorNotice): Promise<{ delivered: 'log' | 'webhook' }> {
    // The notice of runs recorded before `sendNotice`: the same rule, only slot:<id> speaks for slot <id>.
    const caller = Context.current().info.workflowExecution?.workflowId;
    if (typeof notice?.slotId !== 'string' || !SlotId.safeParse(notice.slotId).success || caller !== slotWorkflowId(notice.slotId)) {
      throw ApplicationFailure.nonRetryable(`refusing an operator notice from workflow ${JSON.stringify(caller ?? '(no workflow)')}: only slot:<id> sends the notices of slot <id>`, FailureType.noticeRefused);
    }
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
  async function sendNotice(raw: Notice): Promise<{ delivered: 'log' | 'webhook' | 'already' }> {
    const checked = checkNotice(raw);
    const body = safeBody(deps.includeUserCode === true ? checked : withoutUserCode(checked));
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
