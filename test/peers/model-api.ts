// A model API stand-in on 127.0.0.1 for agent tests: the OpenAI Responses API (as
// Codex streams it) and the Anthropic Messages API (as Claude Code streams it),
// answering 200 only to the bearer token the test calls current, 401 otherwise.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ModelRequest {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  /** The bearer token presented, when any. */
  readonly token?: string;
  readonly status: number;
}

export interface ModelApi {
  readonly url: string;
  readonly requests: readonly ModelRequest[];
  /** Requests that reached a model (responses or messages), not discovery or telemetry. */
  modelCalls(): ModelRequest[];
  close(): Promise<void>;
}

const sse = (res: ServerResponse, events: ReadonlyArray<readonly [string, unknown]>): void => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const [event, data] of events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  res.end();
};

let counter = 0;

/** One assistant message saying `text`, as the Responses API streams it. */
function responsesStream(res: ServerResponse, text: string): void {
  const id = `resp_${++counter}`;
  const item = { type: 'message', id: `msg_${counter}`, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text, annotations: [] }] };
  sse(res, [
    ['response.created', { type: 'response.created', response: { id, object: 'response', status: 'in_progress', output: [] } }],
    ['response.output_item.done', { type: 'response.output_item.done', output_index: 0, item }],
    [
      'response.completed',
      {
        type: 'response.completed',
        response: { id, object: 'response', status: 'completed', output: [item], usage: { input_tokens: 1, input_tokens_details: { cached_tokens: 0 }, output_tokens: 1, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 2 } },
      },
    ],
  ]);
}

/** One assistant message saying `text`, as the Messages API streams it. */
function messagesStream(res: ServerResponse, text: string, model: string): void {
  const id = `msg_${++counter}`;
  sse(res, [
    ['message_start', { type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } } }],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 1 } }],
    ['message_stop', { type: 'message_stop' }],
  ]);
}

const MODEL_PATHS = /^\/v1\/(responses|messages)$/;

/**
 * `isCurrent(token)` decides: only the slot's current access token gets a 200.
 * `reply` is the text each model answer carries.
 */
export async function startModelApi(isCurrent: (token: string) => boolean, reply = 'pong'): Promise<ModelApi> {
  const requests: ModelRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://model').pathname;
      const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const record = (status: number): void => {
        requests.push({ at: Date.now(), method: req.method ?? '', path, ...(bearer !== undefined ? { token: bearer } : {}), status });
      };
      const model = MODEL_PATHS.exec(path);
      if (!model || req.method !== 'POST') {
        record(404);
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"not here"}}');
        return;
      }
      if (bearer === undefined || !isCurrent(bearer)) {
        record(401);
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          model[1] === 'messages'
            ? '{"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired"}}'
            : '{"error":{"message":"token expired","type":"invalid_request_error","code":"token_expired"}}',
        );
        return;
      }
      record(200);
      let asked: { model?: unknown } = {};
      try {
        asked = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model?: unknown };
      } catch {
        // The reply does not depend on the request.
      }
      if (model[1] === 'responses') responsesStream(res, reply);
      else messagesStream(res, reply, typeof asked.model === 'string' ? asked.model : 'claude-stand-in');
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    modelCalls: () => requests.filter((r) => MODEL_PATHS.test(r.path)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
