// The probe activity on its own, against a real HTTP server on 127.0.0.1: what each
// answer means, and the requests it refuses to send (nothing reaches the server then).
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { createProbeActivities, type ProbeResult } from '../../activities/probe';
import { DEFAULT_PROBE_EVERY_MS, probeDelay } from '../../common/probe';

const SLOT = 'probe-unit';
const SLOT_WORKFLOW: Partial<Info> = { workflowExecution: { workflowId: `slot:${SLOT}`, runId: 'run-1' } };
const TOKEN = 'sk-ant-oat01-unitprobe-access-000000000000';
const quiet = new DefaultLogger('ERROR');

describe('probeCredential', () => {
  let server: Server;
  let base: string;
  let slotsDir: string;
  const seen: Array<{ url: string; authorization?: string }> = [];
  let answer: { status: number; headers?: Record<string, string> } = { status: 200 };

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      req.resume();
      res.writeHead(answer.status, answer.headers ?? {}).end(`{"echo":"${TOKEN}"}`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    slotsDir = await mkdtemp(join(tmpdir(), 'probe-unit-'));
    const home = await ensureSlotHome(slotsDir, SLOT);
    await writeSecretFileAtomic(home, '.claude/.credentials.json', JSON.stringify({ claudeAiOauth: { accessToken: TOKEN, refreshToken: 'sk-ant-ort01-unit-refresh-0000000', expiresAt: Date.now() + 3600_000, scopes: [] } }));
  });
  afterAll(async () => {
    server?.close();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    seen.length = 0;
    answer = { status: 200 };
  });

  const probe = (env: NodeJS.ProcessEnv, input: { slotId?: string; provider?: string; workflowId?: string } = {}): Promise<ProbeResult> => {
    const { probeCredential } = createProbeActivities({ slotsDir, env });
    const info = input.workflowId ? { workflowExecution: { workflowId: input.workflowId, runId: 'run-1' } } : SLOT_WORKFLOW;
    return new MockActivityEnvironment(info, { logger: quiet }).run(probeCredential, { slotId: input.slotId ?? SLOT, provider: input.provider ?? 'claude', reason: 'operator' as const }) as Promise<ProbeResult>;
  };
  const allowed = (): NodeJS.ProcessEnv => ({ SLOTS_ALLOWED_ENDPOINT_HOSTS: '127.0.0.1', CLAUDE_PROBE_BASE_URL: base });

  it('reads each answer by its status alone', async () => {
    const cases: Array<[number, string, Record<string, string>?]> = [
      [200, 'ok'],
      [204, 'ok'],
      [401, 'unauthorized'],
      [403, 'unauthorized'],
      [429, 'rate-limited'],
      [500, 'transient'],
      [503, 'transient'],
      [408, 'transient'],
      [404, 'error'],
      [400, 'error'],
      // A redirect would carry the token elsewhere: never followed.
      [302, 'error', { location: 'http://127.0.0.1:1/elsewhere' }],
    ];
    for (const [status, outcome, headers] of cases) {
      answer = { status, ...(headers ? { headers } : {}) };
      const result = await probe(allowed());
      expect(result, `HTTP ${status}`).toMatchObject({ outcome, httpStatus: status });
      expect(JSON.stringify(result)).not.toContain(TOKEN);
    }
    expect(seen.every((r) => r.url === '/v1/messages?beta=true' && r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(seen).toHaveLength(cases.length);
  });

  it('a 429 without reset headers has no reset time; Retry-After in seconds gives one', async () => {
    answer = { status: 429 };
    expect((await probe(allowed())).resetAt).toBeUndefined();
    answer = { status: 429, headers: { 'retry-after': '30' } };
    const before = Date.now();
    const { resetAt } = await probe(allowed());
    expect(resetAt).toBeGreaterThanOrEqual(before + 29_000);
    expect(resetAt).toBeLessThanOrEqual(Date.now() + 31_000);
  });

  it('sends nothing to a loopback host that is not allow-listed, to a URL with credentials or to a bad URL, and says which variable to fix', async () => {
    expect(await probe({ CLAUDE_PROBE_BASE_URL: base })).toMatchObject({ outcome: 'error', detail: expect.stringMatching(/refusing plain http:\/\/ to 127\.0\.0\.1:\d+: http is allowed only for loopback hosts in SLOTS_ALLOWED_ENDPOINT_HOSTS/) });
    expect(await probe({ CLAUDE_PROBE_BASE_URL: base.replace('http:', 'https:') })).toMatchObject({ outcome: 'error', detail: expect.stringMatching(/private\/loopback and not in SLOTS_ALLOWED_ENDPOINT_HOSTS/) });
    const withUser = base.replace('http://', 'http://user:pw@');
    expect(await probe({ ...allowed(), CLAUDE_PROBE_BASE_URL: withUser })).toMatchObject({ outcome: 'error', detail: expect.stringMatching(/must not contain credentials/) });
    const bad = await probe({ ...allowed(), CLAUDE_PROBE_BASE_URL: 'not a url' });
    expect(bad).toMatchObject({ outcome: 'error', detail: 'the Claude Code probe URL is not a valid URL; check CLAUDE_PROBE_BASE_URL and ANTHROPIC_BASE_URL' });
    expect(seen).toEqual([]);
  });

  it('a refused connection is transient; a slot without a credential, or another workflow, gets nothing sent', async () => {
    expect(await probe({ ...allowed(), CLAUDE_PROBE_BASE_URL: 'http://127.0.0.1:1' })).toMatchObject({ outcome: 'transient', detail: 'http://127.0.0.1:1/v1/messages: connection refused' });
    expect(await probe(allowed(), { slotId: 'probe-unit-empty', workflowId: 'slot:probe-unit-empty' })).toMatchObject({ outcome: 'error', detail: expect.stringMatching(/^no credential to probe: /) });
    // The host pinned the slot's provider: a request for another is refused before anything is read.
    await expect(probe(allowed(), { provider: 'codex' })).rejects.toThrow(/pinned claude, asked codex/);
    await expect(probe(allowed(), { workflowId: 'slot:someone-else' })).rejects.toThrow(/refusing a request for slot probe-unit/);
    expect(seen).toEqual([]);
  });
});

describe('probeDelay', () => {
  it('is 6 h less up to 30 minutes by default, off at 0, jitter at most half the interval', () => {
    expect(probeDelay(undefined, 0)).toBe(DEFAULT_PROBE_EVERY_MS);
    expect(probeDelay(undefined, 0.999)).toBeGreaterThan(DEFAULT_PROBE_EVERY_MS - 30 * 60_000);
    expect(probeDelay({ everyMs: 0 }, 0.5)).toBeUndefined();
    expect(probeDelay({ everyMs: 10_000, jitterMs: 60_000 }, 0.999)).toBeGreaterThanOrEqual(5000);
    expect(probeDelay({ everyMs: 10, jitterMs: 0 }, 0)).toBe(1000);
  });
});
