// The token-endpoint peer must behave like the real ones, or refresh tests prove
// nothing: rotation, reuse detection that kills the family, both error shapes,
// and faults served in order over real HTTP.
import { afterEach, describe, expect, it } from 'vitest';
import { startTokenServer, type TokenServer, type TokenServerOptions } from '../peers/token-server';

const servers: TokenServer[] = [];
async function start(options?: TokenServerOptions): Promise<TokenServer> {
  const server = await startTokenServer(options);
  servers.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: () => Record<string, unknown>;
}

async function post(url: string, body: unknown, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

const refreshBody = (refreshToken: string, clientId = 'test-client') => ({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId });

describe('token server: rotation', () => {
  it('rotates single-use refresh tokens on both the Claude and the Codex path', async () => {
    const server = await start();
    const seed = server.issue({ accessTtlSec: 600 });
    expect(seed).toMatchObject({ expiresIn: 600 });
    expect(server.accessTokenValid(seed.accessToken)).toBe(true);

    const first = await post(server.claudeTokenUrl, refreshBody(seed.refreshToken));
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toBe('application/json');
    const one = first.json();
    expect(one).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: expect.any(String) });
    expect(one.refresh_token).not.toBe(seed.refreshToken);
    expect(one.access_token).not.toBe(seed.accessToken);
    expect(server.accessTokenValid(one.access_token as string)).toBe(true);

    const second = await post(server.codexTokenUrl, refreshBody(one.refresh_token as string));
    expect(second.status).toBe(200);
    expect(server.grant(seed.grantId)).toMatchObject({ alive: true, rotations: 2, refreshToken: second.json().refresh_token });
    expect(server.presentedTwice()).toEqual([]);
    expect(server.requests.map((r) => [r.path, r.grantType, r.status, r.outcome])).toEqual([
      ['/v1/oauth/token', 'refresh_token', 200, 'rotated'],
      ['/oauth/token', 'refresh_token', 200, 'rotated'],
    ]);
  });

  it('accepts an RFC 6749 form-encoded request', async () => {
    const server = await start();
    const seed = server.issue();
    const res = await fetch(server.codexTokenUrl, {
      method: 'POST',
      body: new URLSearchParams(refreshBody(seed.refreshToken)),
    });
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.status).toBe(200);
    expect(server.requests[0]).toMatchObject({ contentType: expect.stringContaining('application/x-www-form-urlencoded'), refreshToken: seed.refreshToken });
  });

  it('adds an id_token when asked, as OpenAI does', async () => {
    const server = await start({ idToken: true });
    const res = await post(server.codexTokenUrl, refreshBody(server.issue().refreshToken));
    const idToken = res.json().id_token as string;
    const claims = JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString()) as { exp: number };
    expect(claims.exp).toBeGreaterThan(Date.now() / 1000);
  });
});

