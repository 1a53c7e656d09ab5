import { checkHost, hostOf, type BreakGlassSettings } from '@gatehouse/breakglass';
import type { FieldIssue } from '@gatehouse/core';

/**
 * What only the server's own configuration (config file or environment) can allow: an
 * administrator's API session, or a stolen one, cannot turn these on.
 */
export interface BreakGlassRestrictions {
  /** breakglassAllowPlaintext: encryption "none" may be used. */
  allowPlaintext: boolean;
  /** breakglassAllowLinkLocal: link-local and cloud-metadata addresses may be connected to. */
  allowLinkLocal: boolean;
}

export const ALLOW_PLAINTEXT = 'breakglassAllowPlaintext (GATEHOUSE_BREAKGLASS_ALLOW_PLAINTEXT=true)';
export const ALLOW_LINK_LOCAL = 'breakglassAllowLinkLocal (GATEHOUSE_BREAKGLASS_ALLOW_LINK_LOCAL=true)';

/**
 * The fields of the settings this server's restrictions refuse, each with what to do. A
 * host is checked here as written (a literal address or a metadata name); names that
 * resolve to such an address are refused when connecting (address-guard.ts).
 */
export function restrictionIssues(s: BreakGlassSettings, r: BreakGlassRestrictions): FieldIssue[] {
  const issues: FieldIssue[] = [];
  if (s.encryption === 'none' && !r.allowPlaintext) {
    issues.push({
      path: 'encryption',
      message: `may not be "none" on this server: a plain workbook holds every credential for anyone who can read the bucket. Use age or passphrase; only the server setting ${ALLOW_PLAINTEXT}, in its config file or environment, allows "none"`,
    });
  }
  const hosts: [string, string | undefined][] = [
    [s.provider === 's3' ? 'url' : 'blobEndpoint', s.provider === 's3' ? s.url : s.blobEndpoint],
    ['alertWebhookUrl', s.alertWebhookUrl],
  ];
  for (const [path, value] of hosts) {
    const refused = value ? checkHost(hostOf(value), { allowLinkLocal: r.allowLinkLocal }) : null;
    // The message names the kind, not the host: the webhook URL is a secret.
    if (refused) {
      issues.push({
        path,
        message: `is a ${refused.kind} address, which break glass does not connect to unless the server setting ${ALLOW_LINK_LOCAL} allows it`,
      });
    }
  }
  return issues;
}
