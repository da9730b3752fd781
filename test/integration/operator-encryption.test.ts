// slotctl on a deployment whose payloads are encrypted: with the keys, through the
// real codec server (workers/codec-server.ts) the Web UI uses, or with neither, when it
// must say which variable to set instead of the SDK's "Unknown encoding".
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SlotClient } from '../../client/slot-client';
import { slotctl } from '../../cli/slotctl';
import { slotWorkflowId } from '../../common/slot';
import { startCodecServer, type CodecServer } from '../../workers/codec-server';
import { AesGcmPayloadCodec, parseEncryptionKeys, slotDataConverter } from '../../client/encryption';
import { devServerClient, startWorkers, uniqueName, type RunningWorkers } from '../harness';
import { claudeCode, FIXTURE_BIN, waitForPhase, waitForPrompt } from '../slot-fixtures';
import { TEST_ALLOWED_ENDPOINT_HOSTS } from '../worker-process';

const KEYS = `op2026:${Buffer.alloc(32, 11).toString('base64')}`;
const TOKEN = 'codec-token-for-operators-5d1a9e';

type Io = NonNullable<Parameters<typeof slotctl>[1]>;

async function runSlotctl(argv: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), readStdin: async () => stdin, stdinIsTTY: false };
  const code = await slotctl(argv, io, env);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** Every byte string in a raw history, as text: payload data is bytes. */
function historyText(value: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown): void => {
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('latin1'));
    else if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(value);
  return parts.join('\n');
}

