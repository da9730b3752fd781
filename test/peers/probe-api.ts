// A stand-in for the endpoints live probes call, on 127.0.0.1: Anthropic's Messages
// API (`/v1/messages`), the Codex backend's usage read (`/backend-api/wham/usage`) and
// an OpenID Connect userinfo endpoint (`/userinfo`). It records every request whole
// (headers and body) and answers 200 to the token the test calls current, 401 otherwise,
// unless a scripted answer comes first. Answer bodies quote the token: a probe must never read them.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProbeApiRequest {
  readonly at: number;
  readonly method: string;
  /** Path with its query, as sent. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly status: number;
}

export interface ScriptedAnswer {
  /** Ignored with `drop`. */
  readonly status: number;
  /** Close the connection without an answer (a network error). */
  readonly drop?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ProbeApi {
  readonly url: string;
  readonly requests: readonly ProbeApiRequest[];
  /** The next answers, consumed one per request, before the token decides. */
  script(answers: readonly ScriptedAnswer[]): void;
  /** Called as each request arrives, before it is answered (a test may look at the slot meanwhile). */
  onRequest: ((req: ProbeApiRequest) => Promise<void>) | undefined;
  close(): Promise<void>;
}

/** Words in every answer body, with the token the request carried: what a leak would show. */
export const BODY_MARKER = 'PROBEBODY-4d1f7a';

export async function startProbeApi(isCurrent: (token: string) => boolean): Promise<ProbeApi> {
  const requests: ProbeApiRequest[] = [];
  const scripted: ScriptedAnswer[] = [];
  const sockets = new Set<Socket>();
  const api: ProbeApi = {
    url: '',
    requests,
    script: (answers) => void scripted.push(...answers),
    onRequest: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const path = new URL(req.url ?? '/', 'http://probe').pathname;
        const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
        const known = (path === '/v1/messages' && req.method === 'POST') || (['/backend-api/wham/usage', '/userinfo'].includes(path) && req.method === 'GET');
        const next = known ? scripted.shift() : undefined;
        const status = !known ? 404 : next ? next.status : bearer !== undefined && isCurrent(bearer) ? 200 : 401;
        const headers = Object.fromEntries(Object.entries(req.headers).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v]] : [])));
        const record: ProbeApiRequest = { at: Date.now(), method: req.method ?? '', url: req.url ?? '', headers, body: Buffer.concat(chunks).toString('utf8'), status };
        requests.push(record);
        await api.onRequest?.(record).catch(() => undefined);
        if (next?.drop) return void req.socket.destroy();
        res.writeHead(status, { 'content-type': 'application/json', ...(next?.headers ?? {}) });
        // A 200 from /v1/messages is a whole Message, so the real `claude -p` can read it.
        const message = status === 200 && path === '/v1/messages'
          ? { id: `msg_probe_${requests.length}`, type: 'message', role: 'assistant', model: 'claude-stand-in', content: [{ type: 'text', text: 'pong' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } }
          : {};
        res.end(JSON.stringify({ ...message, marker: BODY_MARKER, youSent: bearer ?? null, status }));
      })();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(api, { url: `http://127.0.0.1:${port}` });
}
