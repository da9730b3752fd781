// What slotctl's slot commands print: each result as an Output, its text for a person
// and its JSON document side by side, so the two cannot drift apart.
import type { AgentPlan } from '../providers/agent-plan';
import type { SlotStatus, SubmitCodeResult } from '../common/messages';
import { describeProbe, type LastProbe } from '../common/probe';
import type { SlotSummary } from '../client/slot-client';
import type { SlotMigration } from './migrate';
import type { BulkSlotResult, BulkSummary } from './bulk';
import type { Outcome } from './exit-codes';
import { when, type Output } from './output';

export function statusOutput(s: SlotStatus, outcome: Outcome = 'ok', notes: readonly string[] = []): Output {
  const lines = [`slot      ${s.slotId} (${s.provider} on ${s.host})`, `phase     ${s.phase}`];
  if (s.stale) lines.push(`stale     ${s.stale}`);
  if (s.prompt) {
    lines.push(`open      ${s.prompt.url}`);
    if (s.prompt.userCode) lines.push(`code      ${s.prompt.userCode}`);
    if (s.prompt.completeUrl) lines.push(`or open   ${s.prompt.completeUrl}`);
    lines.push(`until     ${when(s.prompt.expiresAt)}`, `do        ${s.prompt.instructions}`);
  }
  if (s.lastError) lines.push(`error     ${s.lastError}`);
  lines.push(`expires   ${when(s.expiresAt)}`, `refreshed ${when(s.lastRefresh)}`);
  if (s.nextRefreshAt !== undefined) lines.push(`next      ${when(s.nextRefreshAt)}`);
  if (s.account) lines.push(`account   ${s.account}`);
  if (s.lastOutcome) lines.push(`last      ${when(s.lastOutcome.at)} ${s.lastOutcome.kind}: ${s.lastOutcome.message}`);
  if (s.backup) lines.push(`backup    ${when(s.backup.at)} ${s.backup.ok ? 'ok' : 'FAILING'}: ${s.backup.message}`);
  if (s.move) lines.push(`move      ${when(s.move.at)} ${s.move.state}: ${s.move.message}`);
  if (s.lastProbe) lines.push(`probe     ${describeProbe(s.lastProbe)}`);
  return { text: lines.join('\n'), json: s, outcome, notes };
}

export function listOutput(slots: readonly SlotSummary[]): Output {
  if (slots.length === 0) return { text: 'no slots; create one with: slotctl provision <slot> --provider <name>', json: { slots } };
  const header = ['SLOT', 'PROVIDER', 'HOST', 'PHASE', 'PROMPT'];
  const rows = [header, ...slots.map((s) => [s.slotId, s.provider, s.host, s.phase, s.prompt ?? ''])];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  return { text: rows.map((r) => r.map((cell, i) => (i < 4 ? cell.padEnd(widths[i] ?? 0) : cell)).join('  ').trimEnd()).join('\n'), json: { slots } };
}

/** A request the slot took; `outcome` failed when what followed did not do what was asked. */
export const doneOutput = (slotId: string, message: string, outcome: Outcome = 'ok'): Output => ({ text: message, json: { ok: true, slotId, message }, outcome });

/** What the CLI made of a typed code, in the operator's words. Never repeats the code. */
export function describeAnswer(result: SubmitCodeResult): string {
  switch (result.answer) {
    case 'succeeded':
    case 'exited':
      return `code accepted by ${result.login}: ${result.message}; verifying the credential`;
    case 'rejected':
    case 'hung':
      return `the CLI did not take the code (${result.message}); a new login URL follows if the CLI needs one`;
    case 'failed':
      return `the login failed after the code: ${result.message}`;
    case 'lost':
    case 'cancelled':
      return `the code could not be typed (${result.message})`;
  }
}

/** The provider took the token (ok, or 429: recognised, resting), or the provider has nothing to probe. */
const probeAccepted = (p: LastProbe): boolean => p.outcome === 'ok' || p.outcome === 'rate-limited' || p.outcome === 'none';

