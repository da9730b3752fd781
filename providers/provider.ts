// The one interface behind which all provider knowledge lives. Generic code
// (activities, workflows, slotctl) asks the provider; it never switches on a name.
import type { z } from 'zod';
import type { Interaction } from '../common/slot';

/** The terminal as a person would read it, produced by activities/screen.ts. */
export interface ScreenSnapshot {
  /** Logical lines: rows the terminal soft-wrapped are joined back together; trailing blanks trimmed. */
  readonly lines: readonly string[];
  /** `lines` joined with '\n'. */
  readonly text: string;
  /** URLs announced out of band: OSC 8 hyperlinks and OSC 52 clipboard writes, oldest first. */
  readonly links: readonly string[];
  /** Terminal width: a row filled to it may continue a hard-wrapped URL on the next row. */
  readonly cols: number;
}

/** Where a slot lives on its host. Every path a provider derives stays under `home`. */
export interface SlotPaths {
  readonly slotId: string;
  /** The slot's home directory (0700); the CLI runs with HOME set to it. */
  readonly home: string;
}

/** What the login prompt screen yields: the non-secret things an operator must see. */
export interface ScreenPrompt {
  readonly url: string;
  readonly userCode?: string;
}

/** How a CLI answered once the operator acted. */
export type ScreenVerdict =
  | { readonly kind: 'rejected'; readonly message: string }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'succeeded'; readonly message: string };

export interface LoginCommand {
  readonly command: string;
  readonly args: readonly string[];
  /** Added to a minimal environment (PATH, LANG, TERM, HOME=slot home). */
  readonly env: Readonly<Record<string, string>>;
  /** Directories under the slot home that must exist (0700) before the CLI starts. */
  readonly dirs: readonly string[];
}

export interface LoginSpec {
  readonly interaction: Interaction;
  command(slot: SlotPaths, env: NodeJS.ProcessEnv): LoginCommand;
  /** Finds the prompt on the screen; undefined until it is complete (a URL may still be arriving). */
  readPrompt(screen: ScreenSnapshot): ScreenPrompt | undefined;
  /**
   * Reads the CLI's verdict from the screen text printed after `since` (the
   * number of logical lines present before the operator acted). Undefined while
   * the CLI has said nothing conclusive.
   */
  readVerdict(screen: ScreenSnapshot, since: number): ScreenVerdict | undefined;
  /** Explains an exit before the prompt appeared (offline, unsupported flag …) from the screen. */
  explainEarlyExit(screen: ScreenSnapshot, exitCode: number): string;
  /** The form an operator's code must have for this prompt (paste-code logins), checked before typing. */
  codeFormat?(prompt: ScreenPrompt): { readonly pattern: string; readonly description: string };
  /** The CLI does not recover after a rejected code (Claude hangs): restart it for a new URL. */
  readonly restartAfterRejection: boolean;
  /** One sentence telling the operator what to do with the prompt. */
  instructions(prompt: ScreenPrompt): string;
  readonly timeouts: {
    /** Spawn to prompt on screen. */
    readonly promptMs: number;
    /** How long the operator has to answer (device codes expire sooner than our default). */
    readonly operatorMs: number;
    /** Code typed to a verdict or exit; a CLI silent for longer is treated as hung. */
    readonly verdictMs: number;
  };
}

/** Non-secret facts read from a credential file. */
export interface CredentialFacts {
  /** Epoch ms when the access token expires, when the file says. */
  readonly expiresAt?: number;
  /** Epoch ms of the last refresh, when the file says. */
  readonly lastRefresh?: number;
  /** Human-readable account/plan hints that are not secret (e.g. subscription type). */
  readonly account?: string;
}

export interface CredentialSpec<S extends z.ZodType = z.ZodType> {
  /** Path of the credential file relative to the slot home. */
  readonly file: string;
  readonly schema: S;
  facts(parsed: z.infer<S>): CredentialFacts;
}

/** When to refresh. All durations in ms; a slot may override each. */
export interface RefreshSchedule {
  /** Refresh this long before the access token expires. */
  readonly beforeExpiryMs: number;
  /** Refresh when the last refresh is older than this, whatever the expiry says (Codex's 8 days). */
  readonly maxAgeMs?: number;
  /** Up to this much earlier, at random, so a fleet does not refresh in one burst. */
  readonly jitterMs: number;
}

/** The provider's reading of a token endpoint's answer. Reasons never contain a token. */
export type RefreshVerdict =
  | { readonly kind: 'success'; readonly tokens: TokenAnswer }
  | { readonly kind: 'permanent'; readonly reason: string }
  | { readonly kind: 'transient'; readonly reason: string; readonly retryAfterMs?: number };

/** The standard fields of a successful token answer (RFC 6749 §5.1), as far as present. */
export interface TokenAnswer {
  readonly access_token: string;
  readonly refresh_token?: string;
  readonly id_token?: string;
  readonly expires_in?: number;
  readonly scope?: string;
  readonly [field: string]: unknown;
}

export interface RefreshSpec {
  /** The token endpoint: the provider's default unless an override variable is set in `env`. */
  endpoint(env: NodeJS.ProcessEnv): string;
  /** The request for this credential (the parsed credential file). */
  request(credential: unknown): { readonly body: Record<string, string>; readonly encoding: 'json' | 'form' };
  /** Reads the answer: status, `Retry-After` (ms, already parsed) and the body (JSON when it parsed, else undefined). */
  classify(answer: { readonly status: number; readonly retryAfterMs?: number; readonly json: unknown }): RefreshVerdict;
  /**
   * The new credential file content: `current` with only the fields the answer
   * carries replaced (unrelated keys kept), and the refresh time set to `now`.
   */
  apply(current: unknown, tokens: TokenAnswer, now: number): unknown;
  readonly schedule: RefreshSchedule;
}

/** What agents using a slot need, so runtimes ask the provider instead of special-casing it. */
export interface AgentSpec {
  /**
   * Variables for an env file in the slot (rewritten after every refresh), from the
   * credential (the parsed credential file) and where the slot lives.
   */
  env(credential: unknown, slot: SlotPaths): Record<string, string>;
  /** Name of that env file, relative to the slot home. */
  readonly envFile: string;
}

export interface Provider {
  readonly name: string;
  readonly displayName: string;
  readonly login: LoginSpec;
  readonly credential: CredentialSpec;
  readonly refresh: RefreshSpec;
  readonly agent: AgentSpec;
}
