// The worker's start-up check of the login CLIs' versions, against real processes: the
// fixture CLIs (which print the pinned versions), scripts that print another version or
// nothing readable, a missing binary, and the pinned real CLIs when they are installed
// (REAL_CLAUDE_BIN / REAL_CODEX_BIN from `eval "$(test/real-clis.sh)"`; required under CI).
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLoginClis, logLoginClis, type CliVersionCheck } from '../../workers/cli-versions';
import { FIXTURE_BIN } from '../slot-fixtures';

const PINS = JSON.parse(await readFile(new URL('../../providers/cli-versions.json', import.meta.url), 'utf8')) as { claude: string; codex: string };
const REAL_CLAUDE_BIN = process.env.REAL_CLAUDE_BIN ?? '';
const REAL_CODEX_BIN = process.env.REAL_CODEX_BIN ?? '';

const byProvider = (checks: CliVersionCheck[], provider: string): CliVersionCheck | undefined => checks.find((c) => c.providers.includes(provider));

describe('the login CLIs a host runs, checked at start against the pinned versions', () => {
  let dir: string;
  const script = async (name: string, output: string): Promise<string> => {
    const file = join(dir, name);
    await writeFile(file, `#!/bin/sh\necho '${output}'\n`);
    await chmod(file, 0o755);
    return file;
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-versions-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads one pin file, the one test/real-clis.sh installs from', async () => {
    const script = await readFile(new URL('../real-clis.sh', import.meta.url), 'utf8');
    expect(script).toContain('providers/cli-versions.json');
    expect(script).not.toMatch(/VERSION=\d/);
    expect(PINS.claude).toMatch(/^\d+\.\d+\.\d+$/);
    expect(PINS.codex).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('says the pinned versions are the checked ones, once per CLI', async () => {
    const checks = await checkLoginClis({ ...process.env, CLAUDE_BIN: join(FIXTURE_BIN, 'claude'), CODEX_BIN: join(FIXTURE_BIN, 'codex') });
    expect(checks).toHaveLength(2);
    expect(byProvider(checks, 'claude')).toMatchObject({ providers: ['claude', 'claude-setup-token'], version: PINS.claude, checked: PINS.claude, status: 'checked' });
    expect(byProvider(checks, 'codex')).toMatchObject({ providers: ['codex'], version: PINS.codex, status: 'checked' });
  });

  it('warns, naming the version found, the checked one and how to install it, for another version, a missing CLI, an unreadable answer', async () => {
    const checks = await checkLoginClis({
      ...process.env,
      CLAUDE_BIN: await script('claude-newer', '2.1.300 (Claude Code)'),
      CODEX_BIN: join(dir, 'not-installed'),
    });
    expect(byProvider(checks, 'claude')).toMatchObject({ version: '2.1.300', status: 'other' });
    expect(byProvider(checks, 'claude')?.message).toContain(`is version 2.1.300, not ${PINS.claude}, the version slot-provisioner was checked against`);
    expect(byProvider(checks, 'claude')?.message).toContain(`npm install -g @anthropic-ai/claude-code@${PINS.claude}`);
    expect(byProvider(checks, 'codex')).toMatchObject({ status: 'missing' });
    expect(byProvider(checks, 'codex')?.message).toContain(`npm install -g @openai/codex@${PINS.codex}`);

    const odd = await checkLoginClis({ ...process.env, CLAUDE_BIN: await script('claude-odd', 'hello'), CODEX_BIN: join(FIXTURE_BIN, 'codex') });
    expect(byProvider(odd, 'claude')).toMatchObject({ status: 'unreadable' });
    expect(byProvider(odd, 'claude')).not.toHaveProperty('version');

    const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
    logLoginClis([...checks, ...odd], {
      info: (fields: Record<string, unknown>, message: string) => void lines.push({ level: 'info', fields, message }),
      warn: (fields: Record<string, unknown>, message: string) => void lines.push({ level: 'warn', fields, message }),
    } as never);
    expect(lines.map((l) => [l.level, l.fields.status])).toEqual([
      ['warn', 'other'],
      ['warn', 'missing'],
      ['warn', 'unreadable'],
      ['info', 'checked'],
    ]);
  });

  it.skipIf(!(REAL_CLAUDE_BIN && REAL_CODEX_BIN) && !process.env.CI)('finds the pinned real CLIs checked', { timeout: 120_000 }, async () => {
    expect(REAL_CLAUDE_BIN && REAL_CODEX_BIN, 'REAL_CLAUDE_BIN / REAL_CODEX_BIN are not set: run eval "$(test/real-clis.sh)" (CI must have the real CLIs)').toBeTruthy();
    const checks = await checkLoginClis({ ...process.env, CLAUDE_BIN: REAL_CLAUDE_BIN, CODEX_BIN: REAL_CODEX_BIN });
    expect(checks.map((c) => [c.providers[0], c.status, c.version])).toEqual([
      ['claude', 'checked', PINS.claude],
      ['codex', 'checked', PINS.codex],
    ]);
  });
});
