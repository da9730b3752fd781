// The one entry of host activities: the request checks run before anything else (a
// refused workflow learns nothing about the provider or the files), a provider that
// cannot be built is a problem for the caller to word, and the credential reader tells
// a missing, symlinked, torn and foreign file apart without quoting any of it.
// Real files in a slot home; the activity context as a worker gives it.
import type { Info } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openRecordedSlot, openSlot, type CredentialRead, type OpenSlotInput, type SlotOpening } from '../../activities/open-slot';
import { FailureType } from '../../common/failures';
import { getProvider } from '../../providers';

const quiet = new DefaultLogger('ERROR');
const CLAUDE_FILE = getProvider('claude').credential.file;
const SECRET = 'sk-ant-ort01-planted-refresh-token-0123456789';
let slotsDir: string;

beforeEach(async () => {
  slotsDir = await mkdtemp(join(tmpdir(), 'open-slot-'));
});
afterEach(async () => {
  await rm(slotsDir, { recursive: true, force: true });
});

const asWorkflow = (workflowId: string): Partial<Info> => ({ workflowExecution: { workflowId, runId: 'run-1' }, workflowType: 'slotWorkflow' });

/** `openSlot` as an activity of workflow `workflowId` (default `slot:<id>`) calls it. */
const open = (input: OpenSlotInput, workflowId = `slot:${input.slotId}`): Promise<SlotOpening> =>
  new MockActivityEnvironment(asWorkflow(workflowId), { logger: quiet }).run(openSlot, { slotsDir, env: {} }, input);

async function seed(slotId: string, rel: string, text: string): Promise<void> {
  const path = join(slotsDir, slotId, rel);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFile(path, text, { mode: 0o600 });
}

const claudeCredential = { claudeAiOauth: { accessToken: SECRET, refreshToken: SECRET, expiresAt: 1_900_000_000_000, scopes: ['user:inference'] } };

describe('openSlot', () => {
  it('refuses another workflow before building the provider or touching the home (SlotRequestRefused, whatever the provider)', async () => {
    for (const provider of ['claude', 'no-such-provider']) {
      const refused = await open({ slotId: 'a', provider }, 'slot:b').catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(ApplicationFailure);
      expect((refused as ApplicationFailure).type).toBe(FailureType.slotRequestRefused);
      expect((refused as ApplicationFailure).message).toContain('only the workflow slot:a may act on this slot');
    }
    expect(await readdir(slotsDir)).toEqual([]);
  });

  it('names a provider it cannot build as a problem for the caller, and creates nothing', async () => {
    const opening = await open({ slotId: 'a', provider: 'no-such-provider' });
    expect(opening.ok).toBe(false);
    expect(opening.ok ? '' : opening.problem).toMatch(/no-such-provider/);
    const badConfig = await open({ slotId: 'b', provider: 'oidc-device', providerConfig: { issuer: 'not a url' } });
    expect(badConfig.ok).toBe(false);
    expect(await readdir(slotsDir)).toEqual([]);
  });

  it('opens the slot with its provider and home; the home is not created', async () => {
    const opening = await open({ slotId: 'a', provider: 'claude' });
    if (!opening.ok) throw new Error(opening.problem);
    expect(opening.slot).toMatchObject({ slotId: 'a', home: join(slotsDir, 'a') });
    expect(opening.slot.provider.name).toBe('claude');
    const read = await opening.slot.readCredential();
    expect(read).toMatchObject({ kind: 'unread', reason: 'missing' });
  });
});

describe("an open slot's credential reader", () => {
  async function readAs(text: string | undefined, prepare?: (home: string) => Promise<void>): Promise<CredentialRead> {
    const opening = await open({ slotId: 'a', provider: 'claude' });
    if (!opening.ok) throw new Error(opening.problem);
    if (text !== undefined) await seed('a', CLAUDE_FILE, text);
    await prepare?.(opening.slot.home);
    return opening.slot.readCredential();
  }

  it('parses a credential with the provider schema', async () => {
    const read = await readAs(JSON.stringify(claudeCredential));
    expect(read.kind).toBe('parsed');
    if (read.kind === 'parsed') expect(read.credential).toMatchObject({ claudeAiOauth: { expiresAt: 1_900_000_000_000 } });
  });

  it('tells torn JSON from a file of another shape, and keeps the stat for the caller to check first', async () => {
    const torn = await readAs(`{"claudeAiOauth":{"refreshToken":"${SECRET}"`);
    expect(torn.kind).toBe('not-json');
    if (torn.kind === 'not-json') expect(torn.stat.size).toBeGreaterThan(0);
    const foreign = await readAs(JSON.stringify({ claudeAiOauth: { refreshToken: SECRET } }));
    expect(foreign.kind).toBe('invalid');
    // The issues name fields, never the values (which are tokens).
    if (foreign.kind === 'invalid') expect(JSON.stringify(foreign.issues)).not.toContain(SECRET);
  });

  it('never follows a credential file planted as a symlink', async () => {
    const outside = join(slotsDir, 'outside.json');
    await writeFile(outside, JSON.stringify(claudeCredential), { mode: 0o600 });
    const read = await readAs(undefined, async (home) => {
      await mkdir(dirname(join(home, CLAUDE_FILE)), { recursive: true, mode: 0o700 });
      await symlink(outside, join(home, CLAUDE_FILE));
    });
    expect(read).toMatchObject({ kind: 'unread', reason: 'symlink' });
  });

  it('with requirePrivate, refuses a file others may read', async () => {
    const opening = await open({ slotId: 'a', provider: 'claude' });
    if (!opening.ok) throw new Error(opening.problem);
    await seed('a', CLAUDE_FILE, JSON.stringify(claudeCredential));
    await chmod(join(opening.slot.home, CLAUDE_FILE), 0o644);
    expect((await opening.slot.readCredential()).kind).toBe('parsed');
    expect(await opening.slot.readCredential({ requirePrivate: true })).toMatchObject({ kind: 'unread', reason: 'unsafe-mode' });
  });
});

describe('openRecordedSlot (the worker\'s own services)', () => {
  it('opens only what the host recorded: no record, no slot', async () => {
    expect(await openRecordedSlot(slotsDir, 'a')).toEqual({ ok: false, kind: 'no-record' });
    // The first request naming a provider records it; from then on the record decides.
    await open({ slotId: 'a', provider: 'claude' });
    const opening = await openRecordedSlot(slotsDir, 'a');
    expect(opening.ok && opening.slot.provider.name).toBe('claude');
  });
});
