// The failures a refresh throws, each built one way: RefreshTransient (the retry policy
// tries again), RefreshMisconfigured (an operator fixes the setup), CredentialInvalid.
import { ApplicationFailure } from '@temporalio/activity';
import { FailureType } from '../common/failures';

export const transient = (message: string, retryAfterMs?: number, details?: unknown[]): ApplicationFailure =>
  ApplicationFailure.create({
    message,
    type: FailureType.refreshTransient,
    nonRetryable: false,
    ...(details ? { details } : {}),
    ...(retryAfterMs !== undefined ? { nextRetryDelay: retryAfterMs } : {}),
  });

export const misconfigured = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, FailureType.refreshMisconfigured);

export const credentialInvalid = (message: string): ApplicationFailure => ApplicationFailure.nonRetryable(message, FailureType.credentialInvalid);
