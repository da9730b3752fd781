// A login CLI running under a PTY on this host, rendered through a terminal
// emulator. Sessions live in the worker's memory between the two login
// activities; a session whose worker died is simply gone, and the workflow restarts.
import { SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { closeSync, constants, openSync } from 'node:fs';
import { spawn, type IPty } from 'node-pty';
import type { LoginCommand, ScreenSnapshot } from '../providers/provider';
import type { LoginPrompt } from '../common/slot';
import type { LoginCapacity } from './login-capacity';
import { TerminalScreen } from './screen';

export interface SessionExit {
  readonly exitCode: number;
  readonly signal: number;
}

export const PTY_COLS = 200;
export const PTY_ROWS = 50;

const tracer = trace.getTracer('slot-provisioner');

export class LoginSession {
  readonly startedAt = Date.now();
  private exitInfo: SessionExit | undefined;
  private readonly exitPromise: Promise<SessionExit>;
  private readonly listeners = new Set<() => void>();
  private pending: Promise<void> = Promise.resolve();
  /** Milliseconds since epoch at which the code's last byte was handed to the PTY. */
  codeWrittenAt: number | undefined;
  /** Index of the first screen line written after the operator's code: earlier lines may echo it. */
  codeTypedAtLine: number | undefined;
  /** A session activity reached this session: the workflow has the `startLogin` result. */
  claimed = false;
  /** The prompt the operator was shown (the latest, after a retry): a code is checked against it here too. */
  prompt: LoginPrompt | undefined;
  /** The CLI's life, from spawn to exit, as a span (a no-op without a tracer provider); what it was told is not recorded. */
  private readonly span: Span;

  private constructor(
    readonly id: string,
    readonly slotId: string,
    readonly provider: string,
    private readonly pty: IPty,
    private readonly screen: TerminalScreen,
    /** The slot home the CLI runs in. */
    readonly home: string,
    /** Our descriptor of the terminal's slave side, held until the CLI exited (`holdTerminal`). */
    private readonly terminalHold: { fd: number | undefined },
    /** Echoes of our answers to terminal queries, removed from the output (see `start`). */
    private readonly echoes: string[] = [],
  ) {
    this.span = tracer.startSpan('pty session', {
      attributes: { 'slot.id': slotId, 'slot.provider': provider, 'login.id': id, 'process.pid': pty.pid, 'pty.cols': PTY_COLS, 'pty.rows': PTY_ROWS },
    });
    this.exitPromise = new Promise((resolve) => {
      pty.onExit(({ exitCode, signal }) => {
        this.exitInfo = { exitCode, signal: signal ?? 0 };
        this.span.setAttributes({ 'process.exit_code': exitCode, 'process.signal': signal ?? 0, 'pty.code_typed': this.codeWrittenAt !== undefined });
        if (exitCode !== 0 && !signal) this.span.setStatus({ code: SpanStatusCode.ERROR, message: `exited with code ${exitCode}` });
        this.span.end();
        // Our end of the terminal is let go only now: every byte the CLI wrote has been read (see `holdTerminal`).
        releaseTerminal(this.terminalHold);
        // Let the emulator finish parsing the last output before anyone reads the verdict.
        void this.outputParsed().then(() => {
          this.notify();
          resolve(this.exitInfo as SessionExit);
        });
      });
    });
    pty.onData((raw) => {
      const data = this.withoutEchoes(raw);
      this.pending = this.pending.then(() => screen.write(data)).then(() => this.notify());
    });
  }

  /** The output without the terminal's echo of our own answers (which the CLI never wrote). */
  private withoutEchoes(data: string): string {
    if (this.echoes.length === 0 || !data.includes('^[')) return data;
    let out = data;
    for (const [i, echo] of [...this.echoes.entries()].reverse()) {
      if (!out.includes(echo)) continue;
      out = out.replace(echo, '');
      this.echoes.splice(i, 1);
    }
    return out;
  }

  /** Resolves once every chunk read from the PTY has been written to the emulator. */
  private async outputParsed(): Promise<void> {
    for (let last: Promise<void> | undefined; last !== this.pending; ) {
      last = this.pending;
      await last;
    }
  }

  static start(id: string, slotId: string, provider: string, command: LoginCommand, cwd: string): LoginSession {
    let pty: IPty | undefined;
    /** How the terminal would echo the answers we gave (a CLI that exited just after asking). */
    const echoes: string[] = [];
    const screen = new TerminalScreen({
      cols: PTY_COLS,
      rows: PTY_ROWS,
      // The CLIs ask the terminal who it is (DA1) and where the cursor is (DSR) and wait for the answer.
      respond: (answer) => {
        // An answer to a CLI that is gone would be echoed back by the terminal we still hold
        // open (`holdTerminal`) and shown as `^[[?1;2c` among the CLI's last words.
        if (!pty || !isAlive(pty.pid)) return;
        echoes.push(caretEcho(answer));
        pty.write(answer);
      },
    });
    try {
      pty = spawn(command.command, [...command.args], { name: 'xterm-256color', cols: PTY_COLS, rows: PTY_ROWS, cwd, env: { ...command.env } });
    } catch (err) {
      screen.dispose();
      throw err;
    }
    return new LoginSession(id, slotId, provider, pty, screen, cwd, holdTerminal(pty), echoes);
  }

  get pid(): number {
    return this.pty.pid;
  }

  get exit(): SessionExit | undefined {
    return this.exitInfo;
  }

  get exited(): Promise<SessionExit> {
    return this.exitPromise;
  }

  snapshot(): ScreenSnapshot {
    return this.screen.snapshot();
  }

  /**
   * Resolves with the first non-undefined value `read` gives as the screen
   * changes, or undefined when the CLI exits first or the time is up.
   */
  async waitFor<T>(read: (screen: ScreenSnapshot) => T | undefined, timeoutMs: number, signal?: AbortSignal): Promise<T | undefined> {
    const now = read(this.snapshot());
    if (now !== undefined || this.exitInfo) return now;
    return new Promise<T | undefined>((resolve) => {
      const finish = (value: T | undefined): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      };
      const check = (): void => {
        const value = read(this.snapshot());
        if (value !== undefined) finish(value);
        else if (this.exitInfo) finish(undefined);
      };
      const onAbort = (): void => finish(undefined);
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      this.listeners.add(check);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Forgets what the terminal shows (and its scrollback): after a CLI printed a secret there. */
  clearScreen(): void {
    this.screen.clear();
  }

  /** Types text as keystrokes. Claude's prompt does not enable bracketed paste, so no paste markers. */
  type(text: string): void {
    this.pty.write(text);
  }

  /** Ends the CLI and everything it started: its process group, politely then firmly. */
  async kill(graceMs = 2000): Promise<void> {
    if (!this.exitInfo) {
      signalGroup(this.pty.pid, 'SIGTERM');
      const exited = await Promise.race([this.exitPromise.then(() => true), delay(graceMs).then(() => false)]);
      if (!exited) signalGroup(this.pty.pid, 'SIGKILL');
      await Promise.race([this.exitPromise, delay(graceMs)]);
    }
    // A CLI may leave daemons in its group even after it exited itself (Codex does).
    signalGroup(this.pty.pid, 'SIGKILL');
    releaseTerminal(this.terminalHold);
    this.screen.dispose();
    this.listeners.clear();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** node-pty makes the child a session leader, so its pid names its process group. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/**
 * Opens the terminal's slave side in this process, so that the CLI's exit does not close it.
 * On Linux a CLI that writes more than the PTY buffer (4 KiB) and exits at once loses its
 * last output when the slave closes before the master has read it (node-pty #72, #726): an
 * error printed just before the exit never reached the screen (seen with the real codex).
 * With our descriptor open the master reads to the end; node-pty then reports the exit once
 * its reader has gone quiet (its socket-destroy timeout), and we let go of the terminal.
 */
function holdTerminal(pty: IPty): { fd: number | undefined } {
  const name = (pty as IPty & { readonly ptsName?: unknown }).ptsName;
  if (typeof name !== 'string' || !name.startsWith('/dev/')) return { fd: undefined };
  try {
    return { fd: openSync(name, constants.O_RDWR | constants.O_NOCTTY) };
  } catch {
    // Not a Unix PTY, or already gone: the CLI's exit closes the terminal as before.
    return { fd: undefined };
  }
}

/** True while the process exists (node-pty reaps the CLI as soon as it exits). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** How a terminal in echo mode shows text: control characters in caret notation (ESC as `^[`). */
function caretEcho(text: string): string {
  return text.replace(/[\x00-\x1f]/g, (c) => `^${String.fromCharCode(c.charCodeAt(0) + 64)}`);
}

function releaseTerminal(hold: { fd: number | undefined }): void {
  if (hold.fd === undefined) return;
  const fd = hold.fd;
  hold.fd = undefined;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The sessions this worker holds, by login id. */
export class LoginSessions {
  private readonly sessions = new Map<string, LoginSession>();

  /** `capacity`: the memory room for live CLIs (none: unlimited, for tests of other things). */
  constructor(readonly capacity?: LoginCapacity) {}

  /** Holds room for login `id`'s CLI before it is started; undefined when admitted, else why not. */
  reserve(id: string, cliMemoryMiB: number): string | undefined {
    return this.capacity?.reserve(id, cliMemoryMiB);
  }

  /** Gives back the room of a login whose CLI never started. */
  release(id: string): void {
    if (!this.sessions.has(id)) this.capacity?.release(id);
  }

  add(session: LoginSession): void {
    this.sessions.set(session.id, session);
  }

  get(id: string): LoginSession | undefined {
    return this.sessions.get(id);
  }

  async close(id: string): Promise<boolean> {
    const session = this.sessions.get(id);
    if (!session) {
      this.capacity?.release(id);
      return false;
    }
    this.sessions.delete(id);
    try {
      await session.kill();
    } finally {
      this.capacity?.release(id);
    }
    return true;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.close(id)));
  }

  get size(): number {
    return this.sessions.size;
  }
}
