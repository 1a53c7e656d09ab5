/**
 * Headless Chromium, shared by the browser benchmarks and the console's e2e tests
 * (`test/support/browser.ts`); kept here because the bench build (bench/tsconfig.json)
 * compiles only this folder, while the tests' typecheck reads both.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Debian's Chromium, headless, as these machines run it: no sandbox (root), no GPU, and no
 * background networking (its connections to the internet are refused here). TLS is not
 * switched off: the server's certificate (`certPem`) is trusted by the SHA-256 of its public
 * key (`--ignore-certificate-errors-spki-list`), so any other certificate still fails; `alsoTrust`
 * adds more certificates the same way (a test's identity provider).
 * `handleSignals: false` leaves SIGINT, SIGTERM and SIGHUP to the caller's own handlers
 * (a benchmark stops the browser first, then the server, then removes its files).
 */
export async function launchChromium(
  certPem: string | Buffer,
  { handleSignals = true, alsoTrust = [] }: { handleSignals?: boolean; alsoTrust?: readonly (string | Buffer)[] } = {},
): Promise<Browser> {
  const pinOf = (pem: string | Buffer) =>
    createHash('sha256')
      .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64');
  const pins = [certPem, ...alsoTrust].map(pinOf).join(',');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    handleSIGINT: handleSignals,
    handleSIGTERM: handleSignals,
    handleSIGHUP: handleSignals,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${pins}`,
    ],
  });
}
