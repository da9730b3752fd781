import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { ApplicationFailure, METADATA_ENCODING_KEY, type Payload } from '@temporalio/common';
import { decodeFailure, encodeFailure, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import { afterEach, describe, expect, it } from 'vitest';
import { startCodecServer, type CodecServer } from '../../workers/codec-server';
import { ConfigError, loadConfig } from '../../host/config';
import { PROJECT_ROOT } from '../../workers/temporal-binaries';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA, parseEncryptionKeys, PayloadDecryptionError, slotDataConverter } from '../../client/encryption';

const key = (): string => randomBytes(32).toString('base64');
const json = (value: unknown): Payload => ({
  metadata: { [METADATA_ENCODING_KEY]: new TextEncoder().encode('json/plain') },
  data: new TextEncoder().encode(JSON.stringify(value)),
});
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');

describe('payload encryption', () => {
  it('seals payloads (key id in the metadata) and opens them again', async () => {
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(`a:${key()}`));
    const [sealed] = await codec.encode([json({ code: 'secret-code#state' })]);
    expect(text(sealed?.metadata?.[METADATA_ENCODING_KEY])).toBe(ENCRYPTED_ENCODING);
    expect(text(sealed?.metadata?.[KEY_ID_METADATA])).toBe('a');
    expect(Buffer.from(sealed?.data ?? []).toString('latin1')).not.toContain('secret-code');
    const [opened] = await codec.decode([sealed as Payload]);
    expect(JSON.parse(text(opened?.data))).toEqual({ code: 'secret-code#state' });
    expect(text(opened?.metadata?.[METADATA_ENCODING_KEY])).toBe('json/plain');
  });

  it('rotates: the first key encrypts, older keys still decrypt; a retired key is named in the error', async () => {
    const [oldKey, newKey] = [key(), key()];
    const before = new AesGcmPayloadCodec(parseEncryptionKeys(`old:${oldKey}`));
    const after = new AesGcmPayloadCodec(parseEncryptionKeys(`new:${newKey},old:${oldKey}`));
    const [sealedBefore] = await before.encode([json(1)]);
    expect(JSON.parse(text((await after.decode([sealedBefore as Payload]))[0]?.data))).toBe(1);
    const [sealedAfter] = await after.encode([json(2)]);
    expect(text(sealedAfter?.metadata?.[KEY_ID_METADATA])).toBe('new');
    await expect(before.decode([sealedAfter as Payload])).rejects.toThrow(/encrypted with key "new", which is not among the configured keys/);
  });

  it('detects tampering and truncation', async () => {
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(`a:${key()}`));
    const [sealed] = await codec.encode([json('x')]);
    const data = Buffer.from(sealed?.data ?? []);
    data[data.length - 20] = (data[data.length - 20] ?? 0) ^ 1;
    await expect(codec.decode([{ ...sealed, data }])).rejects.toBeInstanceOf(PayloadDecryptionError);
    await expect(codec.decode([{ ...sealed, data: data.subarray(0, 10) }])).rejects.toThrow(/truncated/);
    // Plain payloads pass through untouched (history written before encryption was turned on).
    const plain = json('plain');
    expect(await codec.decode([plain])).toEqual([plain]);
  });

  it('refuses bad key specs with messages that never show key material', () => {
    const material = key();
    const cases: Array<[string, RegExp]> = [
      ['', /holds no key/],
      [material, /entry 1 must be <keyId>:<base64 key>/],
      [`a:${Buffer.alloc(16).toString('base64')}`, /key "a" must be the base64 of exactly 32 random bytes/],
      [`a:not base64!!`, /key "a" must be the base64/],
      [`a:${material},a:${material}`, /key id "a" appears twice/],
    ];
    for (const [spec, problem] of cases) {
      let message = '';
      try {
        parseEncryptionKeys(spec);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(problem);
      expect(message).not.toContain(material);
    }
    // Through the configuration, the variable is named and its value hidden.
    expect(() => loadConfig({ SLOTS_ENCRYPTION_KEYS: `a:${material.slice(0, 20)}` })).toThrow(/key "a" must be the base64/);
    expect(() => loadConfig({ SLOTS_ENCRYPTION_KEYS_FILE: '/nonexistent/keys' })).toThrow(/SLOTS_ENCRYPTION_KEYS_FILE=\/nonexistent\/keys cannot be read: ENOENT/);
    expect(() => loadConfig({ CODEC_SERVER_TOKEN: 'short' })).toThrow(/CODEC_SERVER_TOKEN=\(hidden\): must be at least 16/);
  });
});

