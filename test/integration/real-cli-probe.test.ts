// The Claude probe's request against the one the REAL `claude` CLI (REAL_CLAUDE_BIN, as
// test/real-clis.sh installs it) sends for an OAuth token, both pointed at the stand-in
// through their base-URL variables: `claude -p` works offline against it. Skips on a
// machine without the CLI; fails under CI, where the CLI must be there.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Info } from '@temporalio/activity';
import { DefaultLogger } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { createProbeActivities, type ProbeResult } from '../../activities/probe';
import { setupTokenFile } from '../../providers/claude-setup-token';
import { startProbeApi, type ProbeApi } from '../peers/probe-api';

const REAL_CLAUDE_BIN = process.env.REAL_CLAUDE_BIN ?? '';
const TOKEN = 'sk-ant-oat01-realcliprobe-0000000000000000000000';
const SLOT = 'real-cli-probe';
/** Host activities act on slot <id> only for the workflow `slot:<id>`. */
const SLOT_WORKFLOW: Partial<Info> = { workflowExecution: { workflowId: `slot:${SLOT}`, runId: 'run-1' } };

describe('the real claude CLI and the Claude probe', () => {
  let api: ProbeApi;
  let home: string;
  const accepted = new Set([TOKEN]);

  beforeAll(async () => {
    api = await startProbeApi((token) => accepted.has(token));
    home = await mkdtemp(join(tmpdir(), 'real-claude-probe-'));
  });
  afterAll(async () => {
    await api?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  /**
   * Our probe of a setup-token slot (the token an agent gets as CLAUDE_CODE_OAUTH_TOKEN,
   * as the CLI is given it here), run as the host activity, against the stand-in.
   */
  async function activitiesForProbe(baseUrl: string, token: string): Promise<{ probe: ProbeResult }> {
    const slotsDir = join(home, 'slots');
    await writeSecretFileAtomic(await ensureSlotHome(slotsDir, SLOT), '.claude/setup-token.json', JSON.stringify(setupTokenFile(token, Date.now(), 'adopted')));
    const { probeCredential } = createProbeActivities({ slotsDir, env: { SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_PROBE_BASE_URL: baseUrl } });
    const probe: ProbeResult = await new MockActivityEnvironment(SLOT_WORKFLOW, { logger: new DefaultLogger('ERROR') }).run(probeCredential, { slotId: SLOT, provider: 'claude-setup-token', reason: 'operator' as const });
    return { probe };
  }

  /** `claude -p quota` with the token as CLAUDE_CODE_OAUTH_TOKEN, against the stand-in. */
  async function claudeP(): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await promisify(execFile)(REAL_CLAUDE_BIN, ['-p', 'quota', '--max-turns', '1'], {
        cwd: home,
        timeout: 120_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: home,
          CLAUDE_CONFIG_DIR: join(home, '.claude'),
          ANTHROPIC_BASE_URL: api.url,
          CLAUDE_CODE_OAUTH_TOKEN: TOKEN,
          // Without it the CLI reinstalls itself globally with npm.
          DISABLE_AUTOUPDATER: '1',
          DISABLE_TELEMETRY: '1',
          DISABLE_ERROR_REPORTING: '1',
        },
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  it.skipIf(!REAL_CLAUDE_BIN && !process.env.CI)('sends what claude -p sends for an OAuth token, and reads a 401 as claude does', { timeout: 300_000 }, async () => {
    expect(REAL_CLAUDE_BIN, 'REAL_CLAUDE_BIN is not set: run eval "$(test/real-clis.sh)" (CI must have the real CLI)').not.toBe('');
    const ran = await claudeP();
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout.trim()).toBe('pong');
    const real = api.requests.filter((r) => r.url.startsWith('/v1/messages'));
    expect(real.length).toBeGreaterThan(0);

    const { probe } = await activitiesForProbe(api.url, TOKEN);
    expect(probe.outcome).toBe('ok');
    const ours = api.requests[api.requests.length - 1];
    expect(ours?.headers['user-agent']).toBe('claude-cli/2.1.197 (external, cli)');
    for (const cli of real) {
      expect(ours?.url).toBe(cli.url);
      expect(ours?.method).toBe(cli.method);
      for (const name of ['authorization', 'anthropic-version', 'anthropic-dangerous-direct-browser-access', 'x-app', 'content-type', 'accept']) {
        expect(ours?.headers[name], name).toBe(cli.headers[name]);
      }
      // The CLI adds feature betas; the probe's (its own and the OAuth one) are among them.
      const cliBetas = (cli.headers['anthropic-beta'] ?? '').split(',');
      for (const beta of (ours?.headers['anthropic-beta'] ?? '').split(',')) expect(cliBetas).toContain(beta);
      expect(cli.headers['user-agent']).toMatch(/^claude-cli\/2\.1\.197 \(external, /);
    }

    // Refused: the CLI says it failed to authenticate; the probe calls it unauthorized.
    accepted.clear();
    const refused = await claudeP();
    expect(refused.code).not.toBe(0);
    expect(`${refused.stdout}${refused.stderr}`).toMatch(/Failed to authenticate.*401/);
    expect((await activitiesForProbe(api.url, TOKEN)).probe).toMatchObject({ outcome: 'unauthorized', httpStatus: 401 });
  });
});
