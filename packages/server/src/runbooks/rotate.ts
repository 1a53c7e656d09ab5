import { DEFAULT_PASSWORD_POLICY, generatePassword, shellQuote, type PasswordPolicy } from '@gatehouse/core/runbooks';
import { generateEd25519KeyPair, publicKeyLineOf } from '@gatehouse/gateway';
import { oneLine, verifyLogin, type OpenConnection, type PrivilegedShell } from './privileged-shell.js';
import { RunbookConnectError } from './gateway-client.js';

/** An account's current credential, opened by the vault. */
export interface StoredAccount {
  id: string;
  username: string;
  password: string | null;
  privateKey: string | null;
  passphrase: string | null;
}

export interface NewCredential {
  password?: string;
  privateKey?: string;
  publicKey?: string;
}

/**
 * Where a rotation keeps credentials (the vault's `account_credentials`), so that none is
 * ever lost: the new one is stored pending before the host changes, and becomes current
 * only once a login with it worked.
 */
export interface CredentialStore {
  /** The device's account of that name with its current secrets, or undefined. */
  account(username: string): Promise<StoredAccount | undefined>;
  /** Stores the new credential as `pending`; answers its row id. */
  storePending(accountId: string, credential: NewCredential): Promise<string>;
  /** Verified: old → `previous`, pending → current (audit `account.rotated`); answers the previous row's id. */
  promote(credentialId: string): Promise<{ previousId: string | null }>;
  /** Not verified, and the old credential logs in: the pending row is deleted. */
  discard(credentialId: string): Promise<void>;
  /** Neither logs in: the pending row is kept as `unverified`. */
  keepUnverified(credentialId: string): Promise<void>;
  /** Audit `account.rotation_failed`. */
  rotationFailed(account: { id: string; username: string }, reason: string, credentialId: string | null): Promise<void>;
}

export interface RotationOutcome {
  accountId: string | null;
  username: string;
  kind: 'password' | 'key' | null;
  result: 'rotated' | 'failed';
  reason: string | null;
  /** Whether the host was left changed (a rotation, or a failed one that could not be put back). */
  hostChanged: boolean;
  /** After a rotation: the row holding the credential it replaced. */
  previousId: string | null;
}

export interface RotationRequest {
  shell: PrivilegedShell;
  open: OpenConnection;
  store: CredentialStore;
  account: string;
  /** null: a key when the account has a private key and no password, else a password. */
  kind: 'password' | 'key' | null;
  policy?: PasswordPolicy | undefined;
  deviceName: string;
  /** Without an address sshd cannot be reached to verify: nothing is changed. */
  hasAddress: boolean;
}

/**
 * ResetAccess's rotate step: the new credential is stored pending first, set on the host
 * (a password through chpasswd's standard input, a key appended to authorized_keys), and
 * verified by a new login straight to sshd with it. Verified, it becomes current and the
 * old one previous. Not verified, the host is put back, the old credential is proven to
 * log in, and the account's current credential is unchanged.
 */
export async function rotateCredential(r: RotationRequest): Promise<RotationOutcome> {
  const failed = (reason: string, extra: Partial<RotationOutcome> = {}): RotationOutcome => ({
    accountId: null,
    username: r.account,
    kind: r.kind,
    result: 'failed',
    reason,
    hostChanged: false,
    previousId: null,
    ...extra,
  });
  if (/[:\s]/.test(r.account)) return failed(`the account name "${oneLine(r.account).slice(0, 64)}" cannot be rotated (":" or a space)`);
  const account = await r.store.account(r.account);
  if (!account) return failed(`${r.deviceName} has no account "${r.account}" in the vault`);
  const kind = r.kind ?? (account.privateKey && !account.password ? 'key' : 'password');
  if (!r.hasAddress) {
    const reason = `not rotated: ${r.deviceName} has no IP address, so a new credential could not be verified by a login to sshd`;
    await r.store.rotationFailed(account, reason, null);
    return failed(reason, { accountId: account.id, kind });
  }
  const host = kind === 'password' ? passwordOnHost(r.shell, account) : keyOnHost(r.shell, account);
  const fresh = host.generate(r.policy ?? DEFAULT_PASSWORD_POLICY);
  const pendingId = await r.store.storePending(account.id, fresh);
  const applied = await host.apply(fresh);
  if (applied.state !== 'refused') {
    const login = await verifyLogin(r.open, account.username, pendingId);
    if (login.ok) {
      const { previousId } = await r.store.promote(pendingId);
      const cleanup = await host.afterPromotion();
      return {
        accountId: account.id,
        username: account.username,
        kind,
        result: 'rotated',
        reason: `new ${kind} set and verified by a new login${cleanup ? `; ${cleanup}` : ''}`,
        hostChanged: true,
        previousId,
      };
    }
  }
  // Not verified: the host is put back and the old credential must still log in.
  const putBack = applied.state === 'refused' ? 'the host was not changed' : await host.putBack(fresh);
  const old = await verifyLogin(r.open, account.username, null);
  if (old.ok) await r.store.discard(pendingId);
  else await r.store.keepUnverified(pendingId);
  const reason = [
    `new ${kind} not verified (${applied.evidence})`,
    putBack,
    old.ok
      ? 'the old credential logs in and stays current'
      : `the old credential does not log in either: the new one is kept as unverified credential ${pendingId}`,
  ].join('; ');
  await r.store.rotationFailed(account, reason, old.ok ? null : pendingId);
  return failed(reason, { accountId: account.id, kind, hostChanged: !old.ok });
}

