// zod schemas for the Node side's boundaries (CLI arguments, files, client
// input), built on the zod-free definitions that workflows share.
import { z } from 'zod';
import { PHASES, slotIdProblem } from './slot';

export const SlotId = z.string().superRefine((value, ctx) => {
  const problem = slotIdProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const Phase = z.enum(PHASES);
