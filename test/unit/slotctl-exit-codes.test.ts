// slotctl's exit codes come from one table (cli/exit-codes.ts): each failure a command can
// end with maps to the code docs/operating.md promises, and the page lists exactly those codes.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeOf, failureExit } from '../../cli/exit-codes';
import {
  CodecServerError,
  CodeRejectedError,
  MoveRefusedError,
  PayloadKeyMissingError,
  PoolNotFoundError,
  PoolRequestError,
  ProbeRefusedError,
  SlotExistsError,
  SlotInputError,
  SlotNotFoundError,
  TemporalTransportError,
} from '../../common/failures';

/** An instance of an error class with this message, whatever its constructor takes. */
const planted = <T extends Error>(type: abstract new (...args: never[]) => T, message: string): T => Object.assign(Object.create(type.prototype) as T, { message });

describe('slotctl exit codes', () => {
  it('maps each failure to its code, with the error in its own words', () => {
    const cases: Array<[Error, number]> = [
      [planted(SlotInputError, 'bad slot id'), EXIT.usage],
      [planted(PayloadKeyMissingError, 'no key'), EXIT.usage],
      [planted(SlotNotFoundError, 'slot x does not exist'), EXIT.notFound],
      [planted(PoolNotFoundError, 'pool p does not exist'), EXIT.notFound],
      [planted(TemporalTransportError, 'transport'), EXIT.notFound],
      [planted(CodeRejectedError, 'refused'), EXIT.failed],
      [planted(ProbeRefusedError, 'refused'), EXIT.failed],
      [planted(SlotExistsError, 'exists'), EXIT.failed],
      [planted(PoolRequestError, 'refused'), EXIT.failed],
      [planted(CodecServerError, 'codec down'), EXIT.failed],
      // Not in the table: an operation that failed.
      [planted(MoveRefusedError, 'refused'), EXIT.failed],
      [new Error('something else'), EXIT.failed],
    ];
    for (const [err, code] of cases) expect(failureExit(err, '127.0.0.1:7233'), `${err.constructor.name}`).toEqual({ code, message: `slotctl: ${err.message}` });
  });

  it('tells an unreachable server (3) from one that refused this client (1), naming the address', () => {
    const unreachable = failureExit(new Error('Failed to connect before the deadline'), '10.0.0.9:7233');
    expect(unreachable.code).toBe(EXIT.notFound);
    expect(unreachable.message).toContain('cannot reach Temporal at 10.0.0.9:7233');
    const refused = failureExit(new Error('Failed to connect to Temporal server', { cause: new Error('16 UNAUTHENTICATED: bad key') }), '10.0.0.9:7233');
    expect(refused.code).toBe(EXIT.failed);
    expect(refused.message).toContain('Temporal at 10.0.0.9:7233 refused this client (16 UNAUTHENTICATED: bad key)');
  });

  it('leaves commander its own words: help exits 0, a usage error 2', () => {
    expect(failureExit(new CommanderError(0, 'commander.helpDisplayed', ''), 'x')).toEqual({ code: EXIT.ok, message: undefined });
    expect(failureExit(new CommanderError(1, 'commander.unknownOption', "error: unknown option '--nope'"), 'x')).toEqual({ code: EXIT.usage, message: undefined });
  });

  it('a command that ended maps ok to 0 and failed to 1', () => {
    expect([exitCodeOf('ok'), exitCodeOf('failed')]).toEqual([EXIT.ok, EXIT.failed]);
  });

  it("docs/operating.md's exit-code table lists exactly the table's codes", () => {
    const page = readFileSync(fileURLToPath(new URL('../../docs/operating.md', import.meta.url)), 'utf8');
    const section = page.slice(page.indexOf('### Exit codes'));
    const documented = [...section.slice(0, section.indexOf('\n\n', section.indexOf('| code |'))).matchAll(/^\| `(\d+)` \|/gm)].map((m) => Number(m[1]));
    expect(documented).toEqual(Object.values(EXIT).sort((a, b) => a - b));
  });
});
