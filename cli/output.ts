// slotctl's one output model: every command returns an Output, and one printer writes
// it, as text for a person or (--json) as exactly one JSON document on stdout, with
// diagnostics on stderr; its outcome sets the exit code (exit-codes.ts).
import { Option } from 'commander';
import type { Config } from '../host/config';
import type { OperatorCodec } from '../client/codec-client';
import type { SlotClient } from '../client/slot-client';
import { exitCodeOf, type ExitCode, type Outcome } from './exit-codes';

/** What a command has to say when it ends. */
export interface Output {
  /** What a person reads on stdout (without --json); none when the command has nothing to show there. */
  readonly text?: string;
  /** The one JSON document on stdout with --json; none when the command printed nothing (e.g. not confirmed). */
  readonly json?: unknown;
  /** Lines for stderr, in either mode: why it failed, what was not done. */
  readonly notes?: readonly string[];
  /** @default 'ok' */
  readonly outcome?: Outcome;
}

/** Where slotctl reads and writes: the process's streams, or a test's. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Promise<string>;
  stdinIsTTY: boolean;
}

/** Writes `output` (text, or its JSON document when `asJson`), then its notes; returns the exit code its outcome sets. */
export function print(io: Io, output: Output, asJson: boolean): ExitCode {
  const shown = asJson ? (output.json === undefined ? undefined : JSON.stringify(output.json, null, 2)) : output.text;
  if (shown !== undefined) io.out(shown);
  for (const note of output.notes ?? []) io.err(note);
  return exitCodeOf(output.outcome ?? 'ok');
}

/** `--json`, the same on every command that prints a result. */
export const jsonOption = (): Option => new Option('--json', 'print exactly one JSON document on stdout');

/** What every command module gets from slotctl. */
export interface CommandContext {
  readonly config: Config;
  readonly io: Io;
  /** How payloads are sealed for the server: with the keys, by the codec server, or not at all. */
  readonly codec: OperatorCodec;
  /** The client, connected on first use (a command refused for bad input never connects). */
  connect(): Promise<SlotClient>;
  /**
   * A commander action from a command that returns its Output: printed with the command's
   * own `--json` (commander passes the options second to last), its exit code kept.
   */
  act<A extends unknown[]>(run: (...args: A) => Promise<Output>): (...args: A) => Promise<void>;
}

/** The options commander passes an action, second to last after the positional arguments. */
export const optionsOf = (args: readonly unknown[]): { json?: boolean } => (args.at(-2) ?? {}) as { json?: boolean };

export const when = (ms: number | undefined): string => (ms === undefined ? '—' : new Date(ms).toISOString());
