// Slot logins end to end on the real dev server, with fixture CLIs under real PTYs.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodeRejectedError, SlotExistsError, SlotInputError } from '../../client/slot-client';
import { uniqueName } from '../harness';
import {
  answerDevice,
  claudeCode,
  expectNoProcesses,
  processesOfSlot,
  startSlotRig,
  stateOf,
  waitForPhase,
  waitForPrompt,
  type SlotRig,
} from '../slot-fixtures';

describe('Claude login', () => {
  let rig: SlotRig;
  beforeAll(async () => {
    rig = await startSlotRig();
  });
  afterAll(async () => rig?.close());

  it('provisions a slot: prompt → code → verified credential → active, with no process left', async () => {
    const slotId = uniqueName('claude');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(waiting.prompt.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?code=true&client_id=.*&state=[\w-]{43}$/);
    expect(waiting.prompt.interaction).toBe('paste-code');
    expect(waiting.prompt.expiresAt - Date.now()).toBeGreaterThan(25 * 60_000);
    expect(waiting.prompt.instructions).toContain(waiting.prompt.url);

    const accepted = await rig.slots.submitCode(slotId, claudeCode(waiting));
    // The first attempt of the first login; the CLI's own verdict comes back with the update.
    expect(accepted.login).toMatch(new RegExp(`^${slotId}:[0-9a-f-]{8}:1\\.0$`));
    expect(accepted.answer).toBe('succeeded');
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.prompt).toBeUndefined();
    expect(active.lastOutcome?.kind).toBe('login-succeeded');
    expect(active.expiresAt).toBeGreaterThan(Date.now() + 7 * 3600_000);
    expect(active.account).toBe('max subscription');

    const home = join(rig.slotsDir, slotId);
    const file = join(home, '.claude', '.credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(home, '.claude'))).mode & 0o777).toBe(0o700);
    expect((await stat(home)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file, 'utf8')).claudeAiOauth.accessToken).toMatch(/^sk-ant-oat01-/);
    await expectNoProcesses(rig.slotsDir, slotId);
    expect(rig.workers.sessions.size).toBe(0);
  });

  it('shows the CLI\'s own error after a bad code, restarts it with a new URL, then accepts a good code', async () => {
    const slotId = uniqueName('claude-bad');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    const oldPids = await processesOfSlot(rig.slotsDir, slotId);
    expect(oldPids.length).toBeGreaterThan(0);

    // Right form and state, wrong code: only the CLI can tell.
    await rig.slots.submitCode(slotId, `not-the-code#${stateOf(first.prompt.url)}`);
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    expect(second.lastError).toBe('Invalid code. Please make sure the full code was copied.');
    expect(second.lastOutcome?.kind).toMatch(/code-rejected|login-restarted/);
    expect(stateOf(second.prompt.url)).not.toBe(stateOf(first.prompt.url));
    // The hung CLI was killed, not left behind.
    const nowPids = await processesOfSlot(rig.slotsDir, slotId);
    expect(nowPids.filter((pid) => oldPids.includes(pid))).toEqual([]);

    // A code for the old URL is refused before it reaches the CLI.
    await expect(rig.slots.submitCode(slotId, claudeCode(first))).rejects.toThrow(/expected form.*current login URL/);

    await rig.slots.submitCode(slotId, claudeCode(second));
    const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(active.phase).toBe('active');
    expect(active.lastError).toBeUndefined();
    await expectNoProcesses(rig.slotsDir, slotId);
  });

  it('gives up after the allowed number of bad codes with a clear reason', async () => {
    const slotId = uniqueName('claude-3bad');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, login: { maxBadCodes: 2 } });
    let prompt = await waitForPrompt(rig.slots, slotId);
    await rig.slots.submitCode(slotId, `wrong#${stateOf(prompt.prompt.url)}`);
    prompt = await waitForPrompt(rig.slots, slotId, prompt.prompt.url);
    await rig.slots.submitCode(slotId, `wrong-again#${stateOf(prompt.prompt.url)}`);
    const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    expect(failed.lastOutcome?.message).toMatch(/2 codes were rejected; last answer: Invalid code/);
    expect(failed.lastOutcome?.message).toContain(`slotctl relogin ${slotId}`);
    await expectNoProcesses(rig.slotsDir, slotId);
  });

  it('refuses malformed codes at once, naming the problem and never the code', async () => {
    const slotId = uniqueName('claude-refuse');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const state = stateOf(waiting.prompt.url);
    const cases: Array<[string, RegExp]> = [
      ['', /code is empty/],
      [`abc\n#${state}`, /control characters/],
      [`abc\u001b[2J#${state}`, /control characters/],
      [` abc#${state}`, /leading or trailing spaces/],
      ['x'.repeat(5000), /longer than 2048/],
      ['no-state-here', /expected form: <code>#<state>/],
    ];
    for (const [code, problem] of cases) {
      const error = await rig.slots.submitCode(slotId, code).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(CodeRejectedError);
      expect((error as Error).message).toMatch(problem);
      if (code.length > 3) expect((error as Error).message).not.toContain(code);
    }
    // Still waiting on the same URL: nothing reached the CLI.
    const still = await rig.slots.status(slotId);
    expect(still.phase).toBe('awaiting-operator');
    expect(still.prompt?.url).toBe(waiting.prompt.url);
    await expect(rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName })).rejects.toBeInstanceOf(SlotExistsError);
    await rig.slots.cancelLogin(slotId);
    const cancelled = await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    expect(cancelled.lastOutcome?.message).toMatch(/cancelled by an operator/);
    await expectNoProcesses(rig.slotsDir, slotId);
  });

  it('rejects invalid slot ids and providers before asking the server', async () => {
    for (const bad of ['../etc', 'UPPER', 'a/b', '', 'a'.repeat(64), '-lead', 'dot.ted']) {
      await expect(rig.slots.provision({ slotId: bad, provider: 'claude', host: 'h' })).rejects.toThrow(SlotInputError);
    }
    await expect(rig.slots.provision({ slotId: 'ok-slot', provider: 'gemini', host: 'h' })).rejects.toThrow(
      /unknown provider "gemini"; known providers: claude, codex, oidc-device, claude-setup-token/,
    );
  });

  it('times out when no operator answers, and a relogin starts over with a new URL', async () => {
    const slotId = uniqueName('claude-timeout');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, login: { operatorTimeoutMs: 3000 } });
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(waiting.prompt.expiresAt - Date.now()).toBeLessThan(3500);
    const timedOut = await waitForPhase(rig.slots, slotId, ['needs-relogin']);
    expect(timedOut.lastOutcome?.message).toMatch(/no operator answered within 0 minutes; the login URL has expired/);
    expect(timedOut.lastOutcome?.message).toContain(`slotctl relogin ${slotId}`);
    await expectNoProcesses(rig.slotsDir, slotId);

    await rig.slots.relogin(slotId);
    const again = await waitForPrompt(rig.slots, slotId, waiting.prompt.url);
    expect(again.logins).toBe(2);
    await rig.slots.submitCode(slotId, claudeCode(again));
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
  });
});

