import type { BreakGlassSettingsShown, BreakGlassSettingsView } from '@gatehouse/api';
import { plainHttpWarning, type BreakGlassSettings, type SecretSettingKey } from '@gatehouse/breakglass';
import { SECRET_MASK } from '@gatehouse/core';
import type { BreakGlassService } from '../../breakglass/service.js';

export const ENCRYPTION_OFF =
  'Encryption is OFF: the export in the bucket holds every credential in plain text, readable by anyone who can read the bucket. Turn on age encryption.';

/** The settings as the API shows them: every secret is the fixed mask when set, null when not. */
export function presentSettings(s: BreakGlassSettings): BreakGlassSettingsShown {
  const mask = (key: SecretSettingKey): typeof SECRET_MASK | null =>
    (s as Partial<Record<SecretSettingKey, string>>)[key] ? SECRET_MASK : null;
  const common = { passphrase: mask('passphrase'), alertWebhookUrl: mask('alertWebhookUrl') };
  if (s.provider === 's3') return { ...s, ...common, secretAccessKey: mask('secretAccessKey') };
  return { ...s, ...common, accountKey: mask('accountKey'), sasToken: mask('sasToken') };
}

/** What the page and the CLI show above the settings: encryption off, plain HTTP to another machine. */
export function settingsWarnings(s: BreakGlassSettings): string[] {
  const plainHttp = plainHttpWarning(s);
  return [...(s.encryption === 'none' ? [ENCRYPTION_OFF] : []), ...(plainHttp ? [plainHttp] : [])];
}

/** `GET /breakglass/settings`: the settings (secrets masked), where they come from, and the signing key. */
export async function presentView(bg: BreakGlassService): Promise<BreakGlassSettingsView> {
  const { settings, origin, error } = await bg.current();
  const key = await bg.store.signingKey();
  return {
    origin,
    readOnly: origin === 'mounted',
    settings: settings ? presentSettings(settings) : null,
    error: error ?? null,
    warnings: settings ? settingsWarnings(settings) : [],
    serverAllows: { plaintext: bg.restrictions.allowPlaintext, linkLocal: bg.restrictions.allowLinkLocal },
    nextRun: bg.nextRun()?.toISOString() ?? null,
    signingKey: { publicKeyPem: key.publicKeyPem, fingerprint: key.fingerprint },
    lastTest: await bg.runs.lastTest(),
  };
}
