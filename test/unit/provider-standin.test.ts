// The provider stand-in refuses what the real servers refuse: a code redeemed with anything
// but its own verifier, state, redirect URI and client, twice, or a spent refresh token
// (which revokes the grant); in strict mode, a refresh that does not look like the CLI's.
// Every request goes as a CLI's does: through the stand-in's CONNECT proxy, trusting its CA.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_CLIENT_ID, CODEX_CLIENT_ID, startProviderStandIn, type ProviderStandIn } from '../peers/provider-standin';

let standIn: ProviderStandIn;
const claudeToken = 'https://platform.claude.com/v1/oauth/token';
const codexToken = 'https://auth.openai.com/oauth/token';
const anthropic = 'https://api.anthropic.com';
beforeAll(async () => {
  standIn = await startProviderStandIn();
});
afterAll(async () => standIn?.close());

/** One request through the stand-in's proxy (by host name), its TLS checked against the run's CA; no redirect followed. */
function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; location?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: init.method ?? 'GET', headers: init.headers, agent: new HttpsProxyAgent(standIn.proxyUrl), ca: readFileSync(standIn.caFile) }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}), text }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

const CLI_HEADERS = { 'content-type': 'application/json', 'user-agent': 'axios/1.15.2' };
const post = async (url: string, body: unknown, headers: Record<string, string> = CLI_HEADERS): Promise<{ status: number; json: Record<string, unknown> }> => {
  const res = await send(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, json: JSON.parse(res.text) as Record<string, unknown> };
};

/** A Claude authorize URL as the CLI prints it, and its verifier. */
function authorizeUrl(): { url: string; verifier: string; state: string } {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const url =
    `https://claude.com/cai/oauth/authorize?code=true&client_id=${CLAUDE_CLIENT_ID}&response_type=code` +
    `&redirect_uri=${encodeURIComponent('https://platform.claude.com/oauth/code/callback')}&scope=user%3Aprofile+user%3Ainference` +
    `&code_challenge=${challenge}&code_challenge_method=S256&state=${state}`;
  return { url, verifier, state };
}

const redeem = (code: string, verifier: string, state: string, over: Record<string, string> = {}) =>
  post(claudeToken, { grant_type: 'authorization_code', code, redirect_uri: 'https://platform.claude.com/oauth/code/callback', client_id: CLAUDE_CLIENT_ID, code_verifier: verifier, state, ...over });

