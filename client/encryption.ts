// Payload encryption: operators' codes travel in signal and update payloads, so
// every payload is sealed with AES-256-GCM before it reaches Temporal when a key
// is configured. The key id rides in the payload's metadata, so keys can rotate.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { METADATA_ENCODING_KEY, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import { EncryptionConfigError, PayloadDecryptionError } from '../common/failures';

const { Payload: PayloadMessage } = proto.temporal.api.common.v1;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface EncryptionKey {
  readonly id: string;
  readonly key: Buffer;
}

export { EncryptionConfigError, PayloadDecryptionError };

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (bytes: Uint8Array | null | undefined): string => (bytes ? new TextDecoder().decode(bytes) : '');

/**
 * Parses `<keyId>:<base64 of 32 bytes>[,<keyId>:<base64>…]` (commas or newlines).
 * The first key encrypts; all of them decrypt. Messages never include key material.
 */
export function parseEncryptionKeys(spec: string, source = 'SLOTS_ENCRYPTION_KEYS'): EncryptionKey[] {
  const entries = spec
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter((entry) => entry && !entry.startsWith('#'));
  if (entries.length === 0) throw new EncryptionConfigError(`${source} holds no key`);
  const keys: EncryptionKey[] = [];
  for (const [i, entry] of entries.entries()) {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      throw new EncryptionConfigError(`${source}: entry ${i + 1} must be <keyId>:<base64 key>, with a key id of letters, digits, dots, dashes or underscores`);
    }
    const material = entry.slice(colon + 1);
    const key = Buffer.from(material, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(material) || key.length !== 32) {
      throw new EncryptionConfigError(`${source}: key "${id}" must be the base64 of exactly 32 random bytes (openssl rand -base64 32)`);
    }
    if (keys.some((k) => k.id === id)) throw new EncryptionConfigError(`${source}: key id "${id}" appears twice`);
    keys.push({ id, key });
  }
  return keys;
}

/** Keys from `SLOTS_ENCRYPTION_KEYS`, or from the file named by `SLOTS_ENCRYPTION_KEYS_FILE`; none: no encryption. */
export function loadEncryptionKeys(env: NodeJS.ProcessEnv = process.env): EncryptionKey[] | undefined {
  if (env.SLOTS_ENCRYPTION_KEYS && env.SLOTS_ENCRYPTION_KEYS_FILE) {
    throw new EncryptionConfigError('set SLOTS_ENCRYPTION_KEYS or SLOTS_ENCRYPTION_KEYS_FILE, not both');
  }
  if (env.SLOTS_ENCRYPTION_KEYS) return parseEncryptionKeys(env.SLOTS_ENCRYPTION_KEYS);
  if (env.SLOTS_ENCRYPTION_KEYS_FILE) {
    let contents: string;
    try {
      contents = readFileSync(env.SLOTS_ENCRYPTION_KEYS_FILE, 'utf8');
    } catch (err) {
      throw new EncryptionConfigError(`SLOTS_ENCRYPTION_KEYS_FILE=${env.SLOTS_ENCRYPTION_KEYS_FILE} cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    return parseEncryptionKeys(contents, `SLOTS_ENCRYPTION_KEYS_FILE (${env.SLOTS_ENCRYPTION_KEYS_FILE})`);
  }
  return undefined;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly byId: ReadonlyMap<string, Buffer>;
  private readonly current: EncryptionKey;

  constructor(keys: readonly EncryptionKey[]) {
    const [first] = keys;
    if (!first) throw new EncryptionConfigError('an encryption codec needs at least one key');
    this.current = first;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
      const sealed = Buffer.concat([cipher.update(PayloadMessage.encode(payload).finish()), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: { [METADATA_ENCODING_KEY]: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.current.id) },
        data: Buffer.concat([iv, sealed]),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (text(payload.metadata?.[METADATA_ENCODING_KEY]) !== ENCRYPTED_ENCODING) return payload;
      const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
      const key = this.byId.get(keyId);
      if (!key) {
        throw new PayloadDecryptionError(`payload was encrypted with key "${keyId}", which is not among the configured keys`, keyId);
      }
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`encrypted payload (key "${keyId}") is truncated`, keyId);
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      try {
        const plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
        return PayloadMessage.decode(plain) as Payload;
      } catch {
        throw new PayloadDecryptionError(`encrypted payload (key "${keyId}") failed authentication: wrong key or altered data`, keyId);
      }
    });
  }
}

/**
 * Exports `failureConverter`: failure messages and stacks ride in `encodedAttributes`,
 * so the codec seals them too. Workers pass it to the workflow bundle as well
 * (`bundleWorkflowCode({ failureConverterPath })`): failures raised in workflow code
 * are converted inside the sandbox.
 */
export const ENCODED_FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

/**
 * The data converter for clients and workers: when keys are configured, payloads are
 * encrypted and so are failure messages and stacks; the default otherwise.
 */
export function slotDataConverter(keys: readonly EncryptionKey[] | undefined): DataConverter {
  return keys && keys.length > 0
    ? { payloadCodecs: [new AesGcmPayloadCodec(keys)], failureConverterPath: ENCODED_FAILURE_CONVERTER_PATH }
    : {};
}
