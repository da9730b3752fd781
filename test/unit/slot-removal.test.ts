// Removing a slot's files while a hostile agent swaps a directory in the slot's agent/
// tree for a symlink to another slot's files (issue 23, finding 5): the activity moves the
// home into the host's trash (rename, no walk), and emptying the trash walks by
// descriptor. A real agent process swaps as fast as it can; the other slot loses nothing.
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCredentialActivities } from '../../activities/credential';
import { ensureSlotHome } from '../../activities/credential-store';
import { checkSlotRequest } from '../../activities/slot-record';
import { listTrash, readTombstone, removeTrashed, TRASH_DIR } from '../../activities/slot-trash';

const quiet = new DefaultLogger('ERROR');
const FILES = 300;
const TRIALS = 12;
const names = Array.from({ length: FILES }, (_, i) => `f${i}`);
let slotsDir: string;
let agents: ChildProcess[] = [];

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'slot-removal-'));
});
afterEach(async () => {
  for (const agent of agents) agent.kill('SIGKILL');
  agents = [];
  await rm(slotsDir, { recursive: true, force: true });
});

/** The agent: swaps `dir` for a symlink to `target` and back, in a tight loop, until killed. */
function startSwapper(dir: string, target: string): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs');
    const [dir, target] = process.argv.slice(1);
    const real = dir + '.real';
    process.stdout.write('ready\\n');
    for (;;) {
      try { fs.renameSync(dir, real); } catch { continue; }
      try { fs.symlinkSync(target, dir); } catch {}
      // Long enough as a symlink for a walk by path to step through it.
      const until = process.hrtime.bigint() + 300000n;
      while (process.hrtime.bigint() < until) {}
      try { fs.unlinkSync(dir); } catch {}
      try { fs.renameSync(real, dir); } catch {}
    }`;
  const child = spawn(process.execPath, ['-e', script, dir, target], { stdio: ['ignore', 'pipe', 'ignore'] });
  agents.push(child);
  return new Promise((resolve) => child.stdout?.once('data', () => resolve(child)));
}

const stop = async (child: ChildProcess): Promise<void> => {
  child.kill('SIGKILL');
  await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
};

/** Slot `victim`'s files, named like the agent's, and slot `slotId`'s home with the agent's tree. */
async function plant(slotId: string): Promise<{ victimDir: string; swapped: string }> {
  const victimDir = join(await ensureSlotHome(slotsDir, 'victim'), '.oidc');
  await mkdir(victimDir, { recursive: true });
  for (const name of names) await writeFile(join(victimDir, name), 'the victim\'s', { flag: 'w' });
  const home = await ensureSlotHome(slotsDir, slotId);
  const swapped = join(home, 'agent', 'd1', 'd2', 'x');
  await mkdir(swapped, { recursive: true });
  for (const name of names) await writeFile(join(swapped, name), 'the agent\'s');
  return { victimDir, swapped };
}

const env = (workflowId: string): MockActivityEnvironment => new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'run-1' }, workflowType: 'slotWorkflow' }, { logger: quiet });

describe('removing a slot home under a symlink-swapping agent', () => {
  it("retire --remove-files and a move's clean-up never delete another slot's files", async () => {
    const { removeSlotFiles } = createCredentialActivities({ slotsDir });
    const left: string[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      const slotId = `swap-${trial}`;
      const { victimDir, swapped } = await plant(slotId);
      await env(`slot:${slotId}`).run(checkSlotRequest, { slotsDir }, { slotId, provider: 'claude' });
      const agent = await startSwapper(swapped, victimDir);
      await env(`slot:${slotId}`).run(removeSlotFiles, { slotId }).catch(() => undefined);
      await stop(agent);
      expect((await readdir(victimDir)).sort(), `trial ${trial}: the other slot's files`).toEqual([...names].sort());
      if (await stat(join(slotsDir, slotId)).then(() => true, () => false)) left.push(slotId);
    }
    // And each home did go (into the trash).
    expect(left).toEqual([]);
  }, 120_000);

  it('emptying the trash walks by descriptor: the other slot keeps every file, the trashed home goes', async () => {
    const { removeSlotFiles } = createCredentialActivities({ slotsDir });
    for (let trial = 0; trial < TRIALS / 2; trial++) {
      const slotId = `empty-${trial}`;
      const { victimDir } = await plant(slotId);
      await env(`slot:${slotId}`).run(removeSlotFiles, { slotId });
      const tombstone = await readTombstone(slotsDir, slotId);
      const trashed = tombstone !== undefined && tombstone !== 'damaged' ? tombstone.trashed! : '';
      // The agent keeps going in the trashed tree (its working directory moved with it).
      const agent = await startSwapper(join(slotsDir, TRASH_DIR, trashed, 'agent', 'd1', 'd2', 'x'), victimDir);
      await removeTrashed(slotsDir, trashed).catch(() => undefined);
      await stop(agent);
      expect((await readdir(victimDir)).sort(), `trial ${trial}: the other slot's files`).toEqual([...names].sort());
      // Once the agent is gone the rest goes too.
      await removeTrashed(slotsDir, trashed);
      expect(await listTrash(slotsDir)).not.toContain(trashed);
    }
  }, 120_000);
});

describe('retiring a slot home', () => {
  it('a retried retire whose first attempt went through finds it done, not refused', async () => {
    const { retireSlotHome } = createCredentialActivities({ slotsDir });
    const slotId = 'retire-twice';
    await env(`slot:${slotId}`).run(checkSlotRequest, { slotsDir }, { slotId, provider: 'claude' });
    await ensureSlotHome(slotsDir, slotId);
    const first = (await env(`slot:${slotId}`).run(retireSlotHome, { slotId })) as { already: boolean };
    expect(first.already).toBe(false);
    // The first attempt's result was lost (a timeout, a worker restart): the activity runs again.
    const again = await env(`slot:${slotId}`).run(retireSlotHome, { slotId });
    expect(again).toEqual({ ...first, already: true });
    // Another workflow is still refused, and so is another run of the slot's workflow id (a retired slot is the host's).
    await expect(env('not-the-slot').run(retireSlotHome, { slotId })).rejects.toMatchObject({ type: 'SlotRequestRefused' });
    const otherRun = new MockActivityEnvironment({ workflowExecution: { workflowId: `slot:${slotId}`, runId: 'run-2' }, workflowType: 'slotWorkflow' }, { logger: quiet });
    await expect(otherRun.run(retireSlotHome, { slotId })).rejects.toMatchObject({ type: 'SlotRequestRefused' });
  });
});
