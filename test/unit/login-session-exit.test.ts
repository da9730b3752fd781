// A CLI that prints its error and exits at once: its exit can be reported by the PTY
// before its last bytes have been read. The session must still show those bytes when
// it says the CLI exited, or the operator is told "exited before showing a code"
// instead of the CLI's own reason (seen in CI with the real codex CLI).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LoginSession } from '../../activities/login-session';

let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'login-session-exit-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

// 64 KiB of output fills the PTY's buffer, so the last lines are still in the kernel when the
// process is gone: without waiting for the output to settle, about 1 exit in 6 lost them here.
const CLI = "process.stdout.write('progress '.repeat(7282) + '\\r\\nError: device-code login is unavailable for this account\\r\\n'); process.exit(1)";
const RUNS = 25;

it(`shows the last line a CLI printed before exiting, every time (${RUNS} runs)`, async () => {
  const lost: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const session = LoginSession.start(`exit-${run}`, 'exit-slot', 'fixture', { command: process.execPath, args: ['-e', CLI], env: { PATH: process.env.PATH ?? '' }, dirs: [] }, home);
    const exit = await session.exited;
    expect(exit.exitCode).toBe(1);
    if (!session.snapshot().text.includes('device-code login is unavailable')) lost.push(run);
    await session.kill(0);
  }
  expect(lost, `runs whose last line was not on the screen at exit`).toEqual([]);
}, 120_000);

// A CLI that asks the terminal who it is (DA1) and exits at once: the answer reaches a terminal
// with nobody reading it, and the echo must not appear among the CLI's last words.
const ASKS_THEN_EXITS = "process.stdout.write('\\x1b[c'); process.stdout.write('Error: Failed to connect to api.anthropic.com: ENOTFOUND\\r\\n'); process.exit(1)";

it('does not show the echo of its answer to a CLI that asked the terminal and exited', async () => {
  for (let run = 0; run < 10; run++) {
    const session = LoginSession.start(`ask-${run}`, 'exit-slot', 'fixture', { command: process.execPath, args: ['-e', ASKS_THEN_EXITS], env: { PATH: process.env.PATH ?? '' }, dirs: [] }, home);
    await session.exited;
    const text = session.snapshot().text;
    expect(text).toContain('Failed to connect to api.anthropic.com');
    expect(text).not.toContain('^[');
    await session.kill(0);
  }
}, 120_000);
