// The slot workflow's contract as JSON Schema, generated from the zod schemas in
// common/schemas.ts: `npm run schema` writes schema/*.json (checked in); a test fails
// when the files and the schemas disagree. For services written in any language.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { HANDLER_DESCRIPTIONS } from '../common/messages';
import { LastProbeSchema, MoveAcceptedSchema, MoveInputSchema, RetireInputSchema, SlotInputSchema, SlotStatusSchema, SubmitCodeInputSchema, SubmitCodeResultSchema } from '../common/schemas';
import { PHASES, SHARED_TASK_QUEUE } from '../common/slot';
import { PROJECT_ROOT } from '../workers/temporal-binaries';

export const SCHEMA_DIR = join(PROJECT_ROOT, 'schema');
const BASE = 'urn:slot-provisioner:schema:';

const jsonSchema = (schema: z.ZodType, id: string, title: string): Record<string, unknown> => ({
  // Input is what a service sends (defaults not applied); `undefined` (an absent key) is "anything".
  ...z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }),
  $id: `${BASE}${id}`,
  title,
});

/** Every file of schema/, by name, as the JSON it must hold. */
export function contractDocuments(): Record<string, unknown> {
  return {
    'slot-input.schema.json': jsonSchema(SlotInputSchema, 'slot-input.schema.json', 'slotWorkflow input'),
    'slot-status.schema.json': jsonSchema(SlotStatusSchema, 'slot-status.schema.json', 'status query answer'),
    'messages.schema.json': {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: `${BASE}messages.schema.json`,
      title: 'slotWorkflow messages',
      description:
        'Signals, updates and the query of workflow `slot:<slotId>` (type `slotWorkflow`). Payloads are JSON (encoding json/plain), ' +
        'sealed by the deployment\'s payload codec when encryption is on. Every message is addressed by the name given here.',
      'x-workflow': { type: 'slotWorkflow', id: 'slot:<slotId>', defaultTaskQueue: SHARED_TASK_QUEUE, input: 'slot-input.schema.json', phases: PHASES },
      'x-messages': {
        signals: {
          submitCode: { description: HANDLER_DESCRIPTIONS.submitCode, input: '#/$defs/SubmitCodeInput' },
          cancelLogin: { description: HANDLER_DESCRIPTIONS.cancelLogin, input: null },
          refreshNow: { description: HANDLER_DESCRIPTIONS.refreshNow, input: null },
          relogin: { description: HANDLER_DESCRIPTIONS.relogin, input: null },
          retire: { description: HANDLER_DESCRIPTIONS.retire, input: '#/$defs/RetireInput' },
          probeNow: { description: HANDLER_DESCRIPTIONS.probeNow, input: null },
        },
        updates: {
          submitCode: { description: HANDLER_DESCRIPTIONS.submitCode, input: '#/$defs/SubmitCodeInput', result: '#/$defs/SubmitCodeResult' },
          probeNow: { description: HANDLER_DESCRIPTIONS.probeNow, input: null, result: '#/$defs/LastProbe' },
          move: { description: HANDLER_DESCRIPTIONS.move, input: '#/$defs/MoveInput', result: '#/$defs/MoveAccepted' },
        },
        queries: { status: { description: HANDLER_DESCRIPTIONS.status, input: null, result: 'slot-status.schema.json' } },
      },
      $defs: {
        SubmitCodeInput: jsonSchema(SubmitCodeInputSchema, 'messages.schema.json#SubmitCodeInput', 'submitCode input'),
        SubmitCodeResult: jsonSchema(SubmitCodeResultSchema, 'messages.schema.json#SubmitCodeResult', 'submitCode update result'),
        RetireInput: jsonSchema(RetireInputSchema, 'messages.schema.json#RetireInput', 'retire input'),
        MoveInput: jsonSchema(MoveInputSchema, 'messages.schema.json#MoveInput', 'move input'),
        MoveAccepted: jsonSchema(MoveAcceptedSchema, 'messages.schema.json#MoveAccepted', 'move update result'),
        LastProbe: jsonSchema(LastProbeSchema, 'messages.schema.json#LastProbe', 'probeNow update result'),
      },
    },
  };
}

export const serialize = (doc: unknown): string => `${JSON.stringify(doc, null, 2)}\n`;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await mkdir(SCHEMA_DIR, { recursive: true });
  for (const [name, doc] of Object.entries(contractDocuments())) {
    await writeFile(join(SCHEMA_DIR, name), serialize(doc));
    process.stderr.write(`wrote schema/${name}\n`);
  }
}
