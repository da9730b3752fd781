// The dynamic configuration every dev server of this project runs with: `npm start`'s
// embedded server (workers/dev-server-process.ts) and the one the tests and benchmarks
// start (workers/dev-server.ts), so what the benchmarks measure is what `npm start` runs.
// The cluster's own settings are in temporal/dynamicconfig.yaml.

/** `--dynamic-config-value` pairs; values are JSON. */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, string>> = {
  'frontend.enableServerVersionCheck': 'false',
  'frontend.enableUpdateWorkflowExecution': 'true',
  'frontend.enableUpdateWorkflowExecutionAsyncAccepted': 'true',
  // One partition per task queue, as on the cluster (see temporal/dynamicconfig.yaml).
  'matching.numTaskqueueReadPartitions': '1',
  'matching.numTaskqueueWritePartitions': '1',
  // The history service keeps this many workflows' state in memory (the CLI sets 8096). A
  // fleet larger than that, refreshed in a burst, would reload every slot's state from
  // SQLite (LRU over a cycle misses every time): +19 % server CPU per refresh at 10 000
  // slots than at 1000 (bench/RESULTS.md). Sized for 16 000 slots.
  'history.hostLevelCacheMaxSize': '16384',
};

export const devServerDynamicConfigArgs = (extra: Readonly<Record<string, string>> = {}): string[] =>
  Object.entries({ ...DEV_SERVER_DYNAMIC_CONFIG, ...extra }).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${value}`]);
