import { fileURLToPath } from 'node:url';

/**
 * Histories recorded from today's workflow code by `npm run histories:record`
 * (record-histories.test.ts), committed. The recorder rewrites every `*.json` here.
 */
export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories', import.meta.url));
/**
 * Histories recorded by earlier code and never re-recorded: they hold the old branch of
 * patches as that code really wrote it (recorded 2026-12-01, before the `operator-notices`,
 * `live-probes` and `credential-restore` patches). Add a file here before retiring a patch's
 * old branch would make it unreadable: it is how old runs still in flight are kept honest.
 */
export const FROZEN_HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/frozen', import.meta.url));
/**
 * Histories recorded from the child-workflow design (v1), kept: they replay
 * against the frozen v1 code in test/fixtures/legacy-v1, which the migration test runs.
 */
export const V1_HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories/v1', import.meta.url));

/** The workflows a scenario saves, each as `<scenario>.<kind>.json` (plus `.<kind>.run-<n>.json` for earlier runs). */
export type RecordedKind = 'slot' | 'pool';

export interface Scenario {
  readonly saves: readonly RecordedKind[];
  /**
   * Patches this scenario's workflows run with the OLD branch (the recorder's worker answers
   * `patched()` false for them, as a worker from before the patch did), so that the old
   * branch of every patch is recorded from today's code too.
   */
  readonly oldBranches?: readonly string[];
}

/** The scenarios the recorder writes. */
export const SCENARIOS = {
  // claude
  'login-success': { saves: ['slot'] },
  'login-bad-code-then-success': { saves: ['slot'] },
  'login-timeout': { saves: ['slot'] },
  'refresh-transient-then-success': { saves: ['slot'] },
  'permanent-failure-relogin-active': { saves: ['slot'] },
  'continue-as-new': { saves: ['slot'] },
  'retire-during-login': { saves: ['slot'] },
  'probe-refused-then-refreshed': { saves: ['slot'] },
  'credential-lost-needs-login': { saves: ['slot'] },
  'refresh-timeout-stays-degraded': { saves: ['slot'] },
  // other providers
  'codex-device-login-refresh-retire': { saves: ['slot'] },
  'setup-token-login-retire': { saves: ['slot'] },
  'device-login-refresh-retire': { saves: ['slot'] },
  // pools (the slot's history too: it answers the pool's auth-failure report)
  'pool-lease-auth-failure': { saves: ['pool', 'slot'] },
  // old branches, from today's code
  'login-timeout-before-notices-and-probes': { saves: ['slot'], oldBranches: ['operator-notices', 'live-probes'] },
  'credential-lost-before-restore': { saves: ['slot'], oldBranches: ['credential-restore'] },
  'pool-lease-auth-failure-before-plans-and-probes': { saves: ['pool', 'slot'], oldBranches: ['lease-agent-plan', 'auth-failure-probes'] },
  'refresh-timeout-before-transient-failures': { saves: ['slot'], oldBranches: ['transient-refresh-failures'] },
} as const satisfies Record<string, Scenario>;

export type ScenarioName = keyof typeof SCENARIOS;

/** The file a scenario's workflow is saved in. */
export const historyFile = (scenario: ScenarioName, kind: RecordedKind, run?: number): string => `${scenario}.${kind}${run !== undefined ? `.run-${run}` : ''}.json`;
