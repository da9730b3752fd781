// Notices: every event that needs or informs a person, in one shape, rendered to
// one webhook format (JSON with a Slack-compatible `text`). Node-free: workflows
// build notices, the notify activity renders and delivers them. Never a token or code.
import type { Interaction } from './slot';

export const NOTICE_KINDS = [
  /** A login URL (and user code, for device flows) waits for a person. */
  'awaiting-operator',
  /** Refreshes are failing as expiry nears; the slot keeps retrying. */
  'degraded',
  /** The slot has no usable credential; a person must log in again. */
  'needs-relogin',
  /** A slot that was degraded or needed a relogin is active again. */
  'recovered',
  /** A credential that cannot be refreshed (a setup-token) expires soon; a person must make a new one. */
  'setup-token-expiring',
  /** A pool had no slot to lease. */
  'pool-exhausted',
  /** Many slots of one provider failed permanently at once: one notice for all (common/incidents.ts). */
  'provider-incident',
  /** That incident is over: each slot sends its own notices again. */
  'provider-incident-ended',
] as const;
export type NoticeKind = (typeof NOTICE_KINDS)[number];

/** What the person can do from the notice. The URL and user code are shown everywhere anyway (status, Web UI). */
export interface NoticeAction {
  readonly url?: string;
  /** Device flows: the one-time code to enter at `url` (public by design: it is on the CLI's screen). */
  readonly userCode?: string;
  readonly interaction?: Interaction;
  /** The command to run, e.g. `slotctl submit-code <slot>` (the code is read from stdin, hidden). */
  readonly command?: string;
  /** Epoch ms after which acting is too late. */
  readonly until?: number;
}

export interface Notice {
  /**
   * Stable per event: the same across activity retries and workflow replays, unique
   * across events (workflow id, run id, a counter of the run). Receivers deduplicate on it.
   */
  readonly eventId: string;
  readonly kind: NoticeKind;
  /** Epoch ms (the workflow's clock). */
  readonly at: number;
  readonly provider: string;
  readonly slotId?: string;
  readonly host?: string;
  readonly phase?: string;
  readonly pool?: string;
  /** What happened, in words; never a token. */
  readonly reason: string;
  readonly action?: NoticeAction;
}

/** The event id: `<workflow id>/<run id>/<n>`; a run id never repeats, so neither does the id. */
export const noticeEventId = (workflowId: string, runId: string, n: number): string => `${workflowId}/${runId}/${n}`;

/** The webhook body, version 1: the notice's fields plus `text` for Slack-compatible receivers. */
export interface NoticeBody {
  readonly version: 1;
  readonly eventId: string;
  readonly kind: NoticeKind;
  readonly at: string;
  readonly provider: string;
  readonly slotId?: string;
  readonly host?: string;
  readonly phase?: string;
  readonly pool?: string;
  readonly reason: string;
  readonly action?: NoticeAction & { readonly until?: number };
  readonly text: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Workflow-written words in Slack's markup: `<` and `>` escaped (no `<url|label>` link, no
 * `<!channel>` mention can be planted), and no backtick that could close a code span.
 */
const plain = (text: string): string => text.replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const code = (text: string): string => plain(text).replaceAll('`', "'");

/** One or two lines a person reads in chat: what happened, and what to do, with the URL and the command. */
export function noticeText(raw: Notice): string {
  const given = raw.action ?? {};
  const n: Notice = {
    ...raw,
    provider: plain(raw.provider),
    reason: plain(raw.reason),
    ...(raw.slotId !== undefined ? { slotId: code(raw.slotId) } : {}),
    ...(raw.host !== undefined ? { host: plain(raw.host) } : {}),
    ...(raw.pool !== undefined ? { pool: code(raw.pool) } : {}),
    ...(raw.action
      ? {
          action: {
            ...given,
            ...(given.url !== undefined ? { url: plain(given.url) } : {}),
            ...(given.userCode !== undefined ? { userCode: plain(given.userCode) } : {}),
            ...(given.command !== undefined ? { command: code(given.command) } : {}),
          },
        }
      : {}),
  };
  const who = n.slotId
    ? `Slot \`${n.slotId}\` (${n.provider}${n.host ? ` on ${n.host}` : ''})`
    : n.pool !== undefined
      ? `Pool \`${n.pool}\` (${n.provider})`
      : `Provider \`${n.provider}\``;
  const a = n.action ?? {};
  const until = a.until !== undefined ? ` Answer before ${iso(a.until)}.` : '';
  switch (n.kind) {
    case 'awaiting-operator':
      if (a.interaction === 'device-approval') {
        return `:key: ${who} is waiting for a login: open ${a.url ?? '(no URL)'}${a.userCode ? ` and enter the code ${a.userCode}` : ''}; it completes by itself.${until}`;
      }
      return `:key: ${who} is waiting for a login: open ${a.url ?? '(no URL)'}, sign in, copy the code, then run \`${a.command ?? `slotctl submit-code ${n.slotId ?? '<slot>'}`}\` and paste it.${until}`;
    case 'degraded':
      return `:warning: ${who} is degraded: ${n.reason} See \`${a.command ?? `slotctl status ${n.slotId ?? '<slot>'}`}\`.`;
    case 'needs-relogin':
      return `:rotating_light: ${who} needs a new login: ${n.reason}${a.command ? ` Run \`${a.command}\`.` : ''}`;
    case 'recovered':
      return `:white_check_mark: ${who} is active again: ${n.reason}`;
    case 'setup-token-expiring':
      return `:hourglass: ${who}: ${n.reason}${a.command ? ` Run \`${a.command}\`.` : ''}`;
    case 'provider-incident':
      return `:fire: ${who} incident: ${n.reason}${a.command ? ` To relogin them all: \`${a.command}\`.` : ''}`;
    case 'provider-incident-ended':
      return `:white_check_mark: ${who}: ${n.reason}`;
    case 'pool-exhausted':
      return `:no_entry: ${who} has no slot to lease: ${n.reason}${a.command ? ` See \`${a.command}\`.` : ''}`;
  }
}

export function noticeBody(n: Notice): NoticeBody {
  return {
    version: 1,
    eventId: n.eventId,
    kind: n.kind,
    at: iso(n.at),
    provider: n.provider,
    ...(n.slotId !== undefined ? { slotId: n.slotId } : {}),
    ...(n.host !== undefined ? { host: n.host } : {}),
    ...(n.phase !== undefined ? { phase: n.phase } : {}),
    ...(n.pool !== undefined ? { pool: n.pool } : {}),
    reason: n.reason,
    ...(n.action ? { action: n.action } : {}),
    text: noticeText(n),
  };
}
