// The operator side of payload encryption: slotctl opens and seals payloads with
// the keys when it has them, else through the codec server the Web UI uses
// (SLOTS_CODEC_URL), else it says which variable to set instead of "Unknown encoding".
import { METADATA_ENCODING_KEY, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { CodecServerError, PayloadKeyMissingError } from '../common/failures';
import { ENCODED_FAILURE_CONVERTER_PATH, ENCRYPTED_ENCODING, KEY_ID_METADATA, slotDataConverter, type EncryptionKey } from './encryption';

export { CodecServerError, PayloadKeyMissingError };

/** What a codec token may be: it also rides in the UI's endpoint URL path (the server checks it at start, the configuration when read). */
export const CODEC_TOKEN_PATTERN = /^[A-Za-z0-9._~+=-]{16,512}$/;

/** What a codec server answers: `{"payloads": [{metadata: {k: base64}, data: base64}]}`. */
const CodecAnswer = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')).optional(),
      data: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64').optional(),
    }),
  ),
});

const TO_SET =
  'set SLOTS_ENCRYPTION_KEYS (or SLOTS_ENCRYPTION_KEYS_FILE) to the keys, or SLOTS_CODEC_URL (with CODEC_SERVER_TOKEN) to the codec server `npm start` runs for the Web UI';

const text = (bytes: Uint8Array | null | undefined): string => (bytes ? new TextDecoder().decode(bytes) : '');

/** The server's own words, made safe to print: one line, bounded. */
const quoted = (value: unknown): string =>
  typeof value === 'string' ? value.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').slice(0, 300) : '';

/**
 * Sends payloads to a Temporal codec server (`POST <url>/encode`, `<url>/decode`), as the
 * Web UI and `temporal --codec-endpoint` do. The token goes in `Authorization: Bearer`, or
 * is already in the URL's path (the UI's form, `http://host:port/<token>`).
 */
export class RemotePayloadCodec implements PayloadCodec {
  private readonly base: string;
  /** For messages: the URL without its path, which may hold the token. */
  private readonly shown: string;

  constructor(
    url: string,
    private readonly token: string | undefined,
    private readonly opts: { namespace?: string; timeoutMs?: number } = {},
  ) {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new CodecServerError(`SLOTS_CODEC_URL must be an http(s) URL, got ${parsed.protocol}`, parsed.origin);
    }
    this.base = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
    this.shown = parsed.origin;
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    return this.call('encode', payloads);
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    // Nothing sealed, nothing to ask: a plain payload stays as it is.
    if (!payloads.some((p) => text(p.metadata?.[METADATA_ENCODING_KEY]) === ENCRYPTED_ENCODING)) return Promise.resolve(payloads);
    return this.call('decode', payloads);
  }

  private async call(operation: 'encode' | 'decode', payloads: Payload[]): Promise<Payload[]> {
    if (payloads.length === 0) return payloads;
    const body = JSON.stringify({
      payloads: payloads.map((p) => ({
        metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
        data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
      })),
    });
    let response: Response;
    try {
      response = await fetch(`${this.base}/${operation}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.opts.namespace ? { 'x-namespace': this.opts.namespace } : {}),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body,
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new CodecServerError(
        `cannot reach the codec server at ${this.shown} (SLOTS_CODEC_URL): ${cause}; is \`npm start\` (or your codec server) running there?`,
        this.shown,
        undefined,
        { cause: err },
      );
    }
    const answer: unknown = await response.json().catch(() => undefined);
    const said = quoted((answer as { error?: unknown } | undefined)?.error);
    if (response.status === 401) {
      throw new CodecServerError(
        `the codec server at ${this.shown} refused the token: set CODEC_SERVER_TOKEN to the token it was started with (or SLOTS_CODEC_URL to its UI endpoint, http://<host>:<port>/<token>)`,
        this.shown,
        401,
      );
    }
    if (response.status === 403 && operation === 'encode') {
      throw new CodecServerError(
        `the codec server at ${this.shown} does not encode (${said || 'HTTP 403'}): sending anything (provision, submit-code, retire) needs CODEC_ENABLE_ENCODE=true on it, or SLOTS_ENCRYPTION_KEYS here`,
        this.shown,
        403,
      );
    }
    if (!response.ok) {
      throw new CodecServerError(`the codec server at ${this.shown} answered HTTP ${response.status} to /${operation}${said ? `: ${said}` : ''}`, this.shown, response.status);
    }
    const parsed = CodecAnswer.safeParse(answer);
    if (!parsed.success || parsed.data.payloads.length !== payloads.length) {
      throw new CodecServerError(
        `the codec server at ${this.shown} answered /${operation} with something other than ${payloads.length} payload(s); is SLOTS_CODEC_URL a codec server?`,
        this.shown,
        response.status,
      );
    }
    return parsed.data.payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
      data: Buffer.from(p.data ?? '', 'base64'),
    }));
  }
}

/**
 * For a process with neither keys nor a codec server: plain payloads pass, and a sealed one
 * is refused with the variable to set (the SDK alone says `Unknown encoding: binary/encrypted`).
 */
export class KeylessPayloadCodec implements PayloadCodec {
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads;
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    const sealed = payloads.find((p) => text(p.metadata?.[METADATA_ENCODING_KEY]) === ENCRYPTED_ENCODING);
    if (sealed) {
      const keyId = text(sealed.metadata?.[KEY_ID_METADATA]);
      throw new PayloadKeyMissingError(`the slot's payloads are encrypted${keyId ? ` (key "${keyId}")` : ''} and this client cannot open them: ${TO_SET}`);
    }
    return payloads;
  }
}

/** How an operator's client opens payloads: keys first, then a codec server, else the keyless refusal. */
export type OperatorCodec = 'keys' | 'codec-server' | 'none';

/** The data converter of slotctl and other operator clients, from their configuration. */
export function operatorDataConverter(opts: {
  readonly encryptionKeys: readonly EncryptionKey[] | undefined;
  readonly codecUrl: string | undefined;
  readonly codecToken: string | undefined;
  readonly namespace?: string;
}): { dataConverter: DataConverter; codec: OperatorCodec } {
  if (opts.encryptionKeys && opts.encryptionKeys.length > 0) return { dataConverter: slotDataConverter(opts.encryptionKeys), codec: 'keys' };
  if (opts.codecUrl) {
    return {
      // Failures are sealed too (their message may quote a server): the same converter as with keys.
      dataConverter: {
        payloadCodecs: [new RemotePayloadCodec(opts.codecUrl, opts.codecToken, opts.namespace ? { namespace: opts.namespace } : {})],
        failureConverterPath: ENCODED_FAILURE_CONVERTER_PATH,
      },
      codec: 'codec-server',
    };
  }
  return { dataConverter: { payloadCodecs: [new KeylessPayloadCodec()] }, codec: 'none' };
}
