// The Web UI's workflow page for a slot (the workflow's current details, markdown):
// the phase, the prompt, and the exact next step both in the UI's signal form and
// in slotctl. Built from the status alone, so it never holds what status does not.
import { codeSpan, markdownText } from '../common/markdown';
import type { SlotStatus } from '../common/messages';
import { describeProbe } from '../common/probe';
import type { LoginPrompt } from '../common/slot';

const when = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** A markdown link that the URL cannot break out of (it comes off a CLI's screen). */
function link(url: string): string {
  if (!/^https?:\/\//i.test(url)) return `\`${url.replace(/`/g, '')}\``;
  const target = url.replace(/[()<>\s[\]`]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  const text = target.replace(/^https?:\/\//i, '').replace(/[?#].*$/, '');
  return `[${text.replace(/[[\]*_]/g, '')}](${target})`;
}

const signal = (name: string, input?: string): string =>
  `**Send a Signal** (this page) → signal name \`${name}\`${input ? `, input \`${input}\`` : ', no input'}`;

function promptSteps(slotId: string, prompt: LoginPrompt): string[] {
  // One paragraph each: markdown joins lines that only a newline separates.
  const lines = ['', `**Login page:** ${link(prompt.url)}`];
  if (prompt.userCode) lines.push('', `**User code:** ${codeSpan(prompt.userCode)}`);
  if (prompt.completeUrl) lines.push('', `**Or, code included:** ${link(prompt.completeUrl)}`);
  lines.push('', `**Answer before:** ${when(prompt.expiresAt)}`, '', '### Next step');
  if (prompt.interaction === 'paste-code') {
    lines.push(
      `1. Open the login page, sign in, and copy the code it shows${prompt.codeFormat ? ` (${markdownText(prompt.codeFormat.description)})` : ''}.`,
      '2. Submit it, one of:',
      `   - slotctl: \`slotctl submit-code ${slotId}\` and paste the code when asked (it is not echoed);`,
      `   - ${signal('submitCode', '{"code": "<the code you copied>"}')}.`,
      '3. The slot types it into the CLI at once and shows `verifying`, then `active` (reload this page).',
    );
  } else {
    lines.push(
      `1. Open the login page${prompt.userCode ? `, enter the user code ${codeSpan(prompt.userCode)}` : ''} and approve.`,
      '2. Nothing to submit: the slot sees the approval by itself and shows `active` (reload this page).',
    );
  }
  lines.push('', `A new URL instead: \`slotctl relogin ${slotId}\`, or ${signal('relogin')}.`);
  return lines;
}

function phaseSteps(s: SlotStatus): string[] {
  const id = s.slotId;
  const refresh = `\`slotctl refresh ${id}\`, or ${signal('refreshNow')}`;
  const relogin = `\`slotctl relogin ${id}\`, or ${signal('relogin')}`;
  switch (s.phase) {
    case 'logging-in':
      return [`The login CLI is starting on ${codeSpan(s.host)}; its URL appears here within seconds (reload this page). Nothing to do yet.`];
    case 'awaiting-operator':
      return ['The login is waiting for its URL to be read; reload this page.'];
    case 'verifying':
      return ['The code was taken; the slot is checking that a credential landed. Nothing to do.'];
    case 'active':
      return [`Nothing to do: the credential is live${s.nextRefreshAt !== undefined ? ` and is refreshed at ${when(s.nextRefreshAt)}` : ''}.`, `Refresh now: ${refresh}.`];
    case 'refreshing':
      return ['The token is being refreshed now. Nothing to do.'];
    case 'degraded':
      return [
        `Refreshes are failing and are retried by themselves${s.expiresAt !== undefined ? `; the token expires ${when(s.expiresAt)}` : ''}.`,
        `Try now: ${refresh}. Or start a new login: ${relogin}.`,
      ];
    case 'needs-relogin':
      return [`**A person is needed.** Start a new login: ${relogin}; its URL appears here.`];
    case 'retired':
      return ['Retired: the slot is no longer managed. Nothing to do.'];
  }
}

/** The slot's page: a heading with the phase, the prompt and its next step, or the phase's next step. */
export function slotDetails(s: SlotStatus): string {
  const lines = [`## Slot ${codeSpan(s.slotId)}: **${s.phase}**`, '', `${markdownText(s.provider)} on host ${codeSpan(s.host)} · logins ${s.logins} · refreshes ${s.refreshes}`];
  if (s.phase === 'awaiting-operator' && s.prompt) lines.push(...promptSteps(s.slotId, s.prompt));
  else lines.push('', '### Next step', ...phaseSteps(s));
  if (s.expiresAt !== undefined) lines.push('', `Token expires ${when(s.expiresAt)}.`);
  if (s.lastOutcome) lines.push('', `Last: ${markdownText(s.lastOutcome.message)} (${when(s.lastOutcome.at)})`);
  if (s.lastError) lines.push('', `Problem: ${markdownText(s.lastError)}`);
  if (s.lastProbe) {
    const next = s.nextProbeAt !== undefined ? `; next ${when(s.nextProbeAt)}` : '';
    lines.push('', `Last probe: ${markdownText(describeProbe(s.lastProbe))}${next}. Probe now: \`slotctl probe ${s.slotId}\`, or ${signal('probeNow')}.`);
  }
  if (s.pending?.length) lines.push('', `Requested, not yet done: ${markdownText(s.pending.join(', '))}.`);
  return lines.join('\n');
}
