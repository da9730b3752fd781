// The Python side of the cross-language test: a virtual environment under .cache/
// with the Temporal Python SDK from PyPI, made once by the test set-up and reused.
import { execFile } from 'node:child_process';
import { access, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../workers/temporal-binaries';

/** Pinned: the test speaks to the workflow as this SDK does. */
export const PYTHON_TEMPORALIO = 'temporalio==1.35.0';
const VENV = join(PROJECT_ROOT, '.cache', `python-${PYTHON_TEMPORALIO.replace('==', '-')}`);

const run = (command: string, args: string[]): Promise<{ code: number; out: string }> =>
  new Promise((resolve) => {
    execFile(command, args, { cwd: PROJECT_ROOT, timeout: 600_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: `${stdout}${stderr}` }),
    );
  });

/**
 * The venv's python with `temporalio` importable; undefined (with why) when this machine
 * has no python3 with venv support. Under CI that is an error: the test must not skip there.
 */
export async function pythonWithTemporal(): Promise<{ python: string } | { missing: string }> {
  const python = join(VENV, 'bin', 'python');
  if ((await access(python).then(() => true, () => false)) && (await run(python, ['-c', 'import temporalio']).then((r) => r.code === 0))) return { python };
  const probe = await run('python3', ['-c', 'import venv, ensurepip']);
  if (probe.code !== 0) {
    const missing = `python3 with venv support is needed (Debian: apt-get install python3-venv): ${probe.out.trim().split('\n').at(-1) ?? 'python3 not found'}`;
    if (process.env.CI) throw new Error(`CI: ${missing}`);
    return { missing };
  }
  const staging = `${VENV}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  const made = await run('python3', ['-m', 'venv', staging]);
  if (made.code !== 0) throw new Error(`python3 -m venv ${staging} failed:\n${made.out}`);
  process.stderr.write(`[python] installing ${PYTHON_TEMPORALIO} from PyPI into ${VENV} (once)…\n`);
  const installed = await run(join(staging, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', PYTHON_TEMPORALIO]);
  if (installed.code !== 0) {
    await rm(staging, { recursive: true, force: true });
    throw new Error(`pip install ${PYTHON_TEMPORALIO} failed:\n${installed.out.slice(-3000)}`);
  }
  await rm(VENV, { recursive: true, force: true });
  await rename(staging, VENV);
  // A venv's scripts name their own path: the renamed venv is used through `bin/python` only.
  return { python };
}
