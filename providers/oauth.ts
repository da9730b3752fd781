// The RFC 6749 reading of a token endpoint's answer, shared by providers: what is
// success, what needs a person again (permanent), and what will pass (transient).
// Reasons name status, error code and description, never a token.
import { z } from 'zod';
import type { DevicePollVerdict, RefreshSpec, RefreshVerdict, TokenAnswer } from './provider';

/** RFC 6749 §5.2 codes that mean the grant or the client is no longer accepted. */
export const OAUTH_PERMANENT_CODES: readonly string[] = [
  'invalid_grant',
  'invalid_client',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
];

/**
 * Codes some servers send with a 400 although the condition passes
 * (RFC 6749 §4.1.2.1, RFC 8628 §3.5): a person is not needed for them.
 */
const OAUTH_TRANSIENT_CODES: readonly string[] = ['temporarily_unavailable', 'server_error', 'slow_down'];

/** Statuses that say "later", whatever the body says. */
const TRANSIENT_STATUSES = new Set([408, 425, 429]);
/** Statuses on which `Retry-After` is defined for a delay (RFC 9110 §10.2.3, RFC 6585 §4). */
const RETRY_AFTER_STATUSES = new Set([429, 503]);
/** A server may not park a slot for longer than this with `Retry-After`. */
export const MAX_RETRY_AFTER_MS = 60 * 60_000;
const MAX_DESCRIPTION_CHARS = 200;

/** Longest token lifetime believed (1 year): a larger `expires_in` is clamped to it, so no date derived from it is invalid. */
export const MAX_TOKEN_EXPIRES_IN_S = 365 * 24 * 3600;
/** Shortest lifetime believed; a server's 0, negative or 0.0001 counts as this. */
export const MIN_EXPIRES_IN_S = 1;

/** A server's `expires_in` (seconds) clamped to [1 s, `maxS`]; a number that is not finite counts as `maxS`. */
export function clampExpiresIn(seconds: number, maxS: number = MAX_TOKEN_EXPIRES_IN_S): number {
  if (Number.isNaN(seconds)) return maxS;
  return Math.min(Math.max(seconds, MIN_EXPIRES_IN_S), maxS);
}

/** `expires_in` as a number of seconds (some servers send a string), clamped; undefined when absent or unreadable. */
function readExpiresIn(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  return Number.isNaN(n) ? undefined : clampExpiresIn(n);
}

/**
 * An epoch-ms expiry read from a credential file (or a JWT) as the workflow may use it:
 * undefined unless a positive finite number, and never later than `now` plus the longest
 * lifetime believed (a file written before the clamp, or by someone else, can say anything).
 */
export function plausibleExpiresAt(ms: unknown, now: number = Date.now()): number | undefined {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) return undefined;
  return Math.floor(Math.min(ms, now + MAX_TOKEN_EXPIRES_IN_S * 1000));
}

/** The answer as a provider's `classify` receives it. */
export type TokenEndpointAnswer = Parameters<RefreshSpec['classify']>[0];

/** RFC 6749 §5.1, checked field by field so that a wrong type is named, not written to disk. */
const TokenAnswerSchema = z
  .object({
    access_token: z.string().min(1, 'is empty'),
    refresh_token: z.string().min(1, 'is empty').optional(),
    // Not worth a rotated refresh token either: an empty or odd one is dropped (the file keeps its own).
    id_token: z.unknown().transform((value) => (typeof value === 'string' && value !== '' ? value : undefined)).optional(),
    // Cosmetic next to a rotated refresh token: clamped, or dropped (expiry unknown) when unreadable, never a refusal.
    expires_in: z.unknown().transform(readExpiresIn).optional(),
    scope: z.unknown().transform((value) => (typeof value === 'string' ? value : undefined)).optional(),
  })
  .loose();

export interface ClassifyOptions {
  /** Provider error codes that also mean the refresh token is dead (e.g. Codex's `refresh_token_reused`). */
  readonly permanentCodes?: readonly string[];
}

/** Reads a token endpoint's answer as RFC 6749 describes, plus the provider's own permanent codes. */
export function classifyTokenAnswer(answer: TokenEndpointAnswer, options: ClassifyOptions = {}): RefreshVerdict {
  const { status, json } = answer;
  const http = `HTTP ${status}`;

  if (status >= 200 && status < 300) {
    if (json === undefined) return { kind: 'transient', reason: `token endpoint answered ${http} with an unparseable body (not JSON)` };
    if (!isRecord(json) || !('access_token' in json)) {
      return { kind: 'transient', reason: `token endpoint answered ${http} but the answer is missing access_token` };
    }
    const parsed = TokenAnswerSchema.safeParse(json);
    if (!parsed.success) {
      // Field names and zod's wording only: the values are tokens.
      const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).slice(0, 5);
      return { kind: 'transient', reason: `token endpoint answered ${http} with an unparseable token answer: ${fields.join('; ')}` };
    }
    return { kind: 'success', tokens: parsed.data as TokenAnswer };
  }

  const error = readOAuthError(json);
  const said = error ? ` ${error.code}${error.description ? `: ${error.description}` : ''}` : json === undefined ? ' (body is not JSON)' : '';
  const retryAfterMs =
    RETRY_AFTER_STATUSES.has(status) && answer.retryAfterMs !== undefined ? Math.min(Math.max(0, answer.retryAfterMs), MAX_RETRY_AFTER_MS) : undefined;
  const transient = (): RefreshVerdict => ({
    kind: 'transient',
    reason: `token endpoint answered ${http}${said}`,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  });

  if (TRANSIENT_STATUSES.has(status) || status >= 500) return transient();
  if (status >= 400) {
    if (error && OAUTH_TRANSIENT_CODES.includes(error.code)) return transient();
    const permanentCodes = [...OAUTH_PERMANENT_CODES, ...(options.permanentCodes ?? [])];
    if (error && permanentCodes.includes(error.code)) {
      return { kind: 'permanent', reason: `token endpoint refused the refresh token (${http}${said}); a new login is needed` };
    }
    if (!error && (status === 401 || status === 403)) {
      return { kind: 'permanent', reason: `token endpoint answered ${http} without an OAuth error: the credential is not accepted; a new login is needed` };
    }
    return { kind: 'permanent', reason: `token endpoint rejected the refresh request (${http}${said})` };
  }
  if (status >= 300 && status < 400) {
    // Transient: a redirect says nothing about the refresh token, which was not judged
    // and still works; calling it dead would page a person and throw a good login away.
    // It is not followed: that would send the refresh token to wherever it points.
    return { kind: 'transient', reason: `token endpoint answered ${http} (a redirect, not followed: the refresh token is not sent elsewhere); check the endpoint if it persists` };
  }
  return transient();
}

