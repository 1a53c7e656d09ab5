import {
  breakGlassSettings,
  destinationChanges,
  destinationSecretKeys,
  generateSigningKey,
  secretSettingKeys,
  signingKeyFingerprint,
  type BreakGlassSettings,
  type SecretSettingKey,
} from '@gatehouse/breakglass';
import { SECRET_MASK, ValidationError, formatPath } from '@gatehouse/core';
import type { Settings, Vault } from '@gatehouse/db';

const SETTINGS_KEY = 'breakglass.settings';
const SIGNING_KEY = 'breakglass.signing_key';
const scope = (field: string) => ({ table: 'settings', id: 'breakglass', field });

/** Parses settings, or throws a ValidationError naming every bad field (never a value). */
function validate(raw: Record<string, unknown>, what: string): BreakGlassSettings {
  const result = breakGlassSettings.safeParse(raw);
  if (result.success) return result.data;
  const issues = result.error.issues.flatMap((i) =>
    i.code === 'unrecognized_keys'
      ? i.keys.map((k) => ({ path: k, message: 'is not a break-glass setting' }))
      : [{ path: formatPath(i.path), message: i.message }],
  );
  throw new ValidationError(`${what}: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`, issues);
}

/** Whether an update sends a secret's new value (not left out, not the mask, not a clear). */
const sendsNew = (value: unknown) => value !== undefined && value !== null && value !== '' && value !== SECRET_MASK;

/**
 * A Blob target has one credential: the account key or a SAS token. A new one sent replaces
 * the stored other (a SAS sent to least-privilege a set-up must not leave the key in use);
 * both sent at once is refused by name.
 */
function replaceBlobCredential(input: Record<string, unknown>, merged: Record<string, unknown>, kept: SecretSettingKey[]) {
  const pair = ['accountKey', 'sasToken'] as const;
  if (sendsNew(input.accountKey) && sendsNew(input.sasToken)) {
    const message = 'give either the account key or a SAS token, not both (a least-privilege set-up gives the SAS token only)';
    throw new ValidationError(`The break-glass settings are invalid: sasToken ${message}.`, [{ path: 'sasToken', message }]);
  }
  for (const [sent, other] of [pair, [pair[1], pair[0]] as const]) {
    if (!sendsNew(input[sent]) || !kept.includes(other)) continue;
    delete merged[other];
    kept.splice(kept.indexOf(other), 1);
  }
}

/** Settings kept in the database, with every secret sealed by the vault. */
export class BreakGlassStore {
  constructor(
    private readonly settings: Settings,
    private readonly vault: Vault,
  ) {}

  async load(): Promise<BreakGlassSettings | undefined> {
    const text = await this.settings.get(SETTINGS_KEY);
    if (text === undefined) return undefined;
    const stored = JSON.parse(text) as Record<string, unknown>;
    for (const key of secretSettingKeys) {
      const sealed = stored[key];
      if (typeof sealed === 'string') stored[key] = this.vault.decrypt(scope(key), sealed);
    }
    // Settings saved by an earlier version may break a rule added since (an S3 setting
    // without an access key): they are reported by field, never used as they are.
    return validate(stored, 'The stored break-glass settings are no longer valid; save them again');
  }

  /**
   * Validates and merges an update: a secret left out or sent as the mask keeps the
   * stored value; '' or null clears it. A stored secret is not kept when the update
   * sends it somewhere else (another endpoint, bucket or container): it must be typed
   * again. Throws a ValidationError naming every bad field.
   */
  async merge(input: Record<string, unknown>): Promise<BreakGlassSettings> {
    // Stored settings that are no longer valid are replaced, their secrets typed again.
    const current = await this.load().catch(() => undefined);
    const merged: Record<string, unknown> = { ...input };
    const kept: SecretSettingKey[] = [];
    for (const key of secretSettingKeys) {
      const sent = merged[key];
      // The server's own AWS identity has no secret key: a stored one is not carried into it.
      const unused = key === 'secretAccessKey' && input.credentials === 'default';
      const stored = current && current.provider === input.provider && !unused ? (current as Record<string, unknown>)[key] : undefined;
      if (sent === undefined || sent === SECRET_MASK) {
        if (stored === undefined) delete merged[key];
        else {
          merged[key] = stored;
          kept.push(key);
        }
      } else if (sent === null || sent === '') delete merged[key];
    }
    if (input.provider === 'blob') replaceBlobCredential(input, merged, kept);
    const settings = validate(merged, 'The break-glass settings are invalid');
    const changed = current ? destinationChanges(current, settings) : [];
    const followed = destinationSecretKeys.filter((key) => kept.includes(key));
    if (changed.length > 0 && followed.length > 0) {
      const message = `must be entered again: the destination changed (${changed.join(', ')}), and a stored secret is only sent where it was entered for`;
      const issues = followed.map((path) => ({ path, message }));
      throw new ValidationError(`The break-glass settings are invalid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}.`, issues);
    }
    return settings;
  }

  /** Stores the settings, their secrets sealed; `into` is the settings repository of the caller's transaction. */
  async save(settings: BreakGlassSettings, into: Settings = this.settings): Promise<void> {
    const stored: Record<string, unknown> = { ...settings };
    for (const key of secretSettingKeys) {
      const value = stored[key];
      if (typeof value === 'string' && value !== '') stored[key] = this.vault.encrypt(scope(key), value);
      else delete stored[key];
    }
    await into.set(SETTINGS_KEY, JSON.stringify(stored));
  }

  /** The Ed25519 key that signs manifests: made on first use, the private half sealed. */
  async signingKey(): Promise<{ privateKeyPem: string; publicKeyPem: string; fingerprint: string }> {
    const text = await this.settings.get(SIGNING_KEY);
    if (text !== undefined) {
      const { publicKeyPem, privateKeyEnc } = JSON.parse(text) as { publicKeyPem: string; privateKeyEnc: string };
      return {
        publicKeyPem,
        privateKeyPem: this.vault.decrypt(scope('signingKey'), privateKeyEnc),
        fingerprint: signingKeyFingerprint(publicKeyPem),
      };
    }
    const key = generateSigningKey();
    await this.settings.set(
      SIGNING_KEY,
      JSON.stringify({ publicKeyPem: key.publicKeyPem, privateKeyEnc: this.vault.encrypt(scope('signingKey'), key.privateKeyPem) }),
    );
    return key;
  }
}
