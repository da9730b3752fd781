// The example alert rules shipped in observability/ are valid Prometheus rules and
// fire when, and only when, they should (promtool's own rule unit tests).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { availableOrSkip, prometheusBinaries } from '../peers/observability';

const RULES = fileURLToPath(new URL('../../observability/slot-alerts.rules.yml', import.meta.url));
const RULE_TESTS = fileURLToPath(new URL('../../observability/slot-alerts.test.yml', import.meta.url));
const tools = await availableOrSkip('promtool (Debian package prometheus)', prometheusBinaries);

describe.skipIf(!tools.ok)(`the example alert rules${tools.ok ? '' : ` (skipped: ${tools.reason})`}`, () => {
  const promtool = tools.ok ? tools.value.promtool : '';

  it('pass promtool check rules: four rules, each with a summary', async () => {
    const { stdout } = await promisify(execFile)(promtool, ['check', 'rules', RULES]);
    expect(stdout).toContain('SUCCESS: 4 rules found');
  });

  it('fire at the right moments in promtool test rules (a person needed for 15 minutes, refresh failures, expiry within 1 hour, a pool refusing leases)', async () => {
    const run = await promisify(execFile)(promtool, ['test', 'rules', RULE_TESTS]).then(
      (r) => ({ ok: true, out: r.stdout + r.stderr }),
      (err: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
    );
    expect(run.out).toContain('SUCCESS');
    expect(run.ok, run.out).toBe(true);
  });
});
