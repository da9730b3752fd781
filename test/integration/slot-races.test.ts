// The races of the child-workflow design, each reproduced on the real dev server
// with fixture CLIs and a real token server. With one workflow as the only
// authority none of them can happen; each test fails on the child-workflow code.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { submitCodeSignal, cancelLoginSignal } from '../../common/messages';
import { slotWorkflowId } from '../../common/slot';
import { uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { claudeCode, expectNoProcesses, startSlotRig, stateOf, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('one slot workflow, no races', () => {
  let rig: SlotRig;
  let server: TokenServer;

  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: server.claudeTokenUrl });
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
  });

  const handle = (slotId: string) => rig.slots.client.workflow.getHandle(slotWorkflowId(slotId));

  /** A slot adopted from a credential the token server knows. */
  async function adoptedSlot(prefix: string, extra: Record<string, unknown> = {}) {
    const slotId = uniqueName(prefix);
    const issued = server.issue();
    await writeSecretFileAtomic(
      await ensureSlotHome(rig.slotsDir, slotId),
      '.claude/.credentials.json',
      JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
    );
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: extra });
    return { slotId, issued };
  }

  it('a code signal or cancel landing as the login ends never fails the slot', async () => {
    const slotId = uniqueName('end-race');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const code = claudeCode(waiting);
    const h = handle(slotId);
    await rig.slots.submitCode(slotId, code);
    // The Web UI's double submit, and an impatient cancel, fired while the login finishes
    // (verification, the first refresh check): the moment a login child used to end.
    let burst = true;
    const firing = (async () => {
      while (burst) {
        await Promise.all([h.signal(submitCodeSignal, { code }), h.signal(cancelLoginSignal)]).catch(() => undefined);
        await sleep(15);
      }
    })();
    const settled = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    burst = false;
    await firing;
    expect((await h.describe()).status.name).toBe('RUNNING');
    // The CLI had taken the code: the login stands, and the slot says why the late messages were not used.
    expect(settled.phase).toBe('active');
    expect(settled.logins).toBe(1);
    // A refusal during the burst may have been cleared by the first refresh's success; one more
    // pair after the login ended is refused for certain, and the slot says why.
    await Promise.all([h.signal(submitCodeSignal, { code }), h.signal(cancelLoginSignal)]);
    const { status: after } = await rig.slots.waitFor(slotId, (s) => s.lastError !== undefined, { timeoutMs: 10_000, pollMs: 50 });
    expect((await h.describe()).status.name).toBe('RUNNING');
    expect(after.phase).toBe('active');
    expect(after.lastError).toMatch(/(a submitted code|cancelLogin) was not used: /);
    // A refused code is a code not used; a refused cancelLogin a request refused.
    expect(after.lastOutcome?.kind).toBe(after.lastError?.startsWith('cancelLogin') ? 'request-refused' : 'code-not-used');
    await expectNoProcesses(rig.slotsDir, slotId);
    await rig.slots.retire(slotId);
  });

  it('a code for the URL being replaced is refused, never typed into the next CLI', async () => {
    const slotId = uniqueName('restart-race');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, login: { maxBadCodes: 2 } });
    const first = await waitForPrompt(rig.slots, slotId);
    const oldUrlCode = claudeCode(first);
    // The CLI rejects the first code and must be restarted; meanwhile a second operator
    // (or a retry) sends a code for the URL that is going away.
    await rig.slots.submitCode(slotId, `wrong#${stateOf(first.prompt.url)}`);
    // As soon as the rejection shows, before the new URL does.
    await rig.slots.waitFor(slotId, (s) => /Invalid code/.test(s.lastError ?? ''), { timeoutMs: 20_000, pollMs: 10 });
    await handle(slotId).signal(submitCodeSignal, { code: oldUrlCode });
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    expect(second.prompt.url).not.toBe(first.prompt.url);
    const refused = await rig.slots.status(slotId);
    expect(refused.lastOutcome?.kind === 'code-not-used' || /not used/.test(refused.lastError ?? '') || refused.lastOutcome?.kind === 'login-restarted').toBe(true);
    // One bad code so far: a code for the new URL completes the login (maxBadCodes is 2).
    await rig.slots.submitCode(slotId, claudeCode(second));
    const done = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin']);
    expect(done.lastOutcome?.message ?? '').not.toMatch(/2 codes were rejected/);
    expect(done.phase).toBe('active');
    // What was typed: the bad code, then the new URL's code; never the old URL's code.
    const typed = (await readFile(rig.inputLog, 'utf8')).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { data: string }).data).join('');
    expect(typed).not.toContain(oldUrlCode);
    await rig.slots.retire(slotId);
  });

  it('retire during a login ends it within seconds and closes the CLI', async () => {
    const slotId = uniqueName('retire-race');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    await waitForPrompt(rig.slots, slotId);
    const asked = Date.now();
    await rig.slots.retire(slotId, { removeFiles: true });
    const result = await handle(slotId).result();
    expect(Date.now() - asked).toBeLessThan(10_000);
    expect(result.phase).toBe('retired');
    expect(result.lastOutcome?.message).toMatch(/retired; .*the slot home was moved to the trash on host/);
    await expectNoProcesses(rig.slotsDir, slotId);
  });

  it('relogin during a login replaces it with a new URL at once', async () => {
    const slotId = uniqueName('relogin-race');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const first = await waitForPrompt(rig.slots, slotId);
    await rig.slots.relogin(slotId);
    const second = await waitForPrompt(rig.slots, slotId, first.prompt.url);
    expect(second.logins).toBe(2);
    await rig.slots.submitCode(slotId, claudeCode(second));
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    await rig.slots.retire(slotId);
  });

  it('a relogin asked by a permanent failure survives continue-as-new', async () => {
    // Every pass of the main loop continues as new: the request must travel with the state.
    const { slotId, issued } = await adoptedSlot('can-race', { maxHistoryEvents: 1 });
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    const firstRun = (await handle(slotId).describe()).runId;
    server.revoke(issued.refreshToken);
    await rig.slots.refreshNow(slotId);
    const waiting = await waitForPrompt(rig.slots, slotId);
    expect(waiting.lastOutcome?.message ?? waiting.lastError ?? '').toBeDefined();
    expect((await handle(slotId).describe()).runId).not.toBe(firstRun);
    expect(waiting.logins).toBe(1);
    await rig.slots.retire(slotId);
  });

  it('a relogin during a refresh waits for the token write, so the rotated token is kept', async () => {
    const { slotId, issued } = await adoptedSlot('write-race');
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    const before = server.requests.length;
    server.script([{ delayMs: 3000 }]);
    await rig.slots.refreshNow(slotId);
    // The refresh's own request: an earlier test's retire may still be revoking its slot's token here.
    const refreshRequest = () => server.requests.slice(before).find((r) => r.grantType === 'refresh_token');
    while (refreshRequest() === undefined) await sleep(20);
    const request = refreshRequest() as (typeof server.requests)[number];
    await rig.slots.relogin(slotId);
    // The new login may start only once the refresh has written what the server rotated.
    const { status } = await rig.slots.waitFor(slotId, (s) => s.phase === 'logging-in' || s.phase === 'awaiting-operator', { timeoutMs: 20_000, pollMs: 20 });
    expect(request.status).toBe(200);
    expect(['logging-in', 'awaiting-operator']).toContain(status.phase);
    const grant = server.grant(issued.grantId);
    const onDisk = JSON.parse(await readFile(join(rig.slotsDir, slotId, '.claude', '.credentials.json'), 'utf8')) as { claudeAiOauth: { refreshToken: string } };
    expect(grant?.rotations).toBe(1);
    expect(onDisk.claudeAiOauth.refreshToken).toBe(grant?.refreshToken);
    await rig.slots.retire(slotId);
  });

  it('a signal with bad input is explained in the status, and the slot carries on', async () => {
    const slotId = uniqueName('bad-signal');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const h = handle(slotId);
    await h.signal(submitCodeSignal, { code: 42 } as never);
    await h.signal(submitCodeSignal, { code: `abc\u001b[2J#${stateOf(waiting.prompt.url)}` });
    const { status } = await rig.slots.waitFor(slotId, (s) => /control characters/.test(s.lastError ?? ''), { timeoutMs: 10_000, pollMs: 50 });
    expect(status.phase).toBe('awaiting-operator');
    expect(status.prompt?.url).toBe(waiting.prompt.url);
    expect((await h.describe()).status.name).toBe('RUNNING');
    await rig.slots.submitCode(slotId, claudeCode(waiting));
    expect((await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'])).phase).toBe('active');
    await rig.slots.retire(slotId);
  });
});
