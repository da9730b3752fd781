// A local webhook receiver for operator notices: every JSON body it is sent lands in `into`.
import { createServer } from 'node:http';

export interface WebhookReceiver {
  /** The port on 127.0.0.1. */
  readonly port: number;
  close(): void;
}

/** Listens on 127.0.0.1 (a free port), answers `ok` and appends each request's parsed JSON body to `into`. */
export async function startWebhookReceiver<T>(into: T[]): Promise<WebhookReceiver> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      into.push(JSON.parse(body) as T);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, close: () => void server.close() };
}
