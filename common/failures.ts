// The project's one failure vocabulary: every ApplicationFailure type and every
// error class, each with when it is thrown and what the operator should do.
// Node-free (workflows read it), and the only place a failure type is spelled.

/** Failure types thrown by host activities and by the slot workflow's login step. */
export const FailureType = {
  // ── logins (PTY and device flow) ──
  /** The provider's CLI is not installed on the slot's host. Operator: install it or set `<PROVIDER>_BIN`, then relogin. */
  loginCliMissing: 'LoginCliMissing',
  /** The CLI exited before it showed a login URL. Operator: read the quoted output, fix the host, relogin. */
  loginCliExited: 'LoginCliExited',
  /** The CLI showed no login URL in time. Operator: relogin; if it repeats, check the host's network. */
  loginPromptTimeout: 'LoginPromptTimeout',
  /**
   * The CLI showed a login URL that could not be read whole before the prompt deadline
   * (drawn in a way the reader cannot join, or cut): it was not published. The failure
   * carries the screen. Operator: read the URL off the attached screen only if you can
   * see it whole; relogin; report the layout.
   */
  loginUrlUnreadable: 'LoginUrlUnreadable',
  /**
   * The PTY session (or the device login's state) is not on the worker asked: the
   * process holding it died or the login was replaced. The slot starts a fresh login.
   */
  loginSessionLost: 'LoginSessionLost',
  /** The provider configuration, its discovery document or the OAuth client is wrong. Operator: fix the configuration. */
  loginMisconfigured: 'LoginMisconfigured',
  /** The device authorization endpoint cannot be reached or answers 5xx/429. Operator: relogin later. */
  loginServerUnavailable: 'LoginServerUnavailable',
  /** No operator answered before the deadline. Operator: relogin for a new URL. */
  loginTimedOut: 'LoginTimedOut',
  /** An operator cancelled the login (`cancelLogin`). Operator: relogin when ready. */
  loginCancelled: 'LoginCancelled',
  /** Too many codes were rejected. Operator: relogin, and copy the whole code. */
  loginTooManyBadCodes: 'LoginTooManyBadCodes',
  /** The CLI said the login failed. Operator: read its words, relogin. */
  loginCliFailed: 'LoginCliFailed',
  /** The CLI had to be restarted too often (hung, lost). Operator: check the host, relogin. */
  loginTooManyRestarts: 'LoginTooManyRestarts',
  /**
   * The slot's host holds as many live login CLIs as this worker process's memory budget
   * allows (LOGIN_CLI_MEMORY_BUDGET_MB; each CLI counts what bench/login-cli-memory.ts
   * measured): nothing was started. The slot tries again by itself a minute later, as long
   * as the operator's deadline allows. Operator: nothing, or add a worker process or memory.
   */
  loginHostBusy: 'LoginHostBusy',
  /**
   * The login succeeded for another account than the slot pins (`login.expectedAccount`):
   * its credential was removed, nothing refreshes it. Operator: relogin and sign in with the
   * expected account; someone else may have approved the code first.
   */
  loginWrongAccount: 'LoginWrongAccount',
  /** Device flow: the device code expired at the server before approval. Operator: relogin. */
  loginExpired: 'LoginExpired',
  /** Device flow: the operator denied the device. Operator: relogin if that was a mistake. */
  loginDenied: 'LoginDenied',
  /** Device flow: the server refused the client or the grant while polling. Operator: fix the client, relogin. */
  loginRefused: 'LoginRefused',

  // ── credentials ──
  /** The slot's credential file is missing, torn, not private or not the provider's shape. Operator: relogin. */
  credentialInvalid: 'CredentialInvalid',

  // ── refresh ──
  /** The token endpoint refused the refresh token (401, `invalid_grant`, revoked). Operator: relogin. */
  refreshPermanent: 'RefreshPermanent',
  /** Network, timeout, 5xx, 429, an unusable answer. Retried by the retry policy (`nextRetryDelay` from Retry-After). */
  refreshTransient: 'RefreshTransient',
  /** Bad input or endpoint configuration: neither a retry nor a login helps. Operator: fix the configuration. */
  refreshMisconfigured: 'RefreshMisconfigured',
  /**
   * The provider answered 429 (or asked for time with Retry-After) to a request from this
   * host, so the host holds every token request of that provider until the time asked;
   * this request was not sent. Retried by the retry policy when the pause ends. Operator:
   * nothing, unless it lasts (see the provider's 429s; the pause shows in the metrics).
   */
  providerPaused: 'ProviderPaused',
  /** The provider refuses refresh requests for rate (HTTP 429): retried with a growing delay, the host pauses the provider. */
  providerRefusing: 'ProviderRefusing',

  // ── status file ──
  /** A status to be written held something that looks like a token; nothing is written. A bug to report. */
  slotStatusRefused: 'SlotStatusRefused',

  // ── the slot host's own checks ──
  /**
   * A host refused a request for a slot: it did not come from the workflow `slot:<id>`
   * (login sessions included), the slot was retired on that host (a tombstone), its
   * configuration names an OAuth server not on the host's SLOTS_OIDC_SERVERS, or its
   * provider or configuration differs from what the host recorded when the slot was
   * created there (`.slot-record.json`). Nothing was read, sent or written. Operator: use
   * the old configuration or a new slot id, or add the server to the host's list; a
   * retired slot comes back only by the host's operator (`slotctl host unretire|reuse`);
   * a request from another workflow is someone else's doing: find out who started it.
   */
  slotRequestRefused: 'SlotRequestRefused',

  // ── credential backup (SLOT_BACKUP_URL) ──
  /**
   * A backup was not restored: none is stored, the host has no backup store or not the
   * key it was sealed with, it does not open, or it is older than the credential on the
   * host (a backup older than a rotation is never restored over a newer file). Nothing
   * was written. Operator: read the reason; relogin if no usable backup exists.
   */
  credentialRestoreRefused: 'CredentialRestoreRefused',
  /** A `move` was refused by its validator (a bad host name, the slot's own host, a login or another move under way). Nothing changed. */
  moveRefused: 'MoveRefused',

  // ── operator notices ──
  /** The operator webhook could not be reached or refused the notice (4xx: not retried). The notice is in the worker's log anyway. Operator: fix NOTIFY_WEBHOOK_URL. */
  notifyFailed: 'NotifyFailed',
  /**
   * A notice was refused: it did not come from the workflow it speaks for (`slot:<id>`,
   * `pool:<name>`), or its fields are malformed. Nothing was posted. Someone else's
   * workflow, or a bug: find out who started it.
   */
  noticeRefused: 'NoticeRefused',

  // ── operator messages ──
  /** An update's input was refused by its validator (a bad code, no login waiting). Operator: read the reason. */
  codeRejected: 'CodeRejected',

  // ── pools ──
  /** A pool had no active slot that is not cooling down (or every one holds its most leases). Runtime: wait and lease again; operator: see `slotctl pool status`. */
  poolExhausted: 'PoolExhausted',
  /** A pool refused a message: bad input, an unknown or expired lease, a slot not in the pool. Nothing changed. */
  poolRequestRefused: 'PoolRequestRefused',

  // ── live probes ──
  /** A probe's input was refused by the host (not the slot's own workflow, bad input): nothing was sent. A bug or someone else's workflow. */
  probeMisconfigured: 'ProbeMisconfigured',
  /** `probeNow` was refused: the slot has no credential to probe yet (a login is under way), is retiring, or predates probes. Operator: read the reason. */
  probeRefused: 'ProbeRefused',
} as const;