describe('slotctl with payload encryption', () => {
  let workers: RunningWorkers;
  let codec: CodecServer;
  let readOnlyCodec: CodecServer;
  let slotsDir: string;
  let sealed: SlotClient;
  let plain: Client;
  let closeConnection: () => Promise<void>;
  let base: NodeJS.ProcessEnv;
  const started: string[] = [];

  beforeAll(async () => {
    slotsDir = await mkdtemp(join(tmpdir(), 'slots-encrypted-'));
    const keys = parseEncryptionKeys(KEYS);
    workers = await startWorkers({
      slotsDir,
      env: { ...process.env, CLAUDE_BIN: join(FIXTURE_BIN, 'claude'), FIXTURE_SPEED: '0.2', SLOTS_ALLOWED_ENDPOINT_HOSTS: TEST_ALLOWED_ENDPOINT_HOSTS },
      envPassthrough: ['FIXTURE_*'],
      heartbeatMs: 500,
      dataConverter: slotDataConverter(keys),
    });
    codec = await startCodecServer({ codec: new AesGcmPayloadCodec(keys), corsOrigins: [], bearerToken: TOKEN, enableEncode: true });
    readOnlyCodec = await startCodecServer({ codec: new AesGcmPayloadCodec(keys), corsOrigins: [], bearerToken: TOKEN });
    const { client, connection } = await devServerClient();
    plain = client;
    closeConnection = () => connection.close();
    sealed = new SlotClient(new Client({ connection, dataConverter: slotDataConverter(keys) }), workers.sharedTaskQueue);
    // What an operator's machine has: the server's address and queue, no keys.
    base = { TEMPORAL_ADDRESS: inject('temporalAddress'), SLOTS_TASK_QUEUE: workers.sharedTaskQueue, SLOT_HOST: workers.hostName };
  });

  afterAll(async () => {
    // Sealed slots left running would be listed (and their memos not opened) by every other test of the run.
    for (const id of started) await plain.workflow.getHandle(slotWorkflowId(id)).terminate('test over').catch(() => undefined);
    await workers?.stop();
    await codec?.close();
    await readOnlyCodec?.close();
    await closeConnection?.();
    if (slotsDir) await rm(slotsDir, { recursive: true, force: true });
  });

  it('provisions, shows the prompt and submits the code through the codec server, without the keys', async () => {
    const slotId = uniqueName('codec');
    started.push(slotId);
    const env = { ...base, SLOTS_CODEC_URL: codec.url, CODEC_SERVER_TOKEN: TOKEN };
    const provisioned = await runSlotctl(['provision', slotId, '--provider', 'claude', '--json'], env);
    expect(provisioned.stderr).toBe('');
    expect(provisioned.code).toBe(0);
    const prompt = await waitForPrompt(sealed, slotId);

    const shown = await runSlotctl(['status', slotId, '--json'], env);
    expect(shown.code).toBe(0);
    const status = JSON.parse(shown.stdout) as { phase: string; prompt?: { url: string } };
    expect(status.phase).toBe('awaiting-operator');
    expect(status.prompt?.url).toBe(prompt.prompt.url);

    const code = claudeCode(prompt);
    const submitted = await runSlotctl(['submit-code', slotId, '--wait', '--json'], env, `${code}\n`);
    expect(submitted.stderr).not.toMatch(/Unknown encoding/);
    expect(submitted.code).toBe(0);
    expect((JSON.parse(submitted.stdout) as { phase: string }).phase).toBe('active');
    expect((await waitForPhase(sealed, slotId, ['active'])).phase).toBe('active');

    // The code went through the codec server's /encode: the server's history has it sealed only.
    const history = await plain.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory();
    const raw = historyText(history);
    expect(raw).toContain('binary/encrypted');
    expect(raw).toContain('awaiting-operator'); // the search attributes are in clear: the search can find text
    expect(raw).not.toContain(code);

    // The token in the URL's path, as the Web UI's codec endpoint holds it, works as well.
    const viaPath = await runSlotctl(['status', slotId], { ...base, SLOTS_CODEC_URL: `${codec.url}/${TOKEN}` });
    expect(viaPath.stderr).toBe('');
    expect(viaPath.stdout).toMatch(/phase\s+active/);
  });

  it('without keys or a codec server, names the variables to set and never sends the code in clear', async () => {
    const slotId = uniqueName('keyless');
    started.push(slotId);
    await sealed.provision({ slotId, provider: 'claude', host: workers.hostName });
    const prompt = await waitForPrompt(sealed, slotId);

    const status = await runSlotctl(['status', slotId], base);
    expect(status.code).toBe(2);
    expect(status.stderr).not.toMatch(/Unknown encoding/);
    expect(status.stderr).toMatch(/encrypted \(key "op2026"\).*set SLOTS_ENCRYPTION_KEYS \(or SLOTS_ENCRYPTION_KEYS_FILE\).*or SLOTS_CODEC_URL \(with CODEC_SERVER_TOKEN\)/);

    const code = claudeCode(prompt);
    const submitted = await runSlotctl(['submit-code', slotId], base, code);
    expect(submitted.code).toBe(2);
    expect(submitted.stderr).toMatch(/SLOTS_CODEC_URL/);
    const raw = historyText(await plain.workflow.getHandle(slotWorkflowId(slotId)).fetchHistory());
    expect(raw).not.toContain(code);
    expect((await sealed.status(slotId)).phase).toBe('awaiting-operator');

    // With the keys themselves, the same commands work.
    const withKeys = await runSlotctl(['submit-code', slotId, '--wait'], { ...base, SLOTS_ENCRYPTION_KEYS: KEYS }, code);
    expect(withKeys.stderr).toBe('');
    expect(withKeys.code).toBe(0);
    expect(withKeys.stdout).toMatch(/phase\s+active/);
  });

  it('says what is wrong with the codec server: the token, /encode disabled, nobody listening', async () => {
    const slotId = uniqueName('codec-bad');
    started.push(slotId);
    await sealed.provision({ slotId, provider: 'claude', host: workers.hostName });
    await waitForPrompt(sealed, slotId);

    const wrongToken = await runSlotctl(['status', slotId], { ...base, SLOTS_CODEC_URL: codec.url, CODEC_SERVER_TOKEN: 'not-the-codec-token-123' });
    expect(wrongToken.code).toBe(1);
    expect(wrongToken.stderr).toMatch(/codec server at http:\/\/127\.0\.0\.1:\d+ refused the token: set CODEC_SERVER_TOKEN/);
    expect(wrongToken.stderr).not.toContain('not-the-codec-token-123');

    // Reading works through a codec server that only decodes; sending needs /encode.
    const env = { ...base, SLOTS_CODEC_URL: readOnlyCodec.url, CODEC_SERVER_TOKEN: TOKEN };
    expect((await runSlotctl(['status', slotId], env)).stdout).toMatch(/phase\s+awaiting-operator/);
    const readOnlySlot = uniqueName('codec-ro');
    started.push(readOnlySlot);
    const provision = await runSlotctl(['provision', readOnlySlot, '--provider', 'claude'], env);
    expect(provision.code).toBe(1);
    expect(provision.stderr).toMatch(/does not encode .*CODEC_ENABLE_ENCODE=true on it, or SLOTS_ENCRYPTION_KEYS here/);

    const closed = await startCodecServer({ codec: new AesGcmPayloadCodec(parseEncryptionKeys(KEYS)), corsOrigins: [], bearerToken: TOKEN });
    const url = closed.url;
    await closed.close();
    const unreachable = await runSlotctl(['status', slotId], { ...base, SLOTS_CODEC_URL: url, CODEC_SERVER_TOKEN: TOKEN });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach the codec server at http:\/\/127\.0\.0\.1:\d+ \(SLOTS_CODEC_URL\): ECONNREFUSED/);

    const notUrl = await runSlotctl(['status', slotId], { ...base, SLOTS_CODEC_URL: 'ftp://codec' });
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toMatch(/SLOTS_CODEC_URL=\(hidden\): must be an http\(s\) URL/);
  });
});
