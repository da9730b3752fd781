// Option values every slotctl command reads the same way: checked once, here, so that a
// bad value is refused with the same clear message before anything is sent.
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