export type FailureTypeName = (typeof FailureType)[keyof typeof FailureType];

/** Refresh failures that no retry can fix: the slot needs a person. */
export const PERMANENT_REFRESH_FAILURES: readonly string[] = [FailureType.refreshPermanent, FailureType.credentialInvalid];

/** Refresh failures the retry policy must not retry. */
export const NON_RETRYABLE_REFRESH_FAILURES: readonly string[] = [...PERMANENT_REFRESH_FAILURES, FailureType.refreshMisconfigured, FailureType.slotStatusRefused, FailureType.slotRequestRefused];

/** What the operator should do after a failed login of this type: a new URL does not fix a configuration. */
export function nextStepAfterLogin(type: string | undefined, slotId: string): string {
  switch (type) {
    case FailureType.loginCancelled:
      return `Start a new one with: slotctl relogin ${slotId}`;
    case FailureType.loginCliMissing:
      return `Install the CLI on the slot's host (or set its *_BIN variable), then: slotctl relogin ${slotId}`;
    case FailureType.loginMisconfigured:
      return "Fix the provider configuration (retire the slot and provision it again with corrected settings, under a new id or after the host's operator frees this one: slotctl host reuse), then log in again.";
    case FailureType.slotRequestRefused:
      return "A new login URL does not help: the slot's host refused the request (see why above); its operator decides.";
    default:
      return `Run \`slotctl relogin ${slotId}\` for a new login URL.`;
  }
}

interface FailureLike {
  readonly message?: unknown;
  readonly cause?: unknown;
  readonly type?: unknown;
  readonly nextRetryDelay?: unknown;
}

/** Every error in a failure chain, outermost first (`WorkflowFailedError` → `ActivityFailure` → `ApplicationFailure`). */
export function failureChain(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let current: unknown = err; current instanceof Error && chain.length < 32; current = (current as FailureLike).cause) chain.push(current);
  return chain;
}

