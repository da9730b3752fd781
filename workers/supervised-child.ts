// What `npm start` needs of each process it starts and looks after (the dev server, the
// codec server): the last lines it printed, how it ended, and a stop that escalates.
import type { ChildProcess } from 'node:child_process';

export interface ChildEnd {
  /** Resolves when the process is gone, saying how (exit code or signal, and its last words). */
  readonly ended: Promise<string>;
  /** How it ended, once it has; undefined while it runs. */
  readonly exited: () => string | undefined;
  /** Its last three non-empty output lines (colour codes removed), for an error message. */
  readonly lastWords: () => string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it is gone. */
  readonly stop: () => Promise<void>;
}

/** Watches `child`, keeping the last 4000 characters of the streams given. `program` names it when it cannot run. */
export function watchChild(child: ChildProcess, program: string, streams: readonly NodeJS.ReadableStream[]): ChildEnd {
  let tail = '';
  for (const stream of streams) stream.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString('utf8')).slice(-4000)));
  const lastWords = (): string =>
    tail
      .replace(/\u001b\[[0-9;]*m/g, '')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-3)
      .join(' | ')
      .slice(0, 600);
  const ended = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(`could not run ${program}: ${err.message}`));
    child.once('exit', (code, signal) => {
      const words = lastWords();
      resolve(`${signal ? `killed by ${signal}` : `exit code ${code}`}${words ? `; it said: ${words}` : ''}`);
    });
  });
  let exited: string | undefined;
  void ended.then((how) => (exited = how));
  const stop = async (): Promise<void> => {
    if (exited !== undefined) return;
    child.kill('SIGTERM');
    if ((await Promise.race([ended.then(() => true), sleep(10_000).then(() => false)])) === false) {
      child.kill('SIGKILL');
      await ended;
    }
  };
  return { ended, exited: () => exited, lastWords, stop };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
