// Rules written once (issue 24): the slot-id and host-name rules live in common/slot.ts
// and nowhere else, and both env files (the slot's, the agent plan's) are written by one
// format. A copy of a rule drifts; these checks fail when one comes back.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatEnvFile } from '../../common/env-file';
import { EnvFileError } from '../../common/failures';
import { MoveInputSchema, SlotIdContract } from '../../common/schemas';
import { moveInputProblem } from '../../common/backup';
import { HOST_NAME_PATTERN, HOST_NAME_SOURCE, SLOT_ID_PATTERN, slotIdProblem } from '../../common/slot';
import { agentPlanEnvFile, type AgentPlan } from '../../providers/agent-plan';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_FOLDERS = ['workflows', 'activities', 'providers', 'workers', 'host', 'client', 'cli', 'common', 'scripts'];
const RULE_HOME = 'common/slot.ts';

/** Source files (tracked or new) of the project's folders, relative to the root. */
function sourceFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', ...SOURCE_FOLDERS], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f.endsWith('.ts'));
}

const readSource = (f: string): string => readFileSync(`${ROOT}/${f}`, 'utf8');

/** Files other than the rule's home that spell `literal`. */
const copiesOf = (literal: string, files: readonly string[], read = readSource): string[] => files.filter((f) => f !== RULE_HOME && read(f).includes(literal));

describe('the slot-id and host-name rules are written once, in common/slot.ts', () => {
  const slotIdLiteral = SLOT_ID_PATTERN.source;
  const hostNameLiteral = HOST_NAME_SOURCE;

  it('the detector finds a copy where one is planted, and the rules where they live', () => {
    expect(slotIdLiteral).toBe('^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$');
    const planted: Record<string, string> = {
      'workflows/x.ts': 'if (!/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/.test(id)) throw new TypeError(id);',
      'cli/y.ts': "z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'a host name')",
      [RULE_HOME]: readSource(RULE_HOME),
    };
    const read = (f: string): string => planted[f] ?? '';
    expect(copiesOf(slotIdLiteral, Object.keys(planted), read)).toEqual(['workflows/x.ts']);
    expect(copiesOf(hostNameLiteral, Object.keys(planted), read)).toEqual(['cli/y.ts']);
    expect(readSource(RULE_HOME)).toContain(slotIdLiteral);
    expect(readSource(RULE_HOME)).toContain(hostNameLiteral);
  });

  it('no other source file spells either rule', () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(50);
    expect(copiesOf(slotIdLiteral, files)).toEqual([]);
    expect(copiesOf(hostNameLiteral, files)).toEqual([]);
  });

  it('every user of a rule answers alike: the contract schema, slotIdProblem, the move input and its schema', () => {
    for (const id of ['a', 'slot-1', 'x'.repeat(63), '-a', 'a-', 'A', 'a.b', 'x'.repeat(64), '']) {
      expect(SlotIdContract.safeParse(id).success, id).toBe(slotIdProblem(id) === undefined);
    }
    for (const host of ['host-b', 'h.example_1', '-h', '.h', 'h/b', 'h'.repeat(63), 'h'.repeat(64)]) {
      const ok = HOST_NAME_PATTERN.test(host);
      expect(moveInputProblem({ toHost: host }) === undefined, host).toBe(ok);
      expect(MoveInputSchema.safeParse({ toHost: host }).success, host).toBe(ok);
    }
  });
});

describe('one env-file format for the slot and the agent plan', () => {
  const plan: AgentPlan = {
    slotId: 'a',
    provider: 'codex',
    mechanism: 'files',
    env: { CODEX_HOME: '/slots/a/agent', NOTE: "it's $HOME" },
    placeholders: [],
    hiddenEnv: [],
    egress: [],
    mounts: [],
    warnings: [],
  };

  it('quotes a value the same way in both, and leaves a bare one bare', () => {
    const slotFile = formatEnvFile('header', plan.env);
    const planFile = agentPlanEnvFile(plan);
    const body = (text: string): string => text.split('\n').slice(1).join('\n');
    expect(body(planFile)).toBe(body(slotFile));
    expect(body(slotFile)).toBe("CODEX_HOME=/slots/a/agent\nNOTE='it'\\''s $HOME'\n");
  });

  it('refuses a name or a value the format cannot hold, in both', () => {
    expect(() => formatEnvFile('h', { 'BAD NAME': 'x' })).toThrow(EnvFileError);
    expect(() => formatEnvFile('h', { OK: 'two\nlines' })).toThrow(EnvFileError);
    expect(() => agentPlanEnvFile({ ...plan, env: { OK: 'two\nlines' } })).toThrow(/cannot be written to an env file/);
  });
});
