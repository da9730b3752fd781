// schema/*.json is the slot workflow's contract for services in other languages: it
// must be what the zod schemas generate, and the workflow's real answers must fit it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SlotInputSchema, SlotStatusSchema } from '../../common/schemas';
import { contractDocuments, SCHEMA_DIR, serialize } from '../../scripts/schema';

describe('the JSON Schema contract', () => {
  it('schema/ holds exactly what common/schemas.ts generates (run `npm run schema` after changing them)', async () => {
    const generated = contractDocuments();
    const files = (await readdir(SCHEMA_DIR)).filter((f) => f.endsWith('.json')).sort();
    expect(files).toEqual(Object.keys(generated).sort());
    for (const [name, doc] of Object.entries(generated)) {
      const onDisk = await readFile(join(SCHEMA_DIR, name), 'utf8');
      expect(onDisk, `schema/${name} drifted from common/schemas.ts: run npm run schema`).toBe(serialize(doc));
    }
  });

  it('says what a service needs: the slot id rule, the phases, every message with its description', () => {
    const docs = contractDocuments() as Record<string, { properties?: Record<string, { pattern?: string; enum?: string[] }>; required?: string[]; 'x-messages'?: Record<string, Record<string, { description: string }>> }>;
    const input = docs['slot-input.schema.json'];
    expect(input?.required).toEqual(['slotId', 'provider', 'host']);
    expect(input?.properties?.slotId?.pattern).toBe('^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$');
    const status = docs['slot-status.schema.json'];
    expect(status?.properties?.phase?.enum).toContain('awaiting-operator');
    const messages = docs['messages.schema.json']?.['x-messages'];
    expect(Object.keys(messages?.signals ?? {}).sort()).toEqual(['cancelLogin', 'probeNow', 'refreshNow', 'relogin', 'retire', 'submitCode']);
    expect(Object.keys(messages?.updates ?? {}).sort()).toEqual(['move', 'probeNow', 'submitCode']);
    for (const kind of Object.values(messages ?? {})) for (const m of Object.values(kind)) expect(m.description.length).toBeGreaterThan(20);
  });

  it('says every time is an integer of epoch milliseconds, and refuses a fractional one (a file mtime)', () => {
    const times: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const n = node as { description?: unknown; type?: unknown };
      if (typeof n.description === 'string' && /epoch milliseconds/.test(n.description)) {
        times.push(path);
        expect(n.type, `${path} is a time: "type" must be "integer"`).toBe('integer');
        expect(n.description, path).toMatch(/integer epoch milliseconds$/);
      }
      for (const [key, child] of Object.entries(node)) walk(child, `${path}/${key}`);
    };
    for (const [name, doc] of Object.entries(contractDocuments())) walk(doc, name);
    // The walk saw the status's times (not a vacuous pass).
    for (const field of ['expiresAt', 'lastRefresh', 'nextRefreshAt', 'nextProbeAt']) expect(times).toContain(`slot-status.schema.json/properties/${field}`);
    const status = { slotId: 'a', provider: 'claude', host: 'h', phase: 'active', logins: 1, refreshes: 0, consecutiveFailures: 0 };
    expect(SlotStatusSchema.safeParse({ ...status, lastRefresh: 1796588988681 }).success).toBe(true);
    expect(SlotStatusSchema.safeParse({ ...status, lastRefresh: 1796588988681.7896 }).success).toBe(false);
  });

  it('the zod schemas refuse what the workflow would refuse', () => {
    expect(SlotInputSchema.safeParse({ slotId: '../etc', provider: 'claude', host: 'h' }).success).toBe(false);
    expect(SlotInputSchema.safeParse({ slotId: 'team-a-1', provider: 'claude', host: 'h', login: { maxBadCodes: 0 } }).success).toBe(false);
    expect(SlotInputSchema.safeParse({ slotId: 'team-a-1', provider: 'claude', host: 'h' }).success).toBe(true);
    expect(SlotStatusSchema.safeParse({ slotId: 'a', provider: 'p', host: 'h', phase: 'sleeping', logins: 0, refreshes: 0, consecutiveFailures: 0 }).success).toBe(false);
  });
});
