// Bulk actions by query on the real dev server: thirty active Claude slots selected
// by one visibility query are listed, refused without confirmation, then all sent
// relogin; every one shows a login URL, takes its code and is active again.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureSlotHome, writeSecretFileAtomic } from '../../activities/credential-store';
import { slotctl } from '../../cli/slotctl';
import type { SlotSummary } from '../../client/slot-client';
import { uniqueName } from '../harness';
import { startTokenServer, type TokenServer } from '../peers/token-server';
import { claudeCode, startSlotRig, waitForPhase, waitForPrompt, type SlotRig } from '../slot-fixtures';

const CLAUDE_CLIENT_ID = '9d1c250a-e61b-44d9-88ed-5944d1962f5e';
const FLEET = 30;

type Io = NonNullable<Parameters<typeof slotctl>[1]>;

describe('slotctl relogin|refresh|retire --where', () => {
  let rig: SlotRig;
  let server: TokenServer;
  let env: NodeJS.ProcessEnv;
  const run = async (argv: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string[] }> => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => stdin, stdinIsTTY: false };
    const code = await slotctl(argv, io, env);
    return { code, stdout: out.join('\n'), stderr: err };
  };

  beforeAll(async () => {
    server = await startTokenServer({ defaultClientId: CLAUDE_CLIENT_ID, accessTtlSec: 8 * 3600 });
    rig = await startSlotRig({ CLAUDE_TOKEN_URL: server.claudeTokenUrl });
    env = { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: rig.workers.sharedTaskQueue, SLOT_HOST: rig.workers.hostName };
  });
  afterAll(async () => {
    await rig?.close();
    await server?.close();
  });

  it('thirty slots, one query: dry run, confirmation, relogin, prompts, codes, all active', { timeout: 300_000 }, async () => {
    const fleet = Array.from({ length: FLEET }, (_, i) => uniqueName(`fleet${i}`));
    // Active by adopting credentials the token server issued: no login CLI yet.
    for (const slotId of fleet) {
      const issued = server.issue();
      await writeSecretFileAtomic(
        await ensureSlotHome(rig.slotsDir, slotId),
        '.claude/.credentials.json',
        JSON.stringify({ claudeAiOauth: { accessToken: issued.accessToken, refreshToken: issued.refreshToken, expiresAt: Date.now() + 8 * 3600_000, scopes: [] } }),
      );
      await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName, adoptExisting: true });
    }
    // A slot of the same host the query must not select: no credential to adopt, so it needs a relogin.
    const bystander = uniqueName('bystander');
    await rig.slots.provision({ slotId: bystander, provider: 'claude', host: rig.workers.hostName, adoptExisting: true, options: { onPermanentFailure: 'wait' } });
    for (const slotId of fleet) await waitForPhase(rig.slots, slotId, ['active'], 60_000);
    await waitForPhase(rig.slots, bystander, ['needs-relogin']);

    const where = `SlotHost='${rig.workers.hostName}' AND SlotProvider='claude' AND SlotPhase='active'`;
    // Visibility is eventually consistent: the dry run is asked until it lists the whole fleet.
    let listed: SlotSummary[] = [];
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      const dry = await run(['relogin', '--where', where, '--dry-run', '--json']);
      expect(dry.code).toBe(0);
      listed = (JSON.parse(dry.stdout) as { slots: SlotSummary[] }).slots;
      if (listed.length === FLEET) break;
    }
    expect(listed.map((s) => s.slotId).sort()).toEqual([...fleet].sort());
    const human = await run(['relogin', '--where', where, '--dry-run']);
    expect(human.stdout.split('\n')[0]).toBe(`would relogin ${FLEET} slots:`);

    // No confirmation, nothing done.
    const refused = await run(['relogin', '--where', where], 'n\n');
    expect(refused.code).toBe(1);
    expect(refused.stderr.join('\n')).toMatch(/relogin 30 slots .*\? \[y\/N\][\s\S]*not confirmed; nothing was done/);
    for (const slotId of fleet.slice(0, 3)) expect((await rig.slots.status(slotId)).logins).toBe(0);

    // A query the server cannot parse is a usage error naming it.
    const bad = await run(['relogin', '--where', "SlotPhase = 'active' AND AND", '--yes']);
    expect(bad.stderr.join('\n')).toMatch(/--where "SlotPhase = 'active' AND AND": the server refused the query/);
    expect(bad.code).toBe(2);

    const done = await run(['relogin', '--where', where, '--yes', '--json', '--concurrency', '5']);
    expect(done.code).toBe(0);
    const summary = JSON.parse(done.stdout) as { ok: boolean; action: string; done: number; failed: number; slots: Array<{ slotId: string; outcome: string }> };
    expect(summary).toMatchObject({ ok: true, action: 'relogin', dryRun: false, done: FLEET, failed: 0 });
    expect(summary.slots.map((s) => s.slotId).sort()).toEqual([...fleet].sort());
    // Progress, one line per slot, on stderr.
    expect(done.stderr.filter((l) => /^\[\d+\/30\] relogin \S+: done$/.test(l))).toHaveLength(FLEET);
    expect(done.stderr.at(-1)).toMatch(/^\[30\/30\]/);

    // Every slot shows its login URL and takes its code.
    for (const slotId of fleet) {
      const waiting = await waitForPrompt(rig.slots, slotId);
      await rig.slots.submitCode(slotId, claudeCode(waiting));
    }
    for (const slotId of fleet) {
      const status = await waitForPhase(rig.slots, slotId, ['active', 'needs-relogin'], 60_000);
      expect(status.phase).toBe('active');
      expect(status.logins).toBe(1);
    }
    // The bystander was not selected.
    expect((await rig.slots.status(bystander)).logins).toBe(0);

    // Retire by query, files kept.
    const retired = await run(['retire', '--where', `SlotHost='${rig.workers.hostName}'`, '--yes', '--json']);
    expect(JSON.parse(retired.stdout)).toMatchObject({ ok: true, action: 'retire', done: FLEET + 1, failed: 0 });
    for (const slotId of [...fleet, bystander]) await waitForPhase(rig.slots, slotId, ['retired']);
  });

  it('refuses a slot and --where together, and neither', async () => {
    const both = await run(['refresh', 'alpha', '--where', "SlotPhase='active'"]);
    expect(both.code).toBe(2);
    expect(both.stderr.join('\n')).toMatch(/give a slot or --where, not both/);
    const neither = await run(['retire']);
    expect(neither.code).toBe(2);
    expect(neither.stderr.join('\n')).toMatch(/give a slot, or --where/);
  });
});
