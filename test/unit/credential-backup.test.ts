// Sealing a credential for the backup store (AES-256-GCM, key id recorded, the slot id
// bound as associated data), judging staleness from the stored facts, and the
// configuration: a backup store without payload keys is refused at start, naming both.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compareFreshness, openCredential, sealCredential } from '../../activities/credential-backup';
import { describePostgresUrl } from '../../activities/postgres-backup-store';
import { loadConfig } from '../../workers/config';

const key = (id: string) => ({ id, key: randomBytes(32) });
const SECRET = JSON.stringify({ claudeAiOauth: { accessToken: 'sk-ant-oat01-planted-access', refreshToken: 'sk-ant-ort01-planted-refresh' } });

describe('sealing a credential', () => {
  const k1 = key('k1');
  const k2 = key('k2');

  it('opens with the key it names, and the ciphertext holds no byte of the token', () => {
    const sealed = sealCredential([k1, k2], 'slot-a', 'claude', SECRET);
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext.toString('latin1')).not.toContain('planted');
    expect(sealed.ciphertext.toString('base64')).not.toContain(Buffer.from('sk-ant-ort01-planted-refresh').toString('base64').slice(0, 16));
    // Rotation: a newer key first still opens what the old one sealed.
    expect(openCredential([k2, k1], { slotId: 'slot-a', provider: 'claude', ...sealed })).toEqual({ ok: true, text: SECRET });
    // Two seals of one text differ (a fresh IV each time).
    expect(sealCredential([k1], 'slot-a', 'claude', SECRET).ciphertext.equals(sealed.ciphertext)).toBe(false);
  });

  it("refuses another slot's row, another provider, an altered row and a missing key, saying which", () => {
    const sealed = sealCredential([k1], 'slot-a', 'claude', SECRET);
    expect(openCredential([k1], { slotId: 'slot-b', provider: 'claude', ...sealed })).toEqual({ ok: false, reason: expect.stringContaining('failed authentication with key "k1"') });
    expect(openCredential([k1], { slotId: 'slot-a', provider: 'codex', ...sealed }).ok).toBe(false);
    const altered = Buffer.from(sealed.ciphertext);
    altered[20] = (altered[20] ?? 0) ^ 1;
    expect(openCredential([k1], { slotId: 'slot-a', provider: 'claude', keyId: 'k1', ciphertext: altered }).ok).toBe(false);
    expect(openCredential([k2], { slotId: 'slot-a', provider: 'claude', ...sealed })).toEqual({ ok: false, reason: `it was sealed with key "k1", which is not among this host's SLOTS_ENCRYPTION_KEYS` });
    expect(openCredential([k1], { slotId: 'slot-a', provider: 'claude', keyId: 'k1', ciphertext: Buffer.alloc(8) })).toEqual({ ok: false, reason: 'it is truncated' });
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
  const keys = `k1:${randomBytes(32).toString('base64')}`;

  it('needs the payload keys, and says which variables', () => {
    expect(() => loadConfig({ SLOT_BACKUP_URL: 'postgres://u:pw@db:5432/slots' })).toThrow(
      /SLOT_BACKUP_URL is set but SLOTS_ENCRYPTION_KEYS \(or SLOTS_ENCRYPTION_KEYS_FILE\) is not/,
    );
    expect(loadConfig({ SLOT_BACKUP_URL: 'postgres://u:pw@db:5432/slots', SLOTS_ENCRYPTION_KEYS: keys }).backupUrl).toBe('postgres://u:pw@db:5432/slots');
    expect(loadConfig({}).backupUrl).toBeUndefined();
  });

  it('refuses a URL that is not postgres:// without repeating it (it holds a password)', () => {
    let message = '';
    try {
      loadConfig({ SLOT_BACKUP_URL: 'mysql://u:secret-pw@db/slots', SLOTS_ENCRYPTION_KEYS: keys });
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
