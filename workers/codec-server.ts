// A Temporal codec server: the Web UI (in the operator's browser) sends it the
// encrypted payloads it shows and gets them back decoded. CORS admits the UI's
// origin; a bearer token, when set, keeps everyone else out.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';

export interface CodecServerOptions {
  readonly codec: PayloadCodec;
  /** Origins allowed to call (the Web UI's). */
  readonly corsOrigins: readonly string[];
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  readonly bearerToken?: string;
  readonly host?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** Largest request accepted. @default 4 MiB */
  readonly maxBodyBytes?: number;
}

export interface CodecServer {
  readonly url: string;
  close(): Promise<void>;
}

/** The JSON form of payloads in the codec protocol: bytes are base64. */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const toPayload = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const limit = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const origin = req.headers.origin;
    if (origin && opts.corsOrigins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    const answer = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method === 'OPTIONS') return void res.writeHead(204).end();
    const path = new URL(req.url ?? '/', 'http://codec').pathname;
    if (req.method !== 'POST' || (path !== '/encode' && path !== '/decode')) return answer(404, { error: 'POST /encode or /decode' });
    if (opts.bearerToken) {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ') || !sameSecret(auth.slice(7), opts.bearerToken)) return answer(401, { error: 'a valid bearer token is required' });
    }
    const body = await readBody(req, limit);
    if (body === undefined) return answer(413, { error: `request larger than ${limit} bytes` });
    let payloads: JsonPayload[];
    try {
      const parsed = JSON.parse(body) as { payloads?: unknown };
      if (!Array.isArray(parsed.payloads)) throw new Error('no payloads');
      payloads = parsed.payloads as JsonPayload[];
    } catch {
      return answer(400, { error: 'body must be {"payloads": [...]}' });
    }
    try {
      const input = payloads.map(toPayload);
      const output = path === '/encode' ? await opts.codec.encode(input) : await opts.codec.decode(input);
      answer(200, { payloads: output.map(toJson) });
    } catch (err) {
      answer(400, { error: (err as Error).message });
    }
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Browsers keep connections alive; do not wait for them to time out.
        server.closeAllConnections();
      }),
  };
}
