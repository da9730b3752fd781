// Login activities: `startLogin` (host queue) starts the provider's CLI under a PTY;
// watch, type the code, close (this process's session queue) reach that PTY. They
// return only what an operator may see (URLs, user codes, the CLI's words), never a credential.
import { Context, ApplicationFailure } from '@temporalio/activity';
import { access, constants, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { FailureType } from '../common/failures';
import type { LoginPrompt } from '../common/slot';
import { getProvider } from '../providers';
import type { Provider, PtyLoginSpec, ScreenPrompt, ScreenSnapshot, ScreenVerdict } from '../providers/provider';
import { ensureSlotDir, ensureSlotHome, resolveInSlot, writeSecretFileAtomic } from './credential-store';
import { startDeviceLogin, type DeviceLoginDeps, type DeviceLoginStarted } from './device-login';
import { heartbeatEvery, throwIfCancelled, withHeartbeat } from './heartbeat';
import { assertActsForSlot } from './slot-record';
import { openSlot } from './open-slot';
import { codeProblem } from '../common/messages';
import { LoginSession, type LoginSessions, type SessionExit } from './login-session';
import { loginEnvironment } from './login-environment';
import { DEFAULT_CLI_MEMORY_MIB } from './login-capacity';
import { sendTurn } from './provider-pause';
import type { SendSpacing } from '../common/pacing';
import { lastWords, screenForOperator } from '../providers/screen-text';
import { readUrl } from '../providers/screen-url';

/** How long the code's echo is awaited before Enter is typed (a CLI that echoes nothing gets Enter after this). */
const CODE_ECHO_WAIT_MS = 1000;

export interface LoginActivityDeps extends Pick<DeviceLoginDeps, 'minPollIntervalMs'> {
  readonly slotsDir: string;
  readonly sessions: LoginSessions;
  /** The worker's environment: `<PROVIDER>_BIN` overrides and the variables passed through to CLIs. */
  readonly env: NodeJS.ProcessEnv;
  /** Names (or `PREFIX_*` patterns) of worker variables the CLIs also see. */
  readonly envPassthrough: readonly string[];
  /** How often long-running activities heartbeat. @default 2000 */
  readonly heartbeatMs?: number;
  /** The task queue only this process polls: where a PTY session it holds is reached. */
  readonly sessionQueue: string;
  /**
   * A session that no `watchLogin` or `submitLoginCode` reached within this time is
   * closed: its `startLogin` result was lost and a retry started another CLI. @default 120000
   */
  readonly unclaimedSessionMs?: number;
  /** Spaces this process's login starts and token requests of each provider by its pace (one per process). */
  readonly spacing?: SendSpacing;
}

/** What a session activity is asked about: the login, and (from slot workflows since the session check) its slot. */
export interface SessionRequest {
  readonly loginId: string;
  /** Checked against the session's slot; absent from runs scheduled before the check. */
  readonly slotId?: string;
}

export interface StartLoginInput {
  readonly slotId: string;
  readonly provider: string;
  /** The slot's provider configuration (providers configured per slot). */
  readonly providerConfig?: unknown;
  readonly loginId: string;
}

/** A login started: a CLI under a PTY, or a device flow awaited by `awaitDeviceApproval` (see device-login.ts). */
export type StartLoginResult = PtyLoginStarted | DeviceLoginStarted;

export interface PtyLoginStarted {
  readonly kind: 'pty';
  /** The queue of the worker process holding the PTY: `watchLogin`, `submitLoginCode` and `closeLogin` go there. */
  readonly sessionQueue: string;
  readonly prompt: LoginPrompt;
  /** Epoch ms at which the CLI was started: a credential must be newer to count. */
  readonly startedAt: number;
  /** mtime of the credential file before the login, if it existed. */
  readonly previousCredentialMtime?: number;
  readonly restartAfterRejection: boolean;
  readonly verdictMs: number;
}

/** How the CLI ended, or answered a code. `message` quotes the CLI, which never prints tokens at these points. */
export type LoginOutcome =
  | {
      readonly kind: ScreenVerdict['kind'];
      readonly message: string;
      readonly exitCode?: number;
      /** After a rejection, the same CLI asks again with this new prompt (new URL and state): it replaces the old one. */
      readonly prompt?: LoginPrompt;
    }
  | { readonly kind: 'exited'; readonly message: string; readonly exitCode: number }
  | { readonly kind: 'hung'; readonly message: string };

/** The provider of a PTY login; sessions only ever run for those. */
function ptyLogin(provider: Provider): PtyLoginSpec {
  if (provider.login.kind !== 'pty') throw new Error(`${provider.displayName} does not log in with a CLI`);
  return provider.login;
}

/** What the operator is shown for a prompt read off the screen. */
function promptOf(login: PtyLoginSpec, found: ScreenPrompt, expiresAt: number): LoginPrompt {
  return {
    url: found.url,
    ...(found.userCode ? { userCode: found.userCode } : {}),
    interaction: login.interaction,
    expiresAt,
    instructions: login.instructions(found),
    ...(login.codeFormat ? { codeFormat: login.codeFormat(found) } : {}),
  };
}

/**
 * At the prompt deadline: a login URL on the screen that never became whole. It is
 * not published (an operator would open a link without its state); the screen goes
 * with the failure so that a person can see what the CLI drew.
 */
function unreadableUrl(provider: Provider, login: PtyLoginSpec, screen: ScreenSnapshot): ApplicationFailure | undefined {
  if (!login.promptUrl) return undefined;
  const read = readUrl(screen, login.promptUrl, { final: true });
  if (read.kind !== 'incomplete') return undefined;
  const shown = screenForOperator(screen);
  return ApplicationFailure.create({
    message:
      `${provider.displayName} showed a login URL that could not be read whole within ${login.timeouts.promptMs / 1000} s ` +
      `(missing: ${read.missing.join(', ')}), so none was published. The screen as drawn:\n${shown}`,
    type: FailureType.loginUrlUnreadable,
    nonRetryable: true,
    details: [{ screen: shown, missing: read.missing }],
  });
}

/** node-pty reports a missing program only as output of the dead child; look first. */
async function findExecutable(command: string, pathEnv: string): Promise<string | undefined> {
  const candidates = command.includes('/') ? [command] : pathEnv.split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const DEFAULT_HEARTBEAT_MS = 2000;
const DEFAULT_UNCLAIMED_SESSION_MS = 120_000;

/**
 * `startLogin`, for the host queue: any process of the host may start a login. Whole on purpose:
 * one activity whose steps (open the slot, prepare the home, start the CLI, wait for its prompt)
 * share the session being built; the screen reading it needs is in module functions.
 */
export function createLoginActivities(deps: LoginActivityDeps) {
  const heartbeatMs = deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const unclaimedSessionMs = deps.unclaimedSessionMs ?? DEFAULT_UNCLAIMED_SESSION_MS;

  async function startLogin(input: StartLoginInput): Promise<StartLoginResult> {
    const opening = await openSlot(deps, input);
    if (!opening.ok) throw ApplicationFailure.nonRetryable(opening.problem, FailureType.loginMisconfigured);
    const { provider } = opening.slot;
    // The provider's declared kind of login picks the path; the workflow follows the result's kind.
    // (Discovery and the device request may take longer than the heartbeat timeout.)
    if (provider.login.kind === 'device-flow') {
      // The device authorization request is a request to the provider: it takes this process's turn at the pace.
      return withHeartbeat(sendTurn(deps.spacing, provider.name).then(() => startDeviceLogin(deps, provider, input)), heartbeatEvery(heartbeatMs));
    }
    const login = provider.login;
    const home = await ensureSlotHome(deps.slotsDir, input.slotId);
    const credentialPath = resolveInSlot(home, provider.credential.file);
    const previousCredentialMtime = await stat(credentialPath).then((s) => s.mtimeMs, () => undefined);
    const command = login.command({ slotId: input.slotId, home }, deps.env);
    // Walked by descriptor: a config dir planted as a symlink is refused, not created through.
    for (const dir of command.dirs) await ensureSlotDir(home, dir);
    // A retried attempt of this activity must not leave the first CLI running.
    await deps.sessions.close(input.loginId);

    const executable = await findExecutable(command.command, deps.env.PATH ?? '');
    if (!executable) {
      throw ApplicationFailure.create({
        message: `cannot start ${command.command} for ${provider.displayName}: not found or not executable on this host. ` +
          `Install it, or point ${provider.name.toUpperCase()}_BIN at it.`,
        type: FailureType.loginCliMissing,
        nonRetryable: true,
      });
    }
    // Room for the CLI in this process's memory first: a host full of waiting logins refuses, never swaps or dies.
    const refused = deps.sessions.reserve(input.loginId, login.cliMemoryMiB ?? DEFAULT_CLI_MEMORY_MIB);
    if (refused !== undefined) {
      throw ApplicationFailure.create({
        message: `not starting ${provider.displayName}'s login CLI now: ${refused}; the slot tries again shortly`,
        type: FailureType.loginHostBusy,
        nonRetryable: true,
      });
    }
    // A login start goes at the provider's pace like its token requests: the queue's rate limit
    // lets bursts through (a token bucket), this process's send spacing does not. A slow pace
    // may wait longer than the heartbeat timeout: heartbeat through the wait.
    await withHeartbeat(sendTurn(deps.spacing, provider.name), heartbeatEvery(heartbeatMs));
    // A login cancelled (or its slot retired) during the wait starts no CLI.
    try {
      throwIfCancelled();
    } catch (err) {
      deps.sessions.release(input.loginId);
      throw err;
    }
    let session: LoginSession;
    try {
      session = LoginSession.start(input.loginId, input.slotId, provider.name, {
        ...command,
        command: executable,
        env: loginEnvironment(deps.env, deps.envPassthrough, home, command.env),
      }, home);
    } catch (err) {
      deps.sessions.release(input.loginId);
      throw ApplicationFailure.create({
        message: `cannot start ${command.command} for ${provider.displayName}: ${(err as Error).message}. ` +
          `Install it on this host or point ${provider.name.toUpperCase()}_BIN at it.`,
        type: FailureType.loginCliMissing,
        nonRetryable: true,
      });
    }
    deps.sessions.add(session);
    const startedAt = session.startedAt;

    let started: PtyLoginStarted;
    try {
      const found = await withHeartbeat(
        session.waitFor((screen) => login.readPrompt(screen), login.timeouts.promptMs, Context.current().cancellationSignal),
        heartbeatEvery(heartbeatMs),
      );
      if (!found) {
        throwIfCancelled();
        const exit = session.exit;
        if (exit) {
          throw ApplicationFailure.create({
            message: login.explainEarlyExit(session.snapshot(), exit.exitCode),
            type: FailureType.loginCliExited,
            nonRetryable: true,
            details: [{ exitCode: exit.exitCode }],
          });
        }
        const unreadable = unreadableUrl(provider, login, session.snapshot());
        if (unreadable) throw unreadable;
        throw ApplicationFailure.create({
          message: `${provider.displayName} showed no login URL within ${login.timeouts.promptMs / 1000} s`,
          type: FailureType.loginPromptTimeout,
          nonRetryable: true,
        });
      }
      const prompt = promptOf(login, found, startedAt + login.timeouts.operatorMs);
      session.prompt = prompt;
      started = {
        kind: 'pty',
        sessionQueue: deps.sessionQueue,
        prompt,
        startedAt,
        ...(previousCredentialMtime !== undefined ? { previousCredentialMtime } : {}),
        restartAfterRejection: login.restartAfterRejection,
        verdictMs: login.timeouts.verdictMs,
      };
    } catch (err) {
      // A retry may run on another process of the host: no CLI of this attempt stays behind.
      await deps.sessions.close(input.loginId);
      throw err;
    }
    // If this result never reaches the workflow, the retry starts another CLI; this one must not linger.
    setTimeout(() => {
      if (!session.claimed && deps.sessions.get(input.loginId) === session) void deps.sessions.close(input.loginId);
    }, unclaimedSessionMs).unref();
    return started;
  }

  return { startLogin };
}

/**
 * The activities that reach a live PTY: registered on this process's session queue only.
 * Whole on purpose: three activities (watch, submit a code, close; the longest about 45 lines)
 * and the session lookup, retry and store steps they share through `deps.sessions`.
 */
export function createLoginSessionActivities(deps: Pick<LoginActivityDeps, 'sessions' | 'heartbeatMs'>) {
  const heartbeatMs = deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;

  /**
   * The live session, for the workflow `slot:<id>` of the slot it was started for and no
   * other (the session queue's name is in every history of the namespace). A request
   * naming another slot, or from another workflow, is refused before the session is touched.
   */
  async function sessionFor(input: SessionRequest): Promise<LoginSession> {
    const session = deps.sessions.get(input.loginId);
    if (!session) {
      throw ApplicationFailure.nonRetryable(
        `login session ${input.loginId} is not running on this worker (the worker restarted, or the session was closed); a new login is needed`,
        FailureType.loginSessionLost,
      );
    }
    // Checked against the session's own slot (set by the host's startLogin after its own check), not the input's.
    await assertActsForSlot(session.slotId);
    if (input.slotId !== undefined && input.slotId !== session.slotId) {
      throw ApplicationFailure.nonRetryable(`refusing a request for login session ${input.loginId}: it belongs to another slot`, FailureType.slotRequestRefused);
    }
    session.claimed = true;
    return session;
  }

  /**
   * Runs while the operator is awaited and ends when the CLI does. Its heartbeat
   * is how a workflow learns that the worker holding the PTY died.
   */
  async function watchLogin(input: SessionRequest): Promise<LoginOutcome | undefined> {
    const session = await sessionFor(input);
    const provider = getProvider(session.provider);
    const signal = Context.current().cancellationSignal;
    const cancelled = new Promise<undefined>((resolve) => signal.addEventListener('abort', () => resolve(undefined), { once: true }));
    const exit = await withHeartbeat(Promise.race([session.exited, cancelled]), heartbeatEvery(heartbeatMs));
    if (!exit) return undefined;
    return outcomeOfExit(provider, session, exit);
  }

  /** Types the code and Enter, then reads the CLI's answer. */
  async function submitLoginCode(input: SessionRequest & { code: string }): Promise<LoginOutcome> {
    const session = await sessionFor(input);
    const provider = getProvider(session.provider);
    const login = ptyLogin(provider);
    if (session.exit) return outcomeOfExit(provider, session, session.exit);
    // The workflow's validator checked the code; the keystrokes are checked here again, against the
    // prompt this session showed: no control byte or other form ever reaches the terminal.
    const problem = codeProblem({ code: input.code }, session.prompt);
    if (problem) throw ApplicationFailure.nonRetryable(`refusing to type the code into login ${input.loginId}: ${problem}`, FailureType.codeRejected);
    // The CLI answers on the prompt's own line (the prompt ends without a newline).
    const before = session.snapshot();
    const since = Math.max(0, before.lines.length - 1);
    const promptBefore = login.readPrompt(before);
    session.codeTypedAtLine = since;
    // Keystrokes, not a paste: the prompt does not enable bracketed paste.
    session.type(input.code);
    // Enter only once the CLI has taken the code (its echo, masked, is drawn): the full-screen
    // `claude setup-token` (Ink) reads a code and Enter arriving in one chunk as a paste and ignores the Enter.
    await session.waitFor((screen) => (screen.text !== before.text ? true : undefined), CODE_ECHO_WAIT_MS);
    session.type('\r');
    session.codeWrittenAt = Date.now();
    const verdict = await withHeartbeat(
      session.waitFor((screen) => login.readVerdict(screen, since), login.timeouts.verdictMs),
      heartbeatEvery(heartbeatMs),
    );
    if (verdict?.kind === 'rejected' && login.retryKeys) return retryAfterRejection(session, login, verdict, promptBefore);
    if (verdict && verdict.kind !== 'succeeded') return verdict;
    if (verdict && login.credentialFromScreen) return storePrintedCredential(session, provider, login, verdict);
    if (verdict) {
      // Success is said before the CLI finishes writing; give it time to exit.
      const exit = await Promise.race([session.exited, sleep(login.timeouts.verdictMs)]);
      return exit ? { ...verdict, exitCode: exitStatus(exit) } : verdict;
    }
    // The CLI may have exited while we waited (TypeScript cannot see that across the await).
    const ended = session.exit as SessionExit | undefined;
    if (ended) return outcomeOfExit(provider, session, ended);
    return {
      kind: 'hung',
      message: `${provider.displayName} gave no answer within ${login.timeouts.verdictMs / 1000} s after the code was typed`,
    };
  }

  /**
   * The CLI offers to ask again: press its key and wait for the new prompt (a new URL
   * and state), which the operator is shown instead of the old one. No new prompt in
   * time: the CLI is treated as hung (the workflow restarts it).
   */
  async function retryAfterRejection(session: LoginSession, login: PtyLoginSpec, verdict: ScreenVerdict, old: ScreenPrompt | undefined): Promise<LoginOutcome> {
    const keys = login.retryKeys?.(session.snapshot());
    if (!keys) return verdict;
    session.type(keys);
    const next = await withHeartbeat(
      session.waitFor((screen) => {
        const found = login.readPrompt(screen);
        return found && found.url !== old?.url ? found : undefined;
      }, login.timeouts.promptMs),
      heartbeatEvery(heartbeatMs),
    );
    if (!next) return { kind: 'hung', message: `${verdict.message}; after the retry key the CLI showed no new login URL within ${login.timeouts.promptMs / 1000} s` };
    const prompt = promptOf(login, next, Date.now() + login.timeouts.operatorMs);
    session.prompt = prompt;
    return { ...verdict, message: `${verdict.message} (the CLI asked again: a new login URL replaces the old one)`, prompt };
  }

  /**
   * The CLI printed the credential (setup-token): read it off the screen, write it 0600
   * to the provider's file, then forget the screen. Nothing returned holds it.
   */
  async function storePrintedCredential(session: LoginSession, provider: Provider, login: PtyLoginSpec, verdict: ScreenVerdict): Promise<LoginOutcome> {
    const content = login.credentialFromScreen?.(session.snapshot(), Date.now());
    session.clearScreen();
    const parsed = content === undefined ? undefined : provider.credential.schema.safeParse(content);
    if (!parsed?.success) {
      return { kind: 'failed', message: `${provider.displayName} said it succeeded, but no credential could be read off its screen; nothing was stored` };
    }
    await writeSecretFileAtomic(session.home, provider.credential.file, `${JSON.stringify(parsed.data, null, 2)}\n`);
    return { kind: 'succeeded', message: verdict.message };
  }

  async function closeLogin(input: SessionRequest): Promise<{ closed: boolean }> {
    // A session already gone needs no check: there is nothing to close.
    if (!deps.sessions.get(input.loginId)) return { closed: false };
    await sessionFor(input);
    return { closed: await deps.sessions.close(input.loginId) };
  }

  return { watchLogin, submitLoginCode, closeLogin };
}

/** A shell-style status: the exit code, or 128 + the signal that killed the CLI. */
const exitStatus = (exit: SessionExit): number => (exit.signal ? 128 + exit.signal : exit.exitCode);

function outcomeOfExit(provider: Provider, session: LoginSession, exit: SessionExit): LoginOutcome {
  const screen = session.snapshot();
  const exitCode = exitStatus(exit);
  const verdict = ptyLogin(provider).readVerdict(screen, session.codeTypedAtLine ?? 0);
  if (verdict) return { ...verdict, exitCode };
  const how = exit.signal ? `was killed by signal ${exit.signal}` : `exited with code ${exit.exitCode}`;
  // After a code was typed the screen may hold its (partly masked) echo: quote nothing then.
  const said = exitCode !== 0 && session.codeTypedAtLine === undefined ? `: ${lastWords(screen) || '(no output)'}` : '';
  return { kind: 'exited', exitCode, message: `${provider.displayName} ${how}${said}` };
}
