import { readFileSync } from 'node:fs';
import type { OidcSettings, OidcSettingsPut, SsoGroupRole } from '@gatehouse/api';
import { GatehouseError } from '@gatehouse/core/errors';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { client, print, withClient } from './api-command.js';
import type { ClientOptions } from './client.js';
import { jsonOutput } from './output.js';
import { readStdin } from './prompt.js';

interface SsoSetFlags extends ClientOptions {
  enable?: boolean;
  disable?: boolean;
  displayName?: string;
  issuerUrl?: string;
  clientId?: string;
  clientSecretStdin?: boolean;
  clientSecretFile?: string;
  redirectUrl?: string | false;
  scopes?: string;
  groupClaim?: string;
  groupRole?: SsoGroupRole[];
  requireLocalMfa?: 'on' | 'off';
  caFile?: string | false;
}

const refuse = (message: string) => new GatehouseError('BAD_REQUEST', message);

/** `--group-role admins=admin`, repeatable: the rules in the order given (the first that matches wins). */
function groupRoleOption(value: string, previous: SsoGroupRole[] = []): SsoGroupRole[] {
  const at = value.lastIndexOf('=');
  if (at <= 0 || at === value.length - 1) throw new InvalidArgumentError('Give it as <group>=<role>, e.g. ops=operator.');
  return [...previous, { group: value.slice(0, at), role: value.slice(at + 1) as SsoGroupRole['role'] }];
}

/** The client secret from standard input or a file, never from the command line. */
async function clientSecretOf(o: SsoSetFlags): Promise<string | undefined> {
  if (o.clientSecretStdin && o.clientSecretFile)
    throw refuse('Give the client secret once: --client-secret-stdin or --client-secret-file.');
  const secret = o.clientSecretStdin
    ? await readStdin()
    : o.clientSecretFile !== undefined
      ? readFileSync(o.clientSecretFile, 'utf8').trim()
      : undefined;
  if (secret === '') throw refuse(`The client secret ${o.clientSecretStdin ? 'on standard input' : `in ${o.clientSecretFile}`} is empty.`);
  return secret;
}

/** The change `gatehouse sso set` sends: only the fields given. */
async function changeOf(o: SsoSetFlags): Promise<OidcSettingsPut> {
  if (o.enable && o.disable) throw refuse('Give --enable or --disable, not both.');
  const body: OidcSettingsPut = {};
  if (o.enable || o.disable) body.enabled = o.enable === true;
  if (o.displayName !== undefined) body.displayName = o.displayName;
  if (o.issuerUrl !== undefined) body.issuerUrl = o.issuerUrl;
  if (o.clientId !== undefined) body.clientId = o.clientId;
  const secret = await clientSecretOf(o);
  if (secret !== undefined) body.clientSecret = secret;
  if (o.redirectUrl !== undefined) body.redirectUrl = o.redirectUrl === false ? null : o.redirectUrl;
  if (o.scopes !== undefined) body.scopes = o.scopes.split(/[\s,]+/).filter((s) => s !== '');
  if (o.groupClaim !== undefined) body.groupClaim = o.groupClaim;
  if (o.groupRole !== undefined) body.groupRoles = o.groupRole;
  if (o.requireLocalMfa !== undefined) body.requireLocalMfa = o.requireLocalMfa === 'on';
  if (o.caFile !== undefined) body.caPem = o.caFile === false ? null : readFileSync(o.caFile, 'utf8');
  if (Object.keys(body).length === 0) throw refuse('Nothing to change: give at least one option (gatehouse sso set --help lists them).');
  return body;
}

/** The settings for people: one labelled line each; the secret only as stored or not. */
function printSettings(s: OidcSettings): void {
  if (jsonOutput()) return print(s);
  const lines: [string, string][] = [
    ['Enabled', s.enabled ? `yes: the sign-in page shows "Sign in with ${s.displayName}"` : 'no'],
    ['Display name', s.displayName],
    ['Issuer URL', s.issuerUrl ?? '-'],
    ['Client ID', s.clientId ?? '-'],
    ['Client secret', s.clientSecretSet ? 'stored' : 'not set'],
    ['Redirect URL', s.redirectUrl ?? 'default: https://<the console>/api/v1/auth/oidc/callback'],
    ['Scopes', s.scopes.join(' ')],
    ['Group claim', s.groupClaim],
    ['Group roles', s.groupRoles.length === 0 ? 'none' : s.groupRoles.map((r) => `${r.group}=${r.role}`).join(', ')],
    ['Local MFA', s.requireLocalMfa ? 'required after SSO' : "off (the identity provider's)"],
    ['Provider CA', s.caPem === null ? "the system's CAs" : 'a PEM is set'],
  ];
  print(lines.map(([k, v]) => `${`${k}:`.padEnd(15)}${v}`).join('\n'));
}

/** `gatehouse sso …`: the OIDC single sign-on settings (administrators), over the API. */
export function ssoCommands(program: Command): void {
  const sso = program.command('sso').description('single sign-on through an OIDC identity provider: its settings (administrators)');

  withClient(sso.command('show'))
    .description('the OIDC settings (the client secret only as stored or not set)')
    .action(async (o: ClientOptions) => printSettings(await client(o).call<OidcSettings>('GET', '/sso/oidc/settings')));

  withClient(sso.command('set'))
    .description('change the OIDC settings given; the client secret is read from standard input or a file, never the command line')
    .option('--enable', 'offer "Sign in with <display name>" (needs issuer, client id, secret and a group role)')
    .option('--disable', 'stop SSO sign-ins (password sign-in stays)')
    .option('--display-name <name>', 'the name on the sign-in button')
    .option('--issuer-url <url>', "the provider's issuer, https:// (its /.well-known/openid-configuration is read)")
    .option('--client-id <id>', 'the client registered at the provider')
    .option('--client-secret-stdin', "read the client's secret from standard input")
    .option('--client-secret-file <file>', "read the client's secret from a file")
    .option('--redirect-url <url>', 'the callback registered at the provider')
    .option('--no-redirect-url', 'use the default callback: https://<the console>/api/v1/auth/oidc/callback')
    .option('--scopes <scopes>', 'the scopes to ask for, space or comma separated; must include openid')
    .option('--group-claim <claim>', 'the claim that lists the user’s groups (default groups)')
    .option(
      '--group-role <group=role>',
      'a group and the role it gives (admin, operator, auditor); repeat it, the first match wins; replaces the rules',
      groupRoleOption,
    )
    .addOption(new Option('--require-local-mfa <on|off>', 'also ask for the local authenticator code after SSO').choices(['on', 'off']))
    .option('--ca-file <file>', "PEM of the CA that signed the provider's TLS certificate, when it is not a public one")
    .option('--no-ca-file', "trust the system's CAs only (removes the PEM)")
    .action(async (o: SsoSetFlags) => {
      const change = await changeOf(o);
      printSettings(await client(o).call<OidcSettings>('PUT', '/sso/oidc/settings', change satisfies OidcSettingsPut));
    });
}
