// The slot workflow's input: what `slotctl provision`, the client API and any
// service in another language send to start `slot:<id>`. Node-free; not secret.
import type { SlotStatus } from './messages';
import type { ProbeOptions } from './probe';
import type { RefreshSchedule } from './slot';
import type { MoveInput } from './backup';
import type { IncidentState } from './incidents';

export interface LoginOptions {
  /** Codes an operator may get wrong before the login gives up. @default 3 */
  readonly maxBadCodes?: number;
  /** CLI restarts (hung CLI, dead worker, Claude's one-code-per-URL) before the login gives up. @default 3 */
  readonly maxRestarts?: number;
  /** Overrides the provider's operator deadline (it may only shorten it). */
  readonly operatorTimeoutMs?: number;
  /** Heartbeat timeout of the PTY watcher: how soon a dead worker is noticed. @default 15 s */
  readonly heartbeatTimeoutMs?: number;
  /**
   * The account the slot must log in to (an email or a subject, as the provider's id_token
   * says): a login to another account is refused and its credential removed. For providers
   * whose credential names its account (codex, oidc-device). @default any account
   */
  readonly expectedAccount?: string;
}

export interface RefreshBackoff {
  /** First retry delay of a failing refresh. @default 5000 */
  readonly initialMs?: number;
  /** Longest delay between retries. @default 300000 (5 minutes) */
  readonly maxMs?: number;
}

export interface SlotInput {
  readonly slotId: string;
  readonly provider: string;
  /**
   * The provider's configuration for this slot (issuer, client, scopes … for
   * `oidc-device`); not secret. Checked by SlotClient.provision and by every
   * activity that builds the slot's provider from it.
   */
  readonly providerConfig?: unknown;
  /** The host whose workers hold the slot's files and run its CLIs. */
  readonly host: string;
  readonly login?: LoginOptions;
  /** Overrides of the provider's refresh schedule. */
  readonly refresh?: Partial<RefreshSchedule> & { readonly backoff?: RefreshBackoff };
  /**
   * After a permanent refresh failure: start a new login at once (`login`,
   * the operator gets a URL right away) or wait for `relogin` (`wait`). @default "login"
   */
  readonly onPermanentFailure?: 'login' | 'wait';
  /** While refreshes fail, show `degraded` once the token expires within this. @default 30 minutes */
  readonly degradedWithinMs?: number;
  /**
   * How long status, revocation and file removal wait for the slot's host before the
   * slot records that the host did not answer (and goes on). @default 600000 (10 minutes)
   */
  readonly hostWaitMs?: number;
  /** Live probes of the credential: how often (common/probe.ts). @default every 6 hours, up to 30 minutes early */
  readonly probe?: ProbeOptions;
  /** Continue-as-new once the history has this many events. @default 2000 */
  readonly maxHistoryEvents?: number;
  /**
   * Start from the credential already in the slot (a login made before, or by
   * hand) instead of a new login; a missing or invalid one needs a relogin.
   */
  readonly adoptExisting?: boolean;
  /** State carried over continue-as-new. */
  readonly carried?: CarriedState;
}

/** Requests taken and not yet acted on. */
export interface Pending {
  login: boolean;
  refresh: boolean;
  retire: { readonly removeFiles: boolean } | undefined;
  /** A move to another host, accepted and not yet done. */
  move?: MoveInput;
  /** A live probe was asked for (probeNow, a pool's auth-failure report). */
  probe?: boolean;
}

/** What survives continue-as-new: what `status` shows (nothing secret), the requests not yet done, the run count. */
export type CarriedState = Pick<
  SlotStatus,
  | 'phase'
  | 'expiresAt'
  | 'lastRefresh'
  | 'nextRefreshAt'
  | 'account'
  | 'lastOutcome'
  | 'lastError'
  | 'logins'
  | 'refreshes'
  | 'consecutiveFailures'
  | 'backup'
  | 'move'
  | 'lastProbe'
  | 'nextProbeAt'
> & {
  readonly runs: number;
  readonly pending?: Pending;
  /** The provider incident the slot is part of (common/incidents.ts). */
  readonly incident?: IncidentState;
};