describe('token server: refusals', () => {
  it('answers a reused refresh token with invalid_grant and kills the whole family', async () => {
    const server = await start();
    const seed = server.issue();
    const rotated = (await post(server.claudeTokenUrl, refreshBody(seed.refreshToken))).json();

    const reuse = await post(server.claudeTokenUrl, refreshBody(seed.refreshToken));
    expect(reuse.status).toBe(400);
    expect(reuse.json()).toEqual({ error: 'invalid_grant', error_description: 'refresh token reused' });

    const newest = await post(server.claudeTokenUrl, refreshBody(rotated.refresh_token as string));
    expect(newest.status).toBe(400);
    expect(newest.json()).toMatchObject({ error: 'invalid_grant' });
    expect(server.accessTokenValid(rotated.access_token as string)).toBe(false);
    expect(server.grant(seed.grantId)?.alive).toBe(false);
    expect(server.presentedTwice()).toEqual([seed.refreshToken]);
  });

  it('answers an unknown token with invalid_grant and a wrong client with invalid_client', async () => {
    const server = await start();
    const seed = server.issue({ clientId: 'app_EMoamEEZ73f0CkXaXp7hrann' });
    const unknown = await post(server.codexTokenUrl, refreshBody('rt-nobody-knows', 'app_EMoamEEZ73f0CkXaXp7hrann'));
    expect(unknown.status).toBe(400);
    expect(unknown.json()).toMatchObject({ error: 'invalid_grant' });

    const wrongClient = await post(server.codexTokenUrl, refreshBody(seed.refreshToken, 'someone-else'));
    expect(wrongClient.status).toBe(401);
    expect(wrongClient.json()).toMatchObject({ error: 'invalid_client' });
    const noClient = await post(server.codexTokenUrl, { grant_type: 'refresh_token', refresh_token: seed.refreshToken });
    expect(noClient.status).toBe(401);

    // A refused client did not consume the token.
    expect((await post(server.codexTokenUrl, refreshBody(seed.refreshToken, 'app_EMoamEEZ73f0CkXaXp7hrann'))).status).toBe(200);
    expect(server.presentedTwice()).toEqual([]);
  });

  it('refuses malformed requests with invalid_request or unsupported_grant_type', async () => {
    const server = await start();
    expect((await post(server.claudeTokenUrl, { grant_type: 'password', client_id: 'test-client' })).json()).toMatchObject({ error: 'unsupported_grant_type' });
    expect((await post(server.claudeTokenUrl, { grant_type: 'refresh_token', client_id: 'test-client' })).status).toBe(400);
    expect((await post(server.claudeTokenUrl, 'x', { body: 'not json' })).json()).toMatchObject({ error: 'invalid_request' });
    expect((await post(`${server.url}/elsewhere`, {})).status).toBe(404);
    expect((await fetch(server.claudeTokenUrl)).status).toBe(405);
  });

  it('answers Codex-style 401s with the OpenAI error envelope', async () => {
    const server = await start({ errorStyle: 'openai' });
    const seed = server.issue();
    const rotated = (await post(server.codexTokenUrl, refreshBody(seed.refreshToken))).json();
    const reuse = await post(server.codexTokenUrl, refreshBody(seed.refreshToken));
    expect(reuse.status).toBe(401);
    expect(reuse.json()).toEqual({
      error: {
        message: 'Your refresh token has already been used to generate a new access token. Please try signing in again.',
        type: 'invalid_request_error',
        param: null,
        code: 'refresh_token_reused',
      },
    });
    const newest = await post(server.codexTokenUrl, refreshBody(rotated.refresh_token as string));
    expect(newest.status).toBe(401);
    expect(newest.json()).toMatchObject({ error: { code: 'refresh_token_invalidated' } });

    const expiring = server.issue({ refreshTtlSec: 0 });
    const expired = await post(server.codexTokenUrl, refreshBody(expiring.refreshToken));
    expect(expired.status).toBe(401);
    expect(expired.json()).toMatchObject({ error: { code: 'refresh_token_expired' } });
  });

  it('answers the flat string form of the Codex codes when asked', async () => {
    const server = await start({ errorStyle: 'openai-flat' });
    const res = await post(server.codexTokenUrl, refreshBody(server.issue({ refreshTtlSec: 0 }).refreshToken));
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ error: 'refresh_token_expired' });
  });

  it('lets an operator revoke a grant', async () => {
    const server = await start();
    const seed = server.issue();
    expect(server.revoke(seed.refreshToken)).toBe(true);
    expect(server.revoke('rt-unknown')).toBe(false);
    const res = await post(server.claudeTokenUrl, refreshBody(seed.refreshToken));
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: 'invalid_grant', error_description: 'refresh token revoked' });
    expect(server.accessTokenValid(seed.accessToken)).toBe(false);
  });

  it('answers 413 to a body over 64 KiB without processing it', async () => {
    const server = await start();
    const seed = server.issue();
    const res = await post(server.claudeTokenUrl, { ...refreshBody(seed.refreshToken), padding: 'p'.repeat(70 * 1024) });
    expect(res.status).toBe(413);
    expect(server.requests[0]).toMatchObject({ status: 413, outcome: 'too-large', examined: false });
    expect((await post(server.claudeTokenUrl, refreshBody(seed.refreshToken))).status).toBe(200);
  });
});

