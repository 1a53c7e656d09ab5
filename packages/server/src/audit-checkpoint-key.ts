import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError, signingKeyFingerprint } from '@gatehouse/core';

/** The Ed25519 key that signs audit checkpoints. It lives outside the database, so a DBA cannot sign. */
export interface AuditCheckpointKey {
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
  /** A mounted secret (`auditCheckpointKeyFile`) or the one generated in the data directory. */
  origin: 'file' | 'data-dir';
  file: string;
}

export function defaultAuditCheckpointKeyFile(dataDir: string): string {
  return path.join(dataDir, 'audit-checkpoint.key');
}

/**
 * Finds the checkpoint key: `auditCheckpointKeyFile` (GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE,
 * a mounted secret: one key for every replica), else `<data-dir>/audit-checkpoint.key`,
 * generated (mode 0600) the first time when `create` is set.
 */
export function loadAuditCheckpointKey(opts: { keyFile?: string | undefined; dataDir: string; create: boolean }): AuditCheckpointKey {
  const origin = opts.keyFile === undefined ? 'data-dir' : 'file';
  const file = opts.keyFile ?? defaultAuditCheckpointKeyFile(opts.dataDir);
  if (origin === 'data-dir' && !existsSync(file)) {
    if (!opts.create) {
      throw new GatehouseError(
        'CONFIG_INVALID',
        `No audit checkpoint key: ${file} does not exist. Pass --public-key with the key the checkpoint was signed with (GET /api/v1/audit/checkpoint shows it), or set GATEHOUSE_AUDIT_CHECKPOINT_KEY_FILE.`,
      );
    }
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new GatehouseError(
      'CONFIG_INVALID',
      `Cannot read the audit checkpoint key file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}). Check the path and that this user may read it.`,
    );
  }
  let privateKey: KeyObject | undefined;
  try {
    privateKey = createPrivateKey(text);
  } catch {
    // Said below, as for a key of another type.
  }
  if (privateKey?.asymmetricKeyType !== 'ed25519') {
    throw new GatehouseError(
      'CONFIG_INVALID',
      `The audit checkpoint key in ${file} is not a PEM Ed25519 private key. Generate one with: openssl genpkey -algorithm ed25519 -out ${file}`,
    );
  }
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  return { privateKeyPem: text, publicKeyPem, keyId: signingKeyFingerprint(publicKeyPem), origin, file };
}
