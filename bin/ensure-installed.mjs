#!/usr/bin/env node
// Runs before `npm start` and `npm test` so that both work on a fresh clone:
// installs the locked dependencies when node_modules is missing or stale.
// Plain Node on purpose: nothing from node_modules can be used yet.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lock = join(root, 'package-lock.json');
const installed = join(root, 'node_modules', '.package-lock.json');

const stale = !existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs;
if (!stale) process.exit(0);

const env = { ...process.env };
// node-pty compiles with node-gyp, which would download Node's headers; use the
// machine's own when they are installed (Debian's nodejs puts them in /usr/include/node).
if (!env.npm_config_nodedir && existsSync('/usr/include/node/node.h')) env.npm_config_nodedir = '/usr';

process.stderr.write('[setup] installing dependencies (npm ci)…\n');
const result = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, env, stdio: 'inherit' });
if (result.status !== 0) {
  process.stderr.write(
    '[setup] npm ci failed. node-pty needs a C++ toolchain (make, g++, python3) and Node\'s headers;\n' +
      '        without internet, install your distribution\'s Node headers or set npm_config_nodedir.\n',
  );
  process.exit(result.status ?? 1);
}
