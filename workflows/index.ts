// The workflows a worker registers (Temporal bundles this file and its imports).
export { loginWorkflow } from './login';
export { refreshWorkflow } from './refresh';
export { slotWorkflow } from './slot';