describe('Claude login with a state of another length', () => {
  // `state` is the CLI's choice (claude 2.1.197 makes 43 characters): a release that makes
  // 32 must still log in, its URL read off a plain line and off a hard-wrapped box.
  for (const mode of ['', 'boxed']) {
    it(`logs in when the CLI prints a 32-character state${mode ? ` (${mode})` : ''}`, async () => {
      const rig = await startSlotRig({ FIXTURE_CLAUDE_STATE_BYTES: '24', ...(mode ? { FIXTURE_CLAUDE_MODE: mode } : {}) });
      try {
        const slotId = uniqueName('state32');
        await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
        const waiting = await waitForPrompt(rig.slots, slotId);
        expect(stateOf(waiting.prompt.url)).toMatch(/^[\w-]{32}$/);
        expect(waiting.prompt.url).toMatch(/&code_challenge=[\w-]{43}&code_challenge_method=S256&state=[\w-]{32}$/);
        const accepted = await rig.slots.submitCode(slotId, claudeCode(waiting));
        expect(accepted.answer).toBe('succeeded');
        expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
      } finally {
        await rig.close();
      }
    });
  }

  it('logs in with claude setup-token (its full-screen UI) when the CLI prints a 32-character state', async () => {
    const rig = await startSlotRig({ FIXTURE_CLAUDE_STATE_BYTES: '24' });
    try {
      const slotId = uniqueName('setup32');
      await rig.slots.provision({ slotId, provider: 'claude-setup-token', host: rig.workers.hostName });
      const waiting = await waitForPrompt(rig.slots, slotId);
      expect(waiting.prompt.url).toMatch(/&code_challenge=[\w-]{43}&code_challenge_method=S256&state=[\w-]{32}$/);
      expect((await rig.slots.submitCode(slotId, claudeCode(waiting))).answer).toBe('succeeded');
      expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    } finally {
      await rig.close();
    }
  });
});

