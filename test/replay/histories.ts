import { fileURLToPath } from 'node:url';

/** Recorded histories of today's slot workflow, committed; see record-histories.test.ts. */
export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories', import.meta.url));
/**
 * Histories recorded from the child-workflow design (v1), kept: they replay
 * against the frozen v1 code in test/fixtures/legacy-v1, which the migration test runs.
 */
export const V1_HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/v1', import.meta.url));

/** The scenarios the recorder writes, each `<scenario>.slot.json` (plus `.run-<n>` for earlier runs). */
export const SCENARIOS = [
  'login-success',
  'login-bad-code-then-success',
  'login-timeout',
  'refresh-transient-then-success',
  'permanent-failure-relogin-active',
  'continue-as-new',
  'retire-during-login',
  'device-login-refresh-retire',
] as const;
