// Sealing a credential for the backup store (AES-256-GCM with a backup key, never a
// payload key; namespace, slot, provider, configuration and every stored fact bound as
// associated data), judging staleness from the stored facts, and the configuration: a
// backup store without its own keys, or with a payload key as backup key, is refused at start.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compareFreshness, configHash, openBackup, sealBackup, type BackupFacts } from '../../activities/credential-backup';
import { describePostgresUrl } from '../../activities/postgres-backup-store';
import { loadConfig } from '../../host/config';

const key = (id: string) => ({ id, key: randomBytes(32) });
const SECRET = JSON.stringify({ claudeAiOauth: { accessToken: 'sk-ant-oat01-planted-access', refreshToken: 'sk-ant-ort01-planted-refresh' } });
const OIDC = { endpoints: { token_endpoint: 'https://idp.example/token', device_authorization_endpoint: 'https://idp.example/device' }, clientId: 'c1' };
const FACTS: BackupFacts = {
  namespace: 'team-a',
  slotId: 'slot-a',
  kind: 'credential',
  provider: 'claude',
  configHash: configHash('claude', undefined),
  host: 'host-a',
  createdAt: 1_700_000_000_000,
  lastRefresh: 1_699_999_000_000,
  expiresAt: 1_700_028_000_000,
};

describe('sealing a backup', () => {
  const k1 = key('k1');
  const k2 = key('k2');

  it('opens with the key it names, and the ciphertext holds no byte of the token', () => {
    const sealed = sealBackup([k1, k2], FACTS, SECRET);
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext.toString('latin1')).not.toContain('planted');
    expect(sealed.ciphertext.toString('base64')).not.toContain(Buffer.from('sk-ant-ort01-planted-refresh').toString('base64').slice(0, 16));
    // Rotation: a newer key first still opens what the old one sealed.
    expect(openBackup([k2, k1], sealed)).toEqual({ ok: true, text: SECRET });
    // Two seals of one text differ (a fresh IV each time).
    expect(sealBackup([k1], FACTS, SECRET).ciphertext.equals(sealed.ciphertext)).toBe(false);
  });

  it("refuses another namespace's, slot's, provider's or configuration's row, a changed column, an altered ciphertext and a missing key, saying which", () => {
    const sealed = sealBackup([k1], FACTS, SECRET);
    const refusedAs = expect.objectContaining({ ok: false, reason: expect.stringContaining('failed authentication with backup key "k1"') });
    // Each fact the row states is bound: moved to another namespace, slot, provider or configuration, or a column changed, it does not open.
    const changed: Array<Partial<BackupFacts>> = [
      { namespace: 'team-b' },
      { slotId: 'slot-b' },
      { provider: 'codex' },
      { configHash: configHash('oidc-device', OIDC) },
      { host: 'host-b' },
      { kind: 'tombstone' },
      { createdAt: FACTS.createdAt + 1 },
      { lastRefresh: FACTS.createdAt + 86_400_000 },
      { expiresAt: (FACTS.expiresAt ?? 0) + 365 * 86_400_000 },
    ];
    for (const change of changed) expect(openBackup([k1], { ...sealed, ...change }), JSON.stringify(change)).toEqual(refusedAs);
    const { lastRefresh: _dropped, ...withoutLastRefresh } = sealed;
    expect(openBackup([k1], withoutLastRefresh)).toEqual(refusedAs);
    const altered = Buffer.from(sealed.ciphertext);
    altered[20] = (altered[20] ?? 0) ^ 1;
    expect(openBackup([k1], { ...sealed, ciphertext: altered })).toEqual(refusedAs);
    expect(openBackup([k2], sealed)).toEqual({ ok: false, reason: `it was sealed with backup key "k1", which is not among this host's SLOT_BACKUP_KEYS` });
    expect(openBackup([k1], { ...sealed, ciphertext: Buffer.alloc(8) })).toEqual({ ok: false, reason: 'it is truncated' });
  });

  it('the configuration hash is one per normalised configuration: defaults and key order do not change it, an endpoint does', () => {
    const reordered = { clientId: 'c1', endpoints: { device_authorization_endpoint: 'https://idp.example/device', token_endpoint: 'https://idp.example/token' } };
    expect(configHash('oidc-device', reordered)).toBe(configHash('oidc-device', OIDC));
    expect(configHash('oidc-device', { ...OIDC, scopes: ['openid', 'offline_access'] })).toBe(configHash('oidc-device', OIDC));
    expect(configHash('oidc-device', { ...OIDC, endpoints: { ...OIDC.endpoints, token_endpoint: 'https://attacker.example/token' } })).not.toBe(configHash('oidc-device', OIDC));
    expect(configHash('claude', undefined)).toBe(configHash('claude', {}));
    expect(configHash('claude', undefined)).not.toBe(configHash('codex', undefined));
  });
});