/**
 * RFC 8628 §3.5: one poll of a device login. `authorization_pending` and `slow_down`
 * mean "ask again"; `expired_token` and `access_denied` end the login; anything
 * else refused is the client's or the configuration's problem.
 */
export function classifyDevicePoll(answer: TokenEndpointAnswer): DevicePollVerdict {
  const { status, json } = answer;
  if (status >= 200 && status < 300) {
    const verdict = classifyTokenAnswer(answer);
    return verdict.kind === 'success' ? { kind: 'approved', tokens: verdict.tokens } : { kind: 'transient', reason: verdict.reason };
  }
  const error = readOAuthError(json);
  const said = `HTTP ${status}${error ? ` ${error.code}${error.description ? `: ${error.description}` : ''}` : ''}`;
  switch (error?.code) {
    case 'authorization_pending':
      return { kind: 'pending' };
    case 'slow_down':
      return { kind: 'slow-down' };
    case 'expired_token':
      return { kind: 'expired', reason: `the device code expired before the operator approved it (${said})` };
    case 'access_denied':
      return { kind: 'denied', reason: `the operator denied the device login (${said})` };
  }
  if (TRANSIENT_STATUSES.has(status) || status >= 500 || (error && OAUTH_TRANSIENT_CODES.includes(error.code))) {
    return { kind: 'transient', reason: `token endpoint answered ${said}` };
  }
  // A redirect is not followed (the device code would go with it) and decides nothing: poll again.
  if (status >= 300 && status < 400) return { kind: 'transient', reason: `token endpoint answered ${said} (a redirect, not followed: the device code is not sent elsewhere)` };
  return { kind: 'refused', reason: `token endpoint refused the device code (${said})` };
}

/** A `classify` for `RefreshSpec`: RFC 6749 plus the provider's own permanent codes. */
export const oauthClassifier =
  (permanentCodes: readonly string[] = []): RefreshSpec['classify'] =>
  (answer) =>
    classifyTokenAnswer(answer, { permanentCodes });

/**
 * The error code and description of a refusal: RFC 6749's `{error, error_description}`
 * or OpenAI's `{error: {code, message}}` (both are what Codex reads).
 */
export function readOAuthError(json: unknown): { readonly code: string; readonly description?: string } | undefined {
  if (!isRecord(json)) return undefined;
  let code: unknown;
  let description: unknown;
  if (typeof json.error === 'string') {
    code = json.error;
    description = json.error_description;
  } else if (isRecord(json.error)) {
    code = json.error.code ?? json.error.type;
    description = json.error.message;
  }
  // A code is an identifier; anything else is not quoted.
  if (typeof code !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(code)) return undefined;
  const text = typeof description === 'string' ? cleanDescription(description) : '';
  return text ? { code, description: text } : { code };
}

/** One line, no long opaque runs (a server may echo what it was sent), at most 200 characters. */
function cleanDescription(text: string): string {
  const line = text
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/[A-Za-z0-9._~+/=-]{24,}/g, '[redacted]')
    .replace(/\s+/g, ' ')
    .trim();
  return line.length > MAX_DESCRIPTION_CHARS ? `${line.slice(0, MAX_DESCRIPTION_CHARS - 1)}…` : line;
}

/**
 * `Retry-After` (RFC 9110 §10.2.3) as a delay in ms from `now`: delay-seconds or an
 * HTTP date. Undefined when absent or unreadable; a date in the past is 0.
 */
export function parseRetryAfter(header: string | null | undefined, now: number): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (value === '') return undefined;
  if (/^\d+$/.test(value)) {
    const seconds = Number(value);
    return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
  }
  // Only the forms of an HTTP date; Date.parse alone would accept "1" or "tomorrow-ish" strings.
  if (!/^[A-Za-z]{3},? /.test(value) && !/^[A-Za-z]+, \d/.test(value)) return undefined;
  const at = Date.parse(value);
  if (!Number.isFinite(at)) return undefined;
  return Math.max(0, at - now);
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The `email` and `sub` of an id_token (unverified: the token came from the host's own login). */
export function idTokenIdentity(idToken: string | undefined): { email?: string; subject?: string } | undefined {
  const payload = idToken?.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown; email?: unknown };
    const plain = (v: unknown): string | undefined => (typeof v === 'string' && /^[\x20-\x7E]{1,320}$/.test(v) ? v : undefined);
    const email = plain(claims.email);
    const subject = plain(claims.sub);
    return email === undefined && subject === undefined ? undefined : { ...(email ? { email } : {}), ...(subject ? { subject } : {}) };
  } catch {
    return undefined;
  }
}
