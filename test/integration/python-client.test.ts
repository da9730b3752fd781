// A service in another language, as the seed's own manager service would be: Python
// with the Temporal Python SDK provisions a slot, reads its prompt and submits the code,
// using only the published contract; every answer it got fits schema/*.json.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotStatusSchema, SubmitCodeResultSchema } from '../../common/schemas';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';
import { uniqueName } from '../harness';
import { pythonWithTemporal } from '../python-venv';
import { startSlotRig, waitForPhase, type SlotRig } from '../slot-fixtures';

const SERVICE = join(PROJECT_ROOT, 'test', 'fixtures', 'python', 'slot_service.py');

describe('a Python service drives a slot', () => {
  let rig: SlotRig;
  let python: string | undefined;
  let missing = '';

  beforeAll(async () => {
    const found = await pythonWithTemporal();
    if ('python' in found) python = found.python;
    else missing = found.missing;
    rig = await startSlotRig();
  }, 900_000);
  afterAll(async () => rig?.close());

  it('provisions, reads the prompt and submits the code with temporalio; the slot becomes active', async (ctx) => {
    if (!python) return ctx.skip(missing);
    const slotId = uniqueName('py');
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(python as string, [SERVICE, inject('temporalAddress'), rig.workers.sharedTaskQueue, rig.workers.hostName, slotId], { timeout: 120_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });
    expect(result.code, `${result.stderr}\n${result.stdout}`).toBe(0);
    const events = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; status?: unknown; answer?: unknown });
    const [prompt, answer, settled] = events;
    expect(events.map((e) => e.event)).toEqual(['prompt', 'answer', 'settled']);

    const asked = SlotStatusSchema.strict().parse(prompt?.status);
    expect(asked.phase).toBe('awaiting-operator');
    expect(asked.prompt?.url).toMatch(/^https:\/\/claude\.com\/cai\/oauth\/authorize\?.*state=/);
    expect(SubmitCodeResultSchema.strict().parse(answer?.answer).answer).toBe('succeeded');
    expect(SlotStatusSchema.strict().parse(settled?.status).phase).toBe('active');
    // The TypeScript side sees the same slot, started by Python, as active.
    expect((await waitForPhase(rig.slots, slotId, ['active'])).phase).toBe('active');
    expect((await rig.slots.list()).find((s) => s.slotId === slotId)?.provider).toBe('claude');
  }, 180_000);
});
