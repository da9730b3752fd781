// A claude-setup-token slot end to end on the real dev server, with the fixture
// `claude setup-token` under a real PTY: a bad code is retried in the same CLI (the
// new URL replaces the prompt), the good one makes the slot active with a year-long
// token that agents get and that no history, status or query ever holds.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { slotctl } from '../../cli/slotctl';
import { slotWorkflowId } from '../../common/slot';
import { uniqueName } from '../harness';
import { claudeCode, expectNoProcesses, processesOfSlot, startSlotRig, stateOf, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

// Planted: searched for everywhere an operator or another workflow could look.
const TOKEN = `sk-ant-oat01-${'PLANTEDsetupTOKEN'.repeat(5)}-zzAA`;
const DAY = 24 * 3600_000;

describe('claude-setup-token slot', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig({ FIXTURE_CLAUDE_SETUP_TOKEN: TOKEN });
  });
  afterAll(async () => rig?.close());

  it('retries a bad code in the same CLI, stores the printed token, is active for a year, and never shows the token', async () => {
    const slotId = uniqueName('setup-token');
    await rig.slots.provision({ slotId, provider: 'claude-setup-token', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    expect(first.prompt.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?code=true&.*scope=user%3Ainference&.*&state=[\w-]{43}$/);
    const pids = await processesOfSlot(rig.slotsDir, slotId);

    const rejected = await rig.slots.submitCode(slotId, `not-the-code#${stateOf(first.prompt.url)}`);
    expect(rejected.answer).toBe('rejected');
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    expect(second.lastError).toMatch(/^OAuth error: Invalid code\. Please make sure the full code was copied/);
    expect(stateOf(second.prompt.url)).not.toBe(stateOf(first.prompt.url));
    // Same CLI, not a restart.
    expect(await processesOfSlot(rig.slotsDir, slotId)).toEqual(pids);
    // The old URL's state is refused before it reaches the CLI.
    await expect(rig.slots.submitCode(slotId, claudeCode(first))).rejects.toThrow(/current login URL/);

    const accepted = await rig.slots.submitCode(slotId, claudeCode(second));
    expect(accepted.answer).toBe('succeeded');
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.account).toBe('long-lived token');
    expect(active.expiresAt ?? 0).toBeGreaterThan(Date.now() + 364 * DAY);
    // Never refreshed: the first check is at the 30-day notice.
    expect(Math.abs((active.nextRefreshAt ?? 0) - ((active.expiresAt ?? 0) - 30 * DAY))).toBeLessThan(60_000);

    const home = join(rig.slotsDir, slotId);
    expect((await stat(join(home, '.claude', 'setup-token.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(home, '.claude', 'setup-token.json'), 'utf8'))).toMatchObject({ oauthToken: TOKEN });
    expect(await readFile(join(home, '.agent.env'), 'utf8')).toContain(`CLAUDE_CODE_OAUTH_TOKEN=${TOKEN}`);
    // The CLI never exits by itself; the slot closed it.
    await expectNoProcesses(rig.slotsDir, slotId);

    const history = await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory();
    const places = {
      // Payloads decoded (no codec here: they are plain JSON in base64).
      history: JSON.stringify(history, (key, v: unknown) =>
        v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : key === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v,
      ),
      status: JSON.stringify(await rig.slots.status(slotId)),
      statusFile: await readFile(join(home, 'slot-status.json'), 'utf8'),
    };
    // The search can find what it looks for: the token's own file holds it.
    expect(await readFile(join(home, '.claude', 'setup-token.json'), 'utf8')).toContain('PLANTEDsetupTOKEN');
    for (const [place, text] of Object.entries(places)) {
      expect(text.includes('PLANTEDsetupTOKEN'), `${place} holds the token`).toBe(false);
      expect(text.includes('sk-ant-oat01'), `${place} holds a token`).toBe(false);
    }
    // The history did carry the operator's codes (it is searched for real).
    expect(places.history.includes('not-the-code#')).toBe(true);
  }, 60_000);

  it('slotctl provision --adopt takes a token from stdin on the slot host: active, no login, the token only in the slot', async () => {
    const slotId = uniqueName('st-adopt');
    const adopted = `sk-ant-oat01-${'ADOPTEDtoken'.repeat(7)}-yyAA`;
    const env = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName, SLOTS_DIR: rig.slotsDir };
    const out: string[] = [];
    const run = (argv: string[], stdin: string) =>
      slotctl(argv, { out: (t) => out.push(t), err: (t) => out.push(t), readStdin: async () => stdin, stdinIsTTY: false }, env);

    // Not a token: refused before anything is created, without echoing the input.
    expect(await run(['provision', slotId, '--provider', 'claude-setup-token', '--adopt'], 'my-secret-paste\n')).toBe(2);
    expect(out.join('\n')).toMatch(/expected one Claude long-lived token \(sk-ant-oat01-…/);
    expect(out.join('\n')).not.toContain('my-secret-paste');

    expect(await run(['provision', slotId, '--provider', 'claude-setup-token', '--adopt', '--json'], `${adopted}\n`)).toBe(0);
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin', 'awaiting-operator']);
    expect(active.phase).toBe('active');
    expect(active.logins).toBe(0);
    expect(active.account).toBe('long-lived token (adopted)');
    const home = join(rig.slotsDir, slotId);
    expect((await stat(join(home, '.claude', 'setup-token.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(home, '.claude', 'setup-token.json'), 'utf8'))).toMatchObject({ oauthToken: adopted, source: 'adopted' });
    expect(await readFile(join(home, '.agent.env'), 'utf8')).toContain(`CLAUDE_CODE_OAUTH_TOKEN=${adopted}`);
    // Taken out of the inbox.
    await expect(stat(join(rig.slotsDir, '.adopt-inbox', `${slotId}.json`))).rejects.toThrow(/ENOENT/);

    const history = await rig.slots.client.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory();
    const text = JSON.stringify(history, (key, v: unknown) => (key === 'data' && typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : v));
    expect(text.includes('adoptExisting')).toBe(true);
    expect(text.includes('ADOPTEDtoken')).toBe(false);
    expect(out.join('\n').includes('ADOPTEDtoken')).toBe(false);
  }, 60_000);
});
