// Builds the workflow bundles a worker loads (plain, and with encrypted failures) into
// .cache/workflow-bundles, so the first `npm start` polls at once instead of webpacking.
// Run at install (`postinstall`) and by `npm run setup:temporal`; a failure here is only
// a slower first start, never a failed install.
import { ENCODED_FAILURE_CONVERTER_PATH } from '../client/encryption';
import { WORKFLOWS_PATH } from '../workers/worker';
import { cachedWorkflowBundle } from '../workers/workflow-bundle';

const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };

const started = Date.now();
try {
  const results = await Promise.all([
    cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, logger: quiet }),
    cachedWorkflowBundle({ workflowsPath: WORKFLOWS_PATH, failureConverterPath: ENCODED_FAILURE_CONVERTER_PATH, logger: quiet }),
  ]);
  const built = results.filter((r) => r.built).length;
  process.stderr.write(
    `[workflow-bundle] ${built > 0 ? `built ${built} workflow bundle(s)` : 'workflow bundles already built'} in ${((Date.now() - started) / 1000).toFixed(1)} s (${results.map((r) => r.file).join(', ')})\n`,
  );
} catch (err) {
  process.stderr.write(`[workflow-bundle] not prebuilt (${err instanceof Error ? err.message : String(err)}); the worker builds it at its first start\n`);
}
