// The workflows a worker registers (Temporal bundles this file and its imports).
export { slotWorkflow } from './slot';
export { poolWorkflow } from './pool';
export { providerIncidentWorkflow } from './incident';