describe('Claude login failures', () => {
  it('reports the CLI\'s error when the token exchange fails, and leaves no process', async () => {
    const rig = await startSlotRig({ FIXTURE_CLAUDE_OFFLINE: '1' });
    try {
      const slotId = uniqueName('claude-offline');
      await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
      const waiting = await waitForPrompt(rig.slots, slotId);
      await rig.slots.submitCode(slotId, claudeCode(waiting));
      const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
      expect(failed.phase).toBe('needs-relogin');
      expect(failed.lastOutcome?.message).toMatch(/Login failed: Request failed with status code 503/);
      // The failed CLI wrote its usual leftovers; none of them counts as a credential.
      await expect(stat(join(rig.slotsDir, slotId, '.claude', '.claude.json'))).resolves.toBeTruthy();
      await expect(stat(join(rig.slotsDir, slotId, '.claude', '.credentials.json'))).rejects.toThrow(/ENOENT/);
      await expectNoProcesses(rig.slotsDir, slotId);
    } finally {
      await rig.close();
    }
  });

  it('explains a CLI that exits before showing a URL', async () => {
    const rig = await startSlotRig({ FIXTURE_CLAUDE_MODE: 'exit-early' });
    try {
      const slotId = uniqueName('claude-early');
      await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
      const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
      expect(failed.lastOutcome?.message).toMatch(/claude exited with code 1 before showing a login URL: .*Failed to connect to api.anthropic.com: ENOTFOUND/);
      await expectNoProcesses(rig.slotsDir, slotId);
    } finally {
      await rig.close();
    }
  });

  it('ends the login when the CLI crashes while the operator is awaited', async () => {
    const rig = await startSlotRig({ FIXTURE_CLAUDE_MODE: 'crash' });
    try {
      const slotId = uniqueName('claude-crash');
      await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
      const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
      expect(failed.phase).toBe('needs-relogin');
      expect(failed.lastOutcome?.message).toMatch(/Claude Code was killed by signal 9/);
      await expectNoProcesses(rig.slotsDir, slotId);
    } finally {
      await rig.close();
    }
  });

  it('says plainly when the CLI is not installed', async () => {
    const rig = await startSlotRig({ CLAUDE_BIN: '/nonexistent/claude' });
    try {
      const slotId = uniqueName('claude-missing');
      await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
      const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
      expect(failed.lastOutcome?.message).toMatch(/cannot start \/nonexistent\/claude for Claude Code: not found or not executable on this host. Install it, or point CLAUDE_BIN at it/);
    } finally {
      await rig.close();
    }
  });
});

describe('Codex device login', () => {
  it('shows the device URL and user code, completes when the operator approves, verifies auth.json', async () => {
    const rig = await startSlotRig();
    try {
      const slotId = uniqueName('codex');
      await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName });
      const waiting = await waitForPrompt(rig.slots, slotId);
      expect(waiting.prompt.url).toBe('https://auth.openai.com/codex/device');
      expect(waiting.prompt.userCode).toMatch(/^[A-Z0-9]{4}-[A-Z0-9]{5}$/);
      expect(waiting.prompt.interaction).toBe('device-approval');
      expect(waiting.prompt.expiresAt - Date.now()).toBeLessThanOrEqual(15 * 60_000);
      // No code to paste in a device flow: the slot says what to do instead.
      await expect(rig.slots.submitCode(slotId, 'ABCD-12345')).rejects.toThrow(/this login needs no code: open https:\/\/auth.openai.com\/codex\/device and enter/);

      await answerDevice(rig, waiting.prompt.userCode as string, 'approve');
      const active = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
      expect(active.phase).toBe('active');
      expect(active.account).toBe('chatgpt login');
      expect(active.expiresAt).toBeGreaterThan(Date.now());
      const file = join(rig.slotsDir, slotId, '.codex', 'auth.json');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      await expectNoProcesses(rig.slotsDir, slotId);
    } finally {
      await rig.close();
    }
  });

  it('fails clearly when the operator denies the device', async () => {
    const rig = await startSlotRig();
    try {
      const slotId = uniqueName('codex-deny');
      await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName });
      const waiting = await waitForPrompt(rig.slots, slotId);
      await answerDevice(rig, waiting.prompt.userCode as string, 'deny');
      const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
      expect(failed.lastOutcome?.message).toMatch(/Error logging in: device auth failed/);
      await expectNoProcesses(rig.slotsDir, slotId);
    } finally {
      await rig.close();
    }
  });

  it('says that device login is unavailable when the CLI cannot get a device code', async () => {
    const rig = await startSlotRig({ FIXTURE_CODEX_APPROVALS: '' });
    try {
      const slotId = uniqueName('codex-offline');
      await rig.slots.provision({ slotId, provider: 'codex', host: rig.workers.hostName });
      const failed = await waitForPhase(rig.slots, slotId, ['needs-relogin', 'active']);
      expect(failed.lastOutcome?.message).toMatch(
        /device-code login is unavailable: .*codex said: Error logging in: error sending request for url \(https:\/\/auth.openai.com\/api\/accounts\/deviceauth\/usercode\)/,
      );
    } finally {
      await rig.close();
    }
  });
});
