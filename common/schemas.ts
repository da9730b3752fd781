// zod schemas for the Node side's boundaries (CLI arguments, files, client
// input), built on the zod-free definitions that workflows share.
import { z } from 'zod';
import { MAX_CODE_LENGTH, type Outcome as OutcomeType, type RetireInput as RetireInputType, type SlotStatus as SlotStatusType, type SubmitCodeInput as SubmitCodeInputType, type SubmitCodeResult as SubmitCodeResultType } from './messages';
import { PROBE_OUTCOMES, type LastProbe as LastProbeType } from './probe';
import { HOST_NAME_PATTERN, PHASES, SLOT_ID_MAX_LENGTH, SLOT_ID_PATTERN, slotIdProblem, type LoginPrompt as LoginPromptType } from './slot';
import type { CarriedState as CarriedStateType, SlotInput as SlotInputType } from './slot-input';
import type { BackupNote as BackupNoteType, MoveAccepted as MoveAcceptedType, MoveInput as MoveInputType, MoveState as MoveStateType } from './backup';

export const SlotId = z.string().superRefine((value, ctx) => {
  const problem = slotIdProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const Phase = z.enum(PHASES);

// ── The slot workflow's contract, for services in any language ──
// The workflow's input, its messages and its status as zod schemas, from which
// schema/*.json is generated (`npm run schema`); the type checks at the end fail
// when one of them drifts from the TypeScript types the workflow uses.

const ms = (what: string): z.ZodNumber => z.number().int().min(0).describe(`${what}, in milliseconds`);
/** A time: whole milliseconds since the Unix epoch (an integer: never a file's fractional mtime). */
const epochMs = (what: string): z.ZodNumber => z.number().int().describe(`${what}, integer epoch milliseconds`);

/** The slot id as JSON Schema can say it (the same rule as `slotIdProblem`). */
export const SlotIdContract = z
  .string()
  .min(1)
  .max(SLOT_ID_MAX_LENGTH)
  .regex(SLOT_ID_PATTERN)
  .describe('lowercase letters, digits and dashes, starting and ending with a letter or digit; the workflow id is `slot:<slotId>`');

export const LoginPromptSchema = z
  .object({
    url: z.string().describe('the URL the operator opens'),
    userCode: z.string().optional().describe('device flows: the code to enter on that page'),
    completeUrl: z.string().optional().describe('device flows: the URL with the user code in it'),
    interaction: z.enum(['paste-code', 'device-approval']).describe('paste-code: submit the code the page shows (submitCode); device-approval: approve in the browser, nothing to submit'),
    expiresAt: epochMs('when the operator is no longer awaited'),
    instructions: z.string().describe('what the operator should do, in one sentence'),
    codeFormat: z.object({ pattern: z.string(), description: z.string() }).optional().describe('paste-code: the shape a code must have (a regular expression and its words)'),
  })
  .describe('what an operator needs to act on a login; never secret');

export const OutcomeSchema = z.object({
  at: epochMs('when'),
  kind: z.enum(['login-succeeded', 'login-failed', 'code-rejected', 'code-not-used', 'request-refused', 'login-restarted', 'refresh-succeeded', 'refresh-failed', 'degraded', 'probe-failed', 'info']),
  message: z.string(),
});

export const BackupNoteSchema = z
  .object({
    ok: z.boolean(),
    at: epochMs('when the write-through was tried'),
    generation: z.number().int().min(1).optional().describe('the stored version, when ok'),
    message: z.string().describe('which store and version, or why it is failing'),
  })
  .describe('the last write-through of the credential to the backup store (SLOT_BACKUP_URL); never a token');

export const MoveStateSchema = z
  .object({
    from: z.string(),
    to: z.string(),
    state: z.enum(['moving', 'moved', 'refused', 'failed']),
    at: epochMs('the last change'),
    message: z.string(),
  })
  .describe('the last `move` of the slot to another host');
export const LastProbeSchema = z
  .object({
    at: epochMs('when the probe was made'),
    outcome: z.enum(PROBE_OUTCOMES).describe('ok, unauthorized (401/403), rate-limited (429), transient (network, 5xx), error (could not probe), none (no probe for this provider)'),
    httpStatus: z.number().int().optional().describe('the HTTP status, when there was an answer'),
    detail: z.string().optional().describe('the endpoint and what the answer meant; never the body'),
    resetAt: epochMs('rate-limited: when the provider says the limit resets').optional(),
  })
  .describe('the last live probe of the credential: a minimal real request with the token');

export const SlotStatusSchema = z
  .object({
    slotId: z.string(),
    provider: z.string(),
    host: z.string(),
    phase: Phase,
    prompt: LoginPromptSchema.optional().describe('present while an operator is awaited'),
    expiresAt: epochMs('when the access token expires').optional(),
    lastRefresh: epochMs('the last refresh').optional(),
    nextRefreshAt: epochMs('the next refresh').optional(),
    account: z.string().optional(),
    lastOutcome: OutcomeSchema.optional(),
    lastError: z.string().optional().describe("the CLI's own words about the last rejected code, or why a message was not used"),
    logins: z.number().int().min(0),
    refreshes: z.number().int().min(0),
    consecutiveFailures: z.number().int().min(0),
    pending: z.array(z.enum(['relogin', 'refresh', 'retire', 'probe'])).readonly().optional().describe('requests taken and not yet acted on'),
    lastProbe: LastProbeSchema.optional(),
    nextProbeAt: epochMs('the next scheduled live probe').optional(),
    stale: z.string().optional().describe('set by clients when no worker answered and the status came from search attributes'),
    publishedPrompt: z
      .object({ url: z.string().describe('the URL the operator opens'), userCode: z.string().optional().describe('device flows: the code to enter on that page') })
      .optional()
      .describe('with stale only: the prompt the slot last published (search attribute SlotPrompt); the full prompt comes with a fresh status'),
    backup: BackupNoteSchema.optional(),
    move: MoveStateSchema.optional(),
  })
  .describe('the answer of the `status` query; never a token or a code');

const CarriedStateSchema = SlotStatusSchema.pick({
  phase: true, expiresAt: true, lastRefresh: true, nextRefreshAt: true, account: true, lastOutcome: true, lastError: true, logins: true, refreshes: true, consecutiveFailures: true,
  backup: true, move: true, lastProbe: true, nextProbeAt: true,
})
  .extend({
    runs: z.number().int().min(1),
    pending: z
      .object({ login: z.boolean(), refresh: z.boolean(), retire: z.union([z.object({ removeFiles: z.boolean() }), z.undefined()]), move: z.object({ toHost: z.string() }).optional(), probe: z.boolean().optional() })
      .optional(),
  })
  .describe('internal: state carried over continue-as-new; a service starting a slot never sets it');

export const SlotInputSchema = z
  .object({
    slotId: SlotIdContract,
    provider: z.string().describe('claude, codex, oidc-device, …'),
    providerConfig: z.unknown().optional().describe("the provider's configuration for this slot (oidc-device: issuer or endpoints, clientId, scopes); not secret"),
    host: z.string().describe("the host whose worker holds the slot's files and runs its CLIs (its SLOT_HOST)"),
    login: z
      .object({
        maxBadCodes: z.number().int().min(1).optional().describe('codes an operator may get wrong before the login gives up (default 3)'),
        maxRestarts: z.number().int().min(0).optional().describe('CLI restarts before the login gives up (default 3)'),
        operatorTimeoutMs: ms("overrides the provider's operator deadline (may only shorten it)").optional(),
        heartbeatTimeoutMs: ms('heartbeat timeout of the PTY watcher (default 15 s)').optional(),
        expectedAccount: z
          .string()
          .regex(/^[\x21-\x7E]{1,320}$/, 'must be an email or a subject (printable, no spaces)')
          .optional()
          .describe("the account the slot must log in to (email or subject of the provider's id_token); a login to another is refused"),
      })
      .optional(),
    refresh: z
      .object({
        beforeExpiryMs: ms('refresh this long before the access token expires').optional(),
        maxAgeMs: ms('refresh when the last refresh is older than this').optional(),
        jitterMs: ms('up to this much earlier, at random').optional(),
        backoff: z.object({ initialMs: ms('first retry delay (default 5000)').optional(), maxMs: ms('longest retry delay (default 300000)').optional() }).optional(),
      })
      .optional()
      .describe("overrides of the provider's refresh schedule"),
    onPermanentFailure: z.enum(['login', 'wait']).optional().describe('after a permanent refresh failure: a new login at once (default), or wait for relogin'),
    degradedWithinMs: ms('while refreshes fail, show degraded once the token expires within this (default 30 minutes)').optional(),
    hostWaitMs: ms("how long status, revocation and file removal wait for the slot's host (default 10 minutes)").optional(),
    probe: z
      .object({
        everyMs: ms('time between scheduled live probes; 0: none (default 6 hours)').optional(),
        jitterMs: ms('each scheduled probe up to this much earlier, at random (default 30 minutes)').optional(),
      })
      .optional()
      .describe('live probes of the credential (a minimal real request with the token)'),
    maxHistoryEvents: z.number().int().min(1).optional().describe('continue-as-new once the history has this many events (default 2000)'),
    adoptExisting: z.boolean().optional().describe('start from the credential already in the slot instead of a new login'),
    carried: CarriedStateSchema.optional(),
  })
  .describe('the input of workflow type `slotWorkflow`, id `slot:<slotId>`, on the deployment\'s shared task queue');

export const SubmitCodeInputSchema = z.object({
  code: z.string().min(1).max(MAX_CODE_LENGTH).describe('the code the login page showed; no control characters, no surrounding spaces'),
});

export const SubmitCodeResultSchema = z.object({
  accepted: z.literal(true),
  login: z.string().describe('the login attempt the code was typed into'),
  answer: z.enum(['succeeded', 'rejected', 'failed', 'exited', 'hung', 'lost', 'cancelled']).describe("what the CLI made of the code: succeeded (verified next), rejected (try again), …"),
  message: z.string().describe("the CLI's words (never the code)"),
});

export const RetireInputSchema = z.object({
  removeFiles: z.boolean().optional().describe("note in the host's tombstone that the slot's files (in the host's trash) are to be removed (default false)"),
});

export const MoveInputSchema = z.object({
  toHost: z.string().regex(HOST_NAME_PATTERN).describe("the host to move the slot to (its SLOT_HOST; SLOT_BACKUP_URL must be set there)"),
});

export const MoveAcceptedSchema = z.object({
  accepted: z.literal(true),
  from: z.string(),
  to: z.string(),
}).describe('the move runs now; its end is in status.move');

// Drift between the schemas and the types the workflow uses fails the type check here.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(_: T): void => undefined;
agree<Same<z.infer<typeof LoginPromptSchema>, LoginPromptType>>(true);
agree<Same<z.infer<typeof OutcomeSchema>, OutcomeType>>(true);
agree<Same<z.infer<typeof LastProbeSchema>, LastProbeType>>(true);
agree<Same<z.infer<typeof SlotStatusSchema>, SlotStatusType>>(true);
agree<Same<z.infer<typeof CarriedStateSchema>, CarriedStateType>>(true);
agree<Same<z.infer<typeof SlotInputSchema>, SlotInputType>>(true);
agree<Same<z.infer<typeof SubmitCodeInputSchema>, SubmitCodeInputType>>(true);
agree<Same<z.infer<typeof SubmitCodeResultSchema>, SubmitCodeResultType>>(true);
agree<Same<z.infer<typeof RetireInputSchema>, RetireInputType>>(true);
agree<Same<z.infer<typeof BackupNoteSchema>, BackupNoteType>>(true);
agree<Same<z.infer<typeof MoveStateSchema>, MoveStateType>>(true);
agree<Same<z.infer<typeof MoveInputSchema>, MoveInputType>>(true);
agree<Same<z.infer<typeof MoveAcceptedSchema>, MoveAcceptedType>>(true);