describe('token server: scripted faults', () => {
  it('serves queued faults in order, one per request, then behaves again', async () => {
    const server = await start();
    const seed = server.issue();
    server.script([
      { status: 500 },
      { status: 503 },
      { status: 429, retryAfter: 7 },
      { body: 'garbage', contentType: 'text/plain' },
      { html: true },
      { dropConnection: true },
    ]);
    const ask = () => post(server.claudeTokenUrl, refreshBody(seed.refreshToken));

    const r500 = await ask();
    expect([r500.status, r500.json().error]).toEqual([500, 'server_error']);
    const r503 = await ask();
    expect([r503.status, r503.json().error]).toEqual([503, 'temporarily_unavailable']);
    const r429 = await ask();
    expect(r429.status).toBe(429);
    expect(r429.headers.get('retry-after')).toBe('7');
    const garbage = await ask();
    expect([garbage.status, garbage.headers.get('content-type'), garbage.text]).toEqual([200, 'text/plain', 'garbage']);
    const html = await ask();
    expect(html.status).toBe(502);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(html.text).toContain('<html>');
    await expect(ask()).rejects.toThrow(TypeError); // fetch failed: the socket was destroyed
    expect(server.pendingFaults()).toBe(0);

    // Faults struck before the grant logic, so the original token still works once.
    expect((await ask()).status).toBe(200);
    expect(server.presentedTwice()).toEqual([]);
    expect(server.requests.map((r) => r.status)).toEqual([500, 503, 429, 200, 502, undefined, 200]);
  });

  it('streams a huge body that a careful client can stop reading', async () => {
    const server = await start();
    server.script([{ hugeBodyBytes: 50_000_000 }]);
    const res = await fetch(server.claudeTokenUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBeNull();
    const reader = res.body!.getReader();
    let received = 0;
    while (received <= 1024 * 1024) {
      const { value, done } = await reader.read();
      if (done) break;
      received += value.length;
    }
    await reader.cancel();
    expect(received).toBeGreaterThan(1024 * 1024);
    expect((await post(server.claudeTokenUrl, refreshBody(server.issue().refreshToken))).status).toBe(200);
  });

  it('delays an answer, and does not process a request whose client gave up', async () => {
    const server = await start();
    const seed = server.issue();
    server.script([{ delayMs: 300 }, { delayMs: 800 }]);
    const started = performance.now();
    const slow = await post(server.claudeTokenUrl, refreshBody(seed.refreshToken));
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(slow.status).toBe(200);

    const next = slow.json().refresh_token as string;
    await expect(post(server.claudeTokenUrl, refreshBody(next), { signal: AbortSignal.timeout(200) })).rejects.toThrow(/abort|timeout/i);
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(server.requests[1]).toMatchObject({ outcome: 'client-gone', examined: false });
    expect((await post(server.claudeTokenUrl, refreshBody(next))).status).toBe(200);
    expect(server.presentedTwice()).toEqual([]);
  });

  it('can lose the answer after rotating, so a blind retry is a reuse', async () => {
    const server = await start();
    const seed = server.issue();
    server.script([{ dropConnection: true, afterRotation: true }]);
    await expect(post(server.claudeTokenUrl, refreshBody(seed.refreshToken))).rejects.toThrow(TypeError);
    expect(server.grant(seed.grantId)?.rotations).toBe(1);
    const retry = await post(server.claudeTokenUrl, refreshBody(seed.refreshToken));
    expect(retry.json()).toMatchObject({ error: 'invalid_grant', error_description: 'refresh token reused' });
    expect(server.presentedTwice()).toEqual([seed.refreshToken]);
  });

  it('adds the configured latency to every answer', async () => {
    const server = await start({ latencyMs: 60 });
    const seed = server.issue();
    const started = performance.now();
    expect((await post(server.claudeTokenUrl, refreshBody(seed.refreshToken))).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);

    // Without latency, answers come sooner: the quickest of a few (a loaded machine delays some, not all).
    const fast = await start();
    const times: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const fastSeed = fast.issue();
      const fastStarted = performance.now();
      await post(fast.claudeTokenUrl, refreshBody(fastSeed.refreshToken));
      times.push(performance.now() - fastStarted);
    }
    expect(Math.min(...times)).toBeLessThan(55);
  });

  it('closes with requests still waiting', async () => {
    const server = await start();
    server.script([{ delayMs: 60_000 }]);
    const pending = post(server.claudeTokenUrl, refreshBody(server.issue().refreshToken)).catch((err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await server.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(TypeError);
  });
});
