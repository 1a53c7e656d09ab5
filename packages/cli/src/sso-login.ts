import type { CliLoginClaim, CliLoginClaimed, CliLoginStarted } from '@gatehouse/api';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { GatehouseError } from '@gatehouse/core/errors';
import type { ApiClient } from './client.js';
import { saveProfile } from './profiles.js';

/** How often the claim is asked while the browser sign-in is not done yet. */
export const CLAIM_INTERVAL_MS = 2000;

export interface SsoLoginOptions {
  profile: string;
  url: string;
  caFile: string | undefined;
  /** Also open the sign-in page in the default browser (only when asked: --open). */
  open: boolean;
  /** Between claims; the tests make it short. */
  intervalMs?: number;
}

/**
 * `gatehouse login --sso`: start a CLI login request, print the page to sign in at, and claim
 * the API token once the browser sign-in approved it, until the request's expiry. The token
 * goes to the profile only, never to the terminal.
 */
export async function ssoLogin(api: ApiClient, o: SsoLoginOptions): Promise<void> {
  const started = await api.call<CliLoginStarted>('POST', '/auth/oidc/cli', {});
  process.stderr.write(
    `Sign in at this address in a browser (valid until ${started.expiresAt}):\n\n  ${started.url}\n\nWaiting for the sign-in…\n`,
  );
  if (o.open) openBrowser(started.url);
  const deadline = Date.parse(started.expiresAt);
  const claim = { id: started.id, secret: started.secret } satisfies CliLoginClaim;
  for (;;) {
    const answer = await api.call<CliLoginClaimed>('POST', '/auth/oidc/cli/claim', claim);
    if (answer.status === 'done' && answer.token !== null) {
      const username = answer.username ?? undefined;
      const file = saveProfile(o.profile, { url: o.url, token: answer.token, ca: o.caFile, username });
      process.stderr.write(`Signed in as ${username ?? '?'} by SSO. API token saved in ${file} (profile ${o.profile}).\n`);
      return;
    }
    if (Date.now() >= deadline)
      throw new GatehouseError('UNAUTHENTICATED', `The sign-in was not done before ${started.expiresAt}. Run gatehouse login --sso again.`);
    await delay(Math.min(o.intervalMs ?? CLAIM_INTERVAL_MS, Math.max(0, deadline - Date.now())));
  }
}

/** The platform's opener; a failure only says so (the address is printed already). */
function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin'
      ? ['open', [url]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '""', url]]
        : ['xdg-open', [url]];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', (e) => process.stderr.write(`Could not open a browser (${cmd}: ${e.message}); open the address above yourself.\n`));
  child.unref();
}