describe('staleness', () => {
  it('the last refresh decides, then the expiry; unknown when the facts do not tell', () => {
    expect(compareFreshness({ lastRefresh: 1, expiresAt: 9 }, { lastRefresh: 2, expiresAt: 1 })).toBe(-1);
    expect(compareFreshness({ lastRefresh: 2 }, { lastRefresh: 2 })).toBe(0);
    expect(compareFreshness({ expiresAt: 5 }, { expiresAt: 3 })).toBe(1);
    expect(compareFreshness({ lastRefresh: 5 }, { expiresAt: 3 })).toBeUndefined();
  });
});

describe('SLOT_BACKUP_URL', () => {
  const payload = `p1:${randomBytes(32).toString('base64')}`;
  const backupKeys = `b1:${randomBytes(32).toString('base64')}`;
  const URL = 'postgres://u:pw@db:5432/slots';

  it('needs backup keys of its own, and says which variables', () => {
    expect(() => loadConfig({ SLOT_BACKUP_URL: URL })).toThrow(/SLOT_BACKUP_URL is set but SLOT_BACKUP_KEYS \(or SLOT_BACKUP_KEYS_FILE\) is not/);
    // The payload keys are not backup keys: they alone do not make a backup store usable.
    expect(() => loadConfig({ SLOT_BACKUP_URL: URL, SLOTS_ENCRYPTION_KEYS: payload })).toThrow(/SLOT_BACKUP_KEYS \(or SLOT_BACKUP_KEYS_FILE\) is not/);
    const config = loadConfig({ SLOT_BACKUP_URL: URL, SLOT_BACKUP_KEYS: backupKeys });
    expect(config.backupUrl).toBe(URL);
    expect(config.backup).toMatchObject({ restoreFromHosts: [], restoreReconfigured: [], retiredKeepMs: 30 * 86_400_000 });
    expect(config.backup?.keys.map((k) => k.id)).toEqual(['b1']);
    expect(loadConfig({}).backupUrl).toBeUndefined();
    expect(loadConfig({}).backup).toBeUndefined();
  });

  it('refuses a payload key as a backup key, without showing either', () => {
    const shared = payload.replace(/^p1:/, 'b2:');
    let message = '';
    try {
      loadConfig({ SLOT_BACKUP_URL: URL, SLOTS_ENCRYPTION_KEYS: payload, SLOT_BACKUP_KEYS: `${backupKeys},${shared}` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('SLOT_BACKUP_KEYS: backup key "b2" is also a payload key (SLOTS_ENCRYPTION_KEYS)');
    expect(message).not.toContain(payload.slice(3, 20));
  });

  it('reads the restore policy and the retention, and refuses them without a store', () => {
    const config = loadConfig({
      SLOT_BACKUP_URL: URL,
      SLOT_BACKUP_KEYS: backupKeys,
      SLOT_BACKUP_RESTORE_FROM_HOSTS: 'host-a, host-b',
      SLOT_BACKUP_RESTORE_RECONFIGURED: 'slot-1',
      SLOT_BACKUP_RETIRED_KEEP_DAYS: '7',
    });
    expect(config.backup).toMatchObject({ restoreFromHosts: ['host-a', 'host-b'], restoreReconfigured: ['slot-1'], retiredKeepMs: 7 * 86_400_000 });
    expect(loadConfig({ SLOT_BACKUP_URL: URL, SLOT_BACKUP_KEYS: backupKeys, SLOT_BACKUP_RESTORE_FROM_HOSTS: '*' }).backup?.restoreFromHosts).toBe('*');
    expect(() => loadConfig({ SLOT_BACKUP_URL: URL, SLOT_BACKUP_KEYS: backupKeys, SLOT_BACKUP_RESTORE_FROM_HOSTS: 'a b' })).toThrow(/SLOT_BACKUP_RESTORE_FROM_HOSTS="a b": must be \* or host names/);
    expect(() => loadConfig({ SLOT_BACKUP_KEYS: backupKeys })).toThrow(/SLOT_BACKUP_KEYS is set but SLOT_BACKUP_URL is not/);
  });

  it('refuses a URL that is not postgres:// without repeating it (it holds a password)', () => {
    let message = '';
    try {
      loadConfig({ SLOT_BACKUP_URL: 'mysql://u:secret-pw@db/slots', SLOT_BACKUP_KEYS: backupKeys });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('SLOT_BACKUP_URL=(hidden): must be a URL like postgres://user:password@host:5432/database');
    expect(message).not.toContain('secret-pw');
  });

  it('is named in messages without user or password', () => {
    expect(describePostgresUrl('postgres://u:secret-pw@db.internal:5433/slots')).toBe('PostgreSQL at db.internal:5433/slots');
  });
});
