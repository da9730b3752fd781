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
   * Patches this scenario's workflows run with the OLD branch: the recorder's worker answers
   * `patched()` false for them, as a worker from before the patch did. `'all'`: every patch,
   * today's and any added later, so a new patch's old branch is recorded with no new scenario.
   */
  readonly oldBranches?: readonly string[] | 'all';
}

/** The scenarios recorded with today's code, new branches taken. */
const TODAY = {
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
} as const satisfies Record<string, Scenario>;

/**
 * Each of these is recorded twice: as above, and as `<name>-all-old-branches` with every patch's
 * old branch (a run started before every patch). Not the probe scenario: before probes there is no probe to ask for.
 */
export const TWINNED = [
  'login-success',
  'login-bad-code-then-success',
  'login-timeout',
  'refresh-transient-then-success',
  'permanent-failure-relogin-active',
  'continue-as-new',
  'retire-during-login',
  'credential-lost-needs-login',
  'refresh-timeout-stays-degraded',
  'codex-device-login-refresh-retire',
  'setup-token-login-retire',
  'device-login-refresh-retire',
  'pool-lease-auth-failure',
] as const satisfies ReadonlyArray<keyof typeof TODAY>;
type Twinned = (typeof TWINNED)[number];
export const allOld = <T extends Twinned>(scenario: T): `${T}-all-old-branches` => `${scenario}-all-old-branches`;

/** One patch's old branch with the others new: the code of the release just before that patch. */
const ONE_OLD = {
  'credential-lost-before-restore': { saves: ['slot'], oldBranches: ['credential-restore'] },
  'refresh-timeout-before-transient-failures': { saves: ['slot'], oldBranches: ['transient-refresh-failures'] },
} as const satisfies Record<string, Scenario>;

export type ScenarioName = keyof typeof TODAY | keyof typeof ONE_OLD | `${Twinned}-all-old-branches`;

/** The scenarios the recorder writes. */
export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  ...TODAY,
  ...ONE_OLD,
  ...(Object.fromEntries(TWINNED.map((name): [string, Scenario] => [allOld(name), { saves: TODAY[name].saves, oldBranches: 'all' }])) as Record<`${Twinned}-all-old-branches`, Scenario>),
};

/**
 * Whether `scenario` takes the old branch of `patchId`. `'all'` is the project's patches only: the SDK
 * patches its own behaviour too (`__sdk_internal_patch_number:1`: `condition(fn, 0)` waiting forever
 * before 1.5), and a worker of today's SDK always takes those.
 */
export const takesOldBranch = (scenario: ScenarioName, patchId: string): boolean => {
  const old = SCENARIOS[scenario].oldBranches;
  return old === 'all' ? !patchId.startsWith('__') : (old ?? []).includes(patchId);
};

/** The file a scenario's workflow is saved in. */
export const historyFile = (scenario: ScenarioName, kind: RecordedKind, run?: number): string => `${scenario}.${kind}${run !== undefined ? `.run-${run}` : ''}.json`;