/** The type of the deepest typed failure in a chain: where the reason was known. */
export function innermostFailureType(err: unknown): string | undefined {
  let type: string | undefined;
  for (const e of failureChain(err)) if (typeof (e as FailureLike).type === 'string' && (e as FailureLike).type) type = (e as FailureLike).type as string;
  return type;
}

/**
 * A failure's innermost message, for operators: the reason, not the wrappers
 * ("Activity task failed", "Child workflow execution failed").
 */
export function describeFailure(err: unknown): string {
  const chain = failureChain(err);
  const last = chain[chain.length - 1];
  return last ? last.message : String(err);
}

/** Milliseconds of a failure's `nextRetryDelay` (the token endpoint's Retry-After), or undefined. */
export function retryAfterMs(err: unknown): number | undefined {
  for (const e of failureChain(err)) {
    const delay = (e as FailureLike).nextRetryDelay;
    if (delay === undefined || delay === null) continue;
    if (typeof delay === 'number') return delay;
    const seconds = /^(\d+(?:\.\d+)?)s$/.exec(String(delay));
    if (seconds) return Number(seconds[1]) * 1000;
  }
  return undefined;
}

// ── error classes (thrown in Node code, named here so every failure has one home) ──

/** A provider name no registry entry has. Thrown by `getProvider`; the operator picks a listed one. */
export class UnknownProviderError extends Error {
  override readonly name = 'UnknownProviderError';
  constructor(
    readonly provider: string,
    readonly known: readonly string[],
  ) {
    super(`unknown provider "${provider}"; known providers: ${known.join(', ')}`);
  }
}

