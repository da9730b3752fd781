// Option values every slotctl command reads the same way: checked once, here, so that a
// bad value is refused with the same clear message before anything is sent.
import { Option } from 'commander';
import { SlotInputError } from '../common/failures';

/**
 * A `<seconds>` option (`--timeout`, `--ttl`, `--lease-ttl`) in milliseconds; throws
 * SlotInputError naming the flag when it is not a number of seconds > 0. Undefined stays undefined.
 */
export function seconds(value: string, flag: string): number;
export function seconds(value: string | undefined, flag: string): number | undefined;
export function seconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new SlotInputError(`${flag} must be a number of seconds > 0, got ${JSON.stringify(value)}`);
  return Math.round(n * 1000);
}

/**
 * A `<seconds>` option as commander reads it: the value is checked by `seconds` while the
 * command line is parsed, before any command runs, and arrives in milliseconds (the default too).
 * Every command that takes `--timeout` (or `--ttl`, `--lease-ttl`) declares it with this.
 */
export function secondsOption(flags: `--${string} <seconds>`, description: string, defaultSeconds?: number): Option {
  const flag = flags.split(' ')[0] as string;
  const option = new Option(flags, description).argParser((value: string) => seconds(value, flag));
  return defaultSeconds === undefined ? option : option.default(defaultSeconds * 1000, String(defaultSeconds));
}
