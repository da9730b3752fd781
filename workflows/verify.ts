// The last step of every login path: prove the credential on the slot's host.
import { proxyActivities } from '@temporalio/workflow';
import type { HostActivities } from '../activities/index';
import { hostTaskQueue } from '../common/slot';

/** verifyCredential on the slot host's queue; an invalid credential is final, a lost answer is asked again. */
export const verifyCredentialOn = (host: string): HostActivities['verifyCredential'] =>
  proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(host),
    scheduleToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: ['CredentialInvalid'] },
  }).verifyCredential;
