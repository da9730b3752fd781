// bin/run-compiled.mjs, what `npm start` and `npm run worker` run: a TypeScript entry is
// compiled once, reused while its sources are unchanged, compiled again when one changes,
// and runs as it would under tsx (its own import.meta.url, argv[1] naming the entry, its
// arguments, a lazily imported module in a chunk of its own). In a scratch checkout with
// the launcher copied in, so the real cache is not touched.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';

const run = (root: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin', 'run-compiled.mjs'), ...args], { cwd: root, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

describe('bin/run-compiled.mjs', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'run-compiled-'));
    await mkdir(join(root, 'bin'));
    await mkdir(join(root, 'app'));
    await copyFile(join(PROJECT_ROOT, 'bin', 'run-compiled.mjs'), join(root, 'bin', 'run-compiled.mjs'));
    await copyFile(join(PROJECT_ROOT, 'tsconfig.json'), join(root, 'tsconfig.json'));
    await symlink(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'));
    await writeFile(join(root, 'package.json'), '{"type": "module"}\n');
    await writeFile(join(root, 'app', 'greeting.ts'), "export const greeting: string = 'hello';\n");
    await writeFile(join(root, 'app', 'later.ts'), "export const later = (): string => 'loaded later';\n");
    await writeFile(
      join(root, 'app', 'main.ts'),
      [
        "import { fileURLToPath } from 'node:url';",
        "import { resolve } from 'node:path';",
        "import { greeting } from './greeting';",
        'const self = fileURLToPath(import.meta.url);',
        'const main = Boolean(process.argv[1]) && resolve(process.argv[1] as string) === self;',
        "const { later } = await import('./later');",
        'console.log(JSON.stringify({ greeting, self, main, args: process.argv.slice(2), later: later() }));',
        '',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('compiles an entry at its first start, runs it as tsx would, and reuses the build while nothing changed', async () => {
    const first = await run(root, ['app/main.ts', '--flag', 'x']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ greeting: 'hello', self: join(root, 'app', 'main.ts'), main: true, args: ['--flag', 'x'], later: 'loaded later' });
    const cacheRoot = join(root, '.cache', 'compiled');
    const [checkout] = await readdir(cacheRoot);
    const built = (await readdir(join(cacheRoot, checkout as string))).filter((n) => !n.endsWith('.json'));
    expect(built).toHaveLength(1);
    // The lazily imported module is a chunk of its own, next to the entry.
    expect((await readdir(join(cacheRoot, checkout as string, built[0] as string))).length).toBeGreaterThan(1);

    const again = await run(root, ['app/main.ts']);
    expect(JSON.parse(again.stdout)).toMatchObject({ greeting: 'hello', args: [] });
    expect((await readdir(join(cacheRoot, checkout as string))).filter((n) => !n.endsWith('.json'))).toEqual(built);
  });

  it('compiles again when a source it was built from changes', async () => {
    await writeFile(join(root, 'app', 'greeting.ts'), "export const greeting: string = 'changed';\n");
    const changed = await run(root, ['app/main.ts']);
    expect(changed.code).toBe(0);
    expect(JSON.parse(changed.stdout)).toMatchObject({ greeting: 'changed' });
  });

  it('says what does not compile, and then runs the entry through tsx, which reports the error', async () => {
    await writeFile(join(root, 'app', 'broken.ts'), "import { nothing } from './missing';\nconsole.log(nothing);\n");
    const broken = await run(root, ['app/broken.ts']);
    expect(broken.stderr).toMatch(/\[compiled\] could not compile app\/broken\.ts \(app\/broken\.ts:1: Could not resolve "\.\/missing"\); running it through tsx/);
    expect(broken.code).not.toBe(0);
    const built = await run(root, ['--build', 'app/broken.ts']);
    expect(built.code).toBe(1);
    expect(built.stderr).toMatch(/could not compile app\/broken\.ts/);
  });
});
