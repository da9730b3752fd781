// The operator's interface to a slot: message names are stable because the
// `temporal` CLI and the Web UI address them by name. Node-free (bundled into workflows).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LastProbe } from './probe';
import type { LoginPrompt, Phase } from './slot';
import type { BackupNote, MoveState } from './backup';

/** Longest code we accept; real ones are ~100 characters. */
export const MAX_CODE_LENGTH = 2048;

export interface SubmitCodeInput {
  readonly code: string;
}

/** What is wrong with an operator's `{code}` input, or undefined. Hand-written: workflows run it. */
function submitCodeProblem(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return 'input must be an object like {"code": "…"}';
  const { code } = input as { code?: unknown };
  if (typeof code !== 'string') return 'code must be a string';
  if (code.length === 0) return 'code is empty';
  if (code.length > MAX_CODE_LENGTH) return `code is longer than ${MAX_CODE_LENGTH} characters`;
  // The code is typed into a live terminal: a control character or escape
  // sequence would drive the CLI instead of being read as the code.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(code)) return 'code contains control characters (newline, tab or escape)';
  if (code.trim() !== code) return 'code has leading or trailing spaces';
  return undefined;
}

/** Checks a code against the login's format without ever echoing the code. */
export function codeProblem(input: unknown, prompt: LoginPrompt | undefined): string | undefined {
  const problem = submitCodeProblem(input);
  if (problem) return problem;
  const { code } = input as SubmitCodeInput;
  if (prompt?.codeFormat && !new RegExp(prompt.codeFormat.pattern).test(code)) {
    return `code does not have the expected form: ${prompt.codeFormat.description}`;
  }
  return undefined;
}

export interface RetireInput {
  /** Remove the slot's files (credentials included) when retiring. @default false */
  readonly removeFiles?: boolean;
}

/** A retire signal's options, defaults applied; anything but `removeFiles: true` keeps the files. */
export const retireOptions = (input: unknown): { readonly removeFiles: boolean } => ({
  removeFiles: typeof input === 'object' && input !== null && (input as RetireInput).removeFiles === true,
});

export interface Outcome {
  readonly at: number;
  readonly kind:
    | 'login-succeeded'
    | 'login-failed'
    | 'code-rejected'
    | 'code-not-used'
    /** An operator's signal that could not be acted on (cancelLogin with no login, relogin while retiring, probeNow with nothing to probe). */
    | 'request-refused'
    | 'login-restarted'
    | 'refresh-succeeded'
    | 'refresh-failed'
    | 'degraded'
    | 'probe-failed'
    | 'info';
  readonly message: string;
}

/** What a slot publishes of its prompt (the SlotPrompt search attribute): the URL and a device flow's user code. */
export interface PublishedPrompt {
  readonly url: string;
  readonly userCode?: string;
}

/** What `status` answers. Never a token or a code. */
export interface SlotStatus {
  readonly slotId: string;
  readonly provider: string;
  readonly host: string;
  readonly phase: Phase;
  /** Present while an operator is awaited. */
  readonly prompt?: LoginPrompt;
  /** Epoch ms when the access token expires. */
  readonly expiresAt?: number;
  readonly lastRefresh?: number;
  readonly nextRefreshAt?: number;
  readonly account?: string;
  readonly lastOutcome?: Outcome;
  /** The CLI's own words about the last rejected code, or why a message was not used. */
  readonly lastError?: string;
  readonly logins: number;
  readonly refreshes: number;
  readonly consecutiveFailures: number;
  /** Requests the slot has taken and not yet acted on (they survive continue-as-new). */
  readonly pending?: readonly ('relogin' | 'refresh' | 'retire' | 'probe')[];
  /** The last live probe of the credential (common/probe.ts); never its answer's body. */
  readonly lastProbe?: LastProbe;
  /** When the next scheduled probe is due (active and degraded slots). */
  readonly nextProbeAt?: number;
  /** Set when no worker answered and this status was pieced together from search attributes. */
  readonly stale?: string;
  /**
   * With `stale` only: the prompt the slot last published (its SlotPrompt search attribute),
   * so an operator awaited while the worker is busy or gone still has the URL to act on.
   * The full `prompt` (deadline, code format, instructions) comes with a fresh status.
   */
  readonly publishedPrompt?: PublishedPrompt;
  /** The last write-through to the credential backup store (SLOT_BACKUP_URL), when the host has one. */
  readonly backup?: BackupNote;
  /** The last `slotctl move` of this slot: under way, done, refused or failed. */
  readonly move?: MoveState;
}

/** For the `temporal` CLI, tctl and the Web UI's signal form: `{"code": "…"}`. */
export const submitCodeSignal = defineSignal<[SubmitCodeInput]>('submitCode');
/**
 * The same as an update, for slotctl and `temporal workflow update execute`: the
 * validator refuses a bad code at once (it never enters history), and the answer
 * is the CLI's own verdict on the code, so the operator hears whether it worked.
 */
export const submitCodeUpdate = defineUpdate<SubmitCodeResult, [SubmitCodeInput]>('submitCode');
export interface SubmitCodeResult {
  readonly accepted: true;
  /** The login attempt the code was typed into. */
  readonly login: string;
  /** What the CLI made of it: `succeeded` (verified next), `rejected` (try again), … */
  readonly answer: 'succeeded' | 'rejected' | 'failed' | 'exited' | 'hung' | 'lost' | 'cancelled';
  /** The CLI's words (never the code). */
  readonly message: string;
}
export const cancelLoginSignal = defineSignal<[]>('cancelLogin');
export const refreshNowSignal = defineSignal<[]>('refreshNow');
export const reloginSignal = defineSignal<[]>('relogin');
export const retireSignal = defineSignal<[RetireInput?]>('retire');
export const statusQuery = defineQuery<SlotStatus>('status');
/** For the Web UI's signal form, tctl and pools: probe soon (and refresh if the probe cannot tell); the outcome shows in status. */
export const probeNowSignal = defineSignal<[]>('probeNow');
/**
 * The same as an update, for slotctl and the client API: it answers with the outcome
 * of the probe it caused (a refused token is refreshed and probed again first), so the
 * operator hears whether the credential works without polling.
 */
export const probeNowUpdate = defineUpdate<LastProbe, []>('probeNow');

/** Descriptions the Web UI and `temporal workflow metadata` show next to each handler. */
export const HANDLER_DESCRIPTIONS = {
  submitCode: 'The code the login page showed (Claude: <code>#<state>), as {"code": "…"}; checked against the login URL on screen and typed into the CLI at once.',
  cancelLogin: 'Stop the login in progress (the CLI is closed); the slot waits for relogin.',
  refreshNow: 'Refresh the credential now, even if it is not due.',
  relogin: 'Start a new login (a new URL), replacing any login or refresh in progress.',
  retire: 'Stop managing the slot: revoke its tokens where the provider can and move its home to the host\'s trash; the id stays retired on that host until its operator acts. {"removeFiles": true} notes that the files are to go.',
  move: 'Move the slot to another host with no login, as {"toHost": "host-b"}: a fresh backup on the old host, restored and refreshed on the new one, then the old copy removed. Needs SLOT_BACKUP_URL on both hosts.',
  probeNow: 'Prove the credential live now with a minimal real request (a 401/403 is refreshed and probed again); the outcome shows in status as lastProbe.',
  status: 'Phase, prompt (URL / user code while an operator is awaited), expiry, next refresh and last outcome. Never a token.',
} as const;
