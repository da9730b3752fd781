import { randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload } from '@temporalio/common';
import { afterEach, describe, expect, it } from 'vitest';
import { startCodecServer, type CodecServer } from '../../workers/codec-server';
import { loadConfig } from '../../workers/config';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA, parseEncryptionKeys, PayloadDecryptionError } from '../../workers/encryption';

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
      headers: { authorization: 'Bearer a-token-of-sixteen+', origin: 'http://evil.example', 'x-namespace': 'default' },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBeNull();
    const decoded = (await ok.json()) as { payloads: Array<{ data: string }> };
    expect(JSON.parse(Buffer.from(decoded.payloads[0]?.data ?? '', 'base64').toString('utf8'))).toEqual({ code: 'c#s' });

    const garbage = await fetch(`${server.url}/decode`, { method: 'POST', body: 'nope', headers: { authorization: 'Bearer a-token-of-sixteen+' } });
    expect(garbage.status).toBe(400);
  });
});
