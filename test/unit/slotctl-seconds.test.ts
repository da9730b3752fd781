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

  it('every option help shows as <seconds>, on every command and subcommand, is refused the same way while the command line is read', async () => {
    const helpOf = async (path: string[]): Promise<string> => (await run([...path, '--help'])).out;
    const commandsIn = (help: string): string[] =>
      [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1] as string).filter((c) => c !== 'help');
    const found: string[] = [];
    const visit = async (path: string[]): Promise<void> => {
      const help = await helpOf(path);
      if (help.includes('Commands:')) {
        for (const sub of commandsIn(help)) await visit([...path, sub]);
        return;
      }
      for (const [, flag] of help.matchAll(/(--[a-z-]+) <seconds>/g)) {
        found.push(`${path.join(' ')} ${flag}`);
        // No arguments: a check made later (in the action, after commander's own) would answer differently.
        const { code, err } = await run([...path, flag as string, 'abc']);
        expect(err, `${path.join(' ')} ${flag}`).toContain(`${flag} must be a number of seconds > 0, got "abc"`);
        expect(code).toBe(2);
      }
    };
    await visit([]);
    expect(found.sort()).toEqual(['move --timeout', 'pool create --lease-ttl', 'pool lease --ttl', 'provision --timeout', 'status --timeout', 'submit-code --timeout']);
  });
});