/** A slot's provider configuration is missing or wrong; the message names each bad field. */
export class ProviderConfigError extends Error {
  override readonly name = 'ProviderConfigError';
  constructor(
    readonly provider: string,
    /** One line per problem, `field: what is wrong`. */
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration for provider ${provider}: ${problems.join('; ')}`);
  }
}

/**
 * The operator's outbound proxy (HTTPS_PROXY, HTTP_PROXY) did not open a tunnel: it is down,
 * refused CONNECT, or wants credentials (407). Nothing reached the target, so no token was
 * spent; callers treat it as transient (a refresh is retried, a probe is `transient`).
 * The message names the proxy by scheme, host and port and the variable that set it, never
 * the credentials in its URL. Operator: fix the proxy or the variable.
 */
export class OutboundProxyError extends Error {
  override readonly name = 'OutboundProxyError';
  constructor(
    message: string,
    /** `http://proxy.example:3128`: no credentials. */
    readonly proxy: string,
    /** The variable the proxy came from (`HTTPS_PROXY`, `https_proxy`, …). */
    readonly variable: string,
    /** The proxy's answer to CONNECT, when it answered. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A provider cannot tell where its server's endpoint is: the issuer is unreachable
 * (`retryable`), or its discovery document is missing or wrong (not retryable: an
 * operator must fix the configuration). Messages name URLs, never a token.
 */
export class ProviderEndpointError extends Error {
  override readonly name = 'ProviderEndpointError';
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type CredentialStoreErrorCode =
  | 'invalid-slot-id'
  | 'unsafe-path'
  | 'symlink'
  | 'not-a-directory'
  | 'not-a-file'
  | 'missing'
  | 'too-large'
  | 'unsafe-mode'
  | 'malformed-json'
  | 'invalid-update'
  | 'read-failed'
  | 'write-failed'
  | 'dir-sync-failed'
  /** The slot's refresh lock was removed or taken over while held: the work stopped before its next write. */
  | 'lock-lost'
  /** A refresh's spool reservation is held by another attempt (a token request may be in flight). */
  | 'reserved';

/**
 * Thrown when a slot path is refused or a credential file cannot be read or written.
 * The message names the file relative to the slot home and never quotes its
 * contents (they may hold tokens); `cause` is the underlying fs error, if any.
 */
export class CredentialStoreError extends Error {
  override readonly name = 'CredentialStoreError';
  constructor(
    readonly code: CredentialStoreErrorCode,
    message: string,
    /** The path the error is about, relative to the slot home when there is one. */
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** An agent env file cannot be written: a variable name or value the file format cannot hold. */
export class EnvFileError extends Error {
  override readonly name = 'EnvFileError';
}

/** A token answer that cannot be persisted; thrown inside the read-modify-write so nothing is written (refresh turns it into RefreshTransient). */
export class UnusableTokenAnswerError extends Error {
  override readonly name = 'UnusableTokenAnswerError';
}

// ── operator-side errors (slotctl, the client API, configuration, set-up) ──

/** Input that is wrong before any server is asked (exit code 2 in slotctl). */
export class SlotInputError extends Error {
  override readonly name = 'SlotInputError';
}

/** The slot does not exist (or never did). Operator: provision it. */
export class SlotNotFoundError extends Error {
  override readonly name = 'SlotNotFoundError';
  constructor(readonly slotId: string) {
    super(`slot ${slotId} does not exist; create it with: slotctl provision ${slotId} --provider <name>`);
  }
}

/** Provisioning a slot whose workflow is already running. Operator: look at it, or relogin. */
export class SlotExistsError extends Error {
  override readonly name = 'SlotExistsError';
  constructor(readonly slotId: string) {
    super(`slot ${slotId} already exists; see it with: slotctl status ${slotId} (or start a new login: slotctl relogin ${slotId})`);
  }
}

/** The slot refused the code (wrong phase, wrong form). The code is never repeated. */
export class CodeRejectedError extends Error {
  override readonly name = 'CodeRejectedError';
}

/** The slot refused `probeNow` (no credential yet, retiring, a run without probes). The message says why. */
export class ProbeRefusedError extends Error {
  override readonly name = 'ProbeRefusedError';
}

/** The process environment is wrong; the message names every bad variable. Thrown once at start-up. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * The TLS handshake with the Temporal frontend failed (thrown by SlotClient.connect and the
 * worker's start-up). The message says which side refused what and which TEMPORAL_TLS_* variable
 * to fix; it never holds a key or the API key.
 */
export class TemporalTransportError extends Error {
  override readonly name = 'TemporalTransportError';
  constructor(
    readonly address: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`TLS to Temporal at ${address} failed: ${reason}`, options);
  }
}

/** The payload encryption keys are missing or malformed. Operator: fix SLOTS_ENCRYPTION_KEYS(_FILE). */
export class EncryptionConfigError extends Error {
  override readonly name = 'EncryptionConfigError';
}

/** A payload was sealed with a key this process does not have, or was tampered with. Operator: add the key. */
export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';
  constructor(
    message: string,
    readonly keyId: string,
  ) {
    super(message);
  }
}

/**
 * A payload is encrypted and this process has neither the keys nor a codec server to open it
 * (thrown by slotctl's data converter instead of the SDK's "Unknown encoding"). Operator: set
 * SLOTS_ENCRYPTION_KEYS (or _FILE), or SLOTS_CODEC_URL and CODEC_SERVER_TOKEN.
 */
export class PayloadKeyMissingError extends Error {
  override readonly name = 'PayloadKeyMissingError';
}

/**
 * The codec server named by SLOTS_CODEC_URL cannot be reached, refused the request (token,
 * `/encode` disabled) or answered something that is not payloads. The message names the
 * variable to fix and never holds the token.
 */
export class CodecServerError extends Error {
  override readonly name = 'CodecServerError';
  constructor(
    message: string,
    readonly url: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * `npm start` restarted a process it supervises (the Temporal dev server, the codec server) and
 * it did not come back within its attempts; `npm start` then exits non-zero with this message,
 * which quotes the process's last words. Operator: read them (a full disk, a port taken, a
 * corrupt state file), fix it, run `npm start` again.
 */
export class SupervisorGaveUpError extends Error {
  override readonly name = 'SupervisorGaveUpError';
  constructor(
    readonly process: string,
    message: string,
  ) {
    super(message);
  }
}

/** The Temporal binaries cannot be found or built (no Go, Java or Maven). The message says what to install. */
export class TemporalSetupError extends Error {
  override readonly name = 'TemporalSetupError';
}

/** The pool does not exist. Operator: create it with `slotctl pool create`. */
export class PoolNotFoundError extends Error {
  override readonly name = 'PoolNotFoundError';
  constructor(readonly pool: string) {
    super(`pool ${pool} does not exist; create it with: slotctl pool create ${pool} --provider <name>`);
  }
}

/** A pool refused a request (exhausted, unknown lease, bad input); the message is the pool's. */
export class PoolRequestError extends Error {
  override readonly name = 'PoolRequestError';
  constructor(
    message: string,
    /** `PoolExhausted` or `PoolRequestRefused`. */
    readonly type: string | undefined,
  ) {
    super(message);
  }
}

/**
 * The credential backup store (SLOT_BACKUP_URL) cannot be reached or refused a query. A
 * refresh or login is never failed by it: the slot's status says the backup is failing and
 * the next cycle tries again. The message names the store (never its password) and no token.
 */
export class BackupStoreError extends Error {
  override readonly name = 'BackupStoreError';
  constructor(
    message: string,
    readonly store: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `slotctl move` was refused by the slot (no backup store, no usable backup, a login under way …) or failed; the slot stays where it was. */
export class MoveRefusedError extends Error {
  override readonly name = 'MoveRefusedError';
}
