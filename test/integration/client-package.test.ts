// Another TypeScript service imports the client API by package name
// (`import { SlotClient } from 'slot-provisioner'`): its type check sees the real
// types (a wrong phase is an error), and it provisions a slot and reads its prompt.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotStatusSchema } from '../../common/schemas';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';
import { uniqueName } from '../harness';
import { startSlotRig, waitForPrompt, type SlotRig } from '../slot-fixtures';

const run = (command: string, args: string[], cwd: string): Promise<{ code: number; out: string }> =>
  new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: 180_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: `${stdout}${stderr}` }),
    );
  });

const CONSUMER = `import { HANDLER_DESCRIPTIONS, PHASES, SlotClient, slotWorkflowId, type Phase, type SlotStatus } from 'slot-provisioner';

const [address, taskQueue, host, slotId] = process.argv.slice(2) as [string, string, string, string];
const slots = await SlotClient.connect({ address, taskQueue });
try {
  await slots.provision({ slotId, provider: 'claude', host });
  const waiting = (s: SlotStatus): boolean => s.phase === 'awaiting-operator' && s.prompt !== undefined;
  const { status, reached } = await slots.waitFor(slotId, waiting, { timeoutMs: 30_000, pollMs: 100 });
  const phase: Phase = status.phase;
  console.log(JSON.stringify({ reached, phase, known: PHASES.includes(phase), workflowId: slotWorkflowId(slotId), url: status.prompt?.url, status, described: HANDLER_DESCRIPTIONS.submitCode.length > 0 }));
} finally {
  await slots.close();
}
`;

describe('the client API as a package', () => {
  let rig: SlotRig;
  let dir: string;

  beforeAll(async () => {
    rig = await startSlotRig();
    dir = await mkdtemp(join(tmpdir(), 'slot-consumer-'));
    await mkdir(join(dir, 'node_modules', '@types'), { recursive: true });
    // What `npm install ../slot-provisioner` (or a git dependency) leaves: the package under its name.
    await symlink(PROJECT_ROOT, join(dir, 'node_modules', 'slot-provisioner'), 'dir');
    // The service's own dev dependency, as any Node service in TypeScript has.
    await symlink(join(PROJECT_ROOT, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'), 'dir');
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const compilerOptions = { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] };
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['service.ts', 'bad.ts'] }));
    await writeFile(join(dir, 'service.ts'), CONSUMER);
    await writeFile(join(dir, 'bad.ts'), `import type { SlotStatus } from 'slot-provisioner';\nexport const phase: SlotStatus['phase'] = 'sleeping';\n`);
  });

  afterAll(async () => {
    await rig?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('type-checks against the real types: a service is accepted, a wrong phase is refused', async () => {
    const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    // One run (it checks the package's sources too): the service passes, the one wrong line does not.
    const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir);
    expect(checked.code).not.toBe(0);
    const errors = checked.out.split('\n').filter((l) => /error TS\d+/.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^bad\.ts\(2,14\): error TS2322: Type '"sleeping"' is not assignable to type '"logging-in" \| "awaiting-operator" \|/);
  }, 180_000);

  it('imported by name, it provisions a slot and reads its prompt', async () => {
    const slotId = uniqueName('pkg');
    const loader = join(PROJECT_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs');
    const result = await run(process.execPath, ['--import', loader, 'service.ts', inject('temporalAddress'), rig.workers.sharedTaskQueue, rig.workers.hostName, slotId], dir);
    expect(result.code, result.out).toBe(0);
    const printed = JSON.parse(result.out.trim().split('\n').at(-1) ?? '{}') as { reached: boolean; phase: string; known: boolean; workflowId: string; url: string; status: unknown; described: boolean };
    const seen = await waitForPrompt(rig.slots, slotId);
    expect(printed).toMatchObject({ reached: true, phase: 'awaiting-operator', known: true, workflowId: `slot:${slotId}`, url: seen.prompt.url, described: true });
    // What the workflow really answers fits the published contract.
    expect(SlotStatusSchema.strict().safeParse(printed.status).error).toBeUndefined();
  }, 120_000);
});
