// Slot logins driven through the REAL agent CLIs (npm `@anthropic-ai/claude-code`,
// `@openai/codex`), on a machine without internet, as CI is. They run only when
// REAL_CLAUDE_BIN / REAL_CODEX_BIN point at the executables (test/real-clis.sh
// installs them and prints the exports). Offline, neither login can succeed: these
// tests pin down that the fixtures' failure paths are the real ones.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueName } from '../harness';
import { expectNoProcesses, processesOfSlot, stateOf, waitForPhase, waitForPrompt, type SlotRig, startSlotRig } from '../slot-fixtures';

const REAL_CLAUDE_BIN = process.env.REAL_CLAUDE_BIN ?? '';
const REAL_CODEX_BIN = process.env.REAL_CODEX_BIN ?? '';

describe.skipIf(!REAL_CLAUDE_BIN)('real Claude Code (REAL_CLAUDE_BIN)', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    // The provider sets DISABLE_AUTOUPDATER=1 for the CLI; without it the CLI reinstalls itself globally.
    rig = await startSlotRig({ CLAUDE_BIN: REAL_CLAUDE_BIN });
  });
  afterAll(async () => rig?.close());

  it('shows the real authorize URL, and reports the failed token exchange of a pasted code', async () => {
    const slotId = uniqueName('real-claude');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const url = new URL(waiting.prompt.url);
    expect(`${url.origin}${url.pathname}`).toBe('https://claude.com/cai/oauth/authorize');
    expect(url.searchParams.get('code')).toBe('true');
    expect(url.searchParams.get('client_id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(stateOf(waiting.prompt.url)).toMatch(/^[\w-]{43}$/);
    expect(waiting.prompt.interaction).toBe('paste-code');
    expect((await processesOfSlot(rig.slotsDir, slotId)).length).toBeGreaterThan(0);

    // Right form, made-up code: the real CLI sends it to the token endpoint, which it cannot reach.
    await rig.slots.submitCode(slotId, `somecode#${stateOf(waiting.prompt.url)}`);
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
    expect(failed.phase).toBe('needs-relogin');
    expect(failed.lastOutcome?.kind).toBe('login-failed');
    expect(failed.lastOutcome?.message).toMatch(/^login failed: Login failed: \S.*\. Run `slotctl relogin /);
    expect(failed.lastOutcome?.message).not.toContain('somecode');
    // The real CLI's leftovers are there; none of them is a credential.
    await expect(stat(join(rig.slotsDir, slotId, '.claude', '.claude.json'))).resolves.toBeTruthy();
    await expect(stat(join(rig.slotsDir, slotId, '.claude', '.credentials.json'))).rejects.toThrow(/ENOENT/);
    await expectNoProcesses(rig.slotsDir, slotId);
    expect(rig.workers.sessions.size).toBe(0);
  });

  it('cancelling a login ends the real CLI and everything it started', async () => {
    const slotId = uniqueName('real-claude-cancel');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, slotId);
    expect((await processesOfSlot(rig.slotsDir, slotId)).length).toBeGreaterThan(0);
    await rig.slots.cancelLogin(slotId);
    const cancelled = await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    expect(cancelled.lastOutcome?.message).toMatch(/cancelled by an operator/);
    await expectNoProcesses(rig.slotsDir, slotId);
  });
});

describe.skipIf(!REAL_CODEX_BIN)('real Codex CLI (REAL_CODEX_BIN)', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig({ CODEX_BIN: REAL_CODEX_BIN });
  });
  afterAll(async () => rig?.close());

  it('says device-code login is unavailable and quotes codex when it cannot reach the server', async () => {
    const slotId = uniqueName('real-codex');
    await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName });
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active', 'awaiting-operator']);
    expect(failed.phase).toBe('needs-relogin');
    expect(failed.prompt).toBeUndefined();
    expect(failed.lastOutcome?.kind).toBe('login-failed');
    expect(failed.lastOutcome?.message).toMatch(
      /device-code login is unavailable: .*codex said: Error logging in: error sending request for url \(https:\/\/auth\.openai\.com\/api\/accounts\/deviceauth\/usercode\)/,
    );
    await expect(stat(join(rig.slotsDir, slotId, '.codex', 'auth.json'))).rejects.toThrow(/ENOENT/);
    await expectNoProcesses(rig.slotsDir, slotId);
  });
});
