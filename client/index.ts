// The package entry (`import … from 'slot-provisioner'`): the typed client library other
// services use to start and watch slots and lease from pools, the message definitions and
// the status types. It imports nothing from workers/, host/, cli/ or activities/ (slotctl, in
// cli/, sits on top of it). Its contract for other languages is schema/*.json (exported as
// `slot-provisioner/schema/*`).
export { SlotClient, parseSlotId, type ProvisionOptions, type SlotSummary } from './slot-client';
export { PoolClient, PoolNotFoundError, PoolRequestError, type CreatePoolOptions } from './pool-client';
export { POOL_POLICIES, type LeaseGrant, type PoolPolicy, type PoolStatus } from '../common/pool';
export { CodeRejectedError, SlotExistsError, SlotInputError, SlotNotFoundError, TemporalTransportError, PayloadKeyMissingError, CodecServerError } from '../common/failures';
export {
  HANDLER_DESCRIPTIONS,
  MAX_CODE_LENGTH,
  cancelLoginSignal,
  refreshNowSignal,
  reloginSignal,
  retireSignal,
  statusQuery,
  submitCodeSignal,
  submitCodeUpdate,
  type Outcome,
  type PublishedPrompt,
  type RetireInput,
  type SlotStatus,
  type SubmitCodeInput,
  type SubmitCodeResult,
} from '../common/messages';
export { PHASES, SHARED_TASK_QUEUE, slotWorkflowId, type Interaction, type LoginPrompt, type Phase } from '../common/slot';
export type { LoginOptions, SlotInput } from '../common/slot-input';
export { SlotInputSchema, SlotStatusSchema, SubmitCodeInputSchema, SubmitCodeResultSchema, RetireInputSchema } from '../common/schemas';
/** For clients of a deployment that encrypts payloads: with the keys, or through its codec server. */
export { operatorDataConverter } from './codec-client';
export { parseEncryptionKeys, slotDataConverter } from './encryption';
