// Headless Chromium (Debian's package) driven by puppeteer-core, to read what the Web UI
// shows a person. Missing on a user's machine: the tests skip saying why; with CI set
// they fail (availableOrSkip). Installed with apt-get when this is root, as Prometheus is.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import puppeteer, { type Browser } from 'puppeteer-core';

const NAMES = ['chromium', 'chromium-browser', 'google-chrome'];

async function onPath(): Promise<string | undefined> {
  if (process.env.CHROMIUM_BIN) return process.env.CHROMIUM_BIN;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of NAMES) {
      const candidate = join(dir, name);
      if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
    }
  }
  return undefined;
}

/** The browser's executable: CHROMIUM_BIN, one on PATH, or Debian's `chromium` installed now (root only). */
export async function obtainChromium(): Promise<string> {
  const found = await onPath();
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error('no chromium on PATH and this is not root: apt-get install chromium (or set CHROMIUM_BIN)');
  const run = promisify(execFile);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'chromium'];
  await run('apt-get', install, { env }).catch(async () => {
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env });
    await run('apt-get', install, { env });
  });
  const installed = await onPath();
  if (!installed) throw new Error('apt-get install chromium finished but no chromium is on PATH');
  return installed;
}

export async function launchChromium(executablePath: string): Promise<Browser> {
  // No sandbox: tests run as root in a container, where Chromium's sandbox cannot start.
  return puppeteer.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
}