/** Failed (exit 1) unless the provider took the token (a 429 took it too) or there is nothing to probe. */
export function probeOutput(slotId: string, probe: LastProbe): Output {
  const ok = probeAccepted(probe);
  return { text: `probe of ${slotId}: ${describeProbe(probe)}`, json: { ok, slotId, probe }, outcome: ok ? 'ok' : 'failed' };
}

/** One line per slot: what happened, then what the operator should know. Failed when any slot failed. */
export function migrateOutput(dryRun: boolean, slots: readonly SlotMigration[]): Output {
  const failed = slots.filter((m) => m.outcome === 'failed').length;
  return {
    text: slots.length === 0 ? 'no slot runs slot workflow v1; nothing to migrate' : slots.map(migrationLine).join('\n'),
    json: { ok: failed === 0, dryRun, failed, slots },
    outcome: failed === 0 ? 'ok' : 'failed',
  };
}

function migrationLine(m: SlotMigration): string {
  const then = (note: string | undefined): string => (note ? `; ${note}` : '');
  switch (m.outcome) {
    case 'migrated':
      return `${m.slotId}: migrated, v1 run ${m.from} -> v2 run ${m.to} (${m.fromPhase ?? 'unknown'} -> ${m.phase ?? 'not started yet'})${then(m.note)}`;
    case 'planned':
      return `${m.slotId}: would migrate v1 run ${m.from} (${m.fromPhase ?? 'unknown'})${then(m.note)}`;
    case 'ended':
      return `${m.slotId}: v1 run ${m.from} ended${then(m.note)}`;
    case 'skipped':
      return `${m.slotId}: skipped${then(m.note)}`;
    case 'failed':
      return `${m.slotId}: FAILED${m.from ? ` (v1 run ${m.from})` : ''}: ${m.error}`;
  }
}

/** The plan for a person: the mechanism, what to mount, set, hide and route. */
export function agentPlanOutput(plan: AgentPlan, wroteEnv: string | undefined): Output {
  const lines = [
    `slot      ${plan.slotId} (${plan.provider})`,
    `how       ${plan.mechanism}`,
    ...plan.mounts.map((m) => `mount     ${m.hostPath} -> ${m.agentPath} (${m.readOnly ? 'read-only' : 'read-write'}): ${m.holds}`),
    ...Object.entries(plan.env).map(([k, v]) => `env       ${k}=${v}${plan.placeholders.includes(k) ? '  (placeholder)' : ''}`),
    ...(plan.hiddenEnv.length ? [`hide      ${plan.hiddenEnv.join(', ')}`] : []),
    ...plan.egress.map((r) => `egress    ${r.host} ${r.authScheme} from ${r.tokenSource}${r.tlsPassThrough ? ', TLS passed through' : ''}: ${r.purpose}`),
    ...plan.warnings.map((w) => `warning   ${w}`),
    ...(wroteEnv ? [`wrote     ${wroteEnv}`] : []),
  ];
  return { text: lines.join('\n'), json: plan };
}

/** A dry run lists the slots; a run lists the failures, then counts. Failed when any slot failed. */
export function bulkOutput(b: BulkSummary): Output {
  return { text: bulkText(b), json: { ok: b.failed === 0, ...b }, outcome: b.failed > 0 ? 'failed' : 'ok' };
}

function bulkText(b: BulkSummary): string {
  if (b.slots.length === 0) return `no running slot matches ${JSON.stringify(b.where)}; nothing to ${b.action}`;
  const slot = (s: BulkSlotResult): string => `${s.slotId} (${s.provider} on ${s.host}, ${s.phase})`;
  if (b.dryRun) return [`would ${b.action} ${b.slots.length} slot${b.slots.length === 1 ? '' : 's'}:`, ...b.slots.map((s) => `  ${slot(s)}`)].join('\n');
  const failures = b.slots.filter((s) => s.outcome === 'failed').map((s) => `${slot(s)}: FAILED: ${s.error ?? 'unknown error'}`);
  return [...failures, `${b.action}: ${b.done} done, ${b.failed} failed`].join('\n');
}
