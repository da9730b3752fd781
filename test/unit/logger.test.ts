// Every secret shape the worker could meet, logged at trace through the real pino
// logger into a stream: none of them reaches the output.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redactText } from '../../workers/logger';

const SECRET = {
  jwt: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJQTEFOVEVEIn0.c2lnbmF0dXJlLXBsYW50ZWQ',
  unsignedJwt: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJQTEFOVEVEVU5TSUdORUQifQ.',
  anthropic: 'sk-ant-oat01-PLANTEDanthropic0123456789',
  openaiRefresh: 'rt_PLANTEDopenairefresh0123456789.abc',
  deviceCode: 'PLANTED-device-code-9f8e7d',
  idToken: 'PLANTED-id-token-opaque-1a2b',
  refreshToken: 'PLANTED-refresh-opaque-3c4d',
  accessToken: 'PLANTED-access-opaque-5e6f',
  code: 'PLANTED-code-7a8b#state',
  bearer: 'PLANTEDbearer0123456789abcdef',
  cookie: 'session=PLANTEDcookie0123',
  password: 'PLANTED-password-hunter2',
  clientSecret: 'PLANTED-client-secret-77',
};

function capture(): { log: ReturnType<typeof createLogger>; out: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: createLogger('trace', sink), out: () => lines.join('') };
}

describe('logger redaction', () => {
  it('drops every secret field, whatever its spelling, at any depth', () => {
    const { log, out } = capture();
    log.trace({
      device_code: SECRET.deviceCode,
      body: { deviceCode: SECRET.deviceCode, id_token: SECRET.idToken, idToken: SECRET.idToken },
      tokens: { refresh_token: SECRET.refreshToken },
      refreshToken: SECRET.refreshToken,
      grant: [{ access_token: SECRET.accessToken, accessToken: SECRET.accessToken }],
      code: SECRET.code,
      headers: { Authorization: `Bearer ${SECRET.bearer}`, authorization: `Bearer ${SECRET.bearer}`, Cookie: SECRET.cookie, cookie: SECRET.cookie, 'set-cookie': [SECRET.cookie], 'Set-Cookie': SECRET.cookie },
      form: { password: SECRET.password, client_secret: SECRET.clientSecret },
    }, 'token request');
    const text = out();
    expect(text).toContain('token request');
    expect(text).toContain('[redacted]');
    for (const [name, secret] of Object.entries(SECRET)) {
      if (['jwt', 'unsignedJwt', 'anthropic', 'openaiRefresh'].includes(name)) continue;
      expect(text.includes(secret), `${name} survived: ${text}`).toBe(false);
    }
  });

  it('redacts token shapes in messages, interpolations, errors, causes, error fields and child bindings', () => {
    const { log, out } = capture();
    const shapes = [SECRET.jwt, SECRET.unsignedJwt, SECRET.anthropic, SECRET.openaiRefresh];
    log.trace(`refresh with ${SECRET.anthropic} refused: server said ${SECRET.jwt}`);
    log.debug('rotated to %s and %o', SECRET.openaiRefresh, { detail: SECRET.unsignedJwt });
    log.info({ detail: `id token ${SECRET.unsignedJwt}` }, 'login finished');
    const failure = Object.assign(new Error(`token endpoint answered {"refresh_token":"${SECRET.refreshToken}","error":"x"}`, { cause: new Error(`Authorization: Bearer ${SECRET.bearer}`) }), {
      body: `refresh_token=${SECRET.refreshToken}&client_secret=${SECRET.clientSecret}&code=${SECRET.code}`,
      accessToken: SECRET.accessToken,
    });
    log.warn(failure);
    log.error({ err: failure }, 'refresh failed');
    log.child({ refreshToken: SECRET.refreshToken, note: SECRET.anthropic }).trace(`Cookie: ${SECRET.cookie}`);
    log.trace(`device_code=${SECRET.deviceCode} password=${SECRET.password} "id_token": "${SECRET.idToken}" "accessToken":"${SECRET.accessToken}"`);
    const text = out();
    expect(text.split('\n').filter(Boolean)).toHaveLength(7);
    for (const [name, secret] of Object.entries(SECRET)) expect(text.includes(secret), `${name} survived: ${text}`).toBe(false);
    for (const shape of shapes) expect(text).not.toContain(shape.slice(0, 20));
    // What is not a secret stays readable.
    expect(text).toContain('refresh failed');
    expect(text).toContain('token endpoint answered');
  });

  it('keeps ordinary words after "Bearer" and ordinary text', () => {
    expect(redactText('a Bearer token is required')).toBe('a Bearer token is required');
    expect(redactText(`Bearer ${SECRET.bearer}`)).toBe('Bearer [redacted]');
    expect(redactText('slot team-a-1 refreshed; next refresh 2026-12-01T10:00:00Z')).toBe('slot team-a-1 refreshed; next refresh 2026-12-01T10:00:00Z');
  });
});
