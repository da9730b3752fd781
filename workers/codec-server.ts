// A Temporal codec server: the Web UI (in the operator's browser) sends it the
// encrypted payloads it shows and gets them back decoded. It holds the keys, so it
// answers only with its token, only for its own Host (DNS rebinding) and only for
// the UI's Origin; JSON bodies only (no "simple" cross-site request gets through),
// bounded in size; `/encode` (encrypting anything for anyone) only when enabled.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { ConfigError } from '../common/failures';
import { CODEC_TOKEN_PATTERN } from '../client/codec-client';


export interface CodecServerOptions {
  readonly codec: PayloadCodec;
  /** Origins allowed to call (the Web UI's); a request from any other Origin is refused. */
  readonly corsOrigins: readonly string[];
  /**
   * Required: requests carry `Authorization: Bearer <token>` (the temporal CLI's
   * `--codec-auth`), or call under `/<token>/` (the Web UI's codec endpoint URL).
   */
  readonly bearerToken: string;
  readonly host?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** `Host` header values answered. @default `127.0.0.1:<port>`, `localhost:<port>` and `<host>:<port>` */
  readonly allowedHosts?: readonly string[];
  /** Serve `/encode` (the UI's "send a signal" with encoded input). @default false */
  readonly enableEncode?: boolean;
  /** Largest request accepted. @default 1 MiB */
  readonly maxBodyBytes?: number;
}

export interface CodecServer {
  readonly url: string;
  /** Resolves with why the server stopped listening when it stops without `close()` (for `npm start`'s supervisor). */
  readonly ended: Promise<string>;
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

/** The body up to `limit` bytes; beyond it the rest is drained unbuffered and the answer is undefined. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  return size > limit ? undefined : Buffer.concat(chunks).toString('utf8');
}

/** The token a codec server requires; a ConfigError naming CODEC_SERVER_TOKEN when it is missing or malformed. */
export function assertCodecToken(token: string | undefined): string {
  if (typeof token !== 'string' || !CODEC_TOKEN_PATTERN.test(token)) {
    throw new ConfigError([
      `CODEC_SERVER_TOKEN: ${token ? 'must be' : 'required when SLOTS_ENCRYPTION_KEYS is set (the codec server holds the keys):'} 16-512 letters, digits or ._~+=- (openssl rand -hex 32)`,
    ]);
  }
  return token;
}

export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const token = assertCodecToken(opts.bearerToken);
  const limit = opts.maxBodyBytes ?? 1024 * 1024;
  const bindHost = opts.host ?? '127.0.0.1';
  let allowedHosts: ReadonlySet<string> = new Set();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const answer = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const hostHeader = (req.headers.host ?? '').toLowerCase();
    if (!allowedHosts.has(hostHeader)) {
      return answer(403, { error: `Host ${JSON.stringify(hostHeader)} is not a name of this codec server (allowed: ${[...allowedHosts].join(', ')}; set CODEC_ALLOWED_HOSTS)` });
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !opts.corsOrigins.includes(origin)) {
      return answer(403, { error: `Origin ${JSON.stringify(origin)} may not call this codec server (allowed: ${opts.corsOrigins.join(', ') || 'none'}; set CODEC_UI_ORIGINS)` });
    }
    if (origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Max-Age', '600');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') return void res.writeHead(204).end();
    // `/<token>/decode` is how the Web UI authenticates: its codec endpoint URL holds the token.
    const segments = new URL(req.url ?? '/', 'http://codec').pathname.split('/').filter(Boolean);
    const operation = segments.at(-1);
    const pathToken = segments.length === 2 ? decodeURIComponent(segments[0] ?? '') : undefined;
    if (req.method !== 'POST' || segments.length > 2 || (operation !== 'encode' && operation !== 'decode')) {
      return answer(404, { error: 'POST /decode or /encode' });
    }
    const auth = req.headers.authorization;
    const given = auth?.startsWith('Bearer ') ? auth.slice(7) : pathToken;
    if (given === undefined || !sameSecret(given, token)) {
      return answer(401, { error: 'a valid codec token is required: Authorization: Bearer <CODEC_SERVER_TOKEN>, or the endpoint URL http://<host>:<port>/<CODEC_SERVER_TOKEN>' });
    }
    if (operation === 'encode' && !opts.enableEncode) {
      return answer(403, { error: '/encode is disabled (it encrypts anything for anyone who asks); set CODEC_ENABLE_ENCODE=true to serve it' });
    }
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/json') {
      return answer(415, { error: `Content-Type must be application/json, got ${JSON.stringify(req.headers['content-type'] ?? '')}` });
    }
    const declared = Number(req.headers['content-length']);
    let body: string | undefined;
    // Declared too large: refused unread (the rest is drained, not kept).
    if (Number.isFinite(declared) && declared > limit) req.resume();
    else body = await readBody(req, limit);
    if (body === undefined) {
      res.setHeader('Connection', 'close');
      return answer(413, { error: `request larger than ${limit} bytes` });
    }
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
      const output = operation === 'encode' ? await opts.codec.encode(input) : await opts.codec.decode(input);
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
    server.listen(opts.port ?? 0, bindHost, resolve);
  });
  let closing = false;
  const ended = new Promise<string>((resolve) => {
    server.once('error', (err) => resolve(`error: ${err.message}`));
    server.once('close', () => {
      if (!closing) resolve('stopped listening');
    });
  });
  const { port } = server.address() as AddressInfo;
  allowedHosts = new Set((opts.allowedHosts ?? [`127.0.0.1:${port}`, `localhost:${port}`, `${bindHost}:${port}`]).map((h) => h.toLowerCase()));
  return {
    url: `http://${bindHost}:${port}`,
    ended,
    close: () =>
      new Promise((resolve) => {
        closing = true;
        server.close(() => resolve());
        // Browsers keep connections alive; do not wait for them to time out.
        server.closeAllConnections();
      }),
  };
}
