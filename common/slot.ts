// Names and shapes shared by workflows, activities, the client API and slotctl.
// Node-free: this module is bundled into the workflow sandbox.
import { z } from 'zod';

/** A slot id becomes a directory name and part of workflow ids, so it is kept boring. */
export const SlotId = z
  .string()
  .min(1, 'slot id is empty')
  .max(63, 'slot id is longer than 63 characters')
  .regex(
    /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/,
    'slot id must be lowercase letters, digits and dashes, starting and ending with a letter or digit (no paths, dots or spaces)',
  );
export type SlotId = z.infer<typeof SlotId>;

export const slotWorkflowId = (slotId: SlotId): string => `slot:${slotId}`;
export const loginWorkflowId = (slotId: SlotId, n: number): string => `login:${slotId}:${n}`;
export const refreshWorkflowId = (slotId: SlotId, n: number): string => `refresh:${slotId}:${n}`;

/** The shared task queue for workflows and host-free activities. */
export const SHARED_TASK_QUEUE = 'slot-provisioner';
/** Activities that touch a slot's PTY or files run on the queue of the slot's host. */
export const hostTaskQueue = (host: string): string => `slots.${host}`;

export const Phase = z.enum([
  'logging-in',
  'awaiting-operator',
  'verifying',
  'active',
  'refreshing',
  'needs-relogin',
  'degraded',
  'retired',
]);
export type Phase = z.infer<typeof Phase>;

export const Interaction = z.enum(['paste-code', 'device-approval']);
export type Interaction = z.infer<typeof Interaction>;

/** What an operator needs to act on a login. Never secret: it is shown everywhere. */
export const LoginPrompt = z.object({
  url: z.string().url(),
  userCode: z.string().optional(),
  /** Device flows: the URL with the user code already in it (RFC 8628 `verification_uri_complete`). */
  completeUrl: z.string().url().optional(),
  interaction: Interaction,
  /** Epoch ms after which the operator's answer is no longer awaited. */
  expiresAt: z.number(),
  /** What the operator should do, in one sentence. */
  instructions: z.string(),
  /** For paste-code logins: the shape a code must have, checked before it reaches the CLI. */
  codeFormat: z.object({ pattern: z.string(), description: z.string() }).optional(),
});
export type LoginPrompt = z.infer<typeof LoginPrompt>;
