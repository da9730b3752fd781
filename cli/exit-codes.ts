// slotctl's exit codes, the one table (docs/operating.md "Exit codes"): a command's
// outcome and every failure it can end with map to a code here, nowhere else.
import { CommanderError } from 'commander';
import {
  CodecServerError,
  CodeRejectedError,
  ConfigError,
  PayloadKeyMissingError,
  PoolNotFoundError,
  PoolRequestError,
  ProbeRefusedError,
  SlotExistsError,
  SlotInputError,
  SlotNotFoundError,
  TemporalTransportError,
} from '../common/failures';

/** 0 done · 1 the operation failed (code refused, login failed, move refused) · 2 bad input · 3 slot not found or server unreachable. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** How a command that ran to its end came out: `failed` when it did not do what was asked (the output says why). */
export type Outcome = 'ok' | 'failed';

export const exitCodeOf = (outcome: Outcome): ExitCode => (outcome === 'ok' ? EXIT.ok : EXIT.failed);

/** The errors a command may end with, and their codes; first match wins. The message is the error's own. */
const FAILURE_EXITS: ReadonlyArray<readonly [abstract new (...args: never[]) => Error, ExitCode]> = [
  [SlotInputError, EXIT.usage],
  [PayloadKeyMissingError, EXIT.usage],
  [SlotNotFoundError, EXIT.notFound],
  [PoolNotFoundError, EXIT.notFound],
  [TemporalTransportError, EXIT.notFound],
  [CodeRejectedError, EXIT.failed],
  [ProbeRefusedError, EXIT.failed],
  [SlotExistsError, EXIT.failed],
  [PoolRequestError, EXIT.failed],
  [CodecServerError, EXIT.failed],
];

/** A configuration slotctl cannot start with (the environment's variables): bad input, said in ConfigError's own words. */
export const configExit = (err: unknown): { code: ExitCode; message: string } => ({ code: EXIT.usage, message: err instanceof ConfigError ? err.message : String(err) });

/**
 * The exit code and the line for stderr (undefined: commander already said it) of a
 * command that threw `err`. `temporalAddress` names the server in a connection failure.
 */
export function failureExit(err: unknown, temporalAddress: string): { code: ExitCode; message: string | undefined } {
  if (err instanceof CommanderError) return { code: err.exitCode === 0 ? EXIT.ok : EXIT.usage, message: undefined };
  const message = err instanceof Error ? err.message : String(err);
  const known = FAILURE_EXITS.find(([type]) => err instanceof type);
  if (known) return { code: known[1], message: `slotctl: ${message}` };
  // The client wraps the server's answer: "Failed to connect to Temporal server", cause "16 UNAUTHENTICATED: …".
  const refusal = [message, err instanceof Error && err.cause instanceof Error ? err.cause.message : ''].find((m) => /UNAUTHENTICATED|PERMISSION_DENIED/.test(m));
  if (refusal) {
    return {
      code: EXIT.failed,
      message: `slotctl: Temporal at ${temporalAddress} refused this client (${refusal}); check TEMPORAL_API_KEY(_FILE), the client certificate and TEMPORAL_NAMESPACE`,
    };
  }
  if (/connect|ECONNREFUSED|deadline|unavailable/i.test(message)) {
    return { code: EXIT.notFound, message: `slotctl: cannot reach Temporal at ${temporalAddress} (${message}); is \`npm start\` running, or TEMPORAL_ADDRESS set?` };
  }
  return { code: EXIT.failed, message: `slotctl: ${message}` };
}
