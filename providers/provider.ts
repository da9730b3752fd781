// The one interface behind which all provider knowledge lives. Generic code
// (activities, workflows, slotctl) asks the provider; it never switches on a name.
import type { z } from 'zod';
import type { Interaction, RefreshSchedule } from '../common/slot';

export type { RefreshSchedule };

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

/** What a provider expects of its login URL: how it begins and what makes it whole (read by providers/screen-url.ts). */
export interface UrlShape {
  /** Tested against each whole candidate URL; anchor it with `^`. */
  readonly start: RegExp;
  /** What this parsed URL still lacks (names of parameters, "path" …); empty when it is whole. */
  missing(url: URL): readonly string[];
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

/** How a provider logs in: its CLI under a PTY, or the OAuth device flow spoken directly. */
export type LoginSpec = PtyLoginSpec | DeviceFlowLoginSpec;

/** A login CLI run under a PTY on the slot's host; the prompt and verdict are read off its screen. */
export interface PtyLoginSpec {
  readonly kind: 'pty';
  readonly interaction: Interaction;
  command(slot: SlotPaths, env: NodeJS.ProcessEnv): LoginCommand;
  /** Finds the prompt on the screen; undefined until it is complete (a URL may still be arriving). */
  readPrompt(screen: ScreenSnapshot): ScreenPrompt | undefined;
  /**
   * When the login URL is whole. A URL seen on the screen at the prompt deadline but
   * never whole fails the login saying so, with the screen for the operator.
   */
  readonly promptUrl?: UrlShape;
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
  /**
   * After a rejected code, the keys that make this CLI ask again, when its screen offers
   * that (setup-token: Enter at `Press Enter to retry.`); it then shows a new prompt,
   * which replaces the old one. Undefined: the CLI takes another code as it is.
   */
  retryKeys?(screen: ScreenSnapshot): string | undefined;
  /**
   * For a CLI that prints its credential instead of writing a file (setup-token): the
   * credential file's content read off the screen once the verdict is `succeeded`, or
   * undefined when it cannot be read. The generic activity writes it (0600) and clears
   * the screen; this CLI is not waited for to exit. Never called for other CLIs.
   */
  credentialFromScreen?(screen: ScreenSnapshot, now: number): unknown;
  /** One sentence telling the operator what to do with the prompt. */
  instructions(prompt: ScreenPrompt): string;
  /**
   * Resident memory of one live login CLI idle at its prompt, whole process tree, in MiB,
   * as bench/login-cli-memory.ts measures the pinned CLI: the per-process cap on live logins
   * counts it. @default 160
   */
  readonly cliMemoryMiB?: number;
  readonly timeouts: {
    /** Spawn to prompt on screen. */
    readonly promptMs: number;
    /** How long the operator has to answer (device codes expire sooner than our default). */
    readonly operatorMs: number;
    /** Code typed to a verdict or exit; a CLI silent for longer is treated as hung. */
    readonly verdictMs: number;
  };
}

/** Where a device login (RFC 8628) asks, for one slot. */
export interface DeviceFlowServer {
  readonly deviceAuthorizationEndpoint: string;
  readonly tokenEndpoint: string;
  /** A public client: the id is sent in the body (RFC 6749 §2.3, no secret). */
  readonly clientId: string;
  /** Space-separated; undefined: the server's default scopes. */
  readonly scope?: string;
}

/** A token endpoint's answer to one poll of a device login (RFC 8628 §3.5). Reasons never hold a token. */
export type DevicePollVerdict =
  | { readonly kind: 'approved'; readonly tokens: TokenAnswer }
  | { readonly kind: 'pending' }
  /** Poll 5 s slower, from now on. */
  | { readonly kind: 'slow-down' }
  | { readonly kind: 'expired'; readonly reason: string }
  | { readonly kind: 'denied'; readonly reason: string }
  /** Network, 5xx, 429, an unreadable answer: poll again later. */
  | { readonly kind: 'transient'; readonly reason: string }
  /** The server refuses the client or the grant: polling again cannot help. */
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * The OAuth device authorization grant (RFC 8628), spoken by the worker itself: no
 * CLI, no PTY. The generic activities make the requests and keep the device code
 * on the slot's host; the provider says where to ask and what to store.
 */
export interface DeviceFlowLoginSpec {
  readonly kind: 'device-flow';
  readonly interaction: Extract<Interaction, 'device-approval'>;
  /** The endpoints and client; may discover them over the network (throws ProviderEndpointError). */
  server(env: NodeJS.ProcessEnv): Promise<DeviceFlowServer>;
  /** Reads one poll's answer. */
  classifyPoll(answer: OAuthAnswer): DevicePollVerdict;
  /**
   * The credential file's content for the tokens that ended the login. Throws
   * (with a message for the operator, never a token) when they cannot keep the slot alive.
   */
  credentialFromTokens(tokens: TokenAnswer, now: number): unknown;
  /** One sentence telling the operator what to do with the prompt. */
  instructions(prompt: ScreenPrompt & { readonly completeUrl?: string; readonly expiresAt: number }): string;
  readonly timeouts: {
    /** The longest an operator is awaited, whatever the server's `expires_in` says. */
    readonly operatorMs: number;
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
  /**
   * Whose credential this is, from the provider's own identity claims (an id_token's `email`
   * and `sub`), for a slot that pins its account (`login.expectedAccount`). Absent when the
   * credential does not say.
   */
  identity?(parsed: z.infer<S>): { readonly email?: string; readonly subject?: string } | undefined;
  facts(parsed: z.infer<S>): CredentialFacts;
  /**
   * A credential an operator can hand over as text (`slotctl provision --adopt`, on
   * stdin, on the slot's host): the file content for it. Throws an Error whose message
   * names the problem and never quotes the text. Undefined: adoption takes the file on disk.
   */
  fromOperatorInput?(text: string, now: number): z.infer<S>;
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

/** An HTTP answer of an OAuth endpoint: status, `Retry-After` (ms, already parsed) and the body (JSON when it parsed, else undefined). */
export interface OAuthAnswer {
  readonly status: number;
  readonly retryAfterMs?: number;
  readonly json: unknown;
}

export interface RefreshSpec {
  /**
   * The token endpoint: the provider's default unless an override variable is set in
   * `env`, or the slot's configured (or discovered) one; discovery throws ProviderEndpointError.
   */
  endpoint(env: NodeJS.ProcessEnv): string | Promise<string>;
  /** The request for this credential (the parsed credential file). */
  request(credential: unknown): {
    readonly body: Record<string, string>;
    readonly encoding: 'json' | 'form';
    /** The identifying headers the pinned CLI sends with it (`user-agent`, `originator`, …), lower-case names. */
    readonly headers?: Readonly<Record<string, string>>;
  };
  /** Reads the answer: status, `Retry-After` (ms, already parsed) and the body (JSON when it parsed, else undefined). */
  classify(answer: OAuthAnswer): RefreshVerdict;
  /**
   * The new credential file content: `current` with only the fields the answer
   * carries replaced (unrelated keys kept), and the refresh time set to `now`.
   */
  apply(current: unknown, tokens: TokenAnswer, now: number): unknown;
  readonly schedule: RefreshSchedule;
  /**
   * Set for a credential that is never refreshed (a long-lived token): no token endpoint
   * is called (`endpoint`, `request`, `classify`, `apply` are unused). The refresh step
   * only checks the file: it wakes at each notice and at expiry, and an expired
   * credential is a permanent failure (the slot needs a login).
   */
  readonly fixedLifetime?: {
    /** Operator notices this long before `expiresAt`, longest first (e.g. 30, 7 and 1 days). */
    readonly noticesBeforeExpiryMs: readonly number[];
  };
}

/** What agents using a slot need, so runtimes ask the provider instead of special-casing it. */
export interface AgentSpec {
  /**
   * Variables for an env file in the slot (rewritten after every refresh), from the
   * credential (the parsed credential file) and where the slot lives. Real values
   * (an access token at most, never a refresh token): the host's own copy for runtimes on it.
   */
  env(credential: unknown, slot: SlotPaths, place?: AgentPlace): Record<string, string>;
  /** Name of that env file, relative to the slot home. */
  readonly envFile: string;
  /**
   * Files under the agent directory, rewritten atomically after every refresh: what a
   * running agent process re-reads to keep authenticating. Never the refresh token;
   * `place.secret` (the slot's agent secret) stands in where the CLI wants one.
   */
  files?(credential: unknown, place: AgentPlace & { readonly secret: string }): readonly AgentFile[];
  /** The tokens an agent may hold, for the worker's token service; undefined: the service does not serve this provider. */
  tokens?(credential: unknown): AgentTokens;
  /** The agent provision plan: nothing in it is secret (paths, names, placeholders). */
  plan?(place: AgentPlace): AgentPlanBody;
}

/** Where an agent's files are and how it reaches the worker's token service. Not secret. */
export interface AgentPlace {
  /** The agent directory as the agent sees it (a mount, or the host path itself). */
  readonly agentDir: string;
  /** The token service's base URL for this slot (`http://127.0.0.1:7311/slots/<id>`), when the worker runs one. */
  readonly tokenServiceUrl?: string;
}

/** One file of the agent directory; `path` is relative to it. */
export interface AgentFile {
  readonly path: string;
  readonly text: string;
}

/** What the token service may hand an agent of this slot. */
export interface AgentTokens {
  readonly accessToken: string;
  readonly idToken?: string;
  /** Epoch ms. */
  readonly expiresAt?: number;
}

/** A route an agent's traffic takes, and which credential it carries. */
export interface AgentEgressRoute {
  readonly host: string;
  /** `bearer`: `Authorization: Bearer <token>`; `oauth-refresh`: an OAuth refresh request carrying the agent secret as its refresh token. */
  readonly authScheme: 'bearer' | 'oauth-refresh';
  /** Where the credential on the route comes from: the agent's own files/env, or the agent secret (token service). */
  readonly tokenSource: 'agent-files' | 'agent-secret';
  /** The agent speaks TLS end to end; an egress proxy must pass it through, not terminate it. */
  readonly tlsPassThrough: boolean;
  readonly purpose: string;
}

/** The provider's part of an agent provision plan. */
export interface AgentPlanBody {
  /** One sentence: how an agent keeps authenticating after the slot refreshes. */
  readonly mechanism: string;
  /** Non-secret values; a name in `placeholders` holds a stand-in the agent replaces by itself. */
  readonly env: Readonly<Record<string, string>>;
  readonly placeholders: readonly string[];
  /** Names a runtime must not log or show (they hold tokens in the host's env file). */
  readonly hiddenEnv: readonly string[];
  readonly egress: readonly AgentEgressRoute[];
  /** The token service is needed (the agent cannot keep working past a refresh without it). */
  readonly needsTokenService: boolean;
}

/**
 * The login CLI a host runs, and the version this project was checked against (its
 * screens and requests; providers/cli-versions.json, which test/real-clis.sh installs).
 * A worker that serves slots runs `<command> <versionArgs>` at start and says when the
 * version differs (workers/cli-versions.ts).
 */
export interface LoginCliSpec {
  /** The binary, as the login runs it (`CLAUDE_BIN`, else `claude`). */
  command(env: NodeJS.ProcessEnv): string;
  readonly versionArgs: readonly string[];
  /** Variables for that run: the CLI's config and updater kept out of the way (`scratch` is an empty directory). */
  versionEnv?(scratch: string): Record<string, string>;
  /** The version in what `--version` printed, or undefined when it is not there. */
  parseVersion(output: string): string | undefined;
  /** The version the project was checked against. */
  readonly checked: string;
  /** How to install that version (README, warnings). */
  readonly install: string;
}

/** Token revocation (RFC 7009), used when a slot is retired. */
export interface RevokeSpec {
  /** The revocation endpoint, or undefined when the server offers none; may discover it (throws ProviderEndpointError). */
  endpoint(env: NodeJS.ProcessEnv): Promise<string | undefined>;
  /** How the bodies are sent, as the provider's own CLI sends them. @default "form" (RFC 7009) */
  readonly encoding?: 'form' | 'json';
  /** The identifying headers the pinned CLI sends with it (`user-agent`, `accept`, …), lower-case names. @default none */
  readonly headers?: Readonly<Record<string, string>>;
  /** The requests, one per token, refresh token first (revoking it ends the grant on most servers). */
  requests(credential: unknown): ReadonlyArray<{ readonly token: 'refresh_token' | 'access_token'; readonly body: Record<string, string> }>;
}

/** One live probe request: a minimal real request that carries the slot's token. */
export interface ProbeRequest {
  /** Where it goes; checked against the host's rules (https, or http on allow-listed loopback). */
  readonly url: string;
  readonly method: 'GET' | 'POST';
  /** Headers as the provider's own CLI sends them; they hold the token (never logged or returned). */
  readonly headers: Readonly<Record<string, string>>;
  /** A JSON body (POST). */
  readonly body?: unknown;
}

/**
 * How to prove a credential live (DESIGN.md "Providers"): the provider's lightest
 * authenticated request. The generic activity sends it and reads the status only
 * (2xx ok, 401/403 unauthorized, 429 rate-limited, 5xx transient); the body is never read.
 */
export interface ProbeSpec {
  /** The request for this credential (the parsed credential file), or undefined when this slot has nothing to probe (a server without a userinfo endpoint). May discover (throws ProviderEndpointError). */
  request(credential: unknown, env: NodeJS.ProcessEnv): ProbeRequest | undefined | Promise<ProbeRequest | undefined>;
  /** For a 429: when the limit resets (epoch ms), from the provider's own headers; Retry-After is read generically. */
  resetAt?(headers: Readonly<Record<string, string>>): number | undefined;
  /** One sentence for the README and status: what is sent. */
  readonly describe: string;
  /** The worker variables that move its endpoint, named when one holds no usable URL. */
  readonly variables?: readonly string[];
}

export interface Provider {
  readonly name: string;
  readonly displayName: string;
  readonly login: LoginSpec;
  readonly credential: CredentialSpec;
  readonly refresh: RefreshSpec;
  readonly agent: AgentSpec;
  /** Present when the provider's server can revoke tokens. */
  readonly revoke?: RevokeSpec;
  /** Present when the provider can prove a credential live (activities/probe.ts). */
  readonly probe?: ProbeSpec;
  /** Present when logins run a CLI whose version matters (its screens, its requests). */
  readonly cli?: LoginCliSpec;
}

/**
 * A provider configured per slot (issuer, client, scopes, token file …). The
 * configuration is not secret: it travels in the slot workflow's input, and the
 * registry builds the slot's Provider from it wherever one is needed.
 */
export interface ProviderFactory<C extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly displayName: string;
  /** The configuration's schema; its messages name the field. */
  readonly config: C;
  forSlot(config: z.infer<C>): Provider;
  /**
   * The servers a (normalised) configuration names, by field: a host uses the
   * configuration only when each is on its own list (SLOTS_OIDC_SERVERS), since workflow
   * input is anyone's to write. Absent: the configuration names no server.
   */
  servers?(config: z.infer<C>): readonly { readonly field: string; readonly url: string }[];
}
