import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core/errors';

/** Where `gatehouse login` keeps its profiles (mode 0600). */
export function credentialsFile(): string {
  return process.env.GATEHOUSE_CREDENTIALS ?? path.join(os.homedir(), '.config', 'gatehouse', 'credentials.json');
}

/** One saved sign-in: a server, the API token for it, and the CA its certificate was verified with. */
export interface Profile {
  url: string;
  token: string;
  ca?: string | undefined;
  /** Who signed in (shown by `gatehouse profiles`). */
  username?: string | undefined;
}

/** The file: `{ "profiles": { "<name>": Profile } }`. A file of one profile's fields (before profiles) is read as "default". */
interface CredentialsFile {
  profiles: Record<string, Partial<Profile>>;
}

export const DEFAULT_PROFILE = 'default';

/** The profile a command uses: --profile, else GATEHOUSE_PROFILE, else "default". */
export function profileName(explicit?: string): string {
  const name = explicit ?? process.env.GATEHOUSE_PROFILE ?? DEFAULT_PROFILE;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
    throw new GatehouseError(
      'BAD_REQUEST',
      `--profile ${name}: a profile name is letters, digits, '.', '_' and '-' (at most 64), e.g. staging.`,
    );
  return name;
}

/** Whether the profile was chosen (--profile or GATEHOUSE_PROFILE) rather than defaulted. */
export const profileChosen = (explicit?: string): boolean => explicit !== undefined || process.env.GATEHOUSE_PROFILE !== undefined;

/** Every saved profile by name. */
export function readProfiles(): Record<string, Partial<Profile>> {
  const file = credentialsFile();
  if (!existsSync(file)) return {};
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new GatehouseError('CONFIG_INVALID', `${file} is not valid JSON. Delete it and run ./gatehouse login again.`);
  }
  if (typeof data !== 'object' || data === null) return {};
  if ('profiles' in data && typeof data.profiles === 'object' && data.profiles !== null) return (data as CredentialsFile).profiles;
  // The single-profile file of earlier versions: its sign-in is the default profile.
  const old = data as Partial<Profile>;
  return old.url !== undefined || old.token !== undefined ? { [DEFAULT_PROFILE]: old } : {};
}

/** Saves one profile and keeps the others (an earlier single-profile file becomes "default"); returns the file. */
export function saveProfile(name: string, profile: Profile): string {
  const file = credentialsFile();
  const profiles = { ...readProfiles(), [name]: profile };
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify({ profiles } satisfies CredentialsFile, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** Removes a profile; false when there was none of that name. */
export function removeProfile(name: string): boolean {
  const profiles = readProfiles();
  if (!(name in profiles)) return false;
  delete profiles[name];
  writeFileSync(credentialsFile(), `${JSON.stringify({ profiles } satisfies CredentialsFile, null, 2)}\n`, { mode: 0o600 });
  return true;
}

/** Whether two URLs name the same server (scheme, host and port). */
export function sameServer(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return a === b;
  }
}