interface HostCredential {
  generate(policy: PasswordPolicy): NewCredential;
  apply(credential: NewCredential): Promise<{ state: 'applied' | 'refused' | 'unknown'; evidence: string }>;
  putBack(credential: NewCredential): Promise<string>;
  /** After the new credential became current: what else was done (a key's old line removed). */
  afterPromotion(): Promise<string | null>;
}

/** Runs a host change; a lost connection means it may or may not have happened. */
async function attempt(
  run: () => Promise<{ exitCode: number | null }>,
  what: string,
): Promise<{ state: 'applied' | 'refused' | 'unknown'; evidence: string }> {
  try {
    const exec = await run();
    return exec.exitCode === 0
      ? { state: 'applied', evidence: `${what}: done` }
      : { state: 'refused', evidence: `${what} failed (exit ${exec.exitCode ?? 'none'})` };
  } catch (error) {
    if (!(error instanceof RunbookConnectError)) throw error;
    return { state: 'unknown', evidence: `${what}: the connection was lost (${oneLine(error.message)})` };
  }
}

function passwordOnHost(shell: PrivilegedShell, account: StoredAccount): HostCredential {
  const chpasswd = (password: string) => shell.run('chpasswd', { stdin: `${account.username}:${password}\n`, timeoutMs: 30_000 });
  return {
    generate: (policy) => ({ password: generatePassword(policy) }),
    apply: (c) => attempt(() => chpasswd(c.password as string), 'chpasswd'),
    async putBack() {
      // Without a vaulted password the account had none Gatehouse knew: it is left without one.
      const back = await attempt(
        () => (account.password !== null ? chpasswd(account.password) : shell.run(`usermod -p '*' ${shellQuote(account.username)}`)),
        'putting the old password back',
      );
      return back.state === 'applied' ? 'the old password was put back on the host' : back.evidence;
    },
    afterPromotion: async () => null,
  };
}

/** `~user/.ssh/authorized_keys`, created 0700/0600 and owned by the user when missing, with `body` run on it as "$f". */
function authorizedKeysScript(username: string, body: string): string {
  return [
    `u=${shellQuote(username)}`,
    'h=$(getent passwd "$u" | cut -d: -f6)',
    '[ -n "$h" ] || { echo "$u has no home directory" >&2; exit 1; }',
    'umask 077',
    'mkdir -p "$h/.ssh"',
    'f="$h/.ssh/authorized_keys"',
    'touch "$f"',
    body,
    'chmod 700 "$h/.ssh" && chmod 600 "$f" && chown "$u:$(id -g "$u")" "$h/.ssh" "$f"',
  ].join('\n');
}

/** Removes every line holding the key blob `blob` (the line's other fields may differ), keeping the file's owner and mode. */
function removeKeyScript(username: string, blob: string): string {
  return authorizedKeysScript(
    username,
    `t=$(mktemp) && awk -v k=${shellQuote(blob)} '{ keep = 1; for (i = 1; i <= NF; i++) if ($i == k) keep = 0; if (keep) print }' "$f" > "$t" && cat "$t" > "$f"; rm -f "$t"`,
  );
}

function keyOnHost(shell: PrivilegedShell, account: StoredAccount): HostCredential {
  const blobOf = (line: string | null | undefined) => line?.split(' ')[1] ?? null;
  const oldBlob = blobOf(account.privateKey ? publicKeyLineOf(account.privateKey, account.passphrase) : null);
  return {
    generate: () => {
      const pair = generateEd25519KeyPair(`gatehouse-${account.username}`);
      return { privateKey: pair.private, publicKey: pair.public.trim() };
    },
    apply: (c) =>
      attempt(
        () =>
          shell.run(authorizedKeysScript(account.username, '[ -s "$f" ] && [ -n "$(tail -c1 "$f")" ] && echo >> "$f"; cat >> "$f"'), {
            stdin: `${c.publicKey as string}\n`,
            timeoutMs: 30_000,
          }),
        'adding the new key to authorized_keys',
      ),
    async putBack(c) {
      const blob = blobOf(c.publicKey) as string;
      const back = await attempt(() => shell.run(removeKeyScript(account.username, blob)), 'removing the new key');
      return back.state === 'applied' ? 'the new key was removed from authorized_keys' : back.evidence;
    },
    async afterPromotion() {
      if (!oldBlob) return null;
      const removed = await attempt(() => shell.run(removeKeyScript(account.username, oldBlob)), 'removing the old key');
      return removed.state === 'applied' ? 'the old key was removed from authorized_keys' : `${removed.evidence}: remove it by hand`;
    },
  };
}
