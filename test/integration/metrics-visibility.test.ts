// The slot gauges read visibility raw: one slot whose memo is sealed with a key this
// worker lacks, and slots whose search attributes are not a slot's (started by anyone
// who may start workflows), blind nothing. Slots are started on a queue nobody polls,
// so what visibility holds is exactly what the test wrote.
import { Client, type Connection } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotExpiresAtKey, SlotHostKey, SlotIdKey, SlotPhaseKey, SlotProviderKey } from '../../common/search-attributes';
import { slotWorkflowId } from '../../common/slot';
import { parseEncryptionKeys, slotDataConverter } from '../../client/encryption';
import { SlotMetrics } from '../../workers/metrics';
import { devServerClient, uniqueName } from '../harness';

const OTHER_TEAMS_KEY = `other2026:${Buffer.alloc(32, 7).toString('base64')}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The value of one series in exposition text, or undefined when it is absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (want.length === have.length && want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

describe('slot metrics from raw visibility', () => {
  let connection: Connection;
  let client: Client;
  const queue = uniqueName('unpolled');
  const host = uniqueName('vhost');
  const ids = { sealed: uniqueName('sealed'), plain: uniqueName('plain'), hostile: uniqueName('hostile'), bare: uniqueName('bare') };
  const expiresAt = new Date(Date.now() + 3 * 3600_000);

  beforeAll(async () => {
    ({ client, connection } = await devServerClient());
    const sealedClient = new Client({ connection, dataConverter: slotDataConverter(parseEncryptionKeys(OTHER_TEAMS_KEY)) });
    const start = async (c: Client, slotId: string, attrs: SearchAttributePair[]): Promise<void> => {
      await c.workflow.start('slotWorkflow', {
        workflowId: slotWorkflowId(slotId),
        taskQueue: queue,
        args: [{ slotId }],
        memo: { slotWorkflowVersion: 2 },
        typedSearchAttributes: [{ key: SlotIdKey, value: slotId }, { key: SlotProviderKey, value: 'claude' }, { key: SlotHostKey, value: host }, ...attrs],
      });
    };
    // Another team's slot on the same queue: its memo (and input) sealed with their key.
    await start(sealedClient, ids.sealed, [{ key: SlotPhaseKey, value: 'active' }, { key: SlotExpiresAtKey, value: expiresAt }]);
    await start(client, ids.plain, [{ key: SlotPhaseKey, value: 'awaiting-operator' }]);
    // Not a phase any slot publishes: it must not become a label value.
    await start(client, ids.hostile, [{ key: SlotPhaseKey, value: 'pwned-<b>' }]);
    await start(client, ids.bare, []);
    const query = `TaskQueue = '${queue}'`;
    for (let i = 0; i < 100 && (await client.workflow.count(query)).count < 4; i++) await sleep(100);
  });

  afterAll(async () => {
    for (const slotId of Object.values(ids)) await client?.workflow.getHandle(slotWorkflowId(slotId)).terminate('test over').catch(() => undefined);
    await connection?.close();
  });

  it("the SDK's own listing of these slots fails as a whole (what the exporter used to do)", async () => {
    const listed: string[] = [];
    const listing = (async () => {
      for await (const wf of client.workflow.list({ query: `TaskQueue = '${queue}'` })) listed.push(wf.workflowId);
    })();
    await expect(listing).rejects.toThrow(/Unknown encoding: binary\/encrypted/);
  });

  it('counts and names every slot it can read, counts the rest by reason and logs each once', async () => {
    const warnings: Array<Record<string, unknown>> = [];
    const metrics = new SlotMetrics({ client, taskQueue: queue, processMetrics: false, slotListingMaxAgeMs: 0, warn: (fields) => warnings.push(fields) });
    let text = '';
    // Three scrapes, each starting a new listing (max age 0): the unreadable rows are seen three times.
    for (let i = 0; i < 3; i++) {
      text = await metrics.registry.metrics();
      await sleep(300);
    }
    expect(sample(text, 'slot_provisioner_slots', { phase: 'active', provider: 'claude', host })).toBe(1);
    expect(sample(text, 'slot_provisioner_slots', { phase: 'awaiting-operator', provider: 'claude', host })).toBe(1);
    expect(sample(text, 'slot_provisioner_slot_phase', { slot: ids.sealed, phase: 'active', provider: 'claude', host })).toBe(1);
    expect(sample(text, 'slot_provisioner_slot_phase', { slot: ids.plain, phase: 'awaiting-operator', provider: 'claude', host })).toBe(1);
    expect(sample(text, 'slot_provisioner_token_expiry_timestamp_seconds', { slot: ids.sealed, provider: 'claude', host })).toBe(expiresAt.getTime() / 1000);
    expect(sample(text, 'slot_provisioner_slots_unreadable', { reason: 'unknown-phase' })).toBe(1);
    expect(sample(text, 'slot_provisioner_slots_unreadable', { reason: 'no-phase' })).toBe(1);
    expect(sample(text, 'slot_provisioner_slots_unreadable', { reason: 'search-attributes' })).toBe(0);
    expect(text).toContain('slot_provisioner_slot_listing_errors_total 0');
    expect(text).not.toContain('pwned');
    expect(text).not.toContain(ids.hostile);
    // Logged once per slot, however many listings saw it.
    expect(warnings.map((w) => w.workflowId).sort()).toEqual([slotWorkflowId(ids.bare), slotWorkflowId(ids.hostile)].sort());
    expect(warnings.find((w) => w.workflowId === slotWorkflowId(ids.hostile))).toMatchObject({ reason: 'unknown-phase' });
  });

  it('without per-slot series: counts by phase and provider, no series per slot, no host', async () => {
    const metrics = new SlotMetrics({ client, taskQueue: queue, processMetrics: false, perSlotSeries: false });
    const text = await metrics.registry.metrics();
    expect(sample(text, 'slot_provisioner_slots', { phase: 'active', provider: 'claude', host: '' })).toBe(1);
    expect(sample(text, 'slot_provisioner_slots', { phase: 'awaiting-operator', provider: 'claude', host: '' })).toBe(1);
    expect(text).not.toMatch(/^slot_provisioner_slot_phase\{/m);
    expect(text).not.toMatch(/^slot_provisioner_token_expiry_seconds\{/m);
    // Counts cannot tell a hostile phase from a missing one: both are "no known phase".
    expect(sample(text, 'slot_provisioner_slots_unreadable', { reason: 'unknown-phase' })).toBe(2);
    expect(text).toContain('slot_provisioner_slot_listing_errors_total 0');
  });
});
