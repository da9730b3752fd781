// Quiets the SDK's INFO chatter in test output; warnings and errors still show, except
// the SDK's "Activity failed" for a failure of our own vocabulary (common/failures.ts):
// those are outcomes the tests provoke on purpose (a 503, a dead token, a wrong code),
// counted and summarised in one line per test file. Any other failure (a TypeError, a
// type we do not know, a workflow's failure: its type does not survive the trip from the
// workflow thread) still shows in full. Also not shown: a host worker's "No workflows
// registered" (its queue has activities only, by design).
import { DefaultLogger, Runtime, type LogLevel, type LogMetadata, type Logger } from '@temporalio/worker';
import { afterAll } from 'vitest';
import { FailureType, innermostFailureType } from '../common/failures';

const VOCABULARY = new Set<string>(Object.values(FailureType));
// Per process, not per module instance: the runtime's logger is installed once per process.
const expected: Map<string, number> = ((globalThis as { expectedActivityFailures?: Map<string, number> }).expectedActivityFailures ??= new Map());

/** The failure type when this entry is one of our failures, or undefined for anything else. */
function expectedFailureType(message: string, meta: LogMetadata | undefined): string | undefined {
  if (message !== 'Activity failed') return undefined;
  const type = innermostFailureType(meta?.error);
  return type !== undefined && VOCABULARY.has(type) ? type : undefined;
}

const byDesign = (message: string, meta: LogMetadata | undefined): boolean =>
  message === 'No workflows registered, not polling for workflow tasks' && typeof meta?.taskQueue === 'string' && meta.taskQueue.startsWith('slots.');

class TestLogger implements Logger {
  private readonly inner = new DefaultLogger('WARN');
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const type = expectedFailureType(message, meta);
    if (type) expected.set(type, (expected.get(type) ?? 0) + 1);
    else if (!byDesign(message, meta)) this.inner.log(level, message, meta);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

try {
  Runtime.install({ logger: new TestLogger() });
} catch {
  // Already installed in this process by an earlier file.
}

afterAll(() => {
  if (expected.size === 0) return;
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  const byType = [...expected].sort((a, b) => b[1] - a[1]).map(([type, n]) => `${type} ×${n}`).join(', ');
  console.log(`(expected activity failures, not shown as warnings: ${total}: ${byType})`);
  expected.clear();
});
