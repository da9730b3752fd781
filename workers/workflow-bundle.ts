// The workflow bundle, built once and cached: webpack takes seconds and hundreds of
// MiB, so a worker (or a test file) reuses the bundle built from the same sources.
// The cache key is the content of everything bundled, the bundle options and the SDK version.
import { bundleWorkflowCode, type BundleOptions, type WorkflowBundle } from '@temporalio/worker';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { PROJECT_ROOT } from './temporal-binaries';

/** Git-ignored; safe to delete at any time. */
export const BUNDLE_CACHE_DIR = join(PROJECT_ROOT, '.cache', 'workflow-bundles');
/** Folders whose code can end up in the bundle (workflows import only common/ and types). */
const BUNDLED_SOURCES = ['workflows', 'common'];

export interface CachedBundle {
  readonly bundle: WorkflowBundle;
  /** False when the bundle came from the cache. */
  readonly built: boolean;
  readonly file: string;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** A hash of what the bundle is made of: a change to any of it makes a new bundle. */
async function keyOf(options: BundleOptions, extraKey: string): Promise<string> {
  const hash = createHash('sha256');
  const sdk = JSON.parse(await readFile(join(PROJECT_ROOT, 'node_modules', '@temporalio', 'worker', 'package.json'), 'utf8')) as { version: string };
  hash.update(`sdk ${sdk.version}\0${extraKey}\0`);
  const { logger: _logger, ...rest } = options;
  hash.update(`${JSON.stringify(rest)}\0`);
  const modules = [options.workflowsPath, options.failureConverterPath, options.payloadConverterPath].filter((p): p is string => typeof p === 'string');
  const files = new Set([...(await Promise.all(BUNDLED_SOURCES.map((d) => filesUnder(join(PROJECT_ROOT, d))))).flat(), ...modules]);
  for (const file of [...files].sort()) hash.update(`${relative(PROJECT_ROOT, file)}\0`).update(await readFile(file)).update('\0');
  return hash.digest('hex').slice(0, 24);
}

/** The bundle for `options`, from the cache when its sources are unchanged, else built and cached. */
export async function cachedWorkflowBundle(options: BundleOptions, opts: { cacheDir?: string; extraKey?: string } = {}): Promise<CachedBundle> {
  const cacheDir = opts.cacheDir ?? BUNDLE_CACHE_DIR;
  const file = join(cacheDir, `workflows-${await keyOf(options, opts.extraKey ?? '')}.js`);
  const cached = await readFile(file, 'utf8').catch(() => undefined);
  if (cached !== undefined) return { bundle: { code: cached }, built: false, file };
  const bundle = await bundleWorkflowCode(options);
  await mkdir(cacheDir, { recursive: true });
  // Another process may build the same bundle at once: each writes its own temp file, rename is atomic.
  const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(temp, bundle.code);
  await rename(temp, file);
  return { bundle, built: true, file };
}
