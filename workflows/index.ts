// The workflows a worker registers (Temporal bundles this file and its imports).
export { loginWorkflow } from './login';
export { slotWorkflow } from './slot';
