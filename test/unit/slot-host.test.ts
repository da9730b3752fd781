// `slotctl host …` on a host's slots directory: what a retire left (tombstone, trashed
// home) is listed, brought back, freed and emptied by the host's operator, on the files.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCredentialActivities } from '../../activities/credential';
import { checkSlotRequest, SLOT_RECORD_FILE } from '../../activities/slot-record';
import { TOMBSTONES_DIR, TRASH_DIR } from '../../activities/slot-trash';
import { slotctl } from '../../cli/slotctl';

const quiet = new DefaultLogger('ERROR');
let slotsDir: string;
beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'slot-host-'));
});
afterEach(async () => {
  await rm(slotsDir, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (t: string) => void (out += `${t}\n`), err: (t: string) => void (err += `${t}\n`), readStdin: async () => '', stdinIsTTY: false };
  const code = await slotctl(argv, io, { SLOTS_DIR: slotsDir, PATH: process.env.PATH });
  return { code, out, err };
}

const asSlot = (slotId: string): MockActivityEnvironment => new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${slotId}`, runId: 'run-1' }, workflowType: 'slotWorkflow' }, { logger: quiet });

/** A claude slot with a credential file, retired as its workflow does it. */
async function retired(slotId: string): Promise<void> {
  await asSlot(slotId).run(checkSlotRequest, { slotsDir }, { slotId, provider: 'claude' });
  await writeFile(join(slotsDir, slotId, '.credentials.json'), '{"secret": "kept"}', { mode: 0o600 });
  const { retireSlotHome } = createCredentialActivities({ slotsDir });
  await asSlot(slotId).run(retireSlotHome, { slotId, removeFiles: true });
}

describe('slotctl host', () => {
  it('lists, un-retires, frees and empties, and a workflow is refused in between', async () => {
    await retired('a');
    await retired('b');
    const listed = JSON.parse((await run(['host', 'retired', '--json'])).out) as { retired: Array<{ slotId: string; kind: string; removeFilesAsked?: boolean }>; trash: string[] };
    expect(listed.retired.map((t) => [t.slotId, t.kind, t.removeFilesAsked])).toEqual([['a', 'retired', true], ['b', 'retired', true]]);
    expect(listed.trash).toHaveLength(2);
    expect((await run(['host', 'retired'])).out).toMatch(/^a: retired .* by slot:a; pinned claude; home a\.\S+ \(files to be removed\)$/m);

    // a comes back as it was: its credential and its record (the pin).
    expect(await run(['host', 'unretire', 'a'])).toMatchObject({ code: 0, out: expect.stringContaining('slot a is no longer retired on this host; its home is back from the trash') });
    expect(await readFile(join(slotsDir, 'a', '.credentials.json'), 'utf8')).toBe('{"secret": "kept"}');
    expect(JSON.parse(await readFile(join(slotsDir, 'a', SLOT_RECORD_FILE), 'utf8'))).toMatchObject({ provider: 'claude' });
    await expect(asSlot('a').run(checkSlotRequest, { slotsDir }, { slotId: 'a', provider: 'codex' })).rejects.toThrow(/this host pinned the slot to provider claude/);

    // b's id is freed: the next slot b starts afresh; its old home waits in the trash.
    await expect(asSlot('b').run(checkSlotRequest, { slotsDir }, { slotId: 'b', provider: 'codex' })).rejects.toThrow(/the slot was retired on this host/);
    expect(await run(['host', 'reuse', 'b'])).toMatchObject({ code: 0, out: expect.stringContaining('slot id b is free on this host; its old home is still in the trash') });
    await asSlot('b').run(checkSlotRequest, { slotsDir }, { slotId: 'b', provider: 'codex' });
    expect(await readdir(join(slotsDir, TOMBSTONES_DIR))).toEqual([]);

    // Emptying: nothing is older than a day yet; then the old b goes, for good.
    expect(JSON.parse((await run(['host', 'empty-trash', '--older-than', '1', '--json'])).out)).toEqual({ removed: [], failed: [] });
    expect(JSON.parse((await run(['host', 'empty-trash', '--slot', 'a', '--json'])).out)).toEqual({ removed: [], failed: [] });
    expect(JSON.parse((await run(['host', 'empty-trash', '--older-than', '0', '--json'])).out)).toMatchObject({ removed: [expect.stringMatching(/^b\./)], failed: [] });
    expect(await readdir(join(slotsDir, TRASH_DIR))).toEqual([]);
    expect(await run(['host', 'unretire', 'b'])).toMatchObject({ code: 2, err: expect.stringContaining('slot b has no tombstone on this host') });
  });

  it('refuses to run where there are no slots', async () => {
    await rm(slotsDir, { recursive: true });
    expect(await run(['host', 'retired'])).toMatchObject({ code: 2, err: expect.stringContaining("slotctl host must run on the slot's host") });
    await expect(stat(slotsDir)).rejects.toThrow(/ENOENT/);
  });
});
