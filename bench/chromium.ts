/** Headless Chromium for the browser benchmarks, trusting the Gatehouse server's certificate by its key's pin. */
import { createHash, X509Certificate } from 'node:crypto';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(certPem: string): Promise<Browser> {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const pin = createHash('sha256').update(spki).digest('base64');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // The benchmark's own handlers stop the browser first, then the server, then remove the files.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${pin}`,
    ],
  });
}