describe('failures with keys set', () => {
  it('seal their message and stack, and open again with the keys (as workers and clients load them)', async () => {
    const keys = parseEncryptionKeys(`a:${key()}`);
    const converter = slotDataConverter(keys);
    expect(slotDataConverter(undefined)).toEqual({});
    const loaded = loadDataConverter(converter);
    const error = ApplicationFailure.create({ message: 'token endpoint said PLANTED-words', type: 'RefreshPermanent', nonRetryable: true });
    const proto = loaded.failureConverter.errorToFailure(error, loaded.payloadConverter);
    expect(proto.message).toBe('Encoded failure');
    expect(proto.stackTrace).toBe('');
    const sealed = await encodeFailure(loaded.payloadCodecs, proto);
    expect(text(sealed.encodedAttributes?.metadata?.[METADATA_ENCODING_KEY])).toBe(ENCRYPTED_ENCODING);
    expect(JSON.stringify(sealed)).not.toContain('PLANTED');
    expect(Buffer.from(sealed.encodedAttributes?.data ?? []).toString('latin1')).not.toContain('PLANTED');
    const opened = loaded.failureConverter.failureToError(await decodeFailure(loaded.payloadCodecs, sealed), loaded.payloadConverter);
    expect(opened.message).toBe('token endpoint said PLANTED-words');
    expect(opened).toBeInstanceOf(ApplicationFailure);
    expect((opened as ApplicationFailure).type).toBe('RefreshPermanent');
  });
});

