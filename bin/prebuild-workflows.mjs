#!/usr/bin/env node
// `postinstall`: prebuilds the workflow bundles (scripts/prebuild-workflows.ts) and the compiled
// entry points (bin/run-compiled.mjs) so the first `npm start` polls at once. Plain Node, and
// never fails the install: what is not built now is built by the worker's first start. Skipped when this package is installed as
// another project's dependency (only the client API is used there).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (root.split(sep).includes('node_modules') || process.env.SLOTS_SKIP_PREBUILD === 'true') process.exit(0);
// Installed before the sources are there (the Dockerfile's dependency layer): the image builds them later.
if (!existsSync(join(root, 'workers', 'worker.ts'))) process.exit(0);
const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'prebuild-workflows.ts')], { cwd: root, stdio: 'inherit' });
if (result.status !== 0) process.stderr.write('[workflow-bundle] not prebuilt; the worker builds it at its first start\n');
// The compiled entry points `npm start` and `npm run worker` run (bin/run-compiled.mjs); also built by their first start.
const compiled = spawnSync(process.execPath, [join(root, 'bin', 'run-compiled.mjs'), '--build', 'workers/main.ts', 'workers/worker.ts', 'workers/codec-server-process.ts'], { cwd: root, stdio: 'inherit' });
if (compiled.status !== 0) process.stderr.write('[compiled] not prebuilt; `npm start` compiles at its first start\n');
