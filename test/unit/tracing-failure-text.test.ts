// Traces never carry failure text in clear (issue 23): Temporal's OpenTelemetry activity
// interceptor puts a failure's message in the span status and records the exception; the
// payload codec encrypts that message in history, so the export must not hand it out.
// A real OTLP/HTTP receiver on 127.0.0.1, the real interceptor, a planted secret.
import { ApplicationFailure } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, type SlotTracing } from '../../host/tracing';

const PLANTED = 'PLANTED-SCREEN-TEXT sk-ant-oat01-PLANTEDplantedPLANTED0123';

describe('exported traces', () => {
  let receiver: Server;
  const bodies: string[] = [];
  let tracing: SlotTracing;

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString('latin1')));
      req.on('end', () => {
        bodies.push(raw);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as { port: number }).port;
    tracing = startTracing({ otlpEndpoint: `http://127.0.0.1:${port}`, zipkinEndpoint: undefined, serviceName: 'failure-text-test' })!;
  });
  afterAll(async () => {
    await tracing?.shutdown();
    receiver?.close();
  });

  it("hold that an activity failed and the error's type, never its message or stack", async () => {
    const env = new MockActivityEnvironment({ activityType: 'startLogin', workflowExecution: { workflowId: 'slot:trace', runId: 'r' } }, { interceptors: [tracing.activityInterceptor] });
    const failed: Error = await env
      .run(async (): Promise<void> => {
        throw ApplicationFailure.nonRetryable(`the login URL could not be read whole: ${PLANTED}`, 'LoginUrlUnreadable');
      })
      .then(
        () => new Error('expected the activity to fail'),
        (err: unknown) => err as Error,
      );
    // The failure itself (for Temporal, which encodes it) is unchanged.
    expect(failed.message).toContain(PLANTED);
    await tracing.flush();
    const exported = bodies.join('\n');
    // The search can find what it looks for: the activity's span is there, marked failed.
    expect(exported).toContain('RunActivity:startLogin');
    expect(exported).toContain('ApplicationFailure');
    expect(exported).not.toContain('PLANTED');
  });
});