describe('codec server', () => {
  let server: CodecServer | undefined;
  afterEach(async () => server?.close());

  const asJson = (p: Payload) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
    data: Buffer.from(p.data ?? []).toString('base64'),
  });

  it('decodes for the Web UI origin, with CORS, and only with the bearer token', async () => {
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(`a:${key()}`));
    server = await startCodecServer({ codec, corsOrigins: ['http://localhost:8233'], bearerToken: 'a-token-of-sixteen+' });
    const [sealed] = await codec.encode([json({ code: 'c#s' })]);
    const body = JSON.stringify({ payloads: [asJson(sealed as Payload)] });

    const preflight = await fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { origin: 'http://localhost:8233' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);

    const refused = await fetch(`${server.url}/decode`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(refused.status).toBe(401);
    const wrong = await fetch(`${server.url}/decode`, { method: 'POST', body, headers: { authorization: 'Bearer a-token-of-sixteen-' } });
    expect(wrong.status).toBe(401);

    const ok = await fetch(`${server.url}/decode`, {
      method: 'POST',
      body,
      headers: { authorization: 'Bearer a-token-of-sixteen+', 'content-type': 'application/json', 'x-namespace': 'default' },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBeNull();
    const decoded = (await ok.json()) as { payloads: Array<{ data: string }> };
    expect(JSON.parse(Buffer.from(decoded.payloads[0]?.data ?? '', 'base64').toString('utf8'))).toEqual({ code: 'c#s' });

    // The Web UI cannot send a fixed header: its endpoint URL holds the token, `http://host:port/<token>`.
    const fromUi = await fetch(`${server.url}/a-token-of-sixteen+/decode`, { method: 'POST', body, headers: { origin: 'http://localhost:8233', 'content-type': 'application/json' } });
    expect(fromUi.status).toBe(200);
    expect(fromUi.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
    const wrongPath = await fetch(`${server.url}/a-token-of-sixteen-/decode`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(wrongPath.status).toBe(401);

    const garbage = await fetch(`${server.url}/decode`, { method: 'POST', body: 'nope', headers: { authorization: 'Bearer a-token-of-sixteen+', 'content-type': 'application/json' } });
    expect(garbage.status).toBe(400);
  });

  it('refuses rebinding Hosts, foreign Origins, simple requests, oversize bodies and /encode unless enabled', async () => {
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(`a:${key()}`));
    const token = 'a-token-of-sixteen+';
    server = await startCodecServer({ codec, corsOrigins: ['http://localhost:8233'], bearerToken: token, maxBodyBytes: 64 * 1024 });
    const [sealed] = await codec.encode([json({ code: 'c#s' })]);
    const body = JSON.stringify({ payloads: [asJson(sealed as Payload)] });
    const { port } = new URL(server.url);
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    /** node:http, because fetch will not send a Host of our choosing. */
    const post = (path: string, headers: Record<string, string>, data: string | Buffer = body): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          // The error's words, out of their JSON.
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: text.startsWith('{"error"') ? (JSON.parse(text) as { error: string }).error : text }));
        });
        req.on('error', reject);
        req.end(data);
      });

    // DNS rebinding: the attacker's name resolves to 127.0.0.1; the browser sends its Host.
    const rebound = await post('/decode', { ...auth, host: `rebind.attacker.example:${port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.text).toMatch(/Host "rebind\.attacker\.example:\d+" is not a name of this codec server/);
    expect(rebound.text).not.toContain('c#s');
    // A page on another origin, even with the token.
    const foreign = await post('/decode', { ...auth, origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.text).toMatch(/Origin "http:\/\/evil\.example" may not call/);
    const foreignPreflight = await fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { origin: 'http://evil.example' } });
    expect(foreignPreflight.status).toBe(403);
    expect(foreignPreflight.headers.get('access-control-allow-origin')).toBeNull();
    // A "simple" request (no preflight) is text/plain: refused.
    const simple = await post('/decode', { authorization: `Bearer ${token}`, 'content-type': 'text/plain' });
    expect(simple.status).toBe(415);
    expect(simple.text).toMatch(/Content-Type must be application\/json/);
    // No token, a wrong one, one in the wrong place.
    expect((await post('/decode', { 'content-type': 'application/json' })).status).toBe(401);
    expect((await post('/decode', { ...auth, authorization: `Bearer ${token.slice(0, -1)}x` })).status).toBe(401);
    expect((await post('/decode', { ...auth, authorization: `Basic ${token}` })).status).toBe(401);
    // Larger than the limit: 413, declared or streamed.
    const huge = Buffer.alloc(200 * 1024, 'a');
    expect((await post('/decode', auth, huge)).status).toBe(413);
    expect((await post('/decode', { ...auth, 'transfer-encoding': 'chunked' }, huge)).status).toBe(413);
    // /encode: never without the token, and not at all unless enabled.
    const encodeAnon = await post('/encode', { 'content-type': 'application/json' }, JSON.stringify({ payloads: [asJson(json('x'))] }));
    expect(encodeAnon.status).toBe(401);
    const encodeOff = await post('/encode', auth, JSON.stringify({ payloads: [asJson(json('x'))] }));
    expect(encodeOff.status).toBe(403);
    expect(encodeOff.text).toMatch(/CODEC_ENABLE_ENCODE/);
    // The same request through the right door still works.
    expect((await post('/decode', { ...auth, origin: 'http://localhost:8233' })).status).toBe(200);
    await server.close();

    server = await startCodecServer({ codec, corsOrigins: [], bearerToken: token, enableEncode: true });
    const enabled = await fetch(`${server.url}/encode`, { method: 'POST', body: JSON.stringify({ payloads: [asJson(json('x'))] }), headers: auth });
    expect(enabled.status).toBe(200);
    expect((await fetch(`${server.url}/encode`, { method: 'POST', body, headers: { 'content-type': 'application/json' } })).status).toBe(401);
  });

  it('will not start without a token (keys are set whenever it runs)', async () => {
    const codec = new AesGcmPayloadCodec(parseEncryptionKeys(`a:${key()}`));
    await expect(startCodecServer({ codec, corsOrigins: [], bearerToken: undefined as unknown as string })).rejects.toThrow(/CODEC_SERVER_TOKEN/);
    await expect(startCodecServer({ codec, corsOrigins: [], bearerToken: 'short' })).rejects.toBeInstanceOf(ConfigError);
    // Through the configuration: the defaults admit the dev server's UI, on both of its names.
    const config = loadConfig({ SLOTS_ENCRYPTION_KEYS: `a:${key()}`, TEMPORAL_UI_PORT: '9000' });
    expect(config.codec.bearerToken).toBeUndefined();
    expect(config.codec.uiOrigins).toEqual(['http://127.0.0.1:9000', 'http://localhost:9000']);
    expect(config.codec.enableEncode).toBe(false);
    expect(() => loadConfig({ CODEC_SERVER_TOKEN: 'sixteen chars with spaces' })).toThrow(/CODEC_SERVER_TOKEN=\(hidden\): must be 16-512 letters/);
  });

  it('stops `npm start` with keys and no token, naming the variable', async () => {
    const env = { ...process.env, SLOTS_ENCRYPTION_KEYS: `a:${key()}`, TEMPORAL_ADDRESS: '127.0.0.1:1', CODEC_SERVER_TOKEN: '', CODEC_PORT: '1' };
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'workers/main.ts'], { cwd: PROJECT_ROOT, env, timeout: 60_000 }, (err, _stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
      );
    });
    expect(run.stderr).toMatch(/CODEC_SERVER_TOKEN: required when SLOTS_ENCRYPTION_KEYS is set/);
    expect(run.code).toBe(2);
  }, 60_000);
});