describe('the provider stand-in', () => {
  it("tunnels only to the hosts it plays, on 443, and records each CONNECT", async () => {
    const tunnels = standIn.connects.length;
    expect((await send('https://claude.com/')).status).toBe(404);
    // https-proxy-agent hands a refused CONNECT's answer to the request as if the target had sent it.
    expect((await send('https://example.com/')).status).toBe(502);
    expect((await send('https://platform.claude.com:8443/')).status).toBe(502);
    expect(standIn.connects.slice(tunnels)).toEqual(['claude.com:443', 'refused example.com:443', 'refused platform.claude.com:8443']);
  });

  it('redeems a code once, only with the verifier, state, redirect URI and client of its URL', async () => {
    for (const over of [{ code_verifier: randomBytes(32).toString('base64url') }, { state: 'another-state' }, { redirect_uri: 'https://evil.example/callback' }, { client_id: 'someone-else' }] as Record<string, string>[]) {
      const { url, verifier, state } = authorizeUrl();
      const code = standIn.signIn(url).split('#')[0] as string;
      expect((await redeem(code, verifier, state, over)).status, JSON.stringify(over)).toBe(400);
      // A refused attempt spends the code: the right one fails afterwards too.
      expect((await redeem(code, verifier, state)).status).toBe(400);
    }
    const { url, verifier, state } = authorizeUrl();
    const [code, pastedState] = standIn.signIn(url).split('#') as [string, string];
    expect(pastedState).toBe(state);
    const ok = await redeem(code, verifier, state);
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ token_type: 'Bearer', access_token: expect.stringMatching(/^sk-ant-oat01-/), refresh_token: expect.stringMatching(/^sk-ant-ort01-/) });
    expect((await redeem(code, verifier, state)).status).toBe(400);
  });

  it('signs in as a browser would: the authorize page redirects to the callback page showing <code>#<state>', async () => {
    const { url, verifier, state } = authorizeUrl();
    const authorize = new URL(url);
    const page = await send(authorize.toString());
    expect(page.status).toBe(302);
    const callback = new URL(page.location ?? '');
    expect(`${callback.origin}${callback.pathname}`).toBe('https://platform.claude.com/oauth/code/callback');
    expect(callback.searchParams.get('state')).toBe(state);
    const shown = (await send(callback.toString())).text;
    const pasted = /<code>([^<]+)<\/code>/.exec(shown)?.[1] ?? '';
    expect(pasted).toBe(`${callback.searchParams.get('code')}#${state}`);
    expect((await redeem(pasted.split('#')[0] as string, verifier, state)).status).toBe(200);
  });

  it('rotates refresh tokens once each; a spent one revokes the grant and its access token', async () => {
    const { url, verifier, state } = authorizeUrl();
    const first = (await redeem(standIn.signIn(url).split('#')[0] as string, verifier, state)).json;
    const refresh = (token: unknown) => post(claudeToken, { grant_type: 'refresh_token', refresh_token: token, client_id: CLAUDE_CLIENT_ID, scope: 'user:inference' });
    const second = await refresh(first.refresh_token);
    expect(second.status).toBe(200);
    expect(standIn.isCurrentAccessToken(String(first.access_token))).toBe(false);
    expect(standIn.isCurrentAccessToken(String(second.json.access_token))).toBe(true);
    const models = async (token: unknown) => (await send(`${anthropic}/v1/messages`, { method: 'POST', headers: { authorization: `Bearer ${String(token)}`, 'content-type': 'application/json' }, body: '{"model":"m","max_tokens":1,"messages":[]}' })).status;
    expect(await models(second.json.access_token)).toBe(200);
    expect(await models(first.access_token)).toBe(401);

    // The first refresh token again: the grant is revoked, the newest tokens die with it.
    expect(await refresh(first.refresh_token)).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
    expect((await refresh(second.json.refresh_token)).status).toBe(400);
    expect(await models(second.json.access_token)).toBe(401);
  });

  it("revokes as Claude's endpoint does: the refresh token ends the grant, an unknown token is answered 200, another client's is refused", async () => {
    const { url, verifier, state } = authorizeUrl();
    const tokens = (await redeem(standIn.signIn(url).split('#')[0] as string, verifier, state)).json;
    const revoke = (body: Record<string, unknown>) => post(`${claudeToken}/revoke`, body);
    expect((await revoke({ token: tokens.refresh_token, token_type_hint: 'refresh_token', client_id: 'someone-else' })).status).toBe(401);
    expect(standIn.isCurrentAccessToken(String(tokens.access_token))).toBe(true);
    expect((await revoke({ token: tokens.refresh_token, token_type_hint: 'refresh_token', client_id: CLAUDE_CLIENT_ID })).status).toBe(200);
    expect(standIn.isCurrentAccessToken(String(tokens.access_token))).toBe(false);
    const refresh = await post(claudeToken, { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: CLAUDE_CLIENT_ID, scope: 'user:inference' });
    expect(refresh).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
    // RFC 7009 §2.2: a token the server does not know (or no longer honours) is no error.
    expect((await revoke({ token: 'sk-ant-ort01-unknown', token_type_hint: 'refresh_token', client_id: CLAUDE_CLIENT_ID })).status).toBe(200);
    expect((await revoke({ token_type_hint: 'refresh_token', client_id: CLAUDE_CLIENT_ID })).status).toBe(400);
    standIn.strict = true;
    try {
      // The WAF judges the revocation as the token request: without the CLI's client headers, 429.
      expect((await post(`${claudeToken}/revoke`, { token: 'x', client_id: CLAUDE_CLIENT_ID }, { 'content-type': 'application/json' })).status).toBe(429);
    } finally {
      standIn.strict = false;
    }
  });

  it('in strict mode answers 429 to a refresh that does not carry what the pinned CLI sends', async () => {
    const { url, verifier, state } = authorizeUrl();
    const tokens = (await redeem(standIn.signIn(url).split('#')[0] as string, verifier, state)).json;
    standIn.strict = true;
    try {
      const body = { grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: CLAUDE_CLIENT_ID };
      // No scope; no User-Agent: refused before the token is looked at (it still works after).
      expect((await post(claudeToken, body)).status).toBe(429);
      expect((await post(claudeToken, { ...body, scope: 'user:inference' }, { 'content-type': 'application/json' })).status).toBe(429);
      expect((await post(claudeToken, { ...body, scope: 'user:inference' })).status).toBe(200);
      // Codex: originator and a User-Agent starting with it, and a refresh_reason.
      const codex = { client_id: CODEX_CLIENT_ID, grant_type: 'refresh_token', refresh_token: 'rt_unknown' };
      expect((await post(codexToken, codex, { 'content-type': 'application/json' })).status).toBe(429);
      expect((await post(codexToken, { ...codex, refresh_reason: 'proactive_expiry' }, { 'content-type': 'application/json', originator: 'codex_exec', 'user-agent': 'codex_exec/0.169.0 (Linux; x86_64)' })).status).toBe(401);
    } finally {
      standIn.strict = false;
    }
  });
});
