// The operator's interface to a slot: message names are stable because the
// `temporal` CLI and the Web UI address them by name. Node-free (bundled into workflows).
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { LoginPrompt, Phase } from './slot';

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
  readonly kind: 'login-succeeded' | 'login-failed' | 'code-rejected' | 'login-restarted' | 'refresh-succeeded' | 'refresh-failed' | 'info';
  readonly message: string;
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
  /** The CLI's own words about the last rejected code, while the operator may retry. */
  readonly lastError?: string;
  readonly logins: number;
  readonly refreshes: number;
  readonly consecutiveFailures: number;
  /** Set when no worker answered and this status was pieced together from search attributes. */
  readonly stale?: string;
}

/** For the `temporal` CLI and the Web UI's signal form: `{"code": "…"}`. */
export const submitCodeSignal = defineSignal<[SubmitCodeInput]>('submitCode');
/**
 * The same as an update, for slotctl: an update's validator rejects a bad code
 * at once, so the operator hears about it and it never enters history.
 */
export const submitCodeUpdate = defineUpdate<SubmitCodeResult, [SubmitCodeInput]>('submitCode');
export interface SubmitCodeResult {
  readonly accepted: true;
  readonly login: string;
}
export const cancelLoginSignal = defineSignal<[]>('cancelLogin');
export const refreshNowSignal = defineSignal<[]>('refreshNow');
export const reloginSignal = defineSignal<[]>('relogin');
export const retireSignal = defineSignal<[RetireInput?]>('retire');
export const statusQuery = defineQuery<SlotStatus>('status');

/** Sent by a login child to its slot: the slot's status shows the login's progress. */
export interface LoginProgress {
  readonly loginId: string;
  readonly phase: Extract<Phase, 'logging-in' | 'awaiting-operator' | 'verifying'>;
  readonly prompt?: LoginPrompt;
  readonly lastError?: string;
  readonly outcome?: Outcome;
}
export const loginProgressSignal = defineSignal<[LoginProgress]>('loginProgress');
/** Parent to login child: the operator's code, forwarded. */
export const loginCodeSignal = defineSignal<[SubmitCodeInput]>('loginCode');
export const loginCancelSignal = defineSignal<[]>('loginCancel');

/** Sent by a refresh child while it retries: the slot shows the failures and may turn `degraded`. */
export interface RefreshProgress {
  readonly refreshId: string;
  readonly consecutiveFailures: number;
  readonly lastError: string;
  /** Epoch ms of the next attempt. */
  readonly retryAt: number;
}
export const refreshProgressSignal = defineSignal<[RefreshProgress]>('refreshProgress');
