import { createHash, X509Certificate } from 'node:crypto';

/**
 * The pin of a TLS certificate: `sha256:<hex>` of its public key (SPKI DER). An agent
 * enrolls only with a server whose certificate carries this key, so a renewed certificate
 * for the same key keeps the pin.
 */
export function certificateSpkiFingerprint(certificate: X509Certificate | string): string {
  const cert = typeof certificate === 'string' ? new X509Certificate(certificate) : certificate;
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}
