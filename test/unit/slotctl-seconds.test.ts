// Every slotctl option that takes seconds is checked the same way, before anything is
// sent: a bad value is a usage error (exit 2) naming the flag and the value. The Temporal
// address points nowhere, so a command that went on to connect would fail differently.
import { describe, expect, it } from 'vitest';
import { slotctl } from '../../cli/slotctl';

const run = async (argv: string[]): Promise<{ code: number; err: string; out: string }> => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await slotctl(argv, { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => 'some-code#state', stdinIsTTY: false }, { TEMPORAL_ADDRESS: '127.0.0.1:1' });
  return { code, err: err.join('\n'), out: out.join('\n') };
};

describe('slotctl: options in seconds', () => {
  const commands: Array<[string, (value: string) => string[]]> = [
    ['--timeout', (v) => ['provision', 'slot-a', '--provider', 'claude', '--host', 'h1', '--wait', '--timeout', v]],
    ['--timeout', (v) => ['status', 'slot-a', '--wait', '--timeout', v]],
    ['--timeout', (v) => ['submit-code', 'slot-a', 'some-code#state', '--wait', '--timeout', v]],
    ['--timeout', (v) => ['move', 'slot-a', '--to-host', 'h2', '--timeout', v]],
    ['--lease-ttl', (v) => ['pool', 'create', 'pool-a', '--provider', 'claude', '--lease-ttl', v]],
    ['--ttl', (v) => ['pool', 'lease', 'pool-a', '--ttl', v]],
  ];
  it.each(commands.flatMap(([flag, argv]) => ['abc', '0', '-5', 'Infinity', ' '].map((value) => [argv(value).slice(0, 2).join(' '), flag, value, argv(value)] as const)))(
    '%s %s %j is refused before anything is sent',
    async (_name, flag, value, argv) => {
      const { code, err } = await run(argv);
      expect(err).toContain(`${flag} must be a number of seconds > 0, got ${JSON.stringify(value)}`);
      expect(code).toBe(2);
    },
  );
});
