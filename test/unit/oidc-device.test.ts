// The oidc-device provider's boundaries: its per-slot configuration (checked by
// slotctl and SlotClient before any server is asked), and RFC 8628's poll answers.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, slotctl } from '../../cli/slotctl';
import { getProvider, parseProviderConfig } from '../../providers';
import { classifyDevicePoll } from '../../providers/oauth';
import { ProviderConfigError } from '../../common/failures';

const valid = { issuer: 'https://login.example.com', clientId: 'slot-client' };

describe('oidc-device configuration', () => {
  it('fills in defaults and keeps what was given', () => {
    expect(parseProviderConfig('oidc-device', valid)).toEqual({
      ...valid,
      scopes: ['openid', 'offline_access'],
      tokens: { path: '.oidc/tokens.json', format: 'oauth-json' },
    });
    const explicit = {
      endpoints: { device_authorization_endpoint: 'http://127.0.0.1:9/device', token_endpoint: 'http://localhost:9/token' },
      clientId: 'c',
      scopes: ['api:read'],
      tokens: { path: '.oidc/agent_oauth-2.json' },
    };
    expect(parseProviderConfig('oidc-device', explicit)).toMatchObject({ ...explicit, tokens: { path: '.oidc/agent_oauth-2.json', format: 'oauth-json' } });
    expect(getProvider('oidc-device', explicit).credential.file).toBe('.oidc/agent_oauth-2.json');
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['no configuration', undefined, /a configuration is required/],
    ['no client id', { issuer: valid.issuer }, /clientId: is required \(the OAuth client id\)/],
    ['neither issuer nor endpoints', { clientId: 'c' }, /issuer: is required unless endpoints are given/],
    ['both issuer and endpoints', { ...valid, endpoints: { device_authorization_endpoint: 'https://a/d', token_endpoint: 'https://a/t' } }, /endpoints: cannot be combined with issuer/],
    ['an issuer that is not a URL', { ...valid, issuer: 'login.example.com' }, /issuer: is not a URL/],
    ['plain http off loopback', { ...valid, issuer: 'http://login.example.com' }, /issuer: must be https \(or http on 127\.0\.0\.1 \/ localhost\)/],
    ['credentials in a URL', { ...valid, issuer: 'https://user:pw@login.example.com' }, /issuer: must be https .*without user or password/],
    ['a missing token endpoint', { clientId: 'c', endpoints: { device_authorization_endpoint: 'https://a/d' } }, /endpoints\.token_endpoint: must be a URL string/],
    ['a scope with a space', { ...valid, scopes: ['openid profile'] }, /scopes\.0: is not a scope/],
    ['a token path leaving the slot', { ...valid, tokens: { path: '../other/tokens.json' } }, /tokens\.path: must be a file name inside \.oidc\/ like \.oidc\/tokens\.json/],
    ['an absolute token path', { ...valid, tokens: { path: '/etc/tokens.json' } }, /tokens\.path: must be a file name inside \.oidc\//],
    ["a token path over the slot's own files", { ...valid, tokens: { path: 'slot-status.json' } }, /tokens\.path: must be a file name inside \.oidc\//],
    ['a token path that is not a string', { ...valid, tokens: { path: 7 } }, /tokens\.path: must be a file name inside \.oidc\//],
    ['an unknown format', { ...valid, tokens: { format: 'yaml' } }, /tokens\.format: must be "oauth-json"/],
    ['an unknown field', { ...valid, clientSecret: 'x' }, /clientSecret/],
  ];
  // Issue 11: a token path anywhere in the slot home let the server's access_token land in `.bashrc`.
  const escapes = ['.bashrc', '.profile', '.claude/.credentials.json', '.ssh/authorized_keys', '../x', '.oidc/../.bashrc', '.oidc/sub/x.json', '.oidc/', '.oidc/.json', '.oidc/tokens.txt', '.oidc/a b.json', `.oidc/${'a'.repeat(65)}.json`];
  it.each(escapes)('refuses the token path %j: only a file name inside .oidc/', (path) => {
    expect(() => parseProviderConfig('oidc-device', { ...valid, tokens: { path } })).toThrow(ProviderConfigError);
    expect(() => parseProviderConfig('oidc-device', { ...valid, tokens: { path } })).toThrow(
      /^invalid configuration for provider oidc-device: tokens\.path: must be a file name inside \.oidc\/ like \.oidc\/tokens\.json \(/,
    );
    expect(() => getProvider('oidc-device', { ...valid, tokens: { path } })).toThrow(ProviderConfigError);
  });

  it.each(bad)('refuses %s, naming the field', (_what, config, message) => {
    const error = (() => {
      try {
        parseProviderConfig('oidc-device', config);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ProviderConfigError);
    expect((error as Error).message).toMatch(/^invalid configuration for provider oidc-device: /);
    expect((error as Error).message).toMatch(message);
  });

  it('refuses a configuration for providers that take none', () => {
    expect(() => parseProviderConfig('claude', { issuer: 'https://x' })).toThrow(/Claude Code takes no configuration \(got issuer\)/);
    expect(parseProviderConfig('codex', undefined)).toBeUndefined();
  });
});

describe('device poll answers (RFC 8628 §3.5)', () => {
  const answer = (status: number, json: unknown) => ({ status, json });
  it.each([
    [answer(400, { error: 'authorization_pending' }), { kind: 'pending' }],
    [answer(400, { error: 'slow_down' }), { kind: 'slow-down' }],
    [answer(400, { error: 'expired_token' }), { kind: 'expired', reason: 'the device code expired before the operator approved it (HTTP 400 expired_token)' }],
    [answer(400, { error: 'access_denied', error_description: 'no' }), { kind: 'denied', reason: 'the operator denied the device login (HTTP 400 access_denied: no)' }],
    [answer(503, undefined), { kind: 'transient', reason: 'token endpoint answered HTTP 503' }],
    [answer(429, { error: 'rate_limited' }), { kind: 'transient', reason: 'token endpoint answered HTTP 429 rate_limited' }],
    [answer(400, { error: 'invalid_client' }), { kind: 'refused', reason: 'token endpoint refused the device code (HTTP 400 invalid_client)' }],
    [answer(200, { token_type: 'Bearer' }), { kind: 'transient', reason: 'token endpoint answered HTTP 200 but the answer is missing access_token' }],
  ])('%j → %j', (given, expected) => {
    expect(classifyDevicePoll(given)).toEqual(expected);
  });
  it('returns the tokens of an approval', () => {
    expect(classifyDevicePoll(answer(200, { access_token: 'a', refresh_token: 'r', expires_in: 60 }))).toMatchObject({
      kind: 'approved',
      tokens: { access_token: 'a', refresh_token: 'r', expires_in: 60 },
    });
  });
});

describe('slotctl provision --provider oidc-device', () => {
  let dir: string;
  // Nothing listens here: a command that got past validation would fail to connect (exit 3), not exit 2.
  const env = { TEMPORAL_ADDRESS: '127.0.0.1:1', PATH: process.env.PATH ?? '' };
  const run = async (argv: string[]): Promise<{ code: number; err: string }> => {
    const err: string[] = [];
    const code = await slotctl(argv, { out: () => undefined, err: (t) => err.push(t), readStdin: async () => '', stdinIsTTY: false }, env);
    return { code, err: err.join('\n') };
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slotctl-oidc-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('refuses a bad configuration before asking Temporal, naming the field', async () => {
    expect(await run(['provision', 's1', '--provider', 'oidc-device', '--issuer', 'https://login.example.com'])).toEqual({
      code: EXIT.usage,
      err: 'slotctl: invalid configuration for provider oidc-device: clientId: is required (the OAuth client id)',
    });
    expect((await run(['provision', 's1', '--provider', 'oidc-device', '--issuer', 'ftp://x', '--client-id', 'c'])).err).toMatch(/issuer: must be https/);
    expect((await run(['provision', 's1', '--provider', 'claude', '--client-id', 'c'])).err).toMatch(/Claude Code takes no configuration \(got clientId\)/);
  });

  it('reads --config, and lets the flags win', async () => {
    const file = join(dir, 'oidc.json');
    await writeFile(file, JSON.stringify({ issuer: 'https://login.example.com', tokens: { path: '../x' } }));
    const bad = await run(['provision', 's1', '--provider', 'oidc-device', '--config', file, '--client-id', 'c', '--scope', 'openid']);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.err).toMatch(/tokens\.path: must be a file name inside \.oidc\//);
    await writeFile(file, '{not json');
    expect((await run(['provision', 's1', '--provider', 'oidc-device', '--config', file])).err).toBe(`slotctl: --config ${file}: not valid JSON`);
    // A valid configuration passes validation and only then needs the (absent) server.
    await writeFile(file, JSON.stringify({ issuer: 'https://login.example.com', clientId: 'from-file' }));
    expect((await run(['provision', 's1', '--provider', 'oidc-device', '--config', file, '--scope', 'openid'])).code).toBe(EXIT.notFound);
  });
});
